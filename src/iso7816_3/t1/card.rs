//! The card's side of T=1 (ISO/IEC 7816-3 §11): it receives chained commands,
//! answers chained responses by IFSD, asks for waiting time extensions, answers the
//! interface device's S-requests and its R-blocks, and reports invalid blocks with
//! R-blocks. The card never times the interface device out: it only answers.

use std::collections::VecDeque;
use std::time::Instant;

use super::link::Link;
use super::{
    Block, BlockError, Fault, MAX_COMMAND_LEN, MAX_INF_LEN, MAX_RESPONSE_LEN, Pcb, ReceiveError,
    Supervisory, T1Config, T1Error,
};

/// What the card's engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum T1CardEvent {
    /// A whole command APDU, reassembled from its chain: answer it with
    /// [`T1Card::respond`].
    Command(Vec<u8>),
    /// The interface device announced a new IFSD with S(IFS request), answered: the
    /// response is now chained in blocks of up to this many bytes (§11.4.2).
    IfsdChanged(u8),
    /// S(RESYNCH request) answered: sequence numbers and information field sizes are
    /// back to their initial values; any command in progress is dropped (§11.6.3,
    /// rule 6.3).
    Resynchronised,
    /// A chain was aborted with S(ABORT) — by the interface device, or by the card for
    /// a command longer than [`MAX_COMMAND_LEN`]; any command in progress is dropped.
    Aborted,
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting for a command (first I-block), nothing of ours to send again.
    Idle,
    /// Receiving a chained command; our R-block acknowledged the last part.
    Receiving { command: Vec<u8> },
    /// The command was delivered; the application computes. `request` is our S(WTX) or
    /// S(IFS) request awaiting its response; `queued` a response given meanwhile.
    Processing {
        request: Option<Block>,
        queued: Option<Vec<u8>>,
    },
    /// Sending the response: `in_flight` awaits an R-block (chained) or, as the last
    /// part, stays to be sent again until the next command.
    Sending {
        response: Vec<u8>,
        acked: usize,
        in_flight: Block,
    },
    /// Our S(ABORT request) awaits its response.
    Aborting { request: Block },
}

/// The card's T=1 engine: no I/O, no clock.
#[derive(Debug, Clone)]
pub struct T1Card {
    link: Link,
    ifsc: u8,
    ifsd: u8,
    /// N(S) of our next new I-block.
    ns: bool,
    /// N(S) of the interface device's next I-block (our N(R)).
    nr: bool,
    state: State,
    /// An S(WTX request) for the command being processed was answered.
    wtx_granted: bool,
    events: VecDeque<T1CardEvent>,
}

impl T1Card {
    /// An engine for a card just after its ATR. `config.ifsd` is the IFSD assumed
    /// until the interface device's S(IFS request): 32 by §11.4.2 (see
    /// [`T1Config::for_card`]).
    pub fn new(config: T1Config) -> T1Card {
        T1Card {
            link: Link::new(config, config.nad),
            ifsc: config.ifsc,
            ifsd: config.ifsd,
            ns: false,
            nr: false,
            state: State::Idle,
            wtx_granted: false,
            events: VecDeque::new(),
        }
    }

    /// The IFSC in use: the longest INF accepted from the interface device.
    pub fn ifsc(&self) -> u8 {
        self.ifsc
    }

    /// The IFSD in use: the longest INF this side sends.
    pub fn ifsd(&self) -> u8 {
        self.ifsd
    }

    /// Characters received from the interface device. Invalid input is answered by
    /// the protocol (R-blocks), never by an error.
    ///
    /// # Errors
    /// None at present; the signature leaves room for fatal link conditions.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T1Error> {
        if let Some(block) = self.link.receive(bytes, now) {
            self.on_block(block, now);
        }
        Ok(())
    }

    /// The driver saw a parity error on a received character: the block is invalid
    /// (§11.6.3, rule 7.1).
    pub fn handle_parity_error(&mut self, now: Instant) {
        self.link.parity_error(now);
    }

    /// Acts on a deadline from [`T1Card::poll_timeout`]: a block cut short past CWT, or
    /// an invalid block once the line has been quiet for CWT, is answered with an
    /// R-block carrying the error (§11.6.3, rule 7.1). Earlier calls do nothing.
    ///
    /// # Errors
    /// None at present.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), T1Error> {
        if let Some(fault) = self.link.take_expired(now) {
            self.fault(&fault, now);
        }
        Ok(())
    }

    /// The next characters to write on the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    /// When [`T1Card::handle_timeout`] is due: CWT after the last character of a block
    /// being received or of invalid input. The card has no BWT of its own.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.link.receive_deadline()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<T1CardEvent> {
        self.events.pop_front()
    }

    /// Answers the command last reported by [`T1CardEvent::Command`]: `response` (data
    /// and SW1 SW2, 2..=65,538 bytes) in I-blocks of at most IFSD bytes, chained
    /// (§11.6.2). Given while an S(WTX) or S(IFS) request of ours awaits its
    /// response, it is sent once that response arrives.
    ///
    /// # Errors
    /// [`T1Error::ResponseLength`]; [`T1Error::NoCommand`] when no command awaits an
    /// answer (none came, it was answered, or a resynchronisation or abort dropped it).
    pub fn respond(&mut self, response: &[u8], now: Instant) -> Result<(), T1Error> {
        if !(2..=MAX_RESPONSE_LEN).contains(&response.len()) {
            return Err(T1Error::ResponseLength {
                len: response.len(),
                min: 2,
                max: MAX_RESPONSE_LEN,
            });
        }
        match &mut self.state {
            State::Processing { request: None, .. } => {
                self.start_response(response.to_vec(), now);
                Ok(())
            }
            State::Processing {
                request: Some(_),
                queued: queued @ None,
            } => {
                *queued = Some(response.to_vec());
                Ok(())
            }
            State::Processing {
                queued: Some(_), ..
            } => Err(T1Error::Busy {
                operation: "respond",
                state: "a response already waits for the answer to the card's S-request",
            }),
            _ => Err(T1Error::NoCommand {
                operation: "respond",
            }),
        }
    }

    /// Asks for BWT × `multiplier` with S(WTX request) (§11.4.3, rule 3), after a
    /// command and before its response; the interface device answers S(WTX response).
    ///
    /// # Errors
    /// [`T1Error::InvalidWtxMultiplier`] for 0; [`T1Error::NoCommand`] without a
    /// command being processed; [`T1Error::Busy`] while another S-request of ours
    /// awaits its response.
    pub fn request_waiting_time_extension(
        &mut self,
        multiplier: u8,
        now: Instant,
    ) -> Result<(), T1Error> {
        if multiplier == 0 {
            return Err(T1Error::InvalidWtxMultiplier);
        }
        self.request(
            Supervisory::WaitingTimeExtension,
            multiplier,
            "request a waiting time extension",
            now,
        )
    }

    /// Announces a new IFSC with S(IFS request) (§11.4.2, rule 4), after a command
    /// and before its response; it applies once the interface device confirms.
    ///
    /// # Errors
    /// [`T1Error::InvalidIfs`] outside 1..=254; [`T1Error::NoCommand`];
    /// [`T1Error::Busy`].
    pub fn request_ifsc(&mut self, ifsc: u8, now: Instant) -> Result<(), T1Error> {
        if ifsc == 0 || usize::from(ifsc) > MAX_INF_LEN {
            return Err(T1Error::InvalidIfs { value: ifsc });
        }
        self.request(Supervisory::Ifs, ifsc, "request an IFSC", now)
    }

    /// Whether the interface device has answered our S(WTX request) for the command
    /// being processed, which still awaits its response (§11.4.3, rule 3). A response
    /// given to [`T1Card::respond`] earlier is not lost either: it is held until then.
    pub fn waiting_time_extension_granted(&self) -> bool {
        self.wtx_granted && matches!(self.state, State::Processing { request: None, .. })
    }

    /// Whether no command is being received, processed or answered (the last part of
    /// a response may still be sent again on request), no block has begun, and nothing
    /// is left to send: the next character starts a block.
    pub fn is_idle(&self) -> bool {
        let quiet_state = match &self.state {
            State::Idle => true,
            State::Sending { in_flight, .. } => !chained(in_flight),
            _ => false,
        };
        quiet_state && !self.link.is_receiving() && !self.link.has_transmit()
    }

    /// Whether no block has begun: the next character starts one, whatever the
    /// exchange's state (a command being chained, a waiting time extension pending).
    /// A T=1 block never starts with `FF` (§11.3.2.1 keeps that NAD for PPSS), so a
    /// driver can look for out-of-band requests there.
    pub fn is_between_blocks(&self) -> bool {
        !self.link.is_receiving()
    }

    fn request(
        &mut self,
        kind: Supervisory,
        value: u8,
        operation: &'static str,
        now: Instant,
    ) -> Result<(), T1Error> {
        match &self.state {
            State::Processing {
                request: None,
                queued: None,
            } => {
                let block = self.s_block(kind, false, vec![value]);
                self.link.send(&block, now);
                self.state = State::Processing {
                    request: Some(block),
                    queued: None,
                };
                Ok(())
            }
            State::Processing { .. } => Err(T1Error::Busy {
                operation,
                state: "an S-request of the card awaits its response",
            }),
            _ => Err(T1Error::NoCommand { operation }),
        }
    }

    fn s_block(&self, kind: Supervisory, response: bool, inf: Vec<u8>) -> Block {
        Block::supervisory(self.link.config.card_nad(), kind, response, inf)
    }

    fn r_block(&self, error: ReceiveError) -> Block {
        Block::receive(self.link.config.card_nad(), self.nr, error)
    }

    fn send(&mut self, block: &Block, now: Instant) {
        self.link.send(block, now);
    }

    fn start_response(&mut self, response: Vec<u8>, now: Instant) {
        self.state = State::Sending {
            response,
            acked: 0,
            in_flight: Block::information(0, false, false, Vec::new()),
        };
        self.send_next_part(now);
    }

    /// Sends the next part of the response: at most IFSD bytes, M set when more follow
    /// (§11.6.2), with a new N(S).
    fn send_next_part(&mut self, now: Instant) {
        let nad = self.link.config.card_nad();
        let ifsd = usize::from(self.ifsd);
        let ns = self.ns;
        let State::Sending {
            response,
            acked,
            in_flight,
        } = &mut self.state
        else {
            return;
        };
        let rest = response.get(*acked..).unwrap_or_default();
        let len = rest.len().min(ifsd);
        let more = len < rest.len();
        let block = Block::information(nad, ns, more, rest.get(..len).unwrap_or_default().to_vec());
        *in_flight = block.clone();
        self.ns = !ns;
        self.link.send(&block, now);
    }

    fn on_block(&mut self, block: Block, now: Instant) {
        match block.pcb {
            Pcb::Information {
                send_sequence,
                more,
            } => self.on_information(block, send_sequence, more, now),
            Pcb::Receive {
                expected_sequence, ..
            } => self.on_receive(expected_sequence, now),
            Pcb::Supervisory {
                kind,
                response: false,
            } => self.on_request(block, kind, now),
            Pcb::Supervisory {
                kind,
                response: true,
            } => self.on_response(&block, kind, now),
        }
    }

    fn on_information(&mut self, block: Block, send_sequence: bool, more: bool, now: Instant) {
        let mut command = match &mut self.state {
            // A new command; after a response, it also acknowledges its last part.
            State::Idle => Vec::new(),
            State::Sending { in_flight, .. } if !chained(in_flight) => Vec::new(),
            State::Receiving { command } => std::mem::take(command),
            // The application is computing: a real card does not listen now.
            State::Processing { .. } => return,
            State::Sending { .. } => {
                return self.unexpected(
                    &block,
                    "an R-block acknowledging our chained I-block",
                    now,
                );
            }
            State::Aborting { .. } => return self.unexpected(&block, "S(ABORT response)", now),
        };
        let restore = |card: &mut T1Card, command: Vec<u8>| {
            if let State::Receiving { command: kept } = &mut card.state {
                *kept = command;
            }
        };
        // §11.6.2, rule 2: the interface device's I-blocks alternate N(S) from 0.
        if send_sequence != self.nr {
            restore(self, command);
            return self.unexpected(&block, "an I-block with the N(S) expected", now);
        }
        if block.inf.len() > usize::from(self.ifsc) {
            restore(self, command);
            let fault = Fault::BadBlock {
                block: hex::encode_upper(block.encode(self.link.config.edc)),
                reason: BlockError::InformationTooLong {
                    len: block.inf.len(),
                    ifs: self.ifsc,
                },
            };
            return self.fault(&fault, now);
        }
        self.nr = !self.nr;
        if command.len().saturating_add(block.inf.len()) > MAX_COMMAND_LEN {
            // Chain abortion (§11.6.3, rule 9): no command is that long.
            let request = self.s_block(Supervisory::Abort, false, Vec::new());
            self.send(&request, now);
            self.state = State::Aborting { request };
            return;
        }
        command.extend_from_slice(&block.inf);
        if more {
            // §11.6.2, rule 5: acknowledge with the N(S) expected next.
            self.state = State::Receiving { command };
            let ack = self.r_block(ReceiveError::None);
            self.send(&ack, now);
        } else {
            self.state = State::Processing {
                request: None,
                queued: None,
            };
            self.wtx_granted = false;
            self.events.push_back(T1CardEvent::Command(command));
        }
    }

    fn on_receive(&mut self, nr: bool, now: Instant) {
        let again = match &mut self.state {
            // The interface device lost our R-block or waits for an I-block of ours
            // that cannot come: tell it which I-block we expect (§11.6.3, rule 7).
            State::Idle | State::Receiving { .. } => self.r_block(ReceiveError::None),
            State::Processing {
                request: Some(request),
                ..
            } => request.clone(),
            State::Processing { request: None, .. } => return,
            State::Aborting { request } => request.clone(),
            State::Sending {
                acked, in_flight, ..
            } => {
                if nr == sequence(in_flight) {
                    // §11.6.3, rule 7: our I-block was not received; again.
                    in_flight.clone()
                } else if chained(in_flight) {
                    // §11.6.2, rule 5: acknowledged; the next part.
                    *acked = acked.saturating_add(in_flight.inf.len());
                    self.send_next_part(now);
                    return;
                } else {
                    // Our last part was received, the interface device's next
                    // I-block was not: ask for it.
                    self.r_block(ReceiveError::None)
                }
            }
        };
        self.send(&again, now);
    }

    fn on_request(&mut self, block: Block, kind: Supervisory, now: Instant) {
        if matches!(self.state, State::Processing { .. })
            && kind != Supervisory::Resynch
            && kind != Supervisory::Abort
        {
            // Computing: only RESYNCH and ABORT interrupt the application.
            return;
        }
        match kind {
            Supervisory::Resynch => {
                // §11.6.3, rule 6.3: answer, then start afresh.
                let config = self.link.config;
                self.ns = false;
                self.nr = false;
                self.ifsc = config.ifsc;
                self.ifsd = config.ifsd;
                self.state = State::Idle;
                let response = self.s_block(kind, true, Vec::new());
                self.send(&response, now);
                self.events.push_back(T1CardEvent::Resynchronised);
            }
            Supervisory::Ifs => {
                // §11.4.2, rule 4: the new IFSD, confirmed with the same INF.
                let Some(ifsd) = block.single_byte() else {
                    return self.unexpected(&block, "S(IFS request) with one byte", now);
                };
                let response = self.s_block(kind, true, block.inf);
                self.send(&response, now);
                self.ifsd = ifsd;
                self.events.push_back(T1CardEvent::IfsdChanged(ifsd));
            }
            Supervisory::Abort => {
                // §11.6.3, rule 9: the chain is abandoned.
                let response = self.s_block(kind, true, Vec::new());
                self.send(&response, now);
                self.state = State::Idle;
                self.events.push_back(T1CardEvent::Aborted);
            }
            Supervisory::WaitingTimeExtension => {
                self.unexpected(&block, "no S(WTX request) from the interface device", now);
            }
        }
    }

    fn on_response(&mut self, block: &Block, kind: Supervisory, now: Instant) {
        match &mut self.state {
            State::Processing {
                request: Some(request),
                queued,
            } if request.pcb
                == (Pcb::Supervisory {
                    kind,
                    response: false,
                })
                && request.inf == block.inf =>
            {
                match (kind, block.single_byte()) {
                    (Supervisory::Ifs, Some(ifsc)) => self.ifsc = ifsc,
                    (Supervisory::WaitingTimeExtension, _) => self.wtx_granted = true,
                    _ => {}
                }
                match queued.take() {
                    Some(response) => self.start_response(response, now),
                    None => {
                        self.state = State::Processing {
                            request: None,
                            queued: None,
                        };
                    }
                }
            }
            State::Aborting { .. } if kind == Supervisory::Abort => {
                self.state = State::Idle;
                self.events.push_back(T1CardEvent::Aborted);
            }
            _ => self.unexpected(block, "a response to the card's own S-request only", now),
        }
    }

    fn unexpected(&mut self, block: &Block, expected: &'static str, now: Instant) {
        let fault = Fault::Unexpected {
            block: hex::encode_upper(block.encode(self.link.config.edc)),
            expected,
        };
        self.fault(&fault, now);
    }

    /// Answers invalid input (§11.6.3, rule 7.1): our pending S-request goes again;
    /// otherwise an R-block with the error code and the N(S) we expect. While the
    /// application computes, the card stays silent.
    fn fault(&mut self, fault: &Fault, now: Instant) {
        let again = match &self.state {
            State::Processing {
                request: Some(request),
                ..
            }
            | State::Aborting { request } => request.clone(),
            State::Processing { request: None, .. } => return,
            _ => self.r_block(fault.receive_error()),
        };
        self.send(&again, now);
    }
}

fn sequence(block: &Block) -> bool {
    matches!(
        block.pcb,
        Pcb::Information {
            send_sequence: true,
            ..
        }
    )
}

fn chained(block: &Block) -> bool {
    matches!(block.pcb, Pcb::Information { more: true, .. })
}
