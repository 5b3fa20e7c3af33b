//! The transport layer against the software card: what crosses the interface (seen by an
//! observer, as a trace recorder sees it) versus what the application gets back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telepay::apdu::{Command, StatusWord};
use telepay::reader::sim::SimReader;
use telepay::reader::{ExchangeObserver, ReaderError, ReaderUri, Transport, open};

/// Keeps every raw exchange in hex, shared with the test.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, String)>>>);

impl ExchangeObserver for Log {
    fn exchange(&mut self, command: &[u8], response: &[u8], _elapsed: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((hex::encode_upper(command), hex::encode_upper(response)));
    }
}

impl Log {
    fn commands(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }
    fn responses(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn powered(uri: &str) -> (Transport<Box<dyn telepay::reader::Reader + Send>>, Log) {
    let reader = open(&ReaderUri::parse(uri).unwrap()).unwrap();
    let mut transport = Transport::new(reader);
    let log = Log::default();
    transport.set_observer(Box::new(log.clone()));
    transport.power_on().unwrap();
    (transport, log)
}

fn command(hex_text: &str) -> Command {
    Command::parse(&hex::decode(hex_text).unwrap()).unwrap()
}

#[test]
fn t0_card_61xx_is_fetched_with_get_response_and_concatenated() {
    let (mut t0, t0_log) = powered("sim:t0-slow?seed=1");
    let select = command("00A4040007A000000042101000");
    let response = t0.transmit(&select).unwrap();
    assert_eq!(response.sw, StatusWord::Success);
    assert!(response.data.starts_with(&[0x6F]), "the FCI arrives whole");

    // On the wire: the command, a 61xx, then GET RESPONSE with Le = xx.
    let commands = t0_log.commands();
    let responses = t0_log.responses();
    assert_eq!(commands[0], "00A4040007A000000042101000");
    assert!(responses[0].starts_with("61"), "{responses:?}");
    let available = &responses[0][2..4];
    assert_eq!(commands[1], format!("00C00000{available}"));
    assert_eq!(
        response.data.len(),
        usize::from_str_radix(available, 16).unwrap(),
        "the announced length is what arrived"
    );
}

#[test]
fn t0_card_6cxx_makes_the_transport_reissue_with_the_exact_le() {
    let (mut t0, log) = powered("sim:t0-slow?seed=1");
    t0.transmit(&command("00A4040007A000000042101000")).unwrap();
    // GET DATA with Le = 00 (256): a T=0 card answers 6C04, the transport re-issues.
    let response = t0.transmit(&command("80CA9F1700")).unwrap();
    assert_eq!(response.sw, StatusWord::Success);
    assert_eq!(hex::encode_upper(&response.data), "9F170103");
    let commands = log.commands();
    let responses = log.responses();
    let n = commands.len();
    assert_eq!(commands[n - 2], "80CA9F1700");
    assert_eq!(responses[n - 2], "6C04");
    assert_eq!(commands[n - 1], "80CA9F1704");
}

#[test]
fn a_direct_card_answers_in_one_exchange() {
    let (mut direct, log) = powered("sim:cb?seed=1");
    direct
        .transmit(&command("00A4040007A000000042101000"))
        .unwrap();
    assert_eq!(log.commands().len(), 1);
}

#[test]
fn long_data_goes_as_a_chain_of_short_commands_when_the_card_has_no_extended_lengths() {
    let (mut card, log) = powered("sim:cb?seed=1");
    assert!(!card.atr().unwrap().supports_extended_length());
    let data = vec![0xAB; 300];
    let long = Command::new(0x00, 0x2A, 0x9E, 0x9A)
        .with_data(data)
        .unwrap()
        .with_le(256)
        .unwrap();
    assert!(long.needs_extended());
    let result = card.transmit(&long);
    let first = &log.commands()[0];
    assert!(first.starts_with("102A9E9AFF"), "chained part 1: {first}");
    assert_eq!(first.len(), (5 + 255) * 2, "255 data bytes, no Le");
    // The simulated card, like most payment cards, takes no chains (6884): the
    // refusal names the part, and nothing more is sent.
    match result {
        Err(ReaderError::ChainingRefused { part, sw, .. }) => {
            assert_eq!(part, 1);
            assert_eq!(sw.to_u16(), 0x6884, "{sw}");
        }
        other => panic!("expected the chain to be refused, got {other:?}"),
    }
    assert_eq!(log.commands().len(), 1);
}

#[test]
fn commands_before_power_on_are_refused() {
    let reader = open(&ReaderUri::parse("sim:cb").unwrap()).unwrap();
    let mut transport = Transport::new(reader);
    let error = transport
        .transmit(&command("00A4040007A000000042101000"))
        .unwrap_err();
    assert!(matches!(error, ReaderError::NotPowered { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "reader sim:cb: the card is not powered; power it on first"
    );
}

#[test]
fn a_card_with_an_unparsable_atr_is_reported_with_its_bytes() {
    struct Broken;
    impl card_applet_sim::SmartCard for Broken {
        fn power_on(&mut self) -> Vec<u8> {
            vec![0x3B, 0x8F]
        }
        fn reset(&mut self, _: card_applet_sim::ResetKind) -> Vec<u8> {
            self.power_on()
        }
        fn transmit(&mut self, _: &[u8]) -> Vec<u8> {
            vec![0x90, 0x00]
        }
        fn power_off(&mut self) {}
    }
    let mut transport = Transport::new(SimReader::with_card("broken", Box::new(Broken)));
    let error = transport.power_on().unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("reader broken: the card's ATR 3B8F is malformed"),
        "{message}"
    );
}

#[test]
fn a_response_without_status_word_is_an_error_not_a_panic() {
    struct Mute;
    impl card_applet_sim::SmartCard for Mute {
        fn power_on(&mut self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn reset(&mut self, _: card_applet_sim::ResetKind) -> Vec<u8> {
            self.power_on()
        }
        fn transmit(&mut self, _: &[u8]) -> Vec<u8> {
            vec![0x90]
        }
        fn power_off(&mut self) {}
    }
    let mut transport = Transport::new(SimReader::with_card("mute", Box::new(Mute)));
    transport.power_on().unwrap();
    let error = transport.transmit(&command("00B2010C00")).unwrap_err();
    assert!(
        matches!(error, ReaderError::MalformedResponse { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("the card's answer 90 to 00B2010C00"),
        "{error}"
    );
}

#[test]
fn a_card_that_never_stops_answering_61xx_is_cut_off() {
    struct Endless;
    impl card_applet_sim::SmartCard for Endless {
        fn power_on(&mut self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn reset(&mut self, _: card_applet_sim::ResetKind) -> Vec<u8> {
            self.power_on()
        }
        fn transmit(&mut self, _: &[u8]) -> Vec<u8> {
            let mut answer = vec![0x55; 16];
            answer.extend_from_slice(&[0x61, 0x10]);
            answer
        }
        fn power_off(&mut self) {}
    }
    let mut transport = Transport::new(SimReader::with_card("endless", Box::new(Endless)));
    transport.power_on().unwrap();
    let error = transport.transmit(&command("00B2010C00")).unwrap_err();
    assert!(
        matches!(
            error,
            ReaderError::RunawayResponse {
                what: "GET RESPONSE",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_card_that_takes_chains_receives_every_part_in_order() {
    /// A card that accepts ISO 7816-4 §5.3.3 chains and answers the total it received.
    #[derive(Default)]
    struct Collector {
        received: Vec<u8>,
    }
    impl card_applet_sim::SmartCard for Collector {
        fn power_on(&mut self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn reset(&mut self, _: card_applet_sim::ResetKind) -> Vec<u8> {
            self.power_on()
        }
        fn transmit(&mut self, command: &[u8]) -> Vec<u8> {
            let Ok(parsed) = Command::parse(command) else {
                return vec![0x67, 0x00];
            };
            self.received.extend_from_slice(parsed.data());
            if parsed.cla() & 0x10 != 0 {
                return vec![0x90, 0x00];
            }
            let total = u16::try_from(self.received.len()).unwrap().to_be_bytes();
            vec![total[0], total[1], 0x90, 0x00]
        }
        fn power_off(&mut self) {}
    }
    let mut transport = Transport::new(SimReader::with_card(
        "collector",
        Box::new(Collector::default()),
    ));
    let log = Log::default();
    transport.set_observer(Box::new(log.clone()));
    transport.power_on().unwrap();
    let data: Vec<u8> = (0..600u16).map(|i| (i % 251) as u8).collect();
    let long = Command::new(0x00, 0xDA, 0x01, 0x02)
        .with_data(data)
        .unwrap()
        .with_le(2)
        .unwrap();
    let response = transport.transmit(&long).unwrap();
    assert_eq!(response.data, vec![0x02, 0x58], "600 bytes arrived");
    let headers: Vec<String> = log.commands().iter().map(|c| c[..10].to_owned()).collect();
    assert_eq!(headers, ["10DA0102FF", "10DA0102FF", "00DA01025A"]);
    assert!(
        log.commands()[2].ends_with("02"),
        "Le on the last part only"
    );
}
