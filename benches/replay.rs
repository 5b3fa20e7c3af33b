//! Replay as card: exchanges per second through the `replay:` reader (strict matching of
//! every command against the recording) against the same exchanges through the `sim:`
//! reader, both under the transport layer, in one run. Prints rates and the ratio;
//! asserts nothing about time. Run with `cargo bench -p telepay --bench replay`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use telepay::apdu::Command;
use telepay::reader::replay::ReplayReader;
use telepay::reader::uri::ReplayMode;
use telepay::reader::{ReaderUri, Transport, open};
use telepay::trace::{Event, Exchange, Pattern};

const WINDOW: Duration = Duration::from_millis(400);
const ROUNDS: usize = 5;
/// Exchanges per replayed recording; a fresh reader is built when one runs out.
const RECORDED_PAIRS: usize = 50_000;

fn command(text: &str) -> Command {
    Command::parse(&hex::decode(text).expect("hex")).expect("a command")
}

fn main() {
    let select = command("00A4040007A000000042101000");
    let read = command("00B2011400");

    // The sim: reader, and what it answers: the recording to replay.
    let mut sim = Transport::new(open(&ReaderUri::parse("sim:cb?seed=1").unwrap()).unwrap());
    let atr = sim.power_on().expect("power").as_bytes().to_vec();
    let select_answer = sim.transmit(&select).expect("SELECT").to_bytes();
    let read_answer = sim.transmit(&read).expect("READ RECORD").to_bytes();
    let mut events = vec![(1, Event::AnswerToReset(Pattern::exact(atr)))];
    for index in 0..RECORDED_PAIRS {
        for (sent, answer) in [(&select, &select_answer), (&read, &read_answer)] {
            events.push((
                index + 2,
                Event::Exchange(Exchange {
                    command: Pattern::exact(sent.to_bytes()),
                    response: Pattern::exact(answer.clone()),
                    elapsed: None,
                    note: None,
                }),
            ));
        }
    }
    let new_replay = || {
        let mut transport = Transport::new(ReplayReader::from_events(
            Path::new("bench.trace"),
            ReplayMode::Strict,
            events.clone(),
        ));
        transport.power_on().expect("the recording has an ATR");
        transport
    };

    let sim_rate = median_rate(|| {
        let started = Instant::now();
        black_box(sim.transmit(black_box(&select)).expect("SELECT"));
        black_box(sim.transmit(black_box(&read)).expect("READ RECORD"));
        (2, started.elapsed())
    });

    let mut replay = new_replay();
    let mut played = 0usize;
    let replay_rate = median_rate(|| {
        if played == RECORDED_PAIRS {
            // Building the next recording is set-up, not replay: not timed.
            replay = new_replay();
            played = 0;
        }
        played += 1;
        let started = Instant::now();
        black_box(replay.transmit(black_box(&select)).expect("SELECT"));
        black_box(replay.transmit(black_box(&read)).expect("READ RECORD"));
        (2, started.elapsed())
    });

    println!("sim: exchanges through Transport      {sim_rate:>12.0} /s");
    println!("replay: exchanges through Transport   {replay_rate:>12.0} /s (strict matching)");
    println!(
        "ratio replay / sim                    {:>12.2}",
        replay_rate / sim_rate
    );
}

/// Median over `ROUNDS` windows of operations per second, counting only the time
/// `body` reports as spent in the operations.
fn median_rate(mut body: impl FnMut() -> (usize, Duration)) -> f64 {
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let (mut operations, mut busy) = (0usize, Duration::ZERO);
        while busy < WINDOW {
            let (count, spent) = body();
            operations += count;
            busy += spent;
        }
        rates.push(operations as f64 / busy.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}
