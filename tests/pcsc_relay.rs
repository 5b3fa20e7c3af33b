//! The recording relay through a real pcscd, with both of vpcd's virtual reader slots:
//!
//! ```text
//! telepay card read ──pcsc──▶ "Virtual PCD 00 00" ◀─35963─ telepay vpcd serve --card "pcsc:Virtual PCD 00 01" --record FILE
//!                                                                         │ pcsc
//!                             "Virtual PCD 00 01" ◀─35964─ telepay vpcd serve --card sim:cb?seed=1
//! ```
//!
//! What is pinned: the terminal dialogue read through the relay decodes exactly as the
//! same dialogue read from `sim:cb?seed=1` in process (apart from the `Reader:` line,
//! which names the reader), and the trace the relay recorded replays green against
//! `sim:cb?seed=1` (`telepay trace replay`, exit status 0, no difference).
//!
//! Both slots are used, so this binary holds a single test: it must not share a slot
//! with `tests/pcsc_backend.rs` or `tests/vpcd_pcscd.rs`, which cargo runs before or
//! after it, never at the same time. pcscd is not started here (`scripts/pcscd-up` and
//! `.ci/run` do); when it cannot be reached or lacks the two virtual readers, the test
//! fails if `CI` is set and otherwise prints `SKIPPED: …`. Every process started is
//! killed by a drop guard, even when the test fails.

#[cfg(not(feature = "pcsc"))]
#[test]
fn pcsc_relay_needs_the_pcsc_feature() {
    println!("SKIPPED: telepay was built without the `pcsc` feature (cargo test --features pcsc)");
}

#[cfg(feature = "pcsc")]
mod with_pcscd {
    use std::io::Read;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use telepay::reader::pcsc::{self, CardState};

    /// The slot the terminal reads from, filled by the relay (vpcd port 35963).
    const OUTER: &str = "Virtual PCD 00 00";
    const OUTER_PORT: &str = "35963";
    /// The slot the software card is served into, read by the relay (port 35964).
    const INNER: &str = "Virtual PCD 00 01";
    const INNER_PORT: &str = "35964";
    /// The software card behind the relay, and the reference read in process.
    const CARD: &str = "sim:cb?seed=1";
    /// The terminal's fixed inputs, so that both dialogues are the same.
    const TERMINAL: [&str; 4] = ["--date", "261125", "--unpredictable-number", "CAFEBABE"];
    /// How long a reader may take to show a card served or stopped (pcscd polls vpcd
    /// about every 0.4 s).
    const READY: Duration = Duration::from_secs(15);

    /// Fails in CI, skips elsewhere.
    fn unavailable(why: &str) {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set, so the relay test must run, but {why}");
        }
        println!("SKIPPED: {why}");
    }

    /// `reader`'s state as pcscd reports it, `None` when pcscd or the reader is missing.
    fn state(reader: &str) -> Option<CardState> {
        pcsc::list()
            .ok()?
            .into_iter()
            .find(|status| status.name == reader)
            .map(|status| status.state)
    }

    /// Polls until `reader` is in a state `wanted` accepts, for at most [`READY`].
    fn wait_for(
        reader: &str,
        what: &str,
        wanted: impl Fn(CardState) -> bool,
        log: &dyn Fn() -> String,
    ) {
        let deadline = Instant::now() + READY;
        loop {
            let current = state(reader);
            if current.is_some_and(&wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{reader} is not {what} after {READY:?}: {current:?}\nlogs:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A child process killed (by its own id) and reaped on drop.
    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A path under the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(what: &str) -> TempFile {
            TempFile(
                std::env::temp_dir()
                    .join(format!("telepay-pcsc-relay-{}-{what}", std::process::id())),
            )
        }

        fn text(&self) -> String {
            std::fs::read_to_string(&self.0).unwrap_or_default()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `telepay vpcd serve ARGS`, its standard error to `log`.
    fn serve(args: &[&str], log: &TempFile) -> Killed {
        let log_file = std::fs::File::create(&log.0).expect("serve log file");
        Killed(
            Command::new(env!("CARGO_BIN_EXE_telepay"))
                .args(["vpcd", "serve"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("the telepay binary starts"),
        )
    }

    /// Runs `telepay ARGS` to completion (killed after 60 s): stdout, stderr, success.
    fn telepay(args: &[&str]) -> (String, String, bool) {
        let child = Command::new(env!("CARGO_BIN_EXE_telepay"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the telepay binary starts");
        let mut child = Killed(child);
        // Read the pipes on threads so that a large output cannot block the child.
        let mut stdout_pipe = child.0.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.0.stderr.take().expect("piped stderr");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout_pipe.read_to_string(&mut text);
            text
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "telepay {args:?} still runs after 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            stdout.join().expect("stdout reader"),
            stderr.join().expect("stderr reader"),
            status.success(),
        )
    }

    /// The decoded dialogue without its `Reader:` line, which names the reader.
    fn dialogue(output: &str) -> Vec<&str> {
        output
            .lines()
            .filter(|line| !line.starts_with("Reader: "))
            .collect()
    }

    #[test]
    fn the_relay_passes_the_dialogue_through_and_records_a_trace_that_replays_green() {
        match pcsc::list() {
            Err(error) => return unavailable(&format!("pcscd cannot be reached: {error}")),
            Ok(readers) => {
                for wanted in [OUTER, INNER] {
                    if !readers.iter().any(|reader| reader.name == wanted) {
                        return unavailable(&format!(
                            "pcscd has no reader {wanted:?} (install vsmartcard-vpcd and \
                             restart pcscd)"
                        ));
                    }
                }
            }
        }
        let no_logs = || String::new();
        // A card from an earlier test binary may still be seen until pcscd's next poll.
        wait_for(OUTER, "empty", |state| state == CardState::Absent, &no_logs);
        wait_for(INNER, "empty", |state| state == CardState::Absent, &no_logs);

        let inner_log = TempFile::new("inner.log");
        let relay_log = TempFile::new("relay.log");
        let recording = TempFile::new("relay.trace");
        let logs = || {
            format!(
                "card server:\n{}\nrelay:\n{}",
                inner_log.text(),
                relay_log.text()
            )
        };

        let _card = serve(&["--card", CARD, "--port", INNER_PORT], &inner_log);
        wait_for(
            INNER,
            "holding the served card",
            |state| state != CardState::Absent,
            &logs,
        );
        let relay_card = format!("pcsc:{INNER}");
        let recording_path = recording.0.to_str().expect("a UTF-8 temporary path");
        let relay = serve(
            &[
                "--card",
                &relay_card,
                "--port",
                OUTER_PORT,
                "--record",
                recording_path,
            ],
            &relay_log,
        );
        wait_for(
            OUTER,
            "holding the relayed card",
            |state| state == CardState::Present,
            &logs,
        );

        let outer_uri = format!("pcsc:{OUTER}");
        let mut read = vec!["card", "read", "--reader", &outer_uri];
        read.extend(TERMINAL);
        let (through_relay, stderr, ok) = telepay(&read);
        assert!(
            ok,
            "card read through the relay failed: {stderr}\n{}",
            logs()
        );
        let mut read = vec!["card", "read", "--reader", CARD];
        read.extend(TERMINAL);
        let (in_process, stderr, ok) = telepay(&read);
        assert!(ok, "card read from {CARD} failed: {stderr}");
        assert!(
            through_relay.starts_with(&format!("Reader: {OUTER}\n")),
            "{through_relay}"
        );
        assert!(
            in_process.contains("> GET DATA 9F17"),
            "the reference dialogue reads to the PIN try counter:\n{in_process}"
        );
        assert_eq!(dialogue(&through_relay), dialogue(&in_process));

        // Stopping the relay closes the recording.
        drop(relay);
        let trace = recording.text();
        assert!(trace.starts_with("telepay-trace 1\n"), "{trace}");
        assert!(
            trace.contains("\n@atr 3BE800008031FE458073C6010052434285\n"),
            "{trace}"
        );
        let (replayed, stderr, ok) =
            telepay(&["trace", "replay", recording_path, "--reader", CARD]);
        assert!(
            ok,
            "the recording does not replay green: {replayed}{stderr}\n{trace}"
        );
        assert!(
            replayed.contains(" 0 differ from the recording"),
            "{replayed}"
        );
        let relay_text = relay_log.text();
        assert!(
            !relay_text.contains("error") && !relay_text.contains("warning"),
            "{relay_text}"
        );
    }
}
