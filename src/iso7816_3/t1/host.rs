//! The interface device's side of T=1 (ISO/IEC 7816-3 §11): it speaks first, chains
//! command APDUs by IFSC, collects chained responses, answers the card's S-requests,
//! times the card out after BWT and leads error recovery and resynchronisation.

use std::collections::VecDeque;
use std::time::Instant;

use super::link::Link;
use super::{
    Block, BlockError, Fault, MAX_COMMAND_LEN, MAX_INF_LEN, MAX_RESPONSE_LEN,
    MAX_RESYNCHRONISATIONS, Pcb, ReceiveError, Side, Supervisory, T1Config, T1Error, Waiting,
    deadline,
};

/// What the interface device's engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum T1Event {
    /// The whole response APDU (data and SW1 SW2) to the command given to
    /// [`T1Host::start`], reassembled from its chain.
    Response(Vec<u8>),
    /// The card answered S(IFS request) with the same IFSD: it now sends I-blocks of
    /// up to this many bytes (§11.4.2).
    IfsdAccepted(u8),
    /// The card announced a new IFSC with S(IFS request), answered (§11.4.2): commands
    /// are now chained in blocks of up to this many bytes.
    IfscChanged(u8),
    /// The card asked for more time with S(WTX request), granted: the next wait is BWT
    /// × this multiplier (§11.4.3).
    WaitingTimeExtension(u8),
    /// S(RESYNCH response) received: sequence numbers and IFSC/IFSD are back to their
    /// initial values (§11.6.3, rule 6.3); a command in progress starts again.
    Resynchronised,
    /// A recovery step (§11.6.3): an R-block sent, a block sent again, or an
    /// S(RESYNCH request) sent, and why.
    Retransmission {
        /// What went wrong.
        reason: Fault,
    },
}

/// A command APDU on its way.
#[derive(Debug, Clone)]
struct Command {
    apdu: Vec<u8>,
    /// Bytes of `apdu` the card has acknowledged.
    acked: usize,
    /// The last I-block sent, kept to send again.
    in_flight: Block,
    response: Vec<u8>,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `in_flight` awaits an R-block (chained) or the response's first I-block.
    Sending,
    /// Receiving a chained response: our R-block acknowledged the last part.
    Receiving,
    /// The response outgrew [`MAX_RESPONSE_LEN`]: S(ABORT request) sent.
    Aborting,
}

#[derive(Debug, Clone)]
enum Operation {
    Command(Command),
    /// S(IFS request) sent, announcing this IFSD.
    Ifs(u8),
    /// S(RESYNCH request) asked for by the caller.
    Resynch,
}

impl Operation {
    fn describe(&self) -> &'static str {
        match self {
            Operation::Command(_) => "a command is in progress",
            Operation::Ifs(_) => "an IFSD negotiation is in progress",
            Operation::Resynch => "a resynchronisation is in progress",
        }
    }
}

/// The interface device's T=1 engine: no I/O, no clock (see the module documentation
/// of [`crate::iso7816_3`] for the driving loop).
#[derive(Debug, Clone)]
pub struct T1Host {
    link: Link,
    ifsc: u8,
    ifsd: u8,
    /// N(S) of our next new I-block.
    ns: bool,
    /// N(S) of the card's next I-block (our N(R)).
    nr: bool,
    operation: Option<Operation>,
    /// An S(RESYNCH request) awaits its response (whatever the operation).
    resynching: bool,
    /// Recovery steps in a row for the current step of the exchange.
    errors: u8,
    /// S(RESYNCH request)s sent for the current operation.
    resynchs: u8,
    /// The multiplier granted by our last S(WTX response), for the wait that follows.
    wtx: Option<u8>,
    /// Our last block awaits an answer: BWT runs.
    awaiting: bool,
    last_sent: Option<Block>,
    events: VecDeque<T1Event>,
    dead: bool,
}

impl T1Host {
    /// An engine for a freshly reset card whose ATR gave `config`.
    pub fn new(config: T1Config) -> T1Host {
        T1Host {
            link: Link::new(config, config.card_nad()),
            ifsc: config.ifsc,
            ifsd: config.ifsd,
            ns: false,
            nr: false,
            operation: None,
            resynching: false,
            errors: 0,
            resynchs: 0,
            wtx: None,
            awaiting: false,
            last_sent: None,
            events: VecDeque::new(),
            dead: false,
        }
    }

    /// The IFSC in use: the longest INF this side sends.
    pub fn ifsc(&self) -> u8 {
        self.ifsc
    }

    /// The IFSD in use: the longest INF accepted from the card.
    pub fn ifsd(&self) -> u8 {
        self.ifsd
    }

    /// Announces `ifsd` with S(IFS request) (§11.4.2, rule 4); done when the card's
    /// S(IFS response) repeats it, reported as [`T1Event::IfsdAccepted`].
    ///
    /// # Errors
    /// [`T1Error::InvalidIfs`] outside 1..=254, [`T1Error::Busy`] during another
    /// operation, [`T1Error::Dead`] after a failed resynchronisation.
    pub fn request_ifsd(&mut self, ifsd: u8, now: Instant) -> Result<(), T1Error> {
        self.check_ready("request an IFSD")?;
        if ifsd == 0 || usize::from(ifsd) > MAX_INF_LEN {
            return Err(T1Error::InvalidIfs { value: ifsd });
        }
        self.begin(Operation::Ifs(ifsd));
        self.send(self.s_block(Supervisory::Ifs, false, vec![ifsd]), now);
        Ok(())
    }

    /// Sends a command APDU of 4 to 65,544 bytes, chained in I-blocks of at most IFSC
    /// bytes, each acknowledged by the card's R-block (§11.6.2, rule 5); the response
    /// comes as [`T1Event::Response`].
    ///
    /// # Errors
    /// [`T1Error::CommandLength`], [`T1Error::Busy`], [`T1Error::Dead`].
    pub fn start(&mut self, apdu: &[u8], now: Instant) -> Result<(), T1Error> {
        self.check_ready("start a command")?;
        if !(4..=MAX_COMMAND_LEN).contains(&apdu.len()) {
            return Err(T1Error::CommandLength {
                len: apdu.len(),
                min: 4,
                max: MAX_COMMAND_LEN,
            });
        }
        self.begin(Operation::Command(Command {
            apdu: apdu.to_vec(),
            acked: 0,
            in_flight: Block::information(0, false, false, Vec::new()),
            response: Vec::new(),
            phase: Phase::Sending,
        }));
        self.send_next_part(now);
        Ok(())
    }

    /// Sends S(RESYNCH request) (§11.6.3, rule 6): on the card's response, sequence
    /// numbers and information field sizes return to their initial values.
    ///
    /// # Errors
    /// [`T1Error::Busy`], [`T1Error::Dead`].
    pub fn resynchronise(&mut self, now: Instant) -> Result<(), T1Error> {
        self.check_ready("resynchronise")?;
        self.begin(Operation::Resynch);
        self.resynchs = 1;
        self.resynching = true;
        self.send(self.s_block(Supervisory::Resynch, false, Vec::new()), now);
        Ok(())
    }

    /// Characters received from the card.
    ///
    /// # Errors
    /// The exchange ended: [`T1Error::Aborted`] (the card's S(ABORT request); our
    /// S(ABORT response) is still queued for [`T1Host::poll_transmit`]),
    /// [`T1Error::ResponseTooLong`], [`T1Error::ResynchronisationFailed`].
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), T1Error> {
        // Nothing is expected from the card when we are not waiting for it: what comes
        // is noise (the card speaks only when spoken to, §11.6.2, rule 1).
        if !self.is_active() {
            return Ok(());
        }
        match self.link.receive(bytes, now) {
            Some(block) => self.on_block(block, now),
            None => Ok(()),
        }
    }

    /// The driver saw a parity error on a received character: the block being received
    /// is invalid (§11.6.3, rule 7.1), answered by an R-block with the EDC/parity code.
    pub fn handle_parity_error(&mut self, now: Instant) {
        if self.is_active() {
            self.link.parity_error(now);
        }
    }

    /// Acts on a deadline from [`T1Host::poll_timeout`]: a block cut short (CWT) or an
    /// invalid block (after CWT of silence) is answered by an R-block, no answer within
    /// BWT likewise (§11.6.3, rules 7.1 and 7.4); a call before the deadline does
    /// nothing.
    ///
    /// # Errors
    /// [`T1Error::ResynchronisationFailed`] when recovery is exhausted.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), T1Error> {
        if !self.is_active() {
            self.link.reset_receive();
            return Ok(());
        }
        if let Some(fault) = self.link.take_expired(now) {
            return self.fault(fault, now);
        }
        if self.link.is_receiving() {
            return Ok(());
        }
        match self.block_deadline() {
            Some(due) if now >= due => {
                let waited = self.waiting_time();
                self.fault(
                    Fault::Timeout {
                        waiting_for: Waiting::Block { waited },
                    },
                    now,
                )
            }
            _ => Ok(()),
        }
    }

    /// The next characters to write on the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    /// When [`T1Host::handle_timeout`] is due if nothing arrives: CWT after the last
    /// character of a block being received, else BWT (× the WTX multiplier just
    /// granted) after our last block has left the line (§11.4.3).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.is_active() {
            return None;
        }
        self.link
            .receive_deadline()
            .or_else(|| self.block_deadline())
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<T1Event> {
        self.events.pop_front()
    }

    /// Whether no operation is in progress and nothing is left to send.
    pub fn is_idle(&self) -> bool {
        !self.is_active() && !self.link.has_transmit()
    }

    fn is_active(&self) -> bool {
        self.operation.is_some() || self.resynching
    }

    fn check_ready(&self, operation: &'static str) -> Result<(), T1Error> {
        if self.dead {
            return Err(T1Error::Dead);
        }
        if let Some(current) = &self.operation {
            return Err(T1Error::Busy {
                operation,
                state: current.describe(),
            });
        }
        Ok(())
    }

    fn begin(&mut self, operation: Operation) {
        self.operation = Some(operation);
        self.errors = 0;
        self.resynchs = 0;
        self.link.reset_receive();
    }

    fn finish(&mut self) {
        self.operation = None;
        self.awaiting = false;
        self.errors = 0;
        self.wtx = None;
        self.link.reset_receive();
    }

    fn waiting_time(&self) -> std::time::Duration {
        let multiplier = u32::from(self.wtx.unwrap_or(1));
        self.link
            .config
            .block_waiting_time
            .saturating_mul(multiplier)
    }

    fn block_deadline(&self) -> Option<Instant> {
        if !self.awaiting {
            return None;
        }
        deadline(self.link.sent_end()?, self.waiting_time())
    }

    fn s_block(&self, kind: Supervisory, response: bool, inf: Vec<u8>) -> Block {
        Block::supervisory(self.link.config.nad, kind, response, inf)
    }

    fn r_block(&self, error: ReceiveError) -> Block {
        Block::receive(self.link.config.nad, self.nr, error)
    }

    fn send(&mut self, block: Block, now: Instant) {
        self.link.send(&block, now);
        self.last_sent = Some(block);
        self.awaiting = true;
        // A granted extension covers only the wait right after our S(WTX response).
        self.wtx = None;
    }

    /// Sends the next part of the command: at most IFSC bytes, M set when more follow
    /// (§11.6.2, chaining), with a new N(S).
    fn send_next_part(&mut self, now: Instant) {
        let nad = self.link.config.nad;
        let ifsc = usize::from(self.ifsc);
        let ns = self.ns;
        let Some(Operation::Command(command)) = &mut self.operation else {
            return;
        };
        let rest = command.apdu.get(command.acked..).unwrap_or_default();
        let len = rest.len().min(ifsc);
        let more = len < rest.len();
        let part = rest.get(..len).unwrap_or_default().to_vec();
        let block = Block::information(nad, ns, more, part);
        command.in_flight = block.clone();
        command.phase = Phase::Sending;
        self.ns = !ns;
        self.send(block, now);
    }

    fn on_block(&mut self, block: Block, now: Instant) -> Result<(), T1Error> {
        if self.resynching {
            // §11.6.3, rule 6: only S(RESYNCH response) ends a resynchronisation.
            return match block.pcb {
                Pcb::Supervisory {
                    kind: Supervisory::Resynch,
                    response: true,
                } => self.resynchronised(now),
                _ => self.unexpected(&block, "S(RESYNCH response)", now),
            };
        }
        match block.pcb {
            Pcb::Information {
                send_sequence,
                more,
            } => self.on_information(block, send_sequence, more, now),
            Pcb::Receive {
                expected_sequence, ..
            } => self.on_receive(&block, expected_sequence, now),
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

    fn on_information(
        &mut self,
        block: Block,
        send_sequence: bool,
        more: bool,
        now: Instant,
    ) -> Result<(), T1Error> {
        let (phase, chaining) = match &self.operation {
            Some(Operation::Command(command)) => (command.phase, chained(&command.in_flight)),
            _ => return self.unexpected(&block, "an S-block response", now),
        };
        match phase {
            Phase::Sending if chaining => {
                return self.unexpected(
                    &block,
                    "an R-block acknowledging our chained I-block",
                    now,
                );
            }
            Phase::Aborting => return self.unexpected(&block, "S(ABORT response)", now),
            Phase::Sending | Phase::Receiving => {}
        }
        // §11.6.2, rule 2: the card's I-blocks alternate N(S) starting from 0.
        if send_sequence != self.nr {
            return self.unexpected(&block, "an I-block with the N(S) expected", now);
        }
        if block.inf.len() > usize::from(self.ifsd) {
            let fault = Fault::BadBlock {
                block: hex::encode_upper(block.encode(self.link.config.edc)),
                reason: BlockError::InformationTooLong {
                    len: block.inf.len(),
                    ifs: self.ifsd,
                },
            };
            return self.fault(fault, now);
        }
        self.nr = !self.nr;
        self.errors = 0;
        let Some(Operation::Command(command)) = &mut self.operation else {
            return Ok(());
        };
        // The card's I-block acknowledges our last one (§11.6.2, rule 2).
        command.acked = command.apdu.len();
        command.phase = Phase::Receiving;
        if command.response.len().saturating_add(block.inf.len()) > MAX_RESPONSE_LEN {
            // Chain abortion (§11.6.3, rule 9): we cannot hold a longer response.
            command.phase = Phase::Aborting;
            self.send(self.s_block(Supervisory::Abort, false, Vec::new()), now);
            return Ok(());
        }
        command.response.extend_from_slice(&block.inf);
        if more {
            // §11.6.2, rule 5: acknowledge a chained I-block with R(N(R)).
            self.send(self.r_block(ReceiveError::None), now);
            return Ok(());
        }
        let response = std::mem::take(&mut command.response);
        self.finish();
        self.events.push_back(T1Event::Response(response));
        Ok(())
    }

    fn on_receive(&mut self, block: &Block, nr: bool, now: Instant) -> Result<(), T1Error> {
        let retransmission = Fault::RetransmissionRequested {
            block: hex::encode_upper(block.encode(self.link.config.edc)),
        };
        let Some(Operation::Command(command)) = &self.operation else {
            // Our S(IFS request) was not understood: send it again (§11.6.3, rule 7).
            return self.retry_last(retransmission, now);
        };
        match command.phase {
            Phase::Sending => {
                let in_flight = command.in_flight.clone();
                if nr == sequence(&in_flight) {
                    // §11.6.3, rule 7: N(R) = N(S) of our I-block asks for it again.
                    self.retry(retransmission, in_flight, now)
                } else if chained(&in_flight) {
                    // §11.6.2, rule 5: N(R) ≠ N(S) acknowledges the chained block.
                    if let Some(Operation::Command(command)) = &mut self.operation {
                        command.acked = command.acked.saturating_add(in_flight.inf.len());
                    }
                    self.errors = 0;
                    self.send_next_part(now);
                    Ok(())
                } else {
                    self.unexpected(block, "the response's I-block", now)
                }
            }
            // Our R- or S-block was not understood: send it again (§11.6.3, rule 7).
            Phase::Receiving | Phase::Aborting => self.retry_last(retransmission, now),
        }
    }

    fn on_request(&mut self, block: Block, kind: Supervisory, now: Instant) -> Result<(), T1Error> {
        let phase = match &self.operation {
            Some(Operation::Command(command)) => command.phase,
            _ => return self.unexpected(&block, "an S-block response", now),
        };
        match (kind, block.single_byte()) {
            (Supervisory::WaitingTimeExtension, Some(multiplier)) if phase != Phase::Aborting => {
                // §11.4.3, rule 3: answer with the same INF; the next wait is BWT × it.
                self.send(self.s_block(kind, true, block.inf), now);
                self.wtx = Some(multiplier);
                self.events
                    .push_back(T1Event::WaitingTimeExtension(multiplier));
                Ok(())
            }
            (Supervisory::Ifs, Some(ifsc)) if phase != Phase::Aborting => {
                // §11.4.2, rule 4: the card's new IFSC, confirmed with the same INF.
                self.send(self.s_block(kind, true, block.inf), now);
                self.ifsc = ifsc;
                self.events.push_back(T1Event::IfscChanged(ifsc));
                Ok(())
            }
            (Supervisory::Abort, _) => {
                // §11.6.3, rule 9: the card aborts the chain; confirm, and the
                // exchange is over.
                self.send(self.s_block(kind, true, Vec::new()), now);
                self.finish();
                Err(T1Error::Aborted { by: Side::Card })
            }
            _ => self.unexpected(
                &block,
                "S(WTX request), S(IFS request) or S(ABORT request)",
                now,
            ),
        }
    }

    fn on_response(
        &mut self,
        block: &Block,
        kind: Supervisory,
        now: Instant,
    ) -> Result<(), T1Error> {
        match (&self.operation, kind) {
            (Some(Operation::Ifs(ifsd)), Supervisory::Ifs)
                if block.single_byte() == Some(*ifsd) =>
            {
                let ifsd = *ifsd;
                self.ifsd = ifsd;
                self.finish();
                self.events.push_back(T1Event::IfsdAccepted(ifsd));
                Ok(())
            }
            (Some(Operation::Command(command)), Supervisory::Abort)
                if command.phase == Phase::Aborting =>
            {
                self.finish();
                Err(T1Error::ResponseTooLong {
                    max: MAX_RESPONSE_LEN,
                })
            }
            _ => self.unexpected(block, "a response to our own S-request only", now),
        }
    }

    fn unexpected(
        &mut self,
        block: &Block,
        expected: &'static str,
        now: Instant,
    ) -> Result<(), T1Error> {
        let fault = Fault::Unexpected {
            block: hex::encode_upper(block.encode(self.link.config.edc)),
            expected,
        };
        self.fault(fault, now)
    }

    /// Recovers from `fault` (§11.6.3, rule 7): an S-request goes again, otherwise an
    /// R-block with the error and the N(R) expected asks for the card's block.
    fn fault(&mut self, fault: Fault, now: Instant) -> Result<(), T1Error> {
        if self.resynching {
            return self.resynchronise_after(fault, now);
        }
        match &self.operation {
            None => Ok(()),
            Some(Operation::Command(command)) if command.phase != Phase::Aborting => {
                let r_block = self.r_block(fault.receive_error());
                self.retry(fault, r_block, now)
            }
            // An S(IFS request) or S(ABORT request) without a valid answer goes again.
            Some(_) => self.retry_last(fault, now),
        }
    }

    fn retry_last(&mut self, fault: Fault, now: Instant) -> Result<(), T1Error> {
        match self.last_sent.clone() {
            Some(block) => self.retry(fault, block, now),
            None => self.resynchronise_after(fault, now),
        }
    }

    /// One recovery step: `block` is sent, unless the step has been tried
    /// `max_retransmissions` times already, in which case the link is resynchronised
    /// (§11.6.3, rule 7.4).
    fn retry(&mut self, fault: Fault, block: Block, now: Instant) -> Result<(), T1Error> {
        if self.errors >= self.link.config.max_retransmissions {
            return self.resynchronise_after(fault, now);
        }
        self.errors += 1;
        self.events
            .push_back(T1Event::Retransmission { reason: fault });
        self.send(block, now);
        Ok(())
    }

    /// Sends (again) S(RESYNCH request), or gives up after [`MAX_RESYNCHRONISATIONS`]
    /// (§11.6.3, rules 6.1 and 6.4).
    fn resynchronise_after(&mut self, fault: Fault, now: Instant) -> Result<(), T1Error> {
        if self.resynchs >= MAX_RESYNCHRONISATIONS {
            let attempts = self.resynchs;
            self.dead = true;
            self.resynching = false;
            self.finish();
            return Err(T1Error::ResynchronisationFailed {
                attempts,
                last: fault,
            });
        }
        self.resynchs += 1;
        self.resynching = true;
        self.errors = 0;
        self.events
            .push_back(T1Event::Retransmission { reason: fault });
        self.send(self.s_block(Supervisory::Resynch, false, Vec::new()), now);
        Ok(())
    }

    /// S(RESYNCH response) received (§11.6.3, rule 6.3): sequence numbers to 0, IFSC
    /// and IFSD to their initial values; the operation in progress starts again.
    fn resynchronised(&mut self, now: Instant) -> Result<(), T1Error> {
        let config = self.link.config;
        self.resynching = false;
        self.ns = false;
        self.nr = false;
        self.ifsc = config.ifsc;
        self.ifsd = config.ifsd;
        self.errors = 0;
        self.events.push_back(T1Event::Resynchronised);
        match self.operation.take() {
            Some(Operation::Command(command)) if command.phase == Phase::Aborting => {
                self.finish();
                Err(T1Error::ResponseTooLong {
                    max: MAX_RESPONSE_LEN,
                })
            }
            Some(Operation::Command(command)) => {
                self.operation = Some(Operation::Command(Command {
                    acked: 0,
                    response: Vec::new(),
                    ..command
                }));
                self.send_next_part(now);
                Ok(())
            }
            Some(Operation::Ifs(ifsd)) => {
                self.operation = Some(Operation::Ifs(ifsd));
                self.send(self.s_block(Supervisory::Ifs, false, vec![ifsd]), now);
                Ok(())
            }
            Some(Operation::Resynch) | None => {
                self.finish();
                Ok(())
            }
        }
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
