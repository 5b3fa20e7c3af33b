//! TPDU round trips per second over a real pty pair (socat), T=0 and T=1, against the
//! pty's own echo round-trip floor measured in the same run; and the modelled wire time
//! of a `card read` at 9,600 baud — what a real Phoenix reader would take.
//!
//! - floor: the host writes the characters of one T=0 exchange of the measured command
//!   (header and data) and a thread on the other end writes back as many characters as
//!   the card's answer has, as soon as it has read them all: the cost of the pty and
//!   socat with no protocol work on either side;
//! - T=0 and T=1: the `serial:` backend in this process against a [`CardLine`] serving
//!   `sim:cb` in a thread on the other end, the same command each time.
//!
//! The ratio printed is exchanges/s ÷ floor/s (goal ≥ 0.5: the protocol engines on both
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

/// Round trips per second of the same characters with a bare echo on the other end.
fn floor_rate(sent: usize, answered: usize) -> f64 {
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
            let mut buffer = vec![0u8; sent];
            let answer = vec![0x90u8; answered];
            while !stop.load(Ordering::Relaxed) {
                if port.read_exact(&mut buffer).is_ok() {
                    port.write_all(&answer).unwrap();
                }
            }
        })
    };
    let mut port = serialport::new(pair.host.to_string_lossy(), 9600)
        .timeout(Duration::from_secs(2))
        .open()
        .expect("the host end opens");
    let message = vec![0x00u8; sent];
    let mut answer = vec![0u8; answered];
    let mut round = |port: &mut Box<dyn serialport::SerialPort>| {
        port.write_all(&message).unwrap();
        port.read_exact(&mut answer).unwrap();
    };
    for _ in 0..WARM_UP {
        round(&mut port);
    }
    let started = Instant::now();
    for _ in 0..COUNT {
        round(&mut port);
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

fn main() {
    // The characters of the measured exchange as T=0 carries them: header + data out;
    // INS, 61xx; GET RESPONSE header; INS + FCI + 9000 back. The floor moves as many.
    let fci_length = 56;
    let sent = 5 + 7 + 5;
    let answered = 1 + 2 + 1 + fci_length + 2;
    println!("serial: {COUNT} exchanges of {APDU} per measure, best of {ROUNDS}");
    let mut floor = 0f64;
    let mut t0 = 0f64;
    let mut t1 = 0f64;
    for _ in 0..ROUNDS {
        floor = floor.max(floor_rate(sent, answered));
        t0 = t0.max(protocol_rate("t0"));
        t1 = t1.max(protocol_rate("t1"));
    }
    println!("  pty echo floor ({sent} out, {answered} back): {floor:8.0} round trips/s");
    println!(
        "  T=0 (serial: ↔ serial serve sim:cb): {t0:8.0} exchanges/s  ratio {:.2} (goal ≥ 0.5)",
        t0 / floor
    );
    println!(
        "  T=1 (serial: ↔ serial serve sim:cb): {t1:8.0} exchanges/s  ratio {:.2} (goal ≥ 0.5)",
        t1 / floor
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
