//! The `pcsc:` reader backend against a real pcscd: the card is telepay's software card,
//! served into vsmartcard's virtual reader "Virtual PCD 00 01" (vpcd port 35964) by the
//! built binary's `telepay vpcd serve`. ("Virtual PCD 00 00" belongs to
//! `tests/vpcd_pcscd.rs`, so both can run at once.)
//!
//! What is pinned: a card read through pcscd is the simulator's dialogue exactly;
//! `telepay readers` shows the virtual readers with state and ATR; no card and
//! `--wait` give clear errors, and `--wait` sees a card inserted later; an exclusive
//! holder gives a sharing violation; telepay's dialogue holds other clients off until
//! it ends; resets reach the card and keep the protocol; a removed card is reported as
//! removed; under T=0 the card's `61xx` reach telepay through pcscd unchanged.
//!
//! pcscd is not started here (`scripts/pcscd-up` does, as `.ci/run` does before the
//! tests). When it cannot be reached, or lacks the virtual reader, every test fails if
//! the environment variable `CI` is set, and otherwise prints `SKIPPED: …` and returns.
//! Every process a test starts is killed by a drop guard, even when the test fails.

#[cfg(not(feature = "pcsc"))]
#[test]
fn pcsc_backend_needs_the_pcsc_feature() {
    println!("SKIPPED: telepay was built without the `pcsc` feature (cargo test --features pcsc)");
}

#[cfg(feature = "pcsc")]
mod with_pcscd {
    use std::path::PathBuf;
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    use telepay::apdu::{Command as Apdu, StatusWord};
    use telepay::atr::Protocol;
    use telepay::reader::pcsc::{self, CardState, PcscCode, PcscError, PcscReader};
    use telepay::reader::uri::{PcscUri, ShareMode};
    use telepay::reader::{OpenOptions, Reader, ReaderError, ResetKind, Transport};

    /// The virtual reader these tests use, and the vpcd port that fills it.
    const READER: &str = "Virtual PCD 00 01";
    const PORT: &str = "35964";
    /// `--reader` for it.
    const READER_URI: &str = "pcsc:Virtual PCD 00 01";
    /// The software card served, and the same card in process.
    const CARD: &str = "sim:cb?seed=1";
    /// `sim:cb`'s ATR (docs/card-profiles.md).
    const CB_ATR: &str = "3BE800008031FE458073C6010052434285";
    /// SELECT 2PAY.SYS.DDF01 and the CB application.
    const SELECT_PPSE: &str = "00A404000E325041592E5359532E444446303100";
    const SELECT_CB: &str = "00A4040007A000000042101000";
    /// GET PROCESSING OPTIONS with `sim:cb`'s empty PDOL.
    const GPO: &str = "80A8000002830000";

    /// The tests share one reader slot: one at a time.
    static SLOT: Mutex<()> = Mutex::new(());

    /// The reader slot, or `None` (after printing why) when pcscd or the virtual reader
    /// is missing outside CI. In CI that is a failure.
    fn slot() -> Option<MutexGuard<'static, ()>> {
        let guard = SLOT.lock().unwrap_or_else(PoisonError::into_inner);
        let problem = match pcsc::list() {
            Err(error) => format!("pcscd cannot be reached: {error}"),
            Ok(readers) if readers.iter().any(|reader| reader.name == READER) => {
                return Some(guard);
            }
            Ok(readers) => format!(
                "pcscd has no reader {READER:?} (vsmartcard-vpcd's driver is not loaded; \
                 install vsmartcard-vpcd and restart pcscd); it has: {:?}",
                readers
                    .iter()
                    .map(|reader| &reader.name)
                    .collect::<Vec<_>>()
            ),
        };
        if std::env::var_os("CI").is_some() {
            panic!("CI is set, so the PC/SC backend tests must run, but {problem}");
        }
        println!("SKIPPED: {problem}");
        None
    }

    fn state() -> Option<CardState> {
        pcsc::list()
            .ok()?
            .into_iter()
            .find(|reader| reader.name == READER)
            .map(|reader| reader.state)
    }

    /// Waits until pcscd reports the reader in a state `wanted` accepts (pcscd polls
    /// vpcd about every 0.4 s, so a card served or stopped shows up a little later).
    fn wait_for(what: &str, wanted: impl Fn(CardState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let current = state();
            if current.is_some_and(&wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{READER} is not {what} after 15 s: {current:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_no_card() {
        wait_for("empty", |state| state == CardState::Absent);
    }

    /// A child process killed (by its own id) and reaped on drop, unless [`finish`]
    /// took it.
    struct Killed(Option<Child>);

    impl Killed {
        fn spawn(command: &mut Command) -> Killed {
            Killed(Some(command.spawn().expect("the telepay binary starts")))
        }

        fn is_running(&mut self) -> bool {
            self.0
                .as_mut()
                .is_some_and(|child| child.try_wait().expect("try_wait").is_none())
        }

        /// Fails with `why` and the process's output unless it is still running.
        fn assert_running(&mut self, why: &str) {
            if !self.is_running() {
                let output = self.0.take().map(|child| child.wait_with_output());
                match output {
                    Some(Ok(output)) => panic!(
                        "{why}: it ended ({}); stdout: {} stderr: {}",
                        output.status,
                        text(&output.stdout),
                        text(&output.stderr)
                    ),
                    other => panic!("{why}: {other:?}"),
                }
            }
        }
    }

    impl Drop for Killed {
        fn drop(&mut self) {
            if let Some(child) = self.0.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// A unique path under the temporary directory.
    fn temp_path(what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "telepay-pcsc-backend-{}-{n}-{what}",
            std::process::id()
        ))
    }

    /// `telepay vpcd serve --card CARD --port 35964`, running until dropped.
    struct Served {
        _process: Killed,
        log: PathBuf,
    }

    impl Served {
        fn start(card: &str) -> Served {
            // A card from an earlier test may still be seen until pcscd's next poll.
            wait_for_no_card();
            let log = temp_path("serve.log");
            let log_file = std::fs::File::create(&log).expect("server log file");
            let process = Killed::spawn(
                telepay_command()
                    .args(["vpcd", "serve", "--card", card, "--port", PORT])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log_file),
            );
            let served = Served {
                _process: process,
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while state() != Some(CardState::Present) {
                assert!(
                    Instant::now() < deadline,
                    "the served card did not appear in {READER}: {:?}; server log:\n{}",
                    state(),
                    served.log_text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            served
        }

        fn log_text(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        /// Stops serving: for pcscd, the card is pulled out.
        fn stop(self) {
            drop(self);
            wait_for_no_card();
        }
    }

    impl Drop for Served {
        fn drop(&mut self) {
            // `_process` is killed by its own guard; the log goes with it.
            let _ = std::fs::remove_file(&self.log);
        }
    }

    fn telepay_command() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_telepay"));
        command.env_remove("TELEPAY_READER");
        command
    }

    fn telepay(args: &[&str]) -> Output {
        telepay_command()
            .args(args)
            .output()
            .expect("the telepay binary runs")
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(args: &[&str]) -> String {
        let output = telepay(args);
        assert!(
            output.status.success(),
            "telepay {args:?} failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs a command that must fail with status 1; returns its standard error.
    fn fails(args: &[&str]) -> String {
        let output = telepay(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "telepay {args:?}: stdout {}, stderr {}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stderr)
    }

    /// Waits up to `limit` for a child to end (its output is a few lines, well within
    /// a pipe's buffer) and returns its output; past `limit` the test fails and the
    /// guard kills it.
    fn finish(mut child: Killed, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while child.is_running() {
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let process = child.0.take().expect("a child not yet taken");
        process.wait_with_output().expect("output")
    }

    fn uri(share: Option<ShareMode>) -> PcscUri {
        PcscUri {
            name: Some(READER.to_owned()),
            share,
        }
    }

    fn open(share: Option<ShareMode>) -> PcscReader {
        PcscReader::open(&uri(share), &OpenOptions::default()).expect("pcscd answers")
    }

    fn bytes(hex_text: &str) -> Vec<u8> {
        hex::decode(hex_text).expect("hex")
    }

    fn status_word(response: &[u8]) -> Option<(u8, u8)> {
        match response {
            [.., sw1, sw2] => Some((*sw1, *sw2)),
            _ => None,
        }
    }

    /// The PC/SC error inside a reader error.
    fn pcsc_error(error: ReaderError) -> PcscError {
        match error {
            ReaderError::Pcsc(error) => *error,
            other => panic!("not a PC/SC error: {other}"),
        }
    }

    #[test]
    fn card_read_through_pcscd_is_the_simulators_dialogue() {
        let Some(_slot) = slot() else { return };
        let _served = Served::start(CARD);
        let fixed = ["--date", "261125", "--unpredictable-number", "CAFEBABE"];
        let through_pcscd = ok(&[&["card", "read", "--reader", READER_URI], &fixed[..]].concat());
        let in_process = ok(&[&["card", "read", "--reader", CARD], &fixed[..]].concat());
        let (pcscd_reader, pcscd_rest) = through_pcscd.split_once('\n').expect("a header");
        let (sim_reader, sim_rest) = in_process.split_once('\n').expect("a header");
        assert_eq!(pcscd_reader, format!("Reader: {READER}"));
        assert_eq!(sim_reader, format!("Reader: {CARD}"));
        assert!(
            pcscd_rest.starts_with(&format!("ATR: {CB_ATR}\n")),
            "{pcscd_rest}"
        );
        // The ATR line and every decoded exchange, byte for byte.
        assert_eq!(pcscd_rest, sim_rest);
        assert!(
            pcscd_rest.contains("GET PROCESSING OPTIONS"),
            "{pcscd_rest}"
        );
    }

    #[test]
    fn readers_lists_the_virtual_readers_with_state_and_atr() {
        let Some(_slot) = slot() else { return };
        let _served = Served::start(CARD);
        let listing = ok(&["readers"]);
        let pcsc_section: Vec<&str> = listing
            .lines()
            .skip_while(|line| *line != "pcsc:")
            .skip(1)
            .take_while(|line| line.starts_with("  "))
            .collect();
        assert!(
            pcsc_section.contains(&format!("  {READER_URI} card present, ATR {CB_ATR}").as_str()),
            "{listing}"
        );
        assert!(
            pcsc_section
                .iter()
                .any(|line| line.starts_with("  pcsc:Virtual PCD 00 00 ")),
            "{listing}"
        );
        let json: serde_json::Value = serde_json::from_str(&ok(&["readers", "--json"])).unwrap();
        let backend = json
            .as_array()
            .and_then(|backends| backends.iter().find(|backend| backend["scheme"] == "pcsc"))
            .expect("a pcsc backend");
        assert_eq!(backend["unavailable"], serde_json::Value::Null);
        assert!(
            backend["readers"]
                .as_array()
                .expect("readers")
                .contains(&serde_json::json!({
                    "uri": READER_URI,
                    "description": format!("card present, ATR {CB_ATR}"),
                })),
            "{backend}"
        );
    }

    #[test]
    fn no_card_is_a_clear_error_and_wait_times_out() {
        let Some(_slot) = slot() else { return };
        wait_for_no_card();
        let error = fails(&["atr", "--reader", READER_URI]);
        assert_eq!(
            error,
            "telepay: error: no card in a PC/SC reader matching \"Virtual PCD 00 01\": insert \
             one, or let telepay wait for it (--wait 30s); readers: Virtual PCD 00 01 (no card)\n"
        );
        let started = Instant::now();
        let error = fails(&["atr", "--reader", READER_URI, "--wait", "1s"]);
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(
            error,
            "telepay: error: no card in a PC/SC reader matching \"Virtual PCD 00 01\" after \
             waiting 1 s; readers: Virtual PCD 00 01 (no card)\n"
        );
        let error = fails(&["atr", "--reader", "pcsc:Gemalto"]);
        assert!(
            error.starts_with(
                "telepay: error: no PC/SC reader's name contains \"Gemalto\"; the readers are: "
            ),
            "{error}"
        );
        assert!(error.contains(READER), "{error}");
        // Waiting for a reader that never comes ends with the same error.
        let waited = fails(&["atr", "--reader", "pcsc:Gemalto", "--wait", "500ms"]);
        assert_eq!(waited, error);
    }

    #[test]
    fn wait_sees_a_card_inserted_later() {
        let Some(_slot) = slot() else { return };
        wait_for_no_card();
        let mut waiting = Killed::spawn(
            telepay_command()
                .args(["atr", "--reader", READER_URI, "--wait", "60s"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        std::thread::sleep(Duration::from_millis(800));
        waiting.assert_running("telepay did not wait for the card");
        let _served = Served::start(CARD);
        let output = finish(waiting, Duration::from_secs(30));
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert!(
            stdout.starts_with(&format!("Reader: {READER}\nATR: {CB_ATR}\n")),
            "{stdout}"
        );
    }

    #[test]
    fn an_exclusive_holder_gives_a_sharing_violation() {
        let Some(_slot) = slot() else { return };
        let _served = Served::start(CARD);
        let mut holder = open(Some(ShareMode::Exclusive));
        assert_eq!(holder.power_on().expect("power on"), bytes(CB_ATR));
        let error = fails(&["atr", "--reader", READER_URI]);
        assert_eq!(
            error,
            "telepay: error: reader Virtual PCD 00 01: another application holds the card \
             exclusively; close it (or let it finish) and run again (SCardConnect: The smart \
             card cannot be accessed because of other connections outstanding \
             [SCARD_E_SHARING_VIOLATION 0x8010000B])\n"
        );
        let listing = ok(&["readers"]);
        assert!(
            listing.contains(&format!(
                "  {READER_URI} card held exclusively by another application, ATR {CB_ATR}\n"
            )),
            "{listing}"
        );
        // The same through the library, from a second client in this process.
        let mut second = open(None);
        assert_eq!(
            pcsc_error(second.power_on().expect_err("a sharing violation")),
            PcscError::SharingViolation {
                reader: READER.to_owned(),
                operation: "SCardConnect",
                code: PcscCode(::pcsc::Error::SharingViolation),
            }
        );
        holder.power_off().expect("power off");
        assert_eq!(second.power_on().expect("free again"), bytes(CB_ATR));
    }

    #[test]
    fn the_dialogue_holds_other_clients_off_until_power_off() {
        let Some(_slot) = slot() else { return };
        let _served = Served::start(CARD);
        let mut holder = open(None);
        assert_eq!(holder.share_mode(), ShareMode::Shared);
        holder.power_on().expect("power on");
        let mut other = Killed::spawn(
            telepay_command()
                .args(["apdu", "--reader", READER_URI, SELECT_PPSE])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        std::thread::sleep(Duration::from_millis(800));
        other.assert_running("another client got in during the dialogue");
        // The dialogue goes on meanwhile, across a reset: the transaction outlives it.
        let response = holder.transmit_raw(&bytes(SELECT_CB)).expect("select");
        assert_eq!(status_word(&response), Some((0x90, 0x00)));
        holder.reset(ResetKind::Warm).expect("warm reset");
        std::thread::sleep(Duration::from_millis(500));
        other.assert_running("a reset ended the dialogue's transaction");
        holder.power_off().expect("power off");
        let output = finish(other, Duration::from_secs(20));
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains("9000"),
            "{}",
            text(&output.stdout)
        );
    }

    #[test]
    fn resets_reach_the_card_and_the_protocol_is_reported() {
        let Some(_slot) = slot() else { return };
        let _served = Served::start(CARD);
        let mut reader = open(None);
        assert_eq!(reader.name(), "pcsc:Virtual%20PCD%2000%2001");
        assert_eq!(reader.protocol(), None);
        assert_eq!(reader.power_on().expect("power on"), bytes(CB_ATR));
        assert_eq!(reader.name(), READER);
        // The ATR offers T=0 (TD1) and T=1 (TD2); telepay accepts both, and pcsc-lite
        // then chooses T=1.
        let negotiated = reader.protocol();
        assert_eq!(negotiated, Some(Protocol::T1));
        for kind in [ResetKind::Warm, ResetKind::Cold] {
            let select = reader.transmit_raw(&bytes(SELECT_CB)).expect("select");
            assert_eq!(status_word(&select), Some((0x90, 0x00)));
            assert_eq!(
                reader.reset(kind).expect("reset"),
                bytes(CB_ATR),
                "{kind:?}"
            );
            assert_eq!(reader.protocol(), negotiated, "{kind:?}");
            // The reset reached the card: no application is selected any more.
            let gpo = reader.transmit_raw(&bytes(GPO)).expect("gpo");
            assert_eq!(status_word(&gpo), Some((0x69, 0x85)), "{kind:?}");
        }
        reader.power_off().expect("power off");
        assert_eq!(reader.protocol(), None);
        assert!(matches!(
            reader.transmit_raw(&bytes(SELECT_CB)),
            Err(ReaderError::NotPowered { reader }) if reader == READER
        ));
    }

    #[test]
    fn a_card_removed_mid_dialogue_is_reported_as_removed() {
        let Some(_slot) = slot() else { return };
        let served = Served::start(CARD);
        let mut reader = open(None);
        reader.power_on().expect("power on");
        let select = reader.transmit_raw(&bytes(SELECT_CB)).expect("select");
        assert_eq!(status_word(&select), Some((0x90, 0x00)));
        served.stop();
        let error = pcsc_error(
            reader
                .transmit_raw(&bytes(GPO))
                .expect_err("the card is gone"),
        );
        assert_eq!(
            error,
            PcscError::CardRemoved {
                reader: READER.to_owned(),
                operation: "SCardTransmit",
                code: PcscCode(::pcsc::Error::RemovedCard),
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("reader Virtual PCD 00 01: the card was removed; "),
            "{error}"
        );
    }

    #[test]
    fn under_t0_the_cards_61xx_reach_the_transport_through_pcscd() {
        let Some(_slot) = slot() else { return };
        let _served = Served::start("sim:t0-slow");
        let mut transport = Transport::new(open(None));
        transport.power_on().expect("power on");
        assert_eq!(transport.reader().protocol(), Some(Protocol::T0));
        // Raw: pcscd and vpcd pass the card's 61xx up unchanged …
        let raw = transport
            .reader_mut()
            .transmit_raw(&bytes(SELECT_PPSE))
            .expect("select");
        assert_eq!(raw, [0x61, 0x3A]);
        let rest = transport
            .reader_mut()
            .transmit_raw(&bytes("00C000003A"))
            .expect("get response");
        assert_eq!(rest.len(), 0x3A + 2);
        assert_eq!(status_word(&rest), Some((0x90, 0x00)));
        // … and the transport fetches the rest with GET RESPONSE.
        let select = Apdu::parse(&bytes(SELECT_PPSE)).expect("apdu");
        let response = transport.transmit(&select).expect("select");
        assert_eq!(response.sw, StatusWord::Success);
        assert_eq!(response.data, rest[..0x3A]);
    }

    /// Claim 11 through PC/SC: `telepay purchase` pays with the card pcscd holds (the
    /// software card served by vpcd): read, PIN, cryptogram and completion all go
    /// through pcscd, and the service is delivered.
    #[test]
    fn a_purchase_pays_with_the_card_in_a_pcsc_reader() {
        let Some(_slot) = slot() else {
            return;
        };
        let served = Served::start(CARD);
        let data = temp_path("purchase-data");
        let mut child = telepay_command()
            .args(["--reader", READER_URI, "purchase", "--pin-stdin"])
            .env("TELEPAY_DATA_DIR", &data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the telepay binary starts");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"1234\n").expect("the PIN is written");
        }
        let output = child.wait_with_output().expect("the purchase ends");
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "{}\n{stdout}\nserver log:\n{}",
            text(&output.stderr),
            served.log_text()
        );
        assert!(stdout.contains("PIN verified by the card"), "{stdout}");
        assert!(stdout.contains("card: Tc "), "{stdout}");
        assert!(stdout.contains("delivered: market-report-2026"), "{stdout}");
        let _ = std::fs::remove_dir_all(&data);
        served.stop();
    }
}
