//! APDUs per second and p50/p99 latency through a real pcscd + vsmartcard's vpcd, with
//! one client (telepay's `pcsc:` backend, in this process) and, one after another in the
//! same virtual reader "Virtual PCD 00 00" (vpcd port 35963), three virtual cards:
//!
//! - (a) `telepay vpcd serve --card sim:cb` (the bench-profile binary cargo builds for
//!   this bench);
//! - (b) a minimal vpcd card written here: it answers every APDU `9000` at once and sets
//!   `TCP_QUICKACK` after every read — the floor of pcscd + vpcd;
//! - (c) vsmartcard's own Python `vicc` (`/usr/bin/vicc`), as packaged, and again with a
//!   `sitecustomize` shim that sets `TCP_QUICKACK` after every `recv` (vpcd writes the
//!   length and the body of a frame in two writes without `TCP_NODELAY`, so a card that
//!   does not ACK at once waits on Linux's delayed ACK, ~40 ms).
//!
//! Cards (a) and (b) are also measured with the pyscard client (`/usr/bin/python3`), the
//! other client the issue names.
//!
//! Run: `scripts/pcscd-up` (without `--debug`), then `cargo bench -p telepay --features
//! pcsc --bench pcsc`. No timing assertion: it prints figures and the ratios against the
//! goals, (a)/(b) ≥ 0.95 and (a)/(c with QUICKACK) ≥ 2. A card that cannot be started
//! (no `vicc` installed) is reported and left out.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use telepay::reader::pcsc::{self, CardState, PcscReader};
use telepay::reader::uri::PcscUri;
use telepay::reader::{OpenOptions, Reader};
use telepay::vpcd::{Control, Decoder, Message, encode_frame};

/// The reader the cards are served into, and its vpcd port.
const READER: &str = "Virtual PCD 00 00";
const VPCD: &str = "127.0.0.1:35963";
/// The APDU measured: SELECT of the CB application by name, no answer data asked
/// (P2 = 0C, ISO 7816-4 §11.1.1). Every card answers it, and `vicc` as packaged crashes
/// on a SELECT with P2 = 00 (NOTES.md).
const APDU: &str = "00A4040C07A0000000421010";
/// Exchanges measured per card, after a warm-up.
const WARM_UP: usize = 200;
const COUNT: usize = 5000;
/// Exchanges for `vicc` without QUICKACK: ~40 ms each.
const SLOW_COUNT: usize = 100;
/// Alternating rounds of the fast cards.
const ROUNDS: usize = 3;
/// The echo card's ATR: a T=1 direct-convention ATR without historical bytes
/// (ISO 7816-3 §8.2: TS 3B, T0 80 → TD1 present, TD1 01 → T=1).
const ECHO_ATR: [u8; 4] = [0x3B, 0x80, 0x80, 0x01];
/// Debian's vicc and its module directory.
const VICC: &str = "/usr/bin/vicc";
const VICC_MODULES: &str = "/usr/lib/python3/site-packages/virtualsmartcard";
const PYTHON: &str = "/usr/bin/python3";
/// The shim that removes the delayed-ACK stall from a Python card.
const QUICKACK_SHIM: &str = r#"
import socket
_recv = socket.socket.recv
def _recv_quickack(self, *args, **kwargs):
    data = _recv(self, *args, **kwargs)
    try:
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    except OSError:
        pass
    return data
socket.socket.recv = _recv_quickack
"#;

/// The figures of one card.
struct Figures {
    label: String,
    count: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn state() -> Option<CardState> {
    pcsc::list()
        .ok()?
        .into_iter()
        .find(|reader| reader.name == READER)
        .map(|reader| reader.state)
}

/// Polls for a reader state, at most 20 s.
fn wait_for(wanted: impl Fn(Option<CardState>) -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let current = state();
        if wanted(current) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{READER}: state {current:?} after 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends the APDU `warm_up + count` times through telepay's `pcsc:` backend and
/// measures the last `count`.
fn measure(label: &str, warm_up: usize, count: usize) -> Result<Figures, String> {
    wait_for(|state| state == Some(CardState::Present))?;
    let uri = PcscUri {
        name: Some(READER.to_owned()),
        share: None,
    };
    let mut reader = PcscReader::open(&uri, &OpenOptions::default()).map_err(|e| e.to_string())?;
    reader.power_on().map_err(|e| e.to_string())?;
    let apdu = hex::decode(APDU).map_err(|e| e.to_string())?;
    for _ in 0..warm_up {
        reader.transmit_raw(&apdu).map_err(|e| e.to_string())?;
    }
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let sent = Instant::now();
        let answer = reader.transmit_raw(&apdu).map_err(|e| e.to_string())?;
        latencies.push(sent.elapsed());
        if answer.len() < 2 {
            return Err(format!("{label}: answer {answer:02X?} has no status word"));
        }
    }
    let total = started.elapsed();
    drop(reader);
    latencies.sort_unstable();
    let at = |fraction: f64| {
        let index = ((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1);
        latencies[index]
    };
    Ok(Figures {
        label: label.to_owned(),
        count,
        per_second: count as f64 / total.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// The same measurement with the pyscard client (`/usr/bin/python3`, which has pyscard
/// from Debian), the other client the issue names: a Python application's view.
const PYSCARD_CLIENT: &str = r#"
import sys, time
from smartcard.System import readers
from smartcard.util import toBytes
name, apdu, warm_up, count = sys.argv[1], toBytes(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
reader = [r for r in readers() if str(r) == name][0]
connection = reader.createConnection()
connection.connect()
for _ in range(warm_up):
    connection.transmit(apdu)
latencies = []
started = time.perf_counter()
for _ in range(count):
    sent = time.perf_counter()
    data, sw1, sw2 = connection.transmit(apdu)
    latencies.append(time.perf_counter() - sent)
total = time.perf_counter() - started
latencies.sort()
print(count / total, latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))])
connection.disconnect()
"#;

fn measure_pyscard(label: &str, warm_up: usize, count: usize) -> Result<Figures, String> {
    wait_for(|state| state == Some(CardState::Present))?;
    let output = Command::new(PYTHON)
        .args(["-c", PYSCARD_CLIENT, READER, APDU])
        .arg(warm_up.to_string())
        .arg(count.to_string())
        .output()
        .map_err(|e| format!("{label}: cannot run {PYTHON}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{label}: the pyscard client failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<f64> = text
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    let [per_second, p50, p99] = numbers[..] else {
        return Err(format!("{label}: unexpected pyscard output {text:?}"));
    };
    Ok(Figures {
        label: label.to_owned(),
        count,
        per_second,
        p50: Duration::from_secs_f64(p50),
        p99: Duration::from_secs_f64(p99),
    })
}

/// A child process killed (by its own id) and reaped on drop; then the reader is empty.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = wait_for(|state| state == Some(CardState::Absent));
    }
}

fn spawn(command: &mut Command) -> Result<Killed, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .map_err(|error| format!("cannot start {command:?}: {error}"))
}

/// The minimal vpcd card: ATR on request, `9000` to every APDU, QUICKACK after reads.
struct EchoCard {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl EchoCard {
    fn start() -> Result<EchoCard, String> {
        let stream = TcpStream::connect(VPCD).map_err(|error| format!("{VPCD}: {error}"))?;
        stream
            .set_nodelay(true)
            .map_err(|error| error.to_string())?;
        let mut socket = stream.try_clone().map_err(|error| error.to_string())?;
        let thread = std::thread::spawn(move || {
            let mut decoder = Decoder::new();
            let mut buffer = [0u8; 4096];
            let atr = encode_frame(&ECHO_ATR).unwrap_or_default();
            let ok = encode_frame(&[0x90, 0x00]).unwrap_or_default();
            loop {
                let read = match socket.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(read) => read,
                };
                let _ = socket2::SockRef::from(&socket).set_tcp_quickack(true);
                decoder.push(buffer.get(..read).unwrap_or_default());
                while let Ok(Some(message)) = decoder.next_message() {
                    let reply = match message {
                        Message::Control(Control::GetAtr) => &atr,
                        Message::Control(_) => continue,
                        Message::Apdu(_) => &ok,
                    };
                    if socket.write_all(reply).is_err() {
                        return;
                    }
                }
                if decoder.has_failed() {
                    return;
                }
            }
        });
        Ok(EchoCard {
            stream,
            thread: Some(thread),
        })
    }
}

impl Drop for EchoCard {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = wait_for(|state| state == Some(CardState::Absent));
    }
}

/// A directory for `vicc`'s PYTHONPATH: `Crypto` (pycryptodome as Debian names it,
/// `Cryptodome`) and, with `quickack`, the shim as `sitecustomize`.
fn vicc_path(quickack: bool) -> Result<PathBuf, String> {
    let directory = std::env::temp_dir().join(format!(
        "telepay-bench-vicc-{}-{quickack}",
        std::process::id()
    ));
    std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
    let output = Command::new(PYTHON)
        .args([
            "-c",
            "import Cryptodome, os; print(os.path.dirname(Cryptodome.__file__))",
        ])
        .output()
        .map_err(|error| format!("{PYTHON}: {error}"))?;
    let cryptodome = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || cryptodome.is_empty() {
        return Err("pycryptodome is not importable (apt-get install python3-pycryptodome)".into());
    }
    let link = directory.join("Crypto");
    if !link.exists() {
        std::os::unix::fs::symlink(&cryptodome, &link).map_err(|error| error.to_string())?;
    }
    let shim = directory.join("sitecustomize.py");
    if quickack {
        std::fs::write(&shim, QUICKACK_SHIM).map_err(|error| error.to_string())?;
    } else if shim.exists() {
        std::fs::remove_file(&shim).map_err(|error| error.to_string())?;
    }
    Ok(directory)
}

fn vicc(quickack: bool) -> Result<Killed, String> {
    if !Path::new(VICC).exists() {
        return Err(format!(
            "{VICC} is not installed (apt-get install vsmartcard-vicc)"
        ));
    }
    let directory = vicc_path(quickack)?;
    spawn(
        Command::new(PYTHON)
            .arg(VICC)
            .args([
                "--type",
                "iso7816",
                "--hostname",
                "127.0.0.1",
                "--port",
                "35963",
            ])
            .env(
                "PYTHONPATH",
                format!("{}:{VICC_MODULES}", directory.display()),
            ),
    )
}

/// The median round by APDU/s, or the first error.
fn median(rounds: Vec<Result<Figures, String>>) -> Result<Figures, String> {
    let mut figures = rounds.into_iter().collect::<Result<Vec<_>, _>>()?;
    figures.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    let middle = figures.len() / 2;
    let mut rounds = figures.into_iter().skip(middle);
    let mut chosen = rounds.next().ok_or("no round measured")?;
    chosen.label = format!("{} (median of {ROUNDS})", chosen.label);
    Ok(chosen)
}

fn print(figures: &Figures) {
    println!(
        "{:<56} {:>6} APDUs {:>9.0} APDU/s  p50 {:>9.1} µs  p99 {:>9.1} µs",
        figures.label,
        figures.count,
        figures.per_second,
        figures.p50.as_secs_f64() * 1e6,
        figures.p99.as_secs_f64() * 1e6
    );
}

fn ratio(name: &str, a: Option<&Figures>, b: Option<&Figures>, goal: f64) {
    match (a, b) {
        (Some(a), Some(b)) => {
            let value = a.per_second / b.per_second;
            let verdict = if value >= goal { "met" } else { "NOT met" };
            println!("{name}: {value:.2} (goal ≥ {goal}: {verdict})");
        }
        _ => println!("{name}: not measured"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
    // it, and must not take the reader slot or pcscd's time for a debug-build benchmark.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!("benches/pcsc.rs measures only under `cargo bench` (it needs pcscd)");
        return;
    }
    if let Err(error) = pcsc::list() {
        eprintln!("pcscd cannot be reached ({error}): run scripts/pcscd-up first");
        std::process::exit(1);
    }
    if wait_for(|state| state == Some(CardState::Absent)).is_err() {
        eprintln!("{READER} holds a card already: stop what serves it first");
        std::process::exit(1);
    }
    println!("pcscd + vpcd, reader {READER:?}, client: telepay's pcsc: backend, APDU {APDU}");

    // The machine is shared and its load drifts: the fast cards are measured in
    // alternating rounds, and each one's median round (by APDU/s) is kept, so that a
    // load change does not fall on one card only.
    let mut rounds: [Vec<Result<Figures, String>>; 5] = Default::default();
    for _ in 0..ROUNDS {
        // Each card is measured by both clients while it is served.
        match spawn(
            Command::new(env!("CARGO_BIN_EXE_telepay"))
                .args(["vpcd", "serve", "--card", "sim:cb", "--port", "35963"]),
        ) {
            Ok(card) => {
                rounds[0].push(measure(
                    "(a) telepay vpcd serve --card sim:cb",
                    WARM_UP,
                    COUNT,
                ));
                rounds[3].push(measure_pyscard(
                    "(a) same card, pyscard client",
                    WARM_UP,
                    COUNT,
                ));
                drop(card);
            }
            Err(error) => {
                rounds[0].push(Err(error.clone()));
                rounds[3].push(Err(error));
            }
        }
        match EchoCard::start() {
            Ok(card) => {
                rounds[1].push(measure(
                    "(b) echo card 9000 + QUICKACK (floor)",
                    WARM_UP,
                    COUNT,
                ));
                rounds[4].push(measure_pyscard(
                    "(b) same card, pyscard client",
                    WARM_UP,
                    COUNT,
                ));
                drop(card);
            }
            Err(error) => {
                rounds[1].push(Err(error.clone()));
                rounds[4].push(Err(error));
            }
        }
        rounds[2].push(
            vicc(true)
                .and_then(|card| {
                    measure("(c') vicc + TCP_QUICKACK shim", WARM_UP, COUNT).map(|f| (card, f))
                })
                .map(|(card, figures)| {
                    drop(card);
                    figures
                }),
        );
    }
    let [telepay, echo, vicc_quick, telepay_pyscard, echo_pyscard] = rounds.map(median);
    let vicc_plain = vicc(false)
        .and_then(|card| measure("(c) vicc as packaged", 5, SLOW_COUNT).map(|f| (card, f)))
        .map(|(card, figures)| {
            drop(card);
            figures
        });

    let all = [
        &telepay,
        &echo,
        &vicc_plain,
        &vicc_quick,
        &telepay_pyscard,
        &echo_pyscard,
    ];
    for result in all {
        match result {
            Ok(figures) => print(figures),
            Err(error) => println!("not measured: {error}"),
        }
    }
    ratio("(a)/(b)", telepay.as_ref().ok(), echo.as_ref().ok(), 0.95);
    ratio(
        "(a)/(b), pyscard client",
        telepay_pyscard.as_ref().ok(),
        echo_pyscard.as_ref().ok(),
        0.95,
    );
    ratio(
        "(a)/(c')",
        telepay.as_ref().ok(),
        vicc_quick.as_ref().ok(),
        2.0,
    );
    ratio(
        "(c')/(c)",
        vicc_quick.as_ref().ok(),
        vicc_plain.as_ref().ok(),
        1.0,
    );
    for quickack in [false, true] {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!(
            "telepay-bench-vicc-{}-{quickack}",
            std::process::id()
        )));
    }
}
