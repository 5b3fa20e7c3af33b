//! Behaviour of the T=1 engines, each test naming the clause of ISO 7816-3 §11 it
//! enforces: rule tables driving one engine with raw blocks, and a host and a card
//! wired together in memory with simulated time, with faults injected on the line.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).expect("test hex")
}

fn spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn config() -> T1Config {
    T1Config::default()
}

/// What the test line does to one transmission.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tamper {
    /// One byte XORed with a mask.
    Flip { position: usize, mask: u8 },
    /// Lost entirely.
    Drop,
    /// Garbage delivered before the block.
    Prefix(Vec<u8>),
    /// Garbage delivered after the block.
    Suffix(Vec<u8>),
    /// Only the first bytes arrive; the rest is lost.
    Truncate(usize),
}

impl Tamper {
    fn apply(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Tamper::Flip { position, mask } => {
                let len = bytes.len();
                if let Some(byte) = bytes.get_mut(position % len.max(1)) {
                    *byte ^= mask;
                }
                bytes
            }
            Tamper::Drop => Vec::new(),
            Tamper::Prefix(garbage) => garbage.iter().copied().chain(bytes).collect(),
            Tamper::Suffix(garbage) => {
                bytes.extend_from_slice(garbage);
                bytes
            }
            Tamper::Truncate(keep) => {
                bytes.truncate(*keep);
                bytes
            }
        }
    }
}

/// Which way a transmission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToCard,
    ToHost,
}

/// How the card application answers a command.
#[derive(Debug, Clone)]
struct Reply {
    response: Vec<u8>,
    /// S(WTX request) with this multiplier first.
    wtx: Option<u8>,
    /// Computing time before the response.
    delay: Duration,
}

/// A host and a card wired together, with simulated time and a line that tampers with
/// chosen transmissions.
struct Pair {
    host: T1Host,
    card: T1Card,
    now: Instant,
    /// Every transmission as sent: direction and hex.
    transcript: Vec<(Dir, String)>,
    host_events: Vec<T1Event>,
    card_events: Vec<T1CardEvent>,
    commands_seen: Vec<Vec<u8>>,
    /// (direction, index of the transmission in that direction, what happens to it).
    tampering: Vec<(Dir, usize, Tamper)>,
    sent: [usize; 2],
    reply: Reply,
    pending_response: Option<(Instant, Vec<u8>)>,
}

impl Pair {
    fn new(host: T1Config, card: T1Config, response: &[u8]) -> Pair {
        Pair {
            host: T1Host::new(host),
            card: T1Card::new(card),
            now: Instant::now(),
            transcript: Vec::new(),
            host_events: Vec::new(),
            card_events: Vec::new(),
            commands_seen: Vec::new(),
            tampering: Vec::new(),
            sent: [0, 0],
            reply: Reply {
                response: response.to_vec(),
                wtx: None,
                delay: Duration::ZERO,
            },
            pending_response: None,
        }
    }

    fn tamper(mut self, dir: Dir, index: usize, tamper: Tamper) -> Pair {
        self.tampering.push((dir, index, tamper));
        self
    }

    fn deliver(&mut self, dir: Dir, bytes: Vec<u8>) -> Vec<u8> {
        let slot = usize::from(dir == Dir::ToHost);
        let index = self.sent[slot];
        self.sent[slot] += 1;
        self.transcript.push((dir, spaced(&bytes)));
        self.tampering
            .iter()
            .find(|(d, i, _)| *d == dir && *i == index)
            .map_or(bytes.clone(), |(_, _, tamper)| tamper.apply(bytes))
    }

    /// Moves everything queued both ways; returns whether anything moved.
    fn shuttle(&mut self) -> Result<bool, T1Error> {
        let mut moved = false;
        while let Some(bytes) = self.host.poll_transmit() {
            moved = true;
            let delivered = self.deliver(Dir::ToCard, bytes);
            self.card.handle_input(&delivered, self.now)?;
            self.card_reacts()?;
        }
        while let Some(bytes) = self.card.poll_transmit() {
            moved = true;
            let delivered = self.deliver(Dir::ToHost, bytes);
            let result = self.host.handle_input(&delivered, self.now);
            self.collect_host_events();
            result?;
        }
        Ok(moved)
    }

    fn collect_host_events(&mut self) {
        while let Some(event) = self.host.poll_event() {
            self.host_events.push(event);
        }
    }

    fn card_reacts(&mut self) -> Result<(), T1Error> {
        while let Some(event) = self.card.poll_event() {
            if let T1CardEvent::Command(command) = &event {
                self.commands_seen.push(command.clone());
                if let Some(multiplier) = self.reply.wtx {
                    self.card
                        .request_waiting_time_extension(multiplier, self.now)?;
                }
                if self.reply.delay.is_zero() {
                    self.card.respond(&self.reply.response, self.now)?;
                } else {
                    self.pending_response =
                        Some((self.now + self.reply.delay, self.reply.response.clone()));
                }
            }
            self.card_events.push(event);
        }
        Ok(())
    }

    /// Advances time to the next deadline and acts on it; false when there is none.
    fn advance(&mut self) -> Result<bool, T1Error> {
        let next = [
            self.host.poll_timeout(),
            self.card.poll_timeout(),
            self.pending_response.as_ref().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return Ok(false);
        };
        self.now = self.now.max(next);
        if let Some((at, response)) = self.pending_response.take() {
            if at <= self.now {
                // A response is only accepted while the command is still being processed.
                let _ = self.card.respond(&response, self.now);
            } else {
                self.pending_response = Some((at, response));
            }
        }
        self.card.handle_timeout(self.now)?;
        self.card_reacts()?;
        let result = self.host.handle_timeout(self.now);
        self.collect_host_events();
        result?;
        Ok(true)
    }

    /// Runs until the host is idle; fails the test if the pair stalls or loops.
    fn run(&mut self) -> Result<(), T1Error> {
        for _ in 0..10_000 {
            let moved = self.shuttle()?;
            if self.host.is_idle() && !moved {
                return Ok(());
            }
            if !moved && !self.advance()? {
                panic!(
                    "stalled: nothing to send and no deadline; transcript {:#?}",
                    self.transcript
                );
            }
        }
        panic!("no end after 10,000 steps");
    }

    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, T1Error> {
        self.host.start(apdu, self.now)?;
        self.run()?;
        let response = self.host_events.iter().rev().find_map(|event| match event {
            T1Event::Response(response) => Some(response.clone()),
            _ => None,
        });
        Ok(response.expect("the host went idle without a response"))
    }

    fn lines(&self) -> Vec<String> {
        self.transcript
            .iter()
            .map(|(dir, hex)| match dir {
                Dir::ToCard => format!("-> {hex}"),
                Dir::ToHost => format!("<- {hex}"),
            })
            .collect()
    }

    fn retransmissions(&self) -> usize {
        self.host_events
            .iter()
            .filter(|event| matches!(event, T1Event::Retransmission { .. }))
            .count()
    }
}

const GET_CHALLENGE: &str = "00 84 00 00 08";
const CHALLENGE: &str = "01 02 03 04 05 06 07 08 90 00";

/// The exact blocks on the line for one short command, without and with faults
/// (§11.6.2 error-free operation; §11.6.3 error handling, rule 7).
#[test]
fn short_command_transcripts() {
    let command = "-> 00 00 05 00 84 00 00 08 89";
    let response = "<- 00 00 0A 01 02 03 04 05 06 07 08 90 00 92";
    for (name, tampering, expected) in [
        (
            "§11.6.2 rule 1: the host's I(0), the card's I(0) answers it",
            vec![],
            vec![command, response],
        ),
        (
            "§11.6.3 rule 7.1: command corrupted, the card sends R(0) with EDC error, the host repeats",
            vec![(
                Dir::ToCard,
                0,
                Tamper::Flip {
                    position: 4,
                    mask: 0x01,
                },
            )],
            vec![command, "<- 00 81 00 81", command, response],
        ),
        (
            "§11.6.3 rule 7.1: response corrupted, the host sends R(0) with EDC error, the card repeats",
            vec![(
                Dir::ToHost,
                0,
                Tamper::Flip {
                    position: 5,
                    mask: 0x80,
                },
            )],
            vec![command, response, "-> 00 81 00 81", response],
        ),
        (
            "§11.6.3 rule 7: command lost, BWT expires, the host's R(0) makes the card ask for I(0)",
            vec![(Dir::ToCard, 0, Tamper::Drop)],
            vec![
                command,
                "-> 00 82 00 82",
                "<- 00 80 00 80",
                command,
                response,
            ],
        ),
        (
            "§11.6.3 rule 7: response lost, BWT expires, R(0) makes the card repeat it",
            vec![(Dir::ToHost, 0, Tamper::Drop)],
            vec![command, response, "-> 00 82 00 82", response],
        ),
        (
            "§11.6.3: response cut short, CWT expires, R(0) with other error",
            vec![(Dir::ToHost, 0, Tamper::Truncate(6))],
            vec![command, response, "-> 00 82 00 82", response],
        ),
        (
            "§11.6.3: garbage before the response frames as an invalid block; R(0) after the line is quiet",
            vec![(Dir::ToHost, 0, Tamper::Prefix(vec![0x55, 0xAA, 0x13]))],
            vec![command, response, "-> 00 82 00 82", response],
        ),
        (
            "§11.3.2.3: garbage announcing LEN = FF before the command; R(0) after the line is quiet",
            vec![(Dir::ToCard, 0, Tamper::Prefix(vec![0x00, 0x00, 0xFF]))],
            vec![command, "<- 00 82 00 82", command, response],
        ),
    ] {
        let mut pair = Pair::new(config(), config().for_card(), &unhex(CHALLENGE));
        for (dir, index, tamper) in tampering {
            pair = pair.tamper(dir, index, tamper);
        }
        let result = pair.exchange(&unhex(GET_CHALLENGE));
        assert_eq!(result, Ok(unhex(CHALLENGE)), "{name}");
        assert_eq!(pair.lines(), expected, "{name}");
        assert_eq!(
            pair.commands_seen,
            vec![unhex(GET_CHALLENGE)],
            "{name}: the card ran the command once"
        );
    }
}

/// Garbage after a block: the receiver frames it as the start of a block, which the
/// next block then completes wrongly; recovery still delivers the exact response.
#[test]
fn garbage_between_blocks_is_recovered() {
    for (name, tamper) in [
        (
            "after the command",
            (Dir::ToCard, 0, Tamper::Suffix(vec![0x42, 0x17])),
        ),
        (
            "after the response",
            (Dir::ToHost, 0, Tamper::Suffix(vec![0x00, 0x40, 0xFE])),
        ),
        (
            "before an acknowledgement",
            (Dir::ToHost, 1, Tamper::Prefix(vec![0xFF; 5])),
        ),
    ] {
        let command: Vec<u8> = (0..100).collect();
        let response: Vec<u8> = (0..120)
            .map(|i| i as u8 ^ 0x5A)
            .chain([0x90, 0x00])
            .collect();
        let host = T1Config {
            ifsc: 32,
            ..config()
        };
        let card = T1Config {
            ifsc: 32,
            ..config()
        }
        .for_card();
        let mut pair = Pair::new(host, card, &response).tamper(tamper.0, tamper.1, tamper.2);
        assert_eq!(pair.exchange(&command), Ok(response.clone()), "{name}");
        assert!(pair.retransmissions() >= 1, "{name}: recovery happened");
        assert_eq!(pair.commands_seen.last(), Some(&command), "{name}");
    }
}

/// §11.6.2 (rule 5): a 300-byte command with IFSC 32 and a 300-byte response with
/// IFSD 32, each chained in 32-byte I-blocks acknowledged by R-blocks.
#[test]
fn chaining_both_ways() {
    let command: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
    let response: Vec<u8> = (0..298u16)
        .map(|i| (i * 7 % 256) as u8)
        .chain([0x90, 0x00])
        .collect();
    let host = T1Config {
        ifsc: 32,
        ..config()
    };
    let mut pair = Pair::new(host, host.for_card(), &response);
    assert_eq!(pair.exchange(&command), Ok(response.clone()));
    assert_eq!(pair.commands_seen, vec![command]);

    // 300 = 9 × 32 + 12: ten I-blocks each way, nine of them chained (M = 1) and
    // acknowledged by an R-block whose N(R) alternates.
    let blocks: Vec<Block> = pair
        .transcript
        .iter()
        .map(|(_, hex)| Block::decode(&unhex(hex), Edc::Lrc).expect("valid block"))
        .collect();
    let summary: Vec<String> = blocks
        .iter()
        .map(|block| match block.pcb {
            Pcb::Information {
                send_sequence,
                more,
            } => {
                format!(
                    "I({}{}) {}",
                    u8::from(send_sequence),
                    if more { ",M" } else { "" },
                    block.inf.len()
                )
            }
            Pcb::Receive {
                expected_sequence, ..
            } => format!("R({})", u8::from(expected_sequence)),
            Pcb::Supervisory { kind, response } => format!("S({kind:?}, {response})"),
        })
        .collect();
    let mut expected = Vec::new();
    for part in 0..9 {
        expected.push(format!("I({},M) 32", part % 2));
        expected.push(format!("R({})", (part + 1) % 2));
    }
    expected.push("I(1) 12".to_string());
    for part in 0..9 {
        expected.push(format!("I({},M) 32", part % 2));
        expected.push(format!("R({})", (part + 1) % 2));
    }
    expected.push("I(1) 12".to_string());
    assert_eq!(summary, expected);

    // The next exchange continues the sequence numbers: N(S) = 0 both ways (§11.6.2, rule 2).
    pair.transcript.clear();
    assert_eq!(pair.exchange(&unhex(GET_CHALLENGE)), Ok(response));
    assert_eq!(
        pair.transcript.first().map(|(_, hex)| hex.as_str()),
        Some("00 00 05 00 84 00 00 08 89")
    );
}

/// §11.6.2 with ISO 7816-4 case 4E: a 4,000-byte extended-length command and a
/// 4,002-byte response, chained in 254-byte blocks (16 each way).
#[test]
fn extended_length_command() {
    // Case 4E: header, Lc = 00 0F 97 (3,991 bytes), the data, Le = 00 00 (65,536).
    let mut command = unhex("80 CA 00 00 00 0F 97");
    command.extend((0..3991u32).map(|i| (i % 256) as u8));
    command.extend([0x00, 0x00]);
    assert_eq!(command.len(), 4000);
    let response: Vec<u8> = (0..4000u32)
        .map(|i| (i * 31 % 256) as u8)
        .chain([0x90, 0x00])
        .collect();
    let host = T1Config {
        ifsc: 254,
        ..config()
    };
    let card = T1Config { ifsd: 254, ..host };
    let mut pair = Pair::new(host, card, &response);
    assert_eq!(pair.exchange(&command), Ok(response));
    assert_eq!(pair.commands_seen, vec![command]);
    let i_blocks = |dir: Dir| {
        pair.transcript
            .iter()
            .filter(|(d, hex)| *d == dir && unhex(hex).get(1).is_some_and(|pcb| pcb & 0x80 == 0))
            .count()
    };
    assert_eq!(i_blocks(Dir::ToCard), 16);
    assert_eq!(i_blocks(Dir::ToHost), 16);
    // The longest command the host takes: 65,544 bytes; one more is refused.
    let mut host = T1Host::new(config());
    assert_eq!(
        host.start(&vec![0; 65_545], Instant::now()),
        Err(T1Error::CommandLength {
            len: 65_545,
            min: 4,
            max: 65_544
        })
    );
    assert_eq!(host.start(&vec![0; 65_544], Instant::now()), Ok(()));
}

/// §11.4.2 (rule 4): S(IFS request) announces IFSD 254; the card confirms and chains
/// its responses by 254 from then on.
#[test]
fn ifsd_negotiation() {
    let response: Vec<u8> = (0..298u16).map(|i| i as u8).chain([0x90, 0x00]).collect();
    let mut pair = Pair::new(config(), config().for_card(), &response);
    assert_eq!(pair.card.ifsd(), 32);
    pair.host.request_ifsd(254, pair.now).unwrap();
    pair.run().unwrap();
    assert_eq!(pair.lines(), vec!["-> 00 C1 01 FE 3E", "<- 00 E1 01 FE 1E"]);
    assert_eq!(pair.host_events, vec![T1Event::IfsdAccepted(254)]);
    assert_eq!(pair.card_events, vec![T1CardEvent::IfsdChanged(254)]);
    assert_eq!((pair.host.ifsd(), pair.card.ifsd()), (254, 254));

    pair.transcript.clear();
    assert_eq!(pair.exchange(&unhex(GET_CHALLENGE)), Ok(response));
    let lengths: Vec<usize> = pair
        .transcript
        .iter()
        .map(|(_, hex)| unhex(hex).len())
        .collect();
    // I(0) command; I(0,M) with 254 bytes; R(1); I(1) with 46 bytes.
    assert_eq!(lengths, vec![9, 258, 4, 50]);

    // §11.4.2: 0 and 255 are not sizes; nothing is sent.
    assert_eq!(
        pair.host.request_ifsd(0, pair.now),
        Err(T1Error::InvalidIfs { value: 0 })
    );
    assert_eq!(
        pair.host.request_ifsd(255, pair.now),
        Err(T1Error::InvalidIfs { value: 255 })
    );
    assert_eq!(pair.host.poll_transmit(), None);
}

/// §11.4.2 (rule 4): the card announces a smaller IFSC mid-exchange; the host
/// confirms and chains the rest of its command by it.
#[test]
fn card_changes_ifsc() {
    let mut host = T1Host::new(T1Config {
        ifsc: 32,
        ..config()
    });
    let now = Instant::now();
    host.start(&[0xAB; 40], now).unwrap();
    assert_eq!(host.poll_transmit().map(|b| b.len()), Some(36)); // I(0,M) with 32 bytes
    host.handle_input(&unhex("00 C1 01 04 C4"), now).unwrap();
    assert_eq!(host.poll_transmit(), Some(unhex("00 E1 01 04 E4")));
    assert_eq!(host.poll_event(), Some(T1Event::IfscChanged(4)));
    // The card then acknowledges the first part with R(1): the next part has 4 bytes.
    host.handle_input(&unhex("00 90 00 90"), now).unwrap();
    assert_eq!(host.poll_transmit(), Some(unhex("00 60 04 AB AB AB AB 64")));
}

/// §11.4.3 (rule 3): the card asks for BWT × 3; the host grants it, waits that long
/// without recovering, and after the response BWT is back to normal.
#[test]
fn waiting_time_extension() {
    let bwt = config().block_waiting_time;
    let mut pair = Pair::new(config(), config().for_card(), &unhex(CHALLENGE));
    pair.reply.wtx = Some(3);
    pair.reply.delay = bwt * 5 / 2;
    assert_eq!(pair.exchange(&unhex(GET_CHALLENGE)), Ok(unhex(CHALLENGE)));
    assert_eq!(
        pair.lines(),
        vec![
            "-> 00 00 05 00 84 00 00 08 89",
            "<- 00 C3 01 03 C1",
            "-> 00 E3 01 03 E1",
            "<- 00 00 0A 01 02 03 04 05 06 07 08 90 00 92",
        ]
    );
    assert_eq!(
        pair.host_events.first(),
        Some(&T1Event::WaitingTimeExtension(3))
    );
    assert_eq!(pair.retransmissions(), 0);

    // Without the extension, the same computing time runs out BWT: the host sends an
    // R-block (ignored by the computing card), and the response still comes.
    let mut pair = Pair::new(config(), config().for_card(), &unhex(CHALLENGE));
    pair.reply.delay = bwt * 3 / 2;
    assert_eq!(pair.exchange(&unhex(GET_CHALLENGE)), Ok(unhex(CHALLENGE)));
    assert_eq!(pair.retransmissions(), 1);

    // The deadlines themselves: BWT × 3 after the S(WTX response) has left the line,
    // then plain BWT after the next block.
    let config = config();
    let mut host = T1Host::new(config);
    let t0 = Instant::now();
    host.start(&unhex(GET_CHALLENGE), t0).unwrap();
    let command = host.poll_transmit().unwrap();
    assert_eq!(
        host.poll_timeout(),
        Some(t0 + config.character_time * command.len() as u32 + bwt)
    );
    let t1 = t0 + Duration::from_millis(100);
    host.handle_input(&unhex("00 C3 01 03 C1"), t1).unwrap();
    assert_eq!(host.poll_transmit(), Some(unhex("00 E3 01 03 E1")));
    assert_eq!(
        host.poll_timeout(),
        Some(t1 + config.character_time * 5 + bwt * 3)
    );
    // A first character stops BWT; CWT runs.
    let t2 = t1 + bwt * 2;
    host.handle_input(&[0x00], t2).unwrap();
    assert_eq!(
        host.poll_timeout(),
        Some(t2 + config.character_waiting_time)
    );
    // Called late, past CWT: the block was cut short, so R(0) with "other" error,
    // then plain BWT.
    host.handle_timeout(t2 + bwt).unwrap();
    let t3 = t2 + bwt;
    assert_eq!(host.poll_transmit(), Some(unhex("00 82 00 82")));
    assert_eq!(
        host.poll_timeout(),
        Some(t3 + config.character_time * 4 + bwt)
    );
}

/// §11.6.3 rules 6 and 7.4: three attempts fail (the command is corrupted each time),
/// the host resynchronises, both sides reset, and the command goes through.
#[test]
fn resynchronisation_after_repeated_errors() {
    let flip = Tamper::Flip {
        position: 3,
        mask: 0x10,
    };
    let mut pair = Pair::new(config(), config().for_card(), &unhex(CHALLENGE))
        .tamper(Dir::ToCard, 0, flip.clone())
        .tamper(Dir::ToCard, 1, flip.clone())
        .tamper(Dir::ToCard, 2, flip);
    // A first exchange moves the sequence numbers to 1, so the reset shows.
    pair.tampering
        .iter_mut()
        .for_each(|(_, index, _)| *index += 1);
    assert_eq!(pair.exchange(&unhex(GET_CHALLENGE)), Ok(unhex(CHALLENGE)));
    pair.transcript.clear();
    assert_eq!(pair.exchange(&unhex(GET_CHALLENGE)), Ok(unhex(CHALLENGE)));
    let command = "-> 00 40 05 00 84 00 00 08 C9";
    assert_eq!(
        pair.lines(),
        vec![
            command,
            "<- 00 91 00 91",
            command,
            "<- 00 91 00 91",
            command,
            "<- 00 91 00 91",
            "-> 00 C0 00 C0",
            "<- 00 E0 00 E0",
            "-> 00 00 05 00 84 00 00 08 89",
            "<- 00 00 0A 01 02 03 04 05 06 07 08 90 00 92",
        ]
    );
    assert!(pair.host_events.contains(&T1Event::Resynchronised));
    assert!(pair.card_events.contains(&T1CardEvent::Resynchronised));
}

/// §11.6.3 rule 6.4: a card that never answers: two R-blocks, then three
/// S(RESYNCH request)s, then the error; the dead engine refuses further work.
#[test]
fn failure_after_exhausted_resynchronisations() {
    let mut pair = Pair::new(config(), config().for_card(), &unhex(CHALLENGE));
    pair.tampering = (0..20).map(|i| (Dir::ToHost, i, Tamper::Drop)).collect();
    let bwt = config().block_waiting_time;
    let result = pair.exchange(&unhex(GET_CHALLENGE));
    assert_eq!(
        result,
        Err(T1Error::ResynchronisationFailed {
            attempts: 3,
            last: Fault::Timeout {
                waiting_for: Waiting::Block { waited: bwt }
            },
        })
    );
    let sent: Vec<String> = pair
        .lines()
        .into_iter()
        .filter(|line| line.starts_with("->"))
        .collect();
    assert_eq!(
        sent,
        vec![
            "-> 00 00 05 00 84 00 00 08 89",
            "-> 00 82 00 82",
            "-> 00 82 00 82",
            "-> 00 C0 00 C0",
            "-> 00 C0 00 C0",
            "-> 00 C0 00 C0",
        ]
    );
    assert_eq!(
        pair.host.start(&unhex(GET_CHALLENGE), pair.now),
        Err(T1Error::Dead)
    );
    assert!(pair.host.is_idle());
}

/// §11.6.3: a line that mangles every block the card sends, without ever being
/// silent, still ends in the error rather than a hang.
#[test]
fn failure_on_a_line_that_corrupts_everything() {
    let mut pair = Pair::new(config(), config().for_card(), &unhex(CHALLENGE));
    pair.tampering = (0..40)
        .map(|i| {
            (
                Dir::ToHost,
                i,
                Tamper::Flip {
                    position: 1,
                    mask: 0x08,
                },
            )
        })
        .collect();
    let result = pair.exchange(&unhex(GET_CHALLENGE));
    assert!(
        matches!(
            result,
            Err(T1Error::ResynchronisationFailed {
                attempts: 3,
                last: Fault::BadBlock { .. }
            })
        ),
        "{result:?}"
    );
}

/// Drives one engine: feeds each input, then, when it sends nothing, runs its next
/// deadline; returns what it sent, in hex.
fn drive<E: Engine>(
    engine: &mut E,
    inputs: &[&str],
    mut now: Instant,
) -> (Vec<String>, Result<(), T1Error>) {
    let mut out = Vec::new();
    for input in inputs {
        if let Err(error) = engine.input(&unhex(input), now) {
            out.extend(std::iter::from_fn(|| engine.transmit()).map(|b| spaced(&b)));
            return (out, Err(error));
        }
        let mut sent: Vec<String> = std::iter::from_fn(|| engine.transmit())
            .map(|b| spaced(&b))
            .collect();
        if sent.is_empty()
            && let Some(due) = engine.timeout()
        {
            now = now.max(due);
            if let Err(error) = engine.tick(now) {
                return (out, Err(error));
            }
            sent = std::iter::from_fn(|| engine.transmit())
                .map(|b| spaced(&b))
                .collect();
        }
        out.extend(sent);
    }
    (out, Ok(()))
}

trait Engine {
    fn input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T1Error>;
    fn tick(&mut self, now: Instant) -> Result<(), T1Error>;
    fn transmit(&mut self) -> Option<Vec<u8>>;
    fn timeout(&self) -> Option<Instant>;
}

impl Engine for T1Card {
    fn input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T1Error> {
        self.handle_input(bytes, now)
    }
    fn tick(&mut self, now: Instant) -> Result<(), T1Error> {
        self.handle_timeout(now)
    }
    fn transmit(&mut self) -> Option<Vec<u8>> {
        self.poll_transmit()
    }
    fn timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

impl Engine for T1Host {
    fn input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T1Error> {
        self.handle_input(bytes, now)
    }
    fn tick(&mut self, now: Instant) -> Result<(), T1Error> {
        self.handle_timeout(now)
    }
    fn transmit(&mut self) -> Option<Vec<u8>> {
        self.poll_transmit()
    }
    fn timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

/// The card's rules, one row per case: blocks from the interface device in, the
/// card's blocks out, its events.
#[test]
fn card_rule_table() {
    use T1CardEvent::*;
    let command = "00 00 05 00 84 00 00 08 89";
    for (rule, inputs, outputs, events) in [
        (
            "§11.6.2 rule 1: I(0) carries a command",
            vec![command],
            vec![],
            vec![Command(unhex(GET_CHALLENGE))],
        ),
        (
            "§11.6.3 rule 7.1: bad LRC → R(0) EDC error, after CWT",
            vec!["00 00 05 00 84 00 00 08 88"],
            vec!["00 81 00 81"],
            vec![],
        ),
        (
            "§11.3.2.3: LEN = FF → R(0) other error, after silence",
            vec!["00 00 FF 01 02 03"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.6.3: block cut short → R(0) other error, after CWT",
            vec!["00 00 05 00 84"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.3.2.1: wrong NAD → R(0) other error",
            vec!["12 00 05 00 84 00 00 08 9B"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.3.2.2: reserved PCB bits → R(0) other error",
            vec!["00 01 00 01"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.6.2: characters after a block, before our answer: misframed → R(0) other error",
            vec!["00 00 05 00 84 00 00 08 89 00"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.6.2 rule 2: I(1) when I(0) is expected → R(0) other error",
            vec!["00 40 05 00 84 00 00 08 C9"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.6.2 rule 5: chained I(0,M) → R(1)",
            vec!["00 20 02 01 02 21"],
            vec!["00 90 00 90"],
            vec![],
        ),
        (
            "§11.6.2 rule 5: the chain completes with I(1)",
            vec!["00 20 02 01 02 21", "00 40 03 03 04 05 41"],
            vec!["00 90 00 90"],
            vec![Command(unhex("01 02 03 04 05"))],
        ),
        (
            "§11.6.3 rule 7: R-block after our R(1) → R(1) again",
            vec!["00 20 02 01 02 21", "00 80 00 80"],
            vec!["00 90 00 90", "00 90 00 90"],
            vec![],
        ),
        (
            "§11.6.3 rule 7: R-block before any command → R(0)",
            vec!["00 90 00 90"],
            vec!["00 80 00 80"],
            vec![],
        ),
        (
            "§11.4.2 rule 4: S(IFS request FE) → S(IFS response FE)",
            vec!["00 C1 01 FE 3E"],
            vec!["00 E1 01 FE 1E"],
            vec![IfsdChanged(254)],
        ),
        (
            "§11.4.2: S(IFS request 00) is invalid → R(0) other error",
            vec!["00 C1 01 00 C0"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.6.3 rule 6.3: S(RESYNCH request) → S(RESYNCH response)",
            vec!["00 C0 00 C0"],
            vec!["00 E0 00 E0"],
            vec![Resynchronised],
        ),
        (
            "§11.6.3 rule 9: S(ABORT request) mid-chain → S(ABORT response), chain dropped",
            vec!["00 20 02 01 02 21", "00 C2 00 C2"],
            vec!["00 90 00 90", "00 E2 00 E2"],
            vec![Aborted],
        ),
        (
            "§11.4.3: S(WTX request) from the interface device → R(0) other error",
            vec!["00 C3 01 02 C0"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.4.3: an S-response nobody asked for → R(0) other error",
            vec!["00 E3 01 02 E0"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "§11.4.2: an I-block longer than IFSC (32) → R(0) other error",
            vec!["00 00 21 000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20 01"],
            vec!["00 82 00 82"],
            vec![],
        ),
        (
            "while computing, the card does not answer R-blocks",
            vec![command, "00 80 00 80"],
            vec![],
            vec![Command(unhex(GET_CHALLENGE))],
        ),
    ] {
        let mut card = T1Card::new(
            T1Config {
                ifsc: 32,
                ..config()
            }
            .for_card(),
        );
        let (out, result) = drive(&mut card, &inputs, Instant::now());
        assert_eq!(result, Ok(()), "{rule}");
        assert_eq!(out, outputs, "{rule}");
        let got: Vec<T1CardEvent> = std::iter::from_fn(|| card.poll_event()).collect();
        assert_eq!(got, events, "{rule}");
    }
}

/// The card's own requests and responses (§11.4.3 rule 3, §11.4.2 rule 4,
/// §11.6.2): WTX and IFS requests, answers chained by IFSD, repeats on request.
#[test]
fn card_requests_and_responses() {
    let now = Instant::now();
    let mut card = T1Card::new(T1Config {
        ifsd: 4,
        ..config()
    });
    assert_eq!(
        card.respond(&[0x90, 0x00], now),
        Err(T1Error::NoCommand {
            operation: "respond"
        })
    );
    card.handle_input(&unhex("00 00 05 00 84 00 00 08 89"), now)
        .unwrap();
    assert_eq!(
        card.poll_event(),
        Some(T1CardEvent::Command(unhex(GET_CHALLENGE)))
    );
    assert_eq!(
        card.request_waiting_time_extension(0, now),
        Err(T1Error::InvalidWtxMultiplier)
    );
    card.request_waiting_time_extension(2, now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 C3 01 02 C0")));
    assert_eq!(
        card.request_ifsc(16, now),
        Err(T1Error::Busy {
            operation: "request an IFSC",
            state: "an S-request of the card awaits its response"
        })
    );
    // The response given before the S(WTX response) waits for it.
    card.respond(&unhex(CHALLENGE), now).unwrap();
    assert_eq!(card.poll_transmit(), None);
    // A corrupted S(WTX response): our request again.
    card.handle_input(&unhex("00 E3 01 02 E1"), now).unwrap();
    card.handle_timeout(now + config().character_waiting_time)
        .unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 C3 01 02 C0")));
    assert!(!card.waiting_time_extension_granted());
    card.handle_input(&unhex("00 E3 01 02 E0"), now).unwrap();
    // Chained by IFSD = 4: I(0,M) 01020304.
    assert_eq!(card.poll_transmit(), Some(unhex("00 20 04 01 02 03 04 20")));
    assert!(!card.is_idle());
    // R(0) asks for it again; R(1) acknowledges it.
    card.handle_input(&unhex("00 80 00 80"), now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 20 04 01 02 03 04 20")));
    card.handle_input(&unhex("00 90 00 90"), now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 60 04 05 06 07 08 68")));
    card.handle_input(&unhex("00 80 00 80"), now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 00 02 90 00 92")));
    assert!(card.is_idle());
    // R(0) names our last part (N(S) = 0): it again. R(1) means the interface device
    // got it and its next command was lost: we ask for that I-block with R(1).
    card.handle_input(&unhex("00 80 00 80"), now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 00 02 90 00 92")));
    card.handle_input(&unhex("00 90 00 90"), now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 90 00 90")));
    assert_eq!(
        card.respond(&[0x90, 0x00], now),
        Err(T1Error::NoCommand {
            operation: "respond"
        })
    );
    assert_eq!(
        card.respond(&[0x90], now),
        Err(T1Error::ResponseLength {
            len: 1,
            min: 2,
            max: MAX_RESPONSE_LEN
        })
    );

    // Asked for, granted, then answered: the grant is visible until the response.
    let mut card = T1Card::new(config().for_card());
    card.handle_input(&unhex("00 00 05 00 84 00 00 08 89"), now)
        .unwrap();
    card.request_waiting_time_extension(1, now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 C3 01 01 C3")));
    assert!(!card.waiting_time_extension_granted());
    card.handle_input(&unhex("00 E3 01 01 E3"), now).unwrap();
    assert!(card.waiting_time_extension_granted());
    card.respond(&[0x90, 0x00], now).unwrap();
    assert!(!card.waiting_time_extension_granted());
    assert_eq!(card.poll_transmit(), Some(unhex("00 00 02 90 00 92")));

    // §11.4.2 rule 4: the card's S(IFS request), confirmed, sets IFSC.
    let mut card = T1Card::new(config().for_card());
    card.handle_input(&unhex("00 00 05 00 84 00 00 08 89"), now)
        .unwrap();
    card.request_ifsc(16, now).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 C1 01 10 D0")));
    card.handle_input(&unhex("00 E1 01 10 F0"), now).unwrap();
    assert_eq!(card.ifsc(), 16);
    assert_eq!(
        card.request_ifsc(255, now),
        Err(T1Error::InvalidIfs { value: 255 })
    );
}

/// The host's rules, one row per case, after sending I(0) with GET CHALLENGE: the
/// card's blocks in, the host's out, and the outcome.
#[test]
fn host_rule_table() {
    let command = "00 00 05 00 84 00 00 08 89";
    for (rule, inputs, outputs, result) in [
        (
            "§11.6.3 rule 7: R(0) asks for I(0) again",
            vec!["00 80 00 80"],
            vec![command],
            Ok(()),
        ),
        (
            "§11.6.2 rule 2: I(1) when I(0) is expected → R(0) other error",
            vec!["00 40 02 90 00 D2"],
            vec!["00 82 00 82"],
            Ok(()),
        ),
        (
            "§11.6.3: R(1) cannot acknowledge an unchained block → R(0) other error",
            vec!["00 90 00 90"],
            vec!["00 82 00 82"],
            Ok(()),
        ),
        (
            "§11.6.3 rule 7.1: bad EDC → R(0) EDC error, after CWT",
            vec!["00 00 02 90 00 93"],
            vec!["00 81 00 81"],
            Ok(()),
        ),
        (
            "§11.3.2.1: wrong NAD → R(0) other error",
            vec!["01 00 02 90 00 93"],
            vec!["00 82 00 82"],
            Ok(()),
        ),
        (
            "§11.4.3 rule 3: S(WTX request 02) → S(WTX response 02)",
            vec!["00 C3 01 02 C0"],
            vec!["00 E3 01 02 E0"],
            Ok(()),
        ),
        (
            "§11.4.2 rule 4: S(IFS request 10) → S(IFS response 10)",
            vec!["00 C1 01 10 D0"],
            vec!["00 E1 01 10 F0"],
            Ok(()),
        ),
        (
            "§11.6.3 rule 6: the card may not ask for RESYNCH → R(0) other error",
            vec!["00 C0 00 C0"],
            vec!["00 82 00 82"],
            Ok(()),
        ),
        (
            "§11.6.3 rule 9: S(ABORT request) → S(ABORT response), exchange over",
            vec!["00 C2 00 C2"],
            vec!["00 E2 00 E2"],
            Err(T1Error::Aborted { by: Side::Card }),
        ),
        (
            "§11.4.2: an I-block longer than IFSD (8) → R(0) other error",
            vec!["00 00 09 01 02 03 04 05 06 07 08 09 08"],
            vec!["00 82 00 82"],
            Ok(()),
        ),
        (
            "§11.6.2 rule 5: chained I(0,M) → R(1); then I(1) ends the response",
            vec!["00 20 02 01 02 21", "00 40 02 90 00 D2"],
            vec!["00 90 00 90"],
            Ok(()),
        ),
        (
            "§11.6.3 rule 7: an R-block after our R(1) → R(1) again",
            vec!["00 20 02 01 02 21", "00 80 00 80"],
            vec!["00 90 00 90", "00 90 00 90"],
            Ok(()),
        ),
        (
            "§11.6.3 rule 7.4: three requests for I(0) → S(RESYNCH request)",
            vec!["00 80 00 80", "00 80 00 80", "00 80 00 80"],
            vec![command, command, "00 C0 00 C0"],
            Ok(()),
        ),
    ] {
        let mut host = T1Host::new(T1Config {
            ifsd: 8,
            ..config()
        });
        let now = Instant::now();
        host.start(&unhex(GET_CHALLENGE), now).unwrap();
        assert_eq!(
            host.poll_transmit().map(|b| spaced(&b)).as_deref(),
            Some(command)
        );
        let (out, got) = drive(&mut host, &inputs, now);
        assert_eq!(got, result, "{rule}");
        assert_eq!(out, outputs, "{rule}");
    }

    // A complete chained response comes as one event.
    let mut host = T1Host::new(config());
    let now = Instant::now();
    host.start(&unhex(GET_CHALLENGE), now).unwrap();
    host.poll_transmit();
    host.handle_input(&unhex("00 20 02 01 02 21"), now).unwrap();
    assert_eq!(host.poll_transmit(), Some(unhex("00 90 00 90")));
    host.handle_input(&unhex("00 40 02 90 00 D2"), now).unwrap();
    assert_eq!(
        host.poll_event(),
        Some(T1Event::Response(unhex("01 02 90 00")))
    );
    assert!(host.is_idle());
    assert_eq!(
        host.start(&[0; 3], now),
        Err(T1Error::CommandLength {
            len: 3,
            min: 4,
            max: MAX_COMMAND_LEN
        })
    );
}

/// Operations are refused while another is in progress.
#[test]
fn host_refuses_overlapping_operations() {
    let now = Instant::now();
    let mut host = T1Host::new(config());
    host.start(&unhex(GET_CHALLENGE), now).unwrap();
    assert_eq!(
        host.request_ifsd(254, now),
        Err(T1Error::Busy {
            operation: "request an IFSD",
            state: "a command is in progress"
        })
    );
    assert_eq!(
        host.resynchronise(now),
        Err(T1Error::Busy {
            operation: "resynchronise",
            state: "a command is in progress"
        })
    );
    // An explicit resynchronisation resets the sequence numbers (§11.6.3 rule 6).
    let mut host = T1Host::new(config());
    host.resynchronise(now).unwrap();
    assert_eq!(host.poll_transmit(), Some(unhex("00 C0 00 C0")));
    host.handle_input(&unhex("00 E0 00 E0"), now).unwrap();
    assert_eq!(host.poll_event(), Some(T1Event::Resynchronised));
    assert!(host.is_idle());
}

/// §11.6.3 rule 9 from the host: a response beyond 65,538 bytes is aborted.
#[test]
fn host_aborts_an_endless_response() {
    let now = Instant::now();
    let mut host = T1Host::new(config());
    host.start(&unhex(GET_CHALLENGE), now).unwrap();
    host.poll_transmit();
    let mut ns = false;
    let mut result = Ok(());
    for _ in 0..300 {
        let block = Block::information(0, ns, true, vec![0xEE; 254]).encode(Edc::Lrc);
        ns = !ns;
        host.handle_input(&block, now).unwrap();
        let sent = host.poll_transmit().unwrap();
        if sent == unhex("00 C2 00 C2") {
            result = host.handle_input(&unhex("00 E2 00 E2"), now);
            break;
        }
    }
    assert_eq!(
        result,
        Err(T1Error::ResponseTooLong {
            max: MAX_RESPONSE_LEN
        })
    );
    assert!(host.is_idle());
}

/// §11.6.3 rule 9 from the card: a command chain beyond 65,544 bytes is aborted.
#[test]
fn card_aborts_an_endless_command() {
    let now = Instant::now();
    let mut card = T1Card::new(T1Config {
        ifsc: 254,
        ..config()
    });
    let mut ns = false;
    for _ in 0..300 {
        let block = Block::information(0, ns, true, vec![0xEE; 254]).encode(Edc::Lrc);
        ns = !ns;
        card.handle_input(&block, now).unwrap();
        if card.poll_transmit() == Some(unhex("00 C2 00 C2")) {
            card.handle_input(&unhex("00 E2 00 E2"), now).unwrap();
            break;
        }
    }
    assert_eq!(card.poll_event(), Some(T1CardEvent::Aborted));
    assert!(card.is_idle());
}

/// §11.3.5.2: the whole exchange with CRC epilogues.
#[test]
fn crc_link() {
    let host = T1Config {
        edc: Edc::Crc,
        ifsc: 16,
        ..config()
    };
    let mut pair = Pair::new(host, host.for_card(), &unhex(CHALLENGE)).tamper(
        Dir::ToHost,
        0,
        Tamper::Flip {
            position: 12,
            mask: 0x40,
        },
    );
    assert_eq!(pair.exchange(&[0x5A; 40]), Ok(unhex(CHALLENGE)));
    assert_eq!(
        pair.lines().first().map(String::as_str),
        Some("-> 00 20 10 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 5A 2F 20")
    );
}

/// A parity error reported by the driver makes the block invalid (§11.6.3 rule 7.1):
/// R-block with the EDC/parity code.
#[test]
fn parity_error_is_an_edc_error() {
    let now = Instant::now();
    let mut card = T1Card::new(config().for_card());
    card.handle_input(&unhex("00 00 05 00"), now).unwrap();
    card.handle_parity_error(now);
    card.handle_input(&unhex("84 00 00 08 89"), now).unwrap();
    let due = card.poll_timeout().unwrap();
    card.handle_timeout(due).unwrap();
    assert_eq!(card.poll_transmit(), Some(unhex("00 81 00 81")));
    assert_eq!(card.poll_event(), None);
}

#[derive(Debug, Clone)]
enum Step {
    Input(Vec<u8>),
    Wait(u64),
    Parity,
    Start(usize),
    Ifsd(u8),
    Resynch,
    Respond(usize),
    Wtx(u8),
    Ifsc(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Step::Input),
        1 => (0u64..3_000).prop_map(Step::Wait),
        1 => Just(Step::Parity),
        1 => (0usize..700).prop_map(Step::Start),
        1 => any::<u8>().prop_map(Step::Ifsd),
        1 => Just(Step::Resynch),
        1 => (0usize..700).prop_map(Step::Respond),
        1 => any::<u8>().prop_map(Step::Wtx),
        1 => any::<u8>().prop_map(Step::Ifsc),
    ]
}

/// Valid blocks mixed with noise, so the engines get past their first checks.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            super::block::tests::valid_block().prop_map(|mut block| {
                block.nad = 0;
                block.encode(Edc::Lrc)
            }),
            proptest::collection::vec(any::<u8>(), 0..8),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    /// Neither engine panics, in any state reached by any operations, on arbitrary
    /// characters, parity errors and timeouts; a host that gave up stays given up.
    #[test]
    fn engines_take_any_input(steps in proptest::collection::vec(step(), 0..40), noise in line_bytes()) {
        let mut now = Instant::now();
        let mut host = T1Host::new(T1Config { ifsc: 16, ifsd: 16, ..config() });
        let mut card = T1Card::new(T1Config { ifsc: 16, ifsd: 16, ..config() });
        let mut dead = false;
        for step in steps.iter().chain([Step::Input(noise.clone())].iter()) {
            match step {
                Step::Input(bytes) => {
                    let result = host.handle_input(bytes, now);
                    dead |= matches!(result, Err(T1Error::ResynchronisationFailed { .. }));
                    let _ = card.handle_input(bytes, now);
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(*ms);
                    let result = host.handle_timeout(now);
                    dead |= matches!(result, Err(T1Error::ResynchronisationFailed { .. }));
                    let _ = card.handle_timeout(now);
                }
                Step::Parity => {
                    host.handle_parity_error(now);
                    card.handle_parity_error(now);
                }
                Step::Start(len) => {
                    let result = host.start(&vec![0x11; *len], now);
                    if dead {
                        prop_assert_eq!(result, Err(T1Error::Dead));
                    }
                }
                Step::Ifsd(value) => { let _ = host.request_ifsd(*value, now); }
                Step::Resynch => { let _ = host.resynchronise(now); }
                Step::Respond(len) => { let _ = card.respond(&vec![0x22; *len], now); }
                Step::Wtx(m) => { let _ = card.request_waiting_time_extension(*m, now); }
                Step::Ifsc(value) => { let _ = card.request_ifsc(*value, now); }
            }
            // Whatever they send is made of valid blocks.
            for sent in std::iter::from_fn(|| host.poll_transmit()).chain(std::iter::from_fn(|| card.poll_transmit())) {
                let mut receiver = BlockReceiver::new(Edc::Lrc);
                let blocks = receiver.feed(&sent);
                prop_assert_eq!(blocks.len(), 1);
                prop_assert!(blocks[0].is_ok());
                prop_assert!(!receiver.is_receiving());
            }
            while host.poll_event().is_some() {}
            while card.poll_event().is_some() {}
        }
    }

    /// §11.6.3: a wired pair whose line corrupts, drops, cuts or pads any one
    /// transmission still delivers the exact command to the card, once, and the exact
    /// response to the host.
    #[test]
    fn wired_pair_survives_one_fault(
        command_len in 4usize..700,
        response_len in 2usize..700,
        ifsc in 1u8..=254,
        ifsd in 1u8..=254,
        crc in any::<bool>(),
        dir in any::<bool>(),
        index in 0usize..12,
        kind in 0u8..5,
        position in any::<usize>(),
        mask in 1u8..=255,
        garbage in proptest::collection::vec(any::<u8>(), 1..12),
    ) {
        let edc = if crc { Edc::Crc } else { Edc::Lrc };
        let host = T1Config { ifsc, ifsd, edc, ..config() };
        let command: Vec<u8> = (0..command_len).map(|i| (i * 13 % 256) as u8).collect();
        let response: Vec<u8> = (0..response_len).map(|i| (i * 29 % 256) as u8).collect();
        let tamper = match kind {
            0 => Tamper::Flip { position, mask },
            1 => Tamper::Drop,
            2 => Tamper::Prefix(garbage),
            3 => Tamper::Suffix(garbage),
            _ => Tamper::Truncate(position % 8),
        };
        let dir = if dir { Dir::ToCard } else { Dir::ToHost };
        let mut pair = Pair::new(host, host, &response).tamper(dir, index, tamper);
        // One fault is within the retransmissions allowed: recovery always succeeds,
        // and the card runs the command exactly once.
        prop_assert_eq!(pair.exchange(&command), Ok(response));
        prop_assert_eq!(pair.commands_seen, vec![command]);
    }

    /// Several faults in a row: still the exact result, or an error.
    #[test]
    fn wired_pair_never_gives_a_wrong_result(
        faults in proptest::collection::vec((any::<bool>(), 0usize..30, 0u8..4, any::<usize>(), 1u8..=255), 0..8),
        command_len in 4usize..300,
    ) {
        let host = T1Config { ifsc: 24, ifsd: 20, ..config() };
        let command: Vec<u8> = (0..command_len).map(|i| (i * 7 % 256) as u8).collect();
        let response: Vec<u8> = (0..150).map(|i: usize| (i * 3 % 256) as u8).collect();
        let mut pair = Pair::new(host, host, &response);
        for (to_card, index, kind, position, mask) in faults {
            let tamper = match kind {
                0 => Tamper::Flip { position, mask },
                1 => Tamper::Drop,
                2 => Tamper::Prefix(vec![mask; position % 5 + 1]),
                _ => Tamper::Truncate(position % 6),
            };
            let dir = if to_card { Dir::ToCard } else { Dir::ToHost };
            pair = pair.tamper(dir, index, tamper);
        }
        match pair.exchange(&command) {
            Ok(got) => prop_assert_eq!(got, response),
            Err(error) => prop_assert!(
                matches!(error, T1Error::ResynchronisationFailed { .. }),
                "unexpected error {error:?}"
            ),
        }
        for seen in &pair.commands_seen {
            prop_assert_eq!(seen, &command);
        }
    }
}
