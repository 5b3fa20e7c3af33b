//! TPDU round trips per second over a real pty pair (socat), T=0 and T=1, against the
//! pty's own echo round-trip floor measured in the same run; and the modelled wire time
//! of a `card read` at 9,600 baud — what a real Phoenix reader would take.
//!
//! - floors: the host writes the characters of one turn of the line and a thread on the
//!   other end writes back as many characters as the card answers, as soon as it has
//!   read them all, turn after turn, in the same turns as the protocol's exchange (T=0:
//!   three turns, header / data / GET RESPONSE; T=1: one block each way): the cost of
//!   the pty and socat with no protocol work on either side;
//! - T=0 and T=1: the `serial:` backend in this process against a [`CardLine`] serving
//!   `sim:cb` in a thread on the other end, the same command each time.
//!
//! The ratio printed is exchanges/s ÷ the floor's exchanges/s for the same turns (goal ≥ 0.5: the protocol engines on both
//! sides must cost no more than the pty itself). The wire time counts every character
//! both ways (12 etu each: start, 8 data, parity, 2 stop) at 9,600 baud; it leaves out
//! the card's own computing time and the turnaround between characters.
//!
//! Run: `cargo bench -p telepay --bench serial` (socat installed). No timing assertion.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use telepay::emv::{self, ReadOptions};
use telepay::iso7816_3::timing::LineTiming;
use telepay::reader::serial::SerialReader;
use telepay::reader::sim::SimReader;
use telepay::reader::uri::SimUri;
use telepay::reader::{ReaderUri, Transport};
use telepay::serial::card::{CardLine, CardLineOptions};
use telepay::serial::serve::{ServeOptions, serve};
use telepay::serial::{Line, LineSettings};

/// SELECT of the CB application by name, with its FCI (a case 4 command: in T=0 it
/// takes a GET RESPONSE, in T=1 one block each way).
const APDU: &str = "00A4040007A000000042101000";
const WARM_UP: usize = 50;
const COUNT: usize = 1000;
const ROUNDS: usize = 3;

struct Socat {
    child: Child,
    card: PathBuf,
    host: PathBuf,
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socat(tag: &str) -> Socat {
    let dir =
        std::env::temp_dir().join(format!("telepay-bench-serial-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let card = dir.join("card");
    let host = dir.join("host");
    let child = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", card.display()))
        .arg(format!("pty,raw,echo=0,link={}", host.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat runs (apt-get install socat)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(card.exists() && host.exists()) {
        assert!(Instant::now() < deadline, "socat made no pty pair");
        thread::sleep(Duration::from_millis(10));
    }
    Socat { child, card, host }
}

/// A card side in a thread, serving `profile` until the port goes.
fn card_thread(profile: &str, port: &Path) -> thread::JoinHandle<()> {
    let sim: SimUri = match format!("sim:{profile}?seed=1").parse() {
        Ok(ReaderUri::Sim(sim)) => sim,
        _ => unreachable!("a sim URI"),
    };
    let reader = SimReader::open(&sim).expect("the sim card");
    let behaviour = reader.line_behaviour();
    let mut line = Line::open(port, LineSettings::default()).expect("the card end opens");
    thread::spawn(move || {
        let options = CardLineOptions {
            behaviour,
            timing: LineTiming::from_baud(9_600, 1),
        };
        let mut card = CardLine::new(reader, options);
        let _ = serve(
            &mut card,
            &mut line,
            ServeOptions::default(),
            None,
            &mut std::io::sink(),
        );
    })
}

fn serial_reader(host: &Path, protocol: &str) -> SerialReader {
    let uri = format!("serial:{}?protocol={protocol}", host.display());
    let ReaderUri::Serial(serial) = uri.parse::<ReaderUri>().expect("a serial URI") else {
        unreachable!("a serial URI")
    };
    SerialReader::open(&serial).expect("the serial reader")
}

/// Exchanges per second of `APDU` through the `serial:` backend with `protocol`.
fn protocol_rate(protocol: &str) -> f64 {
    let pair = socat(protocol);
    let _card = card_thread("cb", &pair.card);
    thread::sleep(Duration::from_millis(100));
    let mut transport = Transport::new(serial_reader(&pair.host, protocol));
    transport.power_on().expect("the card answers its reset");
    let command = telepay::apdu::Command::parse(&hex::decode(APDU).unwrap()).unwrap();
    for _ in 0..WARM_UP {
        transport.transmit(&command).expect("exchange");
    }
    let started = Instant::now();
    for _ in 0..COUNT {
        transport.transmit(&command).expect("exchange");
    }
    COUNT as f64 / started.elapsed().as_secs_f64()
}

/// One turn of the line: characters the host sends, then characters the card answers.
type Turn = (usize, usize);

/// Exchanges per second of the same turns of the line as a protocol's exchange, with a
/// bare echo on the other end that answers each turn's characters once it has read them.
fn floor_rate(turns: &'static [Turn]) -> f64 {
    let pair = socat("floor");
    let stop = Arc::new(AtomicBool::new(false));
    let card_path = pair.card.clone();
    let echo = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut port = serialport::new(card_path.to_string_lossy(), 9600)
                .timeout(Duration::from_millis(100))
                .open()
                .expect("the echo end opens");
            let mut turn = 0;
            while !stop.load(Ordering::Relaxed) {
                let (sent, answered) = turns[turn];
                let mut buffer = vec![0u8; sent];
                if port.read_exact(&mut buffer).is_ok() {
                    port.write_all(&vec![0x90u8; answered]).unwrap();
                    turn = (turn + 1) % turns.len();
                }
            }
        })
    };
    let mut port = serialport::new(pair.host.to_string_lossy(), 9600)
        .timeout(Duration::from_secs(2))
        .open()
        .expect("the host end opens");
    let exchange = |port: &mut Box<dyn serialport::SerialPort>| {
        for &(sent, answered) in turns {
            port.write_all(&vec![0x00u8; sent]).unwrap();
            port.read_exact(&mut vec![0u8; answered]).unwrap();
        }
    };
    for _ in 0..WARM_UP {
        exchange(&mut port);
    }
    let started = Instant::now();
    for _ in 0..COUNT {
        exchange(&mut port);
    }
    let rate = COUNT as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    rate
}

/// Characters of one `card read` of `profile` over `protocol`, both ways.
fn card_read_characters(profile: &str, protocol: &str) -> u64 {
    let pair = socat(&format!("read-{profile}-{protocol}"));
    let _card = card_thread(profile, &pair.card);
    thread::sleep(Duration::from_millis(100));
    let mut transport = Transport::new(serial_reader(&pair.host, protocol));
    transport.power_on().expect("the card answers its reset");
    let options = ReadOptions {
        aid: None,
        terminal_data: emv::default_terminal_data([0x26, 0x11, 0x25], [0xCA, 0xFE, 0xBA, 0xBE]),
    };
    emv::read_card(&mut transport, &options).expect("card read");
    let counters = transport.reader().counters();
    counters.written + counters.read
}

/// Length of the FCI the CB application answers the measured SELECT with.
const FCI_LENGTH: usize = 56;

/// The turns of the measured exchange in T=0 (§10.3): header → INS; data → 61xx;
/// GET RESPONSE header → INS, the FCI, 9000.
const T0_TURNS: &[Turn] = &[(5, 1), (7, 2), (5, 1 + FCI_LENGTH + 2)];

/// The turns in T=1 (§11.3): one I-block each way (prologue 3, INF, LRC 1).
const T1_TURNS: &[Turn] = &[(3 + 12 + 1, 3 + FCI_LENGTH + 2 + 1)];

fn main() {
    println!("serial: {COUNT} exchanges of {APDU} per measure, best of {ROUNDS}");
    let (mut floor_t0, mut floor_t1, mut t0, mut t1) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..ROUNDS {
        floor_t0 = floor_t0.max(floor_rate(T0_TURNS));
        t0 = t0.max(protocol_rate("t0"));
        floor_t1 = floor_t1.max(floor_rate(T1_TURNS));
        t1 = t1.max(protocol_rate("t1"));
    }
    println!("  pty echo floor, T=0's turns {T0_TURNS:?}: {floor_t0:8.0} exchanges/s");
    println!(
        "  T=0 (serial: <-> serial serve sim:cb): {t0:8.0} exchanges/s  ratio {:.2} (goal >= 0.5)",
        t0 / floor_t0
    );
    println!("  pty echo floor, T=1's turns {T1_TURNS:?}: {floor_t1:8.0} exchanges/s");
    println!(
        "  T=1 (serial: <-> serial serve sim:cb): {t1:8.0} exchanges/s  ratio {:.2} (goal >= 0.5)",
        t1 / floor_t1
    );
    let etu = LineTiming::from_baud(9_600, 1);
    for (profile, protocol) in [
        ("cb", "t0"),
        ("cb", "t1"),
        ("t0-slow", "t0"),
        ("visa", "t1"),
    ] {
        let characters = card_read_characters(profile, protocol);
        let wire = etu.character().as_secs_f64() * characters as f64;
        println!(
            "  card read {profile} over T={}: {characters} characters, {wire:.2} s of wire time at 9,600 baud",
            &protocol[1..]
        );
    }
}
