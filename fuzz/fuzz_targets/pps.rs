//! Fuzz target `pps`: protocol and parameters selection, `telepay::iso7816_3::pps`
//! (ISO 7816-3 §9).
//!
//! Input layout:
//!
//! ```text
//! T P V1 V2 V3 A N  RESPONSE  STEPS
//! T       the request's protocol byte (all 8 bits: only the low nibble is sent)
//! P       bits 0, 1, 2: PPS1 = V1, PPS2 = V2, PPS3 = V3 present
//! A       the card's ATR, one of [`ATRS`] (T=0 only, T=0 and T=1, TA1 = 13 or 96,
//!         T=1 only, specific mode)
//! N       RESPONSE is the next N % 8 bytes: a card's answer, checked as a whole
//! STEPS   the card's characters for a `PpsExchange`, in pieces, with timeouts
//!         (`common/line.rs`)
//! ```
//!
//! Checked:
//! - nothing panics; the request encodes as §9.2 says (PPSS `FF`, PPS0 with the
//!   protocol's low nibble and presence bits, the parameters, PCK making the
//!   exclusive-or of all bytes zero, `pps_length` long) and decodes back; any bytes
//!   that decode re-encode to themselves;
//! - `check_response` accepts RESPONSE exactly when §9.3 does, as stated here
//!   independently: a well-formed message (PPSS `FF`, b8 of PPS0 clear, the length PPS0
//!   announces, PCK) with the same protocol, each of PPS1–PPS3 echoed or left out;
//!   then the FI/DI in force is PPS1, or `11` when left out;
//! - `answer_request` gives an answer exactly when the card is not in specific mode
//!   and its ATR offers the protocol; that answer is accepted by `check_response` for
//!   the same request (the round trip), echoes the protocol, leaves out PPS2 and PPS3,
//!   and echoes PPS1 only when asked;
//! - `PpsExchange`: sends the request once; fed in pieces, it reaches the outcome that
//!   `check_response` gives the message PPS0 announces — refusing a first byte other
//!   than `FF` at once, and bytes beyond the message with `TrailingBytes` naming them;
//!   its deadline is the waiting time after the request or the last character, and
//!   fires `NoResponse` or `Incomplete` naming what came; a failed exchange stays
//!   failed; the outcome is given once.
#![no_main]

#[path = "common/line.rs"]
mod line;

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use line::{Input, Step, TICK, hex, just_before, origin};
use telepay::atr::{Atr, Protocol};
use telepay::iso7816_3::pps::{
    DEFAULT_FI_DI, PPSS, PpsDefect, PpsError, PpsExchange, PpsOutcome, PpsRequest, answer_request,
    check_response, pps_length,
};

/// ATRs a card may have answered: what it offers decides its PPS answer.
const ATRS: [&str; 6] = [
    // T=0 only, no TA1 (Fi 372, Di 1).
    "3B 68 00 00 80 73 C6 01 00 52 54 30",
    // T=0 and T=1 (TD1 T=0, TD2 T=1), no TA1.
    "3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8D",
    // T=1, TA1 = 13 (Fi 372, Di 4).
    "3B F8 13 00 00 81 31 FE 45 4A 43 4F 50 76 32 34 31 B7",
    // T=0 and T=15, TA1 = 96 (Fi 512, Di 32).
    "3B 9F 96 80 1F C6 80 31 E0 73 FE 21 1B 64 41 02 41 00 82 90 00 C2",
    // T=1 only (TD1 names T=0 for the global level, TD2 T=1).
    "3B 80 80 01 01",
    // Specific mode: TA2 = 80, T=0 (§8.3): no PPS.
    "3B 90 96 10 80",
];

/// The waiting time of the exchange.
const WAIT: Duration = Duration::from_millis(100);

fuzz_target!(|input: &[u8]| check(input));

fn atrs() -> &'static [Atr] {
    static PARSED: OnceLock<Vec<Atr>> = OnceLock::new();
    PARSED.get_or_init(|| {
        ATRS.iter()
            .map(|text| {
                let bytes: Vec<u8> = text
                    .split(' ')
                    .filter_map(|byte| u8::from_str_radix(byte, 16).ok())
                    .collect();
                match Atr::parse(&bytes) {
                    Ok(atr) => atr,
                    Err(error) => panic!("fixture ATR {text}: {error}"),
                }
            })
            .collect()
    })
}

fn check(input: &[u8]) {
    let mut input = Input::new(input);
    let Some([protocol, present, v1, v2, v3, a, n]) = input.array::<7>() else {
        return;
    };
    let request = PpsRequest {
        protocol,
        fi_di: (present & 1 == 1).then_some(v1),
        pps2: (present & 2 == 2).then_some(v2),
        pps3: (present & 4 == 4).then_some(v3),
    };
    let response = input.take(usize::from(n % 8));

    check_encoding(&request);
    if let Ok(decoded) = PpsRequest::decode(response) {
        assert_eq!(hex(&decoded.encode()), hex(response), "decode then encode");
    }
    check_answer_rules(&request, response);

    let atrs = atrs();
    if let Some(atr) = atrs.get(usize::from(a) % atrs.len()) {
        check_card(&request, atr);
    }

    run_exchange(&request, &mut input);
}

/// §9.2: the request's bytes.
fn check_encoding(request: &PpsRequest) {
    let bytes = request.encode();
    let present = [request.fi_di, request.pps2, request.pps3];
    let count = present.iter().flatten().count();
    assert_eq!(bytes.len(), 3 + count, "PPSS PPS0 PPS1-3 PCK");
    assert_eq!(bytes.first(), Some(&PPSS));
    let mut pps0 = request.protocol & 0x0F;
    for (bit, value) in [0x10, 0x20, 0x40].into_iter().zip(present) {
        if value.is_some() {
            pps0 |= bit;
        }
    }
    assert_eq!(bytes.get(1), Some(&pps0), "PPS0");
    let parameters: Vec<u8> = present.into_iter().flatten().collect();
    assert_eq!(bytes.get(2..2 + count), Some(parameters.as_slice()));
    assert_eq!(xor(&bytes), 0, "PCK (§9.2)");
    assert_eq!(pps_length(&bytes), Some(bytes.len()));
    let back = PpsRequest::decode(&bytes);
    let masked = PpsRequest {
        protocol: request.protocol & 0x0F,
        ..*request
    };
    assert_eq!(back, Ok(masked), "the request decodes back");
}

/// §9.3, stated independently: whether `response` is a successful answer to
/// `request`, and the FI/DI then in force.
fn accepted_by_rules(request: &PpsRequest, response: &[u8]) -> Option<u8> {
    let (&ppss, rest) = response.split_first()?;
    let &pps0 = rest.first()?;
    if ppss != 0xFF || pps0 & 0x80 != 0 || xor(response) != 0 {
        return None;
    }
    let flags = [pps0 & 0x10 != 0, pps0 & 0x20 != 0, pps0 & 0x40 != 0];
    let count = flags.iter().filter(|&&f| f).count();
    if response.len() != 3 + count || pps0 & 0x0F != request.protocol & 0x0F {
        return None;
    }
    let mut values = response.get(2..2 + count)?.iter().copied();
    let asked = [request.fi_di, request.pps2, request.pps3];
    let mut fi_di = DEFAULT_FI_DI;
    for (index, (flag, asked)) in flags.into_iter().zip(asked).enumerate() {
        if flag {
            let value = values.next()?;
            if Some(value) != asked {
                return None;
            }
            if index == 0 {
                fi_di = value;
            }
        }
    }
    Some(fi_di)
}

fn check_answer_rules(request: &PpsRequest, response: &[u8]) {
    let result = check_response(request, response);
    let rules = accepted_by_rules(request, response);
    match (&result, rules) {
        (Ok(PpsOutcome::Accepted { protocol, fi_di }), Some(expected)) => {
            assert_eq!(*protocol, request.protocol & 0x0F, "protocol selected");
            assert_eq!(*fi_di, expected, "FI/DI in force");
        }
        (Err(_), None) => {}
        (result, rules) => panic!(
            "answer {} to {}: check_response says {result:?}, §9.3 says {rules:?}",
            hex(response),
            hex(&request.encode())
        ),
    }
    if let Err(error) = result {
        let _ = error.to_string();
    }
}

/// The card's side: answers exactly when §9.3 lets it, and the host accepts them.
fn check_card(request: &PpsRequest, atr: &Atr) {
    let protocol = Protocol::from_t(request.protocol & 0x0F);
    let may_answer = atr.specific_mode().is_none() && atr.protocols().contains(&protocol);
    let answer = answer_request(request, atr);
    assert_eq!(
        answer.is_some(),
        may_answer,
        "answer to {request:?} from {atr}"
    );
    let Some(answer) = answer else {
        return;
    };
    let decoded = match PpsRequest::decode(&answer) {
        Ok(decoded) => decoded,
        Err(error) => panic!(
            "the card's answer {} does not decode: {error}",
            hex(&answer)
        ),
    };
    assert_eq!(decoded.protocol, request.protocol & 0x0F);
    assert_eq!(
        (decoded.pps2, decoded.pps3),
        (None, None),
        "PPS2, PPS3 left out"
    );
    if let Some(fi_di) = decoded.fi_di {
        assert_eq!(request.fi_di, Some(fi_di), "PPS1 echoed only when asked");
    }
    let outcome = check_response(request, &answer);
    let expected = PpsOutcome::Accepted {
        protocol: request.protocol & 0x0F,
        fi_di: decoded.fi_di.unwrap_or(DEFAULT_FI_DI),
    };
    assert_eq!(outcome, Ok(expected), "the host accepts the card's answer");
}

/// The host's exchange, fed the card's characters in pieces.
fn run_exchange(request: &PpsRequest, input: &mut Input<'_>) {
    let start = origin();
    let mut exchange = PpsExchange::start(*request, WAIT, start);
    assert_eq!(exchange.request(), request);
    assert_eq!(
        exchange.poll_transmit(),
        Some(request.encode()),
        "the request"
    );
    assert_eq!(exchange.poll_transmit(), None, "sent once");
    let mut now = start;
    let mut last_at = start;
    let mut received: Vec<u8> = Vec::new();
    let mut failed: Option<PpsError> = None;
    let mut done = false;

    while let Some(step) = input.raw_step() {
        match step {
            Step::Piece(piece) => {
                now += TICK;
                let result = exchange.handle_input(piece, now);
                if let Some(error) = &failed {
                    assert_eq!(
                        result.as_ref(),
                        Err(error),
                        "a failed exchange stays failed"
                    );
                    continue;
                }
                if done {
                    if piece.is_empty() {
                        assert_eq!(result, Ok(()));
                    } else {
                        let trailing = PpsError::TrailingBytes {
                            bytes: piece.to_vec(),
                        };
                        assert_eq!(result.as_ref(), Err(&trailing), "bytes after the answer");
                        failed = Some(trailing);
                    }
                    continue;
                }
                if !piece.is_empty() {
                    last_at = now;
                }
                received.extend_from_slice(piece);
                let expected = expected_step(request, &received);
                match (&result, &expected) {
                    (Ok(()), Expected::Waiting) => {}
                    (Ok(()), Expected::Accepted(outcome)) => {
                        assert_eq!(exchange.outcome(), Some(*outcome), "the outcome");
                        assert_eq!(exchange.outcome(), None, "the outcome is given once");
                        done = true;
                    }
                    (Err(error), Expected::Failed(expected)) => {
                        assert_eq!(error, expected);
                        failed = Some(error.clone());
                    }
                    (result, expected) => panic!(
                        "{} received: exchange says {result:?}, expected {expected:?}",
                        hex(&received)
                    ),
                }
            }
            Step::Timeout { late } => {
                let deadline = exchange.poll_timeout();
                let waiting = failed.is_none() && !done;
                assert_eq!(deadline, waiting.then(|| last_at + WAIT), "the deadline");
                let at = deadline.map_or(now + WAIT, |d| d + late);
                now = now.max(at);
                let result = exchange.handle_timeout(at);
                if let Some(error) = &failed {
                    assert_eq!(result.as_ref(), Err(error));
                    continue;
                }
                if done {
                    assert_eq!(result, Ok(()));
                    continue;
                }
                let waited = at.saturating_duration_since(last_at);
                let expected = if received.is_empty() {
                    PpsError::NoResponse { waited }
                } else {
                    PpsError::Incomplete {
                        received: received.clone(),
                        waited,
                    }
                };
                assert_eq!(result.as_ref(), Err(&expected), "on the deadline");
                failed = Some(expected);
            }
            Step::EarlyTimeout => {
                if let (Some(deadline), None) = (exchange.poll_timeout(), &failed) {
                    assert_eq!(exchange.handle_timeout(just_before(deadline)), Ok(()));
                    assert_eq!(exchange.poll_timeout(), Some(deadline));
                }
            }
            Step::Structured(_) | Step::Action(_) => {}
        }
    }
}

#[derive(Debug)]
enum Expected {
    Waiting,
    Accepted(PpsOutcome),
    Failed(PpsError),
}

/// What the exchange must say once `received` has arrived (the bytes before the last
/// piece left it waiting).
fn expected_step(request: &PpsRequest, received: &[u8]) -> Expected {
    match received.first() {
        None => return Expected::Waiting,
        Some(&PPSS) => {}
        Some(&found) => {
            return Expected::Failed(PpsError::Malformed {
                bytes: vec![found],
                defect: PpsDefect::BadPpss { found },
            });
        }
    }
    let Some(len) = pps_length(received) else {
        return Expected::Waiting;
    };
    let Some(message) = received.get(..len) else {
        return Expected::Waiting;
    };
    match check_response(request, message) {
        Err(error) => Expected::Failed(error),
        Ok(_) if received.len() > len => Expected::Failed(PpsError::TrailingBytes {
            bytes: received.get(len..).unwrap_or_default().to_vec(),
        }),
        Ok(outcome) => Expected::Accepted(outcome),
    }
}

fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}
