//! End to end through real parts: `telepay vpcd serve --card sim:cb?seed=1` (the built
//! binary) connects to vsmartcard's vpcd driver inside a real pcscd, and third-party
//! PC/SC clients — pyscard and OpenSC's `opensc-tool` — drive the card through pcscd.
//! The ATR and the answers they get must be byte for byte what `sim:cb` gives in
//! process.
//!
//! pcscd is started with `scripts/pcscd-up` when it is not running (and stopped again at
//! the end; a pcscd that was already running is left alone). When it cannot be started
//! or reached, the test fails if the environment variable `CI` is set, and otherwise
//! prints `SKIPPED: …` and passes.
//!
//! Reader slot: this test uses "Virtual PCD 00 00" (TCP 35963) only; the `pcsc:` backend
//! tests use "Virtual PCD 00 01" (TCP 35964), so both can run at the same time.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telepay::reader::{ReaderUri, open};

/// The virtual reader this test serves, and its vpcd port.
const READER: &str = "Virtual PCD 00 00";
const PORT: &str = "35963";
/// The card served.
const CARD: &str = "sim:cb?seed=1";
/// SELECT of the contactless payment directory (2PAY.SYS.DDF01), as in the brief.
const SELECT_PPSE: &str = "00A404000E325041592E5359532E444446303100";
/// Debian's python: the pyenv `python3` on PATH has no pyscard.
const PYTHON: &str = "/usr/bin/python3";
/// How many SELECTs the pyscard client sends in a row.
const LOOP: usize = 1000;

/// A pyscard client. `status READER`: prints `card` or `no card` (or `no reader`).
/// `drive READER APDU N`: waits up to 20 s for the card, prints its ATR, sends the APDU
/// once and prints the answer, then N more times, each answer compared with the first,
/// and prints the count of equal answers and the time they took.
const PYSCARD_CLIENT: &str = r#"
import sys, time
from smartcard.System import readers
from smartcard.Exceptions import NoCardException, CardConnectionException

def find(name):
    for reader in readers():
        if str(reader) == name:
            return reader
    return None

mode, name = sys.argv[1], sys.argv[2]
if mode == "status":
    reader = find(name)
    if reader is None:
        print("no reader"); sys.exit(0)
    try:
        connection = reader.createConnection(); connection.connect(); connection.disconnect()
        print("card")
    except (NoCardException, CardConnectionException):
        print("no card")
    sys.exit(0)

apdu, count = list(bytes.fromhex(sys.argv[3])), int(sys.argv[4])
deadline = time.monotonic() + 20
while True:
    reader = find(name)
    try:
        if reader is None:
            raise NoCardException("no reader", 0)
        connection = reader.createConnection(); connection.connect()
        break
    except (NoCardException, CardConnectionException) as error:
        if time.monotonic() > deadline:
            print("error no card in %s: %s" % (name, error)); sys.exit(1)
        time.sleep(0.1)
print("atr", bytes(connection.getATR()).hex().upper())
data, sw1, sw2 = connection.transmit(apdu)
first = bytes(data + [sw1, sw2])
print("answer", first.hex().upper())
same = 0
started = time.perf_counter()
for _ in range(count):
    data, sw1, sw2 = connection.transmit(apdu)
    same += bytes(data + [sw1, sw2]) == first
elapsed = time.perf_counter() - started
print("loop", same, "%.6f" % elapsed)
connection.disconnect()
"#;

/// Fails in CI, skips elsewhere.
fn unavailable(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {why}");
    }
    println!("SKIPPED: {why}");
}

/// pcscd for the test's duration: stopped on drop only if this test started it.
struct Pcscd {
    started_here: bool,
}

impl Pcscd {
    fn up() -> Result<Pcscd, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pcscd-up");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "scripts/pcscd-up failed ({}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(Pcscd {
            started_here: stdout.contains("pcscd started"),
        })
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if self.started_here {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pcscd-down");
            let _ = Command::new("bash").arg(script).status();
        }
    }
}

/// A child process killed (by its own id) and reaped on drop, even when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to completion, killing it after `limit`; stdout, stderr, success.
fn run(command: &mut Command, limit: Duration) -> (String, String, bool) {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
    let mut child = Killed(child);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(pipe) = child.0.stdout.as_mut() {
        pipe.read_to_string(&mut stdout).expect("stdout");
    }
    if let Some(pipe) = child.0.stderr.as_mut() {
        pipe.read_to_string(&mut stderr).expect("stderr");
    }
    (stdout, stderr, status.success())
}

fn pyscard(args: &[&str], limit: Duration) -> (String, String, bool) {
    run(
        Command::new(PYTHON)
            .arg("-c")
            .arg(PYSCARD_CLIENT)
            .args(args),
        limit,
    )
}

/// The value after `key ` on the line that starts with it.
fn field<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{key}` in the client's output:\n{output}"))
}

#[test]
fn pyscard_and_opensc_drive_the_served_software_card_through_pcscd() {
    let pcscd = match Pcscd::up() {
        Ok(pcscd) => pcscd,
        Err(why) => return unavailable(&why),
    };
    let (_, stderr, ok) = run(
        Command::new(PYTHON).args(["-c", "import smartcard"]),
        Duration::from_secs(30),
    );
    if !ok {
        return unavailable(&format!(
            "pyscard is not importable from {PYTHON} (apt-get install python3-pyscard): {stderr}"
        ));
    }
    let (status, stderr, ok) = pyscard(&["status", READER], Duration::from_secs(30));
    assert!(ok, "pyscard status failed: {stderr}");
    match status.trim() {
        "no card" => {}
        "no reader" => {
            return unavailable(&format!(
                "pcscd runs but has no reader {READER:?}: is vsmartcard-vpcd installed \
                 (/etc/reader.conf.d/vpcd)?"
            ));
        }
        other => {
            return unavailable(&format!(
                "{READER:?} already holds a card ({other}): another virtual card is \
                 connected to TCP {PORT}"
            ));
        }
    }

    // What the software card answers in process.
    let mut card = open(&ReaderUri::parse(CARD).unwrap()).unwrap();
    let atr = hex::encode_upper(card.power_on().unwrap());
    let select = hex::encode_upper(
        card.transmit_raw(&hex::decode(SELECT_PPSE).unwrap())
            .unwrap(),
    );

    let log = std::env::temp_dir().join(format!("telepay-vpcd-pcscd-{}.log", std::process::id()));
    let serve = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(["vpcd", "serve", "--card", CARD, "--port", PORT])
        .args(["--give-up-after", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("serve log"))
        .spawn()
        .expect("start telepay vpcd serve");
    let mut serve = Killed(serve);
    let serve_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let loop_count = LOOP.to_string();
    let (out, stderr, ok) = pyscard(
        &["drive", READER, SELECT_PPSE, &loop_count],
        Duration::from_secs(120),
    );
    assert!(
        ok,
        "pyscard client failed:\n{out}{stderr}\nserve log:\n{}",
        serve_log()
    );
    assert_eq!(field(&out, "atr"), atr, "ATR through pcscd (pyscard)");
    assert_eq!(
        field(&out, "answer"),
        select,
        "SELECT through pcscd (pyscard)"
    );
    let mut loop_result = field(&out, "loop").split_whitespace();
    let same: usize = loop_result.next().and_then(|n| n.parse().ok()).unwrap();
    let seconds: f64 = loop_result.next().and_then(|s| s.parse().ok()).unwrap();
    assert_eq!(same, LOOP, "every answer of the loop is the same");
    // Informational only: no timing assertion in tests (docs/benchmarks.md has the
    // measured figures).
    println!(
        "pyscard: {LOOP} SELECTs through pcscd + vpcd in {seconds:.3} s ({:.0} APDU/s)",
        LOOP as f64 / seconds
    );

    // OpenSC's opensc-tool: a second, unrelated PC/SC client.
    let opensc_missing = Command::new("opensc-tool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err();
    if opensc_missing {
        unavailable("opensc-tool is not installed (apt-get install opensc)");
    } else {
        let (out, stderr, ok) = run(
            Command::new("opensc-tool").args(["-r", READER, "-a"]),
            Duration::from_secs(60),
        );
        assert!(ok, "opensc-tool -a failed: {out}{stderr}");
        assert_eq!(
            out.trim().replace(':', "").to_uppercase(),
            atr,
            "ATR (opensc-tool)"
        );
        let (out, stderr, ok) = run(
            Command::new("opensc-tool").args(["-r", READER, "-s", SELECT_PPSE]),
            Duration::from_secs(60),
        );
        assert!(ok, "opensc-tool -s failed: {out}{stderr}");
        // opensc-tool prints the status word, then the data as a hex dump of 16 bytes
        // per line followed by their ASCII.
        let select_bytes = hex::decode(&select).unwrap();
        let (data, sw) = select_bytes.split_at(select_bytes.len() - 2);
        let mut lines = out.lines().skip_while(|line| !line.starts_with("Received"));
        assert_eq!(
            lines.next(),
            Some(format!("Received (SW1=0x{:02X}, SW2=0x{:02X}):", sw[0], sw[1]).as_str()),
            "{out}"
        );
        for chunk in data.chunks(16) {
            let expected = chunk
                .iter()
                .map(|byte| format!("{byte:02X}"))
                .collect::<Vec<_>>()
                .join(" ");
            let line = lines.next().unwrap_or_default();
            assert!(
                line.starts_with(&expected),
                "opensc-tool -s: expected a line starting {expected:?}, got {line:?}\n{out}"
            );
        }
    }

    assert!(
        serve.0.try_wait().expect("serve status").is_none(),
        "vpcd serve exited:\n{}",
        serve_log()
    );
    let log_text = serve_log();
    assert!(
        log_text.contains(&format!(
            "connected to vpcd at 127.0.0.1:{PORT}: serving {CARD}"
        )),
        "{log_text}"
    );
    assert!(
        !log_text.contains("warning") && !log_text.contains("error"),
        "{log_text}"
    );
    drop(serve);
    drop(pcscd);
    let _ = std::fs::remove_file(&log);
}
