//! The front-end's side of incremental payment (claim 10): the provisions it holds for
//! pseudo-sessions, and the durable log of the wallet payments it verified against them.
//!
//! A provision (a *segment* of a session: a session whose payments outgrow one
//! provision gets another) is granted by the wallet acquirer with the positive
//! acknowledgement of the session's first payment. From then on the front-end checks
//! each payment of the session itself with a [`ProvisionTally`] — signature, merchant,
//! currency, increasing sequence, running total within the provision — and delivers
//! without asking the acquirer. Those payments exist nowhere else until the settlement,
//! so each is written to the [`SessionLog`] *before* the service is ordered: a
//! front-end that crashes mid-session reopens its log ([`SessionLog::open_segments`])
//! and settles every payment it had admitted.
//!
//! The log is an edge behind a small trait: [`MemorySessionLog`] for tests and
//! throw-away runs, [`SqliteSessionLog`] for a front-end whose payments must survive it
//! (one durable transaction per write, as the acquirers' stores).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::acquirer::wallet;
use crate::acquirer::wallet::{
    AccountKey, Provision, ProvisionState, ProvisionTally, Refusal, Reservation,
    SignedWalletPayment, WalletPayment,
};
use crate::messages::{
    AcquirerId, Currency, Envelope, MerchantId, Message, Money, Party, ProvisionGrant,
    ProvisionRequest, RefusalReason, SessionClosed, SessionEnd, SessionId, SessionSettlement,
    SettlementResult, TerminalId, Timestamp,
};

/// A provision the front-end holds, as it was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSegment {
    /// The provision's name (`{prefix}/{terminal}/{session}/{n}`).
    pub segment: SessionId,
    /// The terminal whose session it is.
    pub terminal: TerminalId,
    /// The client's name for the session.
    pub session: SessionId,
    /// The wallet acquirer that reserved it.
    pub acquirer: AcquirerId,
    /// The provision: account, merchant, amount, sequence floor.
    pub provision: Provision,
}

/// An open provision read back from the log, with the payments admitted against it, in
/// the order admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSegment {
    /// The provision.
    pub opened: OpenedSegment,
    /// Its payments.
    pub payments: Vec<SignedWalletPayment>,
}

/// Why the session log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionLogError {
    /// The database refused an operation.
    #[error("session log {path}: {operation}: {source}")]
    Database {
        /// The log's file.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A row does not hold what the log writes.
    #[error("session log {path}: segment {segment}: {what}")]
    Corrupt {
        /// The log's file.
        path: String,
        /// The segment of the row.
        segment: String,
        /// What is wrong.
        what: String,
    },
}

/// Where the front-end keeps the provisions and the payments it admitted, durably.
pub trait SessionLog: Send {
    /// A provision was granted and its first payment admitted: both at once.
    ///
    /// # Errors
    /// The payment is not recorded: the front-end must not deliver.
    fn opened(
        &mut self,
        segment: &OpenedSegment,
        first: &SignedWalletPayment,
    ) -> Result<(), SessionLogError>;

    /// A payment was admitted against `segment`.
    ///
    /// # Errors
    /// The payment is not recorded: the front-end must not deliver.
    fn admitted(
        &mut self,
        segment: &SessionId,
        payment: &SignedWalletPayment,
    ) -> Result<(), SessionLogError>;

    /// The acquirer settled `segment`: it need not be recovered any more.
    ///
    /// # Errors
    /// The log could not be written; the segment will be settled again after a restart
    /// (the acquirer answers a repeated settlement with the first one's result).
    fn settled(&mut self, segment: &SessionId) -> Result<(), SessionLogError>;

    /// Every provision not yet settled, with its payments.
    ///
    /// # Errors
    /// The log cannot be read.
    fn open_segments(&mut self) -> Result<Vec<RecoveredSegment>, SessionLogError>;
}

/// A session log in memory: lost with the process.
#[derive(Debug, Default)]
pub struct MemorySessionLog {
    segments: Vec<(RecoveredSegment, bool)>,
}

impl SessionLog for MemorySessionLog {
    fn opened(
        &mut self,
        segment: &OpenedSegment,
        first: &SignedWalletPayment,
    ) -> Result<(), SessionLogError> {
        if !self
            .segments
            .iter()
            .any(|(known, _)| known.opened.segment == segment.segment)
        {
            self.segments.push((
                RecoveredSegment {
                    opened: segment.clone(),
                    payments: vec![first.clone()],
                },
                false,
            ));
        }
        Ok(())
    }

    fn admitted(
        &mut self,
        segment: &SessionId,
        payment: &SignedWalletPayment,
    ) -> Result<(), SessionLogError> {
        if let Some((known, _)) = self
            .segments
            .iter_mut()
            .find(|(known, _)| known.opened.segment == *segment)
        {
            known.payments.push(payment.clone());
        }
        Ok(())
    }

    fn settled(&mut self, segment: &SessionId) -> Result<(), SessionLogError> {
        for (known, settled) in &mut self.segments {
            if known.opened.segment == *segment {
                *settled = true;
            }
        }
        Ok(())
    }

    fn open_segments(&mut self) -> Result<Vec<RecoveredSegment>, SessionLogError> {
        Ok(self
            .segments
            .iter()
            .filter(|(_, settled)| !settled)
            .map(|(segment, _)| segment.clone())
            .collect())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS frontend_segments (
    segment TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    session TEXT NOT NULL,
    acquirer TEXT NOT NULL,
    account BLOB NOT NULL CHECK (length(account) = 33),
    merchant TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency INTEGER NOT NULL CHECK (currency BETWEEN 0 AND 65535),
    exponent INTEGER NOT NULL CHECK (exponent BETWEEN 0 AND 255),
    sequence_floor INTEGER NOT NULL CHECK (sequence_floor >= 0),
    settled INTEGER NOT NULL DEFAULT 0 CHECK (settled IN (0, 1))
);
-- Each payment admitted, as signed: the canonical bytes and the signature.
CREATE TABLE IF NOT EXISTS frontend_payments (
    segment TEXT NOT NULL REFERENCES frontend_segments (segment),
    position INTEGER NOT NULL CHECK (position >= 0),
    message BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (segment, position)
) WITHOUT ROWID;
";

/// A session log in an SQLite file: each write is one durable transaction (WAL,
/// `synchronous=FULL`), so a payment admitted survives a crash or a power cut of the
/// front-end.
pub struct SqliteSessionLog {
    connection: Connection,
    path: String,
    /// Each open segment's next payment position, so that a payment is appended
    /// without counting the ones before it (a provision may hold thousands).
    next_position: BTreeMap<SessionId, i64>,
}

impl std::fmt::Debug for SqliteSessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSessionLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteSessionLog {
    /// Opens (or creates) the log at `path`.
    ///
    /// # Errors
    /// The file cannot be opened or its tables created.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteSessionLog, SessionLogError> {
        let path_text = path.as_ref().display().to_string();
        let database = |operation| {
            let path = path_text.clone();
            move |source| SessionLogError::Database {
                path,
                operation,
                source,
            }
        };
        let connection = Connection::open(path.as_ref()).map_err(database("open"))?;
        crate::acquirer::sqlite::make_durable(&connection).map_err(database("open"))?;
        connection
            .execute_batch(SCHEMA)
            .map_err(database("create tables"))?;
        Ok(SqliteSessionLog {
            connection,
            path: path_text,
            next_position: BTreeMap::new(),
        })
    }

    fn database(
        &self,
        operation: &'static str,
    ) -> impl Fn(rusqlite::Error) -> SessionLogError + use<> {
        let path = self.path.clone();
        move |source| SessionLogError::Database {
            path: path.clone(),
            operation,
            source,
        }
    }

    fn corrupt(&self, segment: &str, what: impl Into<String>) -> SessionLogError {
        SessionLogError::Corrupt {
            path: self.path.clone(),
            segment: segment.chars().take(80).collect(),
            what: what.into(),
        }
    }
}

/// Writes `payment` at `position` of `segment`'s payments, in the caller's transaction.
fn insert_payment(
    transaction: &rusqlite::Transaction<'_>,
    segment: &SessionId,
    position: i64,
    payment: &SignedWalletPayment,
) -> Result<(), rusqlite::Error> {
    // A payment that cannot be encoded was never admitted (the tally verified it).
    let message = payment.payment.encode().unwrap_or_default();
    transaction
        .prepare_cached(
            "INSERT INTO frontend_payments (segment, position, message, signature)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            segment.0.as_str(),
            position,
            message,
            payment.signature.as_slice()
        ])?;
    Ok(())
}

impl SessionLog for SqliteSessionLog {
    fn opened(
        &mut self,
        segment: &OpenedSegment,
        first: &SignedWalletPayment,
    ) -> Result<(), SessionLogError> {
        let database = self.database("record a provision");
        let reservation = &segment.provision.reservation;
        let amount = i64::try_from(reservation.amount.minor)
            .map_err(|_| self.corrupt(&segment.segment.0, "the provision exceeds i64"))?;
        let floor = i64::try_from(segment.provision.sequence_floor)
            .map_err(|_| self.corrupt(&segment.segment.0, "the sequence floor exceeds i64"))?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&database)?;
        let inserted = transaction
            .execute(
                "INSERT OR IGNORE INTO frontend_segments (segment, terminal, session, acquirer,
                     account, merchant, amount, currency, exponent, sequence_floor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    segment.segment.0.as_str(),
                    segment.terminal.0.as_str(),
                    segment.session.0.as_str(),
                    segment.acquirer.0.as_str(),
                    reservation.account.to_sec1().as_slice(),
                    reservation.merchant.0.as_str(),
                    amount,
                    reservation.amount.currency.numeric,
                    reservation.amount.currency.exponent,
                    floor,
                ],
            )
            .map_err(&database)?;
        // A repeated grant records nothing twice.
        if inserted == 1 {
            insert_payment(&transaction, &segment.segment, 0, first).map_err(&database)?;
        }
        transaction.commit().map_err(&database)?;
        if inserted == 1 {
            self.next_position.insert(segment.segment.clone(), 1);
        }
        Ok(())
    }

    fn admitted(
        &mut self,
        segment: &SessionId,
        payment: &SignedWalletPayment,
    ) -> Result<(), SessionLogError> {
        let database = self.database("record a payment");
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&database)?;
        let position = match self.next_position.get(segment) {
            Some(&position) => position,
            // A segment opened by an earlier run: counted once.
            None => transaction
                .prepare_cached("SELECT count(*) FROM frontend_payments WHERE segment = ?1")
                .and_then(|mut statement| {
                    statement.query_row([segment.0.as_str()], |row| row.get(0))
                })
                .map_err(&database)?,
        };
        insert_payment(&transaction, segment, position, payment).map_err(&database)?;
        transaction.commit().map_err(&database)?;
        self.next_position
            .insert(segment.clone(), position.saturating_add(1));
        Ok(())
    }

    fn settled(&mut self, segment: &SessionId) -> Result<(), SessionLogError> {
        self.next_position.remove(segment);
        self.connection
            .execute(
                "UPDATE frontend_segments SET settled = 1 WHERE segment = ?1",
                [segment.0.as_str()],
            )
            .map_err(self.database("mark settled"))?;
        Ok(())
    }

    fn open_segments(&mut self) -> Result<Vec<RecoveredSegment>, SessionLogError> {
        let database = self.database("read open provisions");
        type Row = (
            String,
            String,
            String,
            String,
            Vec<u8>,
            String,
            i64,
            u16,
            u8,
            i64,
        );
        let rows: Vec<Row> = {
            let mut statement = self
                .connection
                .prepare(
                    "SELECT segment, terminal, session, acquirer, account, merchant, amount,
                            currency, exponent, sequence_floor
                     FROM frontend_segments WHERE settled = 0 ORDER BY rowid",
                )
                .map_err(&database)?;
            statement
                .query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                        row.get(9)?,
                    ))
                })
                .map_err(&database)?
                .collect::<Result<_, _>>()
                .map_err(&database)?
        };
        let mut recovered = Vec::with_capacity(rows.len());
        for (
            segment,
            terminal,
            session,
            acquirer,
            account,
            merchant,
            amount,
            currency,
            exponent,
            floor,
        ) in rows
        {
            let account = AccountKey::from_sec1(&account)
                .map_err(|error| self.corrupt(&segment, format!("account: {error}")))?;
            let amount = u64::try_from(amount)
                .map_err(|_| self.corrupt(&segment, format!("amount {amount} is negative")))?;
            let floor = u64::try_from(floor).map_err(|_| {
                self.corrupt(&segment, format!("sequence floor {floor} is negative"))
            })?;
            let payments = self.payments_of(&segment)?;
            let segment = SessionId::from(segment);
            recovered.push(RecoveredSegment {
                opened: OpenedSegment {
                    terminal: TerminalId::from(terminal),
                    session: SessionId::from(session),
                    acquirer: AcquirerId::from(acquirer),
                    provision: Provision {
                        reservation: Reservation {
                            session: segment.clone(),
                            account,
                            merchant: MerchantId::from(merchant),
                            amount: Money::new(
                                amount,
                                Currency {
                                    numeric: currency,
                                    exponent,
                                },
                            ),
                        },
                        sequence_floor: floor,
                        state: ProvisionState::Open,
                    },
                    segment,
                },
                payments,
            });
        }
        Ok(recovered)
    }
}

impl SqliteSessionLog {
    fn payments_of(&self, segment: &str) -> Result<Vec<SignedWalletPayment>, SessionLogError> {
        let database = self.database("read payments");
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT position, message, signature FROM frontend_payments
                 WHERE segment = ?1 ORDER BY position",
            )
            .map_err(&database)?;
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = statement
            .query_map([segment], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(&database)?
            .collect::<Result<_, _>>()
            .map_err(&database)?;
        rows.into_iter()
            .map(|(position, message, signature)| {
                let payment = WalletPayment::decode(&message).map_err(|error| {
                    self.corrupt(segment, format!("payment {position}: {error}"))
                })?;
                let signature = <[u8; 64]>::try_from(signature.as_slice()).map_err(|_| {
                    self.corrupt(segment, format!("payment {position}: signature length"))
                })?;
                Ok(SignedWalletPayment { payment, signature })
            })
            .collect()
    }

    /// Whether `segment` is recorded as settled (`None` when unknown).
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn is_settled(&self, segment: &SessionId) -> Result<Option<bool>, SessionLogError> {
        self.connection
            .query_row(
                "SELECT settled FROM frontend_segments WHERE segment = ?1",
                [segment.0.as_str()],
                |row| row.get::<_, bool>(0),
            )
            .optional()
            .map_err(self.database("read a provision"))
    }
}

/// Rebuilds the tally of a recovered provision by admitting its payments again, in
/// order: what the front-end knew before it stopped.
pub fn replay(segment: &RecoveredSegment) -> ProvisionTally {
    let mut tally = ProvisionTally::new(
        segment.opened.provision.clone(),
        segment.opened.provision.sequence_floor,
    );
    for payment in &segment.payments {
        // Each was admitted before it was logged; one that no longer passes is still
        // sent to the acquirer, which refuses it by name in the settlement.
        let _ = tally.admit(payment);
    }
    tally
}

/// Where one provision stands at the front-end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentState {
    /// F asked for it; waiting for G.
    Opening,
    /// Granted: the session's payments are admitted against it.
    Open,
    /// Its payments sent to the acquirer (`attempt` times); waiting for the result.
    Settling {
        /// How many times the settlement was sent.
        attempt: u32,
    },
    /// The acquirer settled it.
    Settled(SettlementResult),
    /// The acquirer did not answer the settlement; the payments stay in the log and
    /// are settled after the front-end restarts.
    Unanswered,
}

/// One provision of a session.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its name.
    pub id: SessionId,
    /// The wallet acquirer.
    pub acquirer: AcquirerId,
    /// Where it stands.
    pub state: SegmentState,
    /// The running check, once granted.
    pub tally: Option<ProvisionTally>,
    /// The payments admitted, in order.
    pub payments: Vec<SignedWalletPayment>,
    /// When the settlement is sent again.
    pub deadline: Option<Timestamp>,
}

/// A pseudo-session as the front-end follows it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The terminal.
    pub terminal: TerminalId,
    /// The client's name for it.
    pub session: SessionId,
    /// Its provisions, the current one last.
    pub segments: Vec<Segment>,
    /// Whether the client ended it.
    pub ending: bool,
    /// The [`SessionClosed`] sent, resent on a repeated end.
    pub closed: Option<Envelope>,
}

impl Session {
    fn resolved(&self) -> bool {
        self.segments.iter().all(|segment| {
            matches!(
                segment.state,
                SegmentState::Settled(_) | SegmentState::Unanswered
            )
        })
    }
}

/// What the front-end does with a wallet payment of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send it to the acquirer as a single payment: a provision is being opened by
    /// another payment, or the session is ending.
    Plain,
    /// Send it to the acquirer asking for a provision: the session's first payment, or
    /// the first after a provision ran out (`settle` then holds the exhausted
    /// provision's settlement, to send too).
    Open {
        /// The provision asked.
        request: ProvisionRequest,
        /// The settlement of the provision it replaces.
        settle: Option<Box<Envelope>>,
    },
    /// Verified against the provision and recorded: authorised by the front-end.
    Admitted {
        /// The provision.
        segment: SessionId,
        /// The authorisation code given in H.
        code: String,
    },
    /// Refused by the front-end's own check.
    Refused(RefusalReason, String),
}

/// The sessions of a front-end and their log.
pub struct Sessions {
    open: BTreeMap<(TerminalId, SessionId), Session>,
    by_segment: BTreeMap<SessionId, (TerminalId, SessionId)>,
    /// The sessions with a settlement deadline, so that [`Sessions::poll_timeout`] —
    /// asked each time the runner's queue empties — does not scan every session ever
    /// opened.
    waiting: BTreeSet<(TerminalId, SessionId)>,
    log: Box<dyn SessionLog>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.open.len())
            .finish_non_exhaustive()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(Box::new(MemorySessionLog::default()))
    }
}

fn settlement(segment: &Segment) -> Envelope {
    Envelope {
        from: Party::FrontEnd,
        to: Party::Acquirer(segment.acquirer.clone()),
        message: Message::SessionSettlement(SessionSettlement {
            acquirer: segment.acquirer.clone(),
            segment: segment.id.clone(),
            payments: segment.payments.clone(),
        }),
    }
}

/// What a front-end does with the provisions its log holds unsettled when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Settle them at the first deadline: the front-end stopped mid-session (a crash)
    /// and the clients it served are gone.
    Settle,
    /// Carry on: the sessions stay open and their next payments go against the same
    /// provisions, until the client ends them. What a front-end run once per request
    /// (the embedded CLI) does between its runs.
    Resume,
}

impl Sessions {
    /// No session yet, payments recorded in `log`; the provisions `log` holds unsettled
    /// are settled at the first deadline or resumed, as `recovery` says.
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn recover(
        mut log: Box<dyn SessionLog>,
        recovery: Recovery,
    ) -> Result<Sessions, SessionLogError> {
        let recovered = log.open_segments()?;
        let mut sessions = Sessions::new(log);
        for segment in recovered {
            let tally = replay(&segment);
            let opened = segment.opened;
            let key = (opened.terminal.clone(), opened.session.clone());
            sessions
                .by_segment
                .insert(opened.segment.clone(), key.clone());
            let session = sessions.open.entry(key).or_insert_with(|| Session {
                terminal: opened.terminal.clone(),
                session: opened.session.clone(),
                segments: Vec::new(),
                // Settling: the client that opened it is gone with the old process.
                ending: recovery == Recovery::Settle,
                closed: None,
            });
            let (state, deadline) = match recovery {
                // Due at once: the first timeout sends the settlement.
                Recovery::Settle => (
                    SegmentState::Settling { attempt: 0 },
                    Some(Timestamp(i64::MIN)),
                ),
                Recovery::Resume => (SegmentState::Open, None),
            };
            session.segments.push(Segment {
                id: opened.segment,
                acquirer: opened.acquirer,
                state,
                tally: Some(tally),
                payments: segment.payments,
                deadline,
            });
        }
        let keys: Vec<(TerminalId, SessionId)> = sessions.open.keys().cloned().collect();
        for key in &keys {
            sessions.track(key);
        }
        Ok(sessions)
    }

    fn new(log: Box<dyn SessionLog>) -> Sessions {
        Sessions {
            open: BTreeMap::new(),
            by_segment: BTreeMap::new(),
            waiting: BTreeSet::new(),
            log,
        }
    }

    /// A session, by terminal and name.
    pub fn get(&self, terminal: &TerminalId, session: &SessionId) -> Option<&Session> {
        self.open.get(&(terminal.clone(), session.clone()))
    }

    /// Whether the client ended this session (its requests are then refused).
    pub fn has_ended(&self, terminal: &TerminalId, session: &SessionId) -> bool {
        self.get(terminal, session)
            .is_some_and(|session| session.ending)
    }

    /// Decides how a wallet payment of a session goes: admitted against the current
    /// provision (and recorded), or sent to `acquirer` to open one.
    #[allow(clippy::too_many_arguments)]
    pub fn route(
        &mut self,
        terminal: &TerminalId,
        session: &SessionId,
        signed: &SignedWalletPayment,
        acquirer: &AcquirerId,
        prefix: &str,
        provision_minor: u64,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> Route {
        let route = self.route_untracked(
            terminal,
            session,
            signed,
            acquirer,
            prefix,
            provision_minor,
            now,
            settle_timeout_ms,
        );
        self.track(&(terminal.clone(), session.clone()));
        route
    }

    /// [`Sessions::route`], before the session's deadlines are tracked.
    #[allow(clippy::too_many_arguments)]
    fn route_untracked(
        &mut self,
        terminal: &TerminalId,
        session: &SessionId,
        signed: &SignedWalletPayment,
        acquirer: &AcquirerId,
        prefix: &str,
        provision_minor: u64,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> Route {
        let key = (terminal.clone(), session.clone());
        let entry = self.open.entry(key.clone()).or_insert_with(|| Session {
            terminal: terminal.clone(),
            session: session.clone(),
            segments: Vec::new(),
            ending: false,
            closed: None,
        });
        if entry.ending {
            return Route::Plain;
        }
        let mut settle = None;
        if let Some(current) = entry.segments.last_mut() {
            match current.state {
                SegmentState::Opening => return Route::Plain,
                SegmentState::Open => {
                    let Some(tally) = current.tally.as_ref() else {
                        return Route::Plain;
                    };
                    let mut next = tally.clone();
                    match next.admit(signed) {
                        Ok(()) => {
                            if let Err(error) = self.log.admitted(&current.id, signed) {
                                return Route::Refused(
                                    RefusalReason::NotRecorded,
                                    error.to_string(),
                                );
                            }
                            current.tally = Some(next);
                            current.payments.push(signed.clone());
                            return Route::Admitted {
                                segment: current.id.clone(),
                                code: format!("S{:05}", current.payments.len() % 100_000),
                            };
                        }
                        Err(Refusal::ProvisionExceeded { .. }) => {
                            // Spent: settle it, and let this payment open the next.
                            current.state = SegmentState::Settling { attempt: 1 };
                            current.deadline = Some(now.plus_millis(settle_timeout_ms));
                            settle = Some(Box::new(settlement(current)));
                        }
                        Err(refusal) => {
                            return Route::Refused(
                                wallet::system::refusal_reason(&refusal),
                                refusal.to_string(),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        let number = entry.segments.len().saturating_add(1);
        let segment = SessionId::from(format!("{prefix}/{terminal}/{session}/{number}"));
        entry.segments.push(Segment {
            id: segment.clone(),
            acquirer: acquirer.clone(),
            state: SegmentState::Opening,
            tally: None,
            payments: Vec::new(),
            deadline: None,
        });
        self.by_segment.insert(segment.clone(), key);
        let amount = Money::new(
            provision_minor.max(signed.payment.amount.minor),
            signed.payment.amount.currency,
        );
        Route::Open {
            request: ProvisionRequest { segment, amount },
            settle,
        }
    }

    /// The acquirer granted the provision `segment` with its first payment `first`:
    /// admitted and recorded, the session's next payments go against it.
    ///
    /// # Errors
    /// The grant does not cover the first payment, or the log could not record it: the
    /// reason to refuse the payment with (the caller then releases the provision).
    pub fn granted(
        &mut self,
        segment: &SessionId,
        grant: &ProvisionGrant,
        first: &SignedWalletPayment,
        merchant: &MerchantId,
    ) -> Result<(), (RefusalReason, String)> {
        let Some(key) = self.by_segment.get(segment).cloned() else {
            return Err((
                RefusalReason::MismatchWithRequest,
                format!("no provision {segment} was asked"),
            ));
        };
        let Some(session) = self.open.get_mut(&key) else {
            return Err((
                RefusalReason::MismatchWithRequest,
                format!("no session for provision {segment}"),
            ));
        };
        let Some(current) = session
            .segments
            .iter_mut()
            .find(|candidate| candidate.id == *segment)
        else {
            return Err((
                RefusalReason::MismatchWithRequest,
                format!("no provision {segment} was asked"),
            ));
        };
        if grant.segment != *segment {
            return Err((
                RefusalReason::MismatchWithRequest,
                format!("provision {} granted for {segment}", grant.segment),
            ));
        }
        let provision = Provision {
            reservation: Reservation {
                session: segment.clone(),
                account: first.payment.account.clone(),
                merchant: merchant.clone(),
                amount: grant.amount,
            },
            sequence_floor: grant.sequence_floor,
            state: ProvisionState::Open,
        };
        let mut tally = ProvisionTally::new(provision.clone(), grant.sequence_floor);
        tally.admit(first).map_err(|refusal| {
            (
                wallet::system::refusal_reason(&refusal),
                refusal.to_string(),
            )
        })?;
        let opened = OpenedSegment {
            segment: segment.clone(),
            terminal: session.terminal.clone(),
            session: session.session.clone(),
            acquirer: current.acquirer.clone(),
            provision,
        };
        self.log
            .opened(&opened, first)
            .map_err(|error| (RefusalReason::NotRecorded, error.to_string()))?;
        current.tally = Some(tally);
        current.payments = vec![first.clone()];
        current.state = SegmentState::Open;
        Ok(())
    }

    /// The provision `segment` was refused or never confirmed: forget it, and when it
    /// may exist at the acquirer (`release`), settle it empty so that its amount is
    /// released. Returns the settlement to send, if any.
    pub fn abandon(
        &mut self,
        segment: &SessionId,
        release: bool,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> Option<Envelope> {
        let key = self.by_segment.get(segment).cloned();
        let sent = self.abandon_untracked(segment, release, now, settle_timeout_ms);
        if let Some(key) = key {
            self.track(&key);
        }
        sent
    }

    /// [`Sessions::abandon`], before the session's deadlines are tracked.
    fn abandon_untracked(
        &mut self,
        segment: &SessionId,
        release: bool,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> Option<Envelope> {
        let key = self.by_segment.get(segment)?.clone();
        let session = self.open.get_mut(&key)?;
        let position = session
            .segments
            .iter()
            .position(|candidate| candidate.id == *segment)?;
        if !release {
            session.segments.remove(position);
            self.by_segment.remove(segment);
            return None;
        }
        let current = session.segments.get_mut(position)?;
        current.payments.clear();
        current.tally = None;
        current.state = SegmentState::Settling { attempt: 1 };
        current.deadline = Some(now.plus_millis(settle_timeout_ms));
        Some(settlement(current))
    }

    /// The client ends its session: every open provision is settled; when there is
    /// nothing to wait for, the [`SessionClosed`] at once.
    pub fn end(
        &mut self,
        end: &SessionEnd,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> (Vec<Envelope>, Option<String>) {
        let answer = self.end_untracked(end, now, settle_timeout_ms);
        self.track(&(end.terminal.clone(), end.session.clone()));
        answer
    }

    /// [`Sessions::end`], before the session's deadlines are tracked.
    fn end_untracked(
        &mut self,
        end: &SessionEnd,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> (Vec<Envelope>, Option<String>) {
        let key = (end.terminal.clone(), end.session.clone());
        let session = self.open.entry(key).or_insert_with(|| Session {
            terminal: end.terminal.clone(),
            session: end.session.clone(),
            segments: Vec::new(),
            ending: false,
            closed: None,
        });
        if let Some(closed) = &session.closed {
            return (
                vec![closed.clone()],
                Some(format!(
                    "end of session {} repeated: its answer again",
                    end.session
                )),
            );
        }
        if session.ending {
            return (
                Vec::new(),
                Some(format!(
                    "end of session {} repeated while settling",
                    end.session
                )),
            );
        }
        session.ending = true;
        let mut sent = Vec::new();
        for segment in &mut session.segments {
            match segment.state {
                SegmentState::Open => {
                    segment.state = SegmentState::Settling { attempt: 1 };
                    segment.deadline = Some(now.plus_millis(settle_timeout_ms));
                    sent.push(settlement(segment));
                }
                // A provision still being opened is settled when its grant arrives.
                SegmentState::Opening
                | SegmentState::Settling { .. }
                | SegmentState::Settled(_)
                | SegmentState::Unanswered => {}
            }
        }
        sent.extend(close_if_resolved(session));
        (sent, None)
    }

    /// After a grant or an abandon while the session is ending: settles what was just
    /// opened, or closes the session.
    pub fn after_opening(
        &mut self,
        segment: &SessionId,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> Vec<Envelope> {
        let sent = self.after_opening_untracked(segment, now, settle_timeout_ms);
        if let Some(key) = self.by_segment.get(segment).cloned() {
            self.track(&key);
        }
        sent
    }

    /// [`Sessions::after_opening`], before the session's deadlines are tracked.
    fn after_opening_untracked(
        &mut self,
        segment: &SessionId,
        now: Timestamp,
        settle_timeout_ms: i64,
    ) -> Vec<Envelope> {
        let Some(key) = self.by_segment.get(segment).cloned() else {
            return Vec::new();
        };
        let Some(session) = self.open.get_mut(&key) else {
            return Vec::new();
        };
        if !session.ending {
            return Vec::new();
        }
        let mut sent = Vec::new();
        for current in &mut session.segments {
            if current.id == *segment && current.state == SegmentState::Open {
                current.state = SegmentState::Settling { attempt: 1 };
                current.deadline = Some(now.plus_millis(settle_timeout_ms));
                sent.push(settlement(current));
            }
        }
        sent.extend(close_if_resolved(session));
        sent
    }

    /// The acquirer's settlement of a provision.
    pub fn settled(
        &mut self,
        from: &Party,
        result: SettlementResult,
    ) -> (Vec<Envelope>, Option<String>) {
        let key = self.by_segment.get(&result.segment).cloned();
        let answer = self.settled_untracked(from, result);
        if let Some(key) = key {
            self.track(&key);
        }
        answer
    }

    /// [`Sessions::settled`], before the session's deadlines are tracked.
    fn settled_untracked(
        &mut self,
        from: &Party,
        result: SettlementResult,
    ) -> (Vec<Envelope>, Option<String>) {
        let Some(key) = self.by_segment.get(&result.segment).cloned() else {
            return (
                Vec::new(),
                Some(format!(
                    "a settlement of unknown provision {}",
                    result.segment
                )),
            );
        };
        let Some(session) = self.open.get_mut(&key) else {
            return (
                Vec::new(),
                Some(format!("no session for {}", result.segment)),
            );
        };
        let Some(segment) = session
            .segments
            .iter_mut()
            .find(|candidate| candidate.id == result.segment)
        else {
            return (Vec::new(), Some(format!("no provision {}", result.segment)));
        };
        if !matches!(from, Party::Acquirer(sender) if *sender == segment.acquirer)
            || result.acquirer != segment.acquirer
        {
            return (
                Vec::new(),
                Some(format!(
                    "a settlement of {} came from {from}",
                    result.segment
                )),
            );
        }
        if !matches!(
            segment.state,
            SegmentState::Settling { .. } | SegmentState::Unanswered
        ) {
            return (
                Vec::new(),
                Some(format!("settlement of {} repeated or late", result.segment)),
            );
        }
        // Recorded as settled: nothing left to recover. A failure here only means the
        // settlement is sent again after a restart, which the acquirer answers alike.
        let note = self
            .log
            .settled(&segment.id)
            .err()
            .map(|error| error.to_string());
        segment.state = SegmentState::Settled(result);
        segment.deadline = None;
        (close_if_resolved(session), note)
    }

    /// The earliest settlement deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.waiting
            .iter()
            .filter_map(|key| self.open.get(key))
            .flat_map(|session| session.segments.iter())
            .filter_map(|segment| segment.deadline)
            .min()
    }

    /// Keeps [`Sessions::waiting`] in step with the session's deadlines.
    fn track(&mut self, key: &(TerminalId, SessionId)) {
        let waits = self.open.get(key).is_some_and(|session| {
            session
                .segments
                .iter()
                .any(|segment| segment.deadline.is_some())
        });
        if waits {
            self.waiting.insert(key.clone());
        } else {
            self.waiting.remove(key);
        }
    }

    /// Sends again the settlements not answered by `now`, `attempts` times at most;
    /// then gives up until a restart.
    pub fn handle_timeout(
        &mut self,
        now: Timestamp,
        attempts: u32,
        settle_timeout_ms: i64,
    ) -> Vec<Envelope> {
        let mut sent = Vec::new();
        let waiting: Vec<(TerminalId, SessionId)> = self.waiting.iter().cloned().collect();
        for key in &waiting {
            let Some(session) = self.open.get_mut(key) else {
                continue;
            };
            let mut touched = false;
            for segment in &mut session.segments {
                if segment.deadline.is_none_or(|deadline| deadline > now) {
                    continue;
                }
                touched = true;
                let SegmentState::Settling { attempt } = segment.state else {
                    segment.deadline = None;
                    continue;
                };
                if attempt < attempts {
                    segment.state = SegmentState::Settling {
                        attempt: attempt.saturating_add(1),
                    };
                    segment.deadline = Some(now.plus_millis(settle_timeout_ms));
                    sent.push(settlement(segment));
                } else {
                    segment.state = SegmentState::Unanswered;
                    segment.deadline = None;
                }
            }
            if touched {
                sent.extend(close_if_resolved(session));
            }
        }
        for key in &waiting {
            self.track(key);
        }
        sent
    }
}

/// The [`SessionClosed`] of an ending session whose provisions are all resolved.
fn close_if_resolved(session: &mut Session) -> Vec<Envelope> {
    if !session.ending || session.closed.is_some() || !session.resolved() {
        return Vec::new();
    }
    let mut payments = 0u32;
    let mut debited: Option<Money> = None;
    let mut settled = true;
    for segment in &session.segments {
        match &segment.state {
            SegmentState::Settled(result) => {
                payments = payments.saturating_add(result.settled);
                // A zero carries no currency worth keeping (an acquirer that knew no
                // such provision answers zero in "XXX"): the sum takes the first
                // currency something was debited in.
                debited = Some(match debited {
                    Some(sum) if sum.minor > 0 => {
                        Money::new(sum.minor.saturating_add(result.debited.minor), sum.currency)
                    }
                    _ => result.debited,
                });
            }
            _ => settled = false,
        }
    }
    let closed = Envelope {
        from: Party::FrontEnd,
        to: Party::Client(session.terminal.clone()),
        message: Message::SessionClosed(SessionClosed {
            terminal: session.terminal.clone(),
            session: session.session.clone(),
            payments,
            debited,
            settled,
        }),
    };
    session.closed = Some(closed.clone());
    vec![closed]
}
