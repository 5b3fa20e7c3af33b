//! The payer device (22): answers the front-end's payment requests (D) with a
//! transaction (E) made with the bank card or from the virtual wallet, and acts on the
//! acknowledgement (H): the card completes its transaction, the session totals count
//! the payment. It also handles the service messages (claims 8, 9, 12 and 16):
//!
//! - an [`IdentificationRequest`] gets a proof of identity ([`IdentityProof`]), after the
//!   user agreed. **The key** when the device has a wallet its active user may use (with
//!   a plan, the user's own key-store entry, as for payments) and the request accepts
//!   the virtual wallet: the key signs a statement of the request's merchant,
//!   identification, purpose and nonce ([`IdentityStatement`]), which the front-end
//!   checks itself. **The card** otherwise: a zero-amount cryptogram made after the
//!   card verified the PIN, checked by the card issuer's acquirer. The
//!   [`IdentificationResult`] completes the card's transaction as H does; after a key's
//!   proof there is no card to complete, the result is only kept;
//! - a dispute is the user's initiative ([`PayerDevice::dispute`]): the wallet key signs
//!   a statement disputing one payment ([`DisputeStatement`]), sent to the front-end,
//!   which answers with the acquirer's [`DisputeOutcome`]
//!   ([`PayerDevice::dispute_outcome`]).
//!
//! The device itself holds the rules (which means pays, whether the user is asked, what
//! it does with a repeated D or H); the card is reached through the [`CardModule`] over
//! any reader, the wallet's key through a [`WalletSigner`], and the user through the
//! [`PayerUser`] trait (a terminal prompt, or a script).
//!
//! # Which means pays
//!
//! [`MeansChoice`] says it. [`MeansChoice::Fixed`] names one means for every payment,
//! and the user confirms each one (the default: the bank card, as before the wallet
//! existed). [`MeansChoice::Plan`] lets the active user's payment plan choose
//! ([`Users::choose_among`], claims 4 and 18) among the means the request accepts and
//! the device has at hand, and the user's thresholds decide the confirmation (claim 5):
//! at or below the threshold the payment goes without a question, above it the user is
//! asked. [`PayerDevice::override_next_means`] names the means of the next payment
//! instead (the plan's override).
//!
//! # Secrets
//!
//! A card PIN is asked for each card payment, presented to the card and dropped
//! (zeroized) at once. A wallet payment asks no PIN: the wallet's key was unlocked with
//! its key-store PIN when the device was set up, and is held by the [`WalletSigner`],
//! whose `Debug` shows the account and never the key, and which zeroizes the key when
//! dropped (the `p256` signing key wipes its scalar).
//!
//! # Session totals
//!
//! With a plan, each acknowledgement H of a payment this device made is reported to
//! the session totals of the user who was active when the payment was made
//! ([`SessionTotals::record`](crate::terminal::plan::SessionTotals::record), claim 6):
//! a positive H counts the payment once, by its identifier; a negative H counts
//! nothing; a repeated H changes nothing.

use std::collections::{BTreeMap, HashMap};

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use zeroize::Zeroizing;

use crate::acquirer::wallet::dispute::{DisputeFault, check_reason};
use crate::acquirer::wallet::{
    AccountKey, DisputeStatement, IdentityStatement, SignedDispute, SignedIdentity,
    SignedWalletPayment, StatementError, WalletError, WalletPayment,
};
use crate::emv::CardChannel;
use crate::messages::{
    AbandonmentOutcome, CardDecline, PaymentAbandonment, RefusalReason, Verdict,
};
use crate::messages::{
    CardTransaction, CustomerId, Dispute, DisputeDecision, DisputeId, DisputeOutcome, Envelope,
    IdentificationDeclined, IdentificationId, IdentificationProof, IdentificationRequest,
    IdentificationResult, IdentityProof, Means, MerchantId, Message, Money, Party,
    PayerAcknowledgement, Payment, PaymentDeclined, PaymentId, PaymentRequest, TerminalId,
    Timestamp, Transaction,
};
use crate::terminal::card_module::{CardModule, CardModuleError, Completion};
use crate::terminal::keystore::UnlockedKey;
use crate::terminal::plan::{
    AcquirerLimits, Confirmation, Counted, PaymentContext, PaymentOutcome, PlanError,
    SessionPayment, User, UserId, Users, means_name,
};

/// What the front-end asks of the user: to pay, or to be identified.
#[derive(Debug, Clone, Copy)]
pub enum Solicitation<'a> {
    /// A payment request D.
    Payment(&'a PaymentRequest),
    /// A service message: identify yourself (claim 16).
    Identification(&'a IdentificationRequest),
}

/// The person at the payer device: confirms a payment or an identification and types
/// the PIN.
pub trait PayerUser {
    /// Whether the user agrees: to pay (amount, designation, validity shown), or to be
    /// identified (purpose shown).
    fn confirm(&mut self, solicitation: Solicitation<'_>) -> bool;

    /// The PIN for this payment or identification, or `None` when the user gives none.
    fn pin(&mut self, solicitation: Solicitation<'_>) -> Option<Zeroizing<String>>;
}

/// A user whose answers are given in advance: tests, `--pin-stdin`, benchmarks.
pub struct ScriptedUser {
    /// Whether every payment is confirmed.
    pub confirms: bool,
    /// The PIN given for every payment.
    pub pin: Option<Zeroizing<String>>,
}

impl ScriptedUser {
    /// A user who confirms and types `pin`.
    pub fn with_pin(pin: &str) -> ScriptedUser {
        ScriptedUser {
            confirms: true,
            pin: Some(Zeroizing::new(pin.to_owned())),
        }
    }
}

impl std::fmt::Debug for ScriptedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedUser")
            .field("confirms", &self.confirms)
            .field("pin", &self.pin.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl PayerUser for ScriptedUser {
    fn confirm(&mut self, _solicitation: Solicitation<'_>) -> bool {
        self.confirms
    }

    fn pin(&mut self, _solicitation: Solicitation<'_>) -> Option<Zeroizing<String>> {
        self.pin.clone()
    }
}

// ---------------------------------------------------------------------------------------
// The wallet's key

/// Why the wallet could not sign a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalletSignError {
    /// The account's counter reached `u64::MAX`: no greater sequence is left to sign.
    #[error("payment {payment}: the wallet's sequence is exhausted (last signed {last})")]
    SequenceExhausted {
        /// The payment that could not be signed.
        payment: PaymentId,
        /// The last sequence signed.
        last: u64,
    },
    /// The payment has no canonical encoding (an identifier too long).
    #[error(transparent)]
    Encoding(#[from] WalletError),
}

/// The key that signs, from the key store or given as is (tests, benchmarks).
enum WalletKey {
    Unlocked(UnlockedKey),
    Signing(SigningKey),
}

impl WalletKey {
    fn sign(&self, message: &[u8]) -> p256::ecdsa::Signature {
        match self {
            WalletKey::Unlocked(key) => key.sign(message),
            WalletKey::Signing(key) => key.sign(message),
        }
    }

    fn verifying_key(&self) -> &p256::ecdsa::VerifyingKey {
        match self {
            WalletKey::Unlocked(key) => key.verifying_key(),
            WalletKey::Signing(key) => key.verifying_key(),
        }
    }
}

/// The virtual wallet at the payer device's disposal: the account's private key and the
/// sequence of the last payment it signed.
///
/// # Sequence
///
/// Each payment carries a sequence greater than the account's previous one, which the
/// acquirer checks (a replayed or lower sequence is refused). The signer takes
/// `next = max(last + 1, now)`, `now` in milliseconds since 1970: without any state
/// kept between runs, the sequence stays increasing across restarts as long as the
/// clock at the restart is ahead of the previous run's last sequence — that is, as long
/// as the clock does not go back by more than the payments signed faster than one per
/// millisecond pushed the counter ahead of it. If it does, the acquirer refuses the
/// payment as replayed: nothing is paid twice. [`WalletSigner::with_last_sequence`]
/// resumes from a sequence known otherwise (kept, or reported by the acquirer).
pub struct WalletSigner {
    key: WalletKey,
    last_sequence: u64,
}

impl WalletSigner {
    /// The wallet of the key-store entry `key` (unlocked with its PIN).
    pub fn from_unlocked(key: UnlockedKey) -> WalletSigner {
        WalletSigner {
            key: WalletKey::Unlocked(key),
            last_sequence: 0,
        }
    }

    /// The wallet of `key`, outside any key store (tests, benchmarks): it belongs to no
    /// user in particular ([`WalletSigner::user`] is `None`).
    pub fn from_signing_key(key: SigningKey) -> WalletSigner {
        WalletSigner {
            key: WalletKey::Signing(key),
            last_sequence: 0,
        }
    }

    /// The same wallet, resuming after `last`: the next payment carries a greater
    /// sequence.
    pub fn with_last_sequence(mut self, last: u64) -> WalletSigner {
        self.last_sequence = last;
        self
    }

    /// The account the wallet pays from: its public key.
    pub fn account(&self) -> AccountKey {
        AccountKey::new(self.key.verifying_key())
    }

    /// The key-store user the key belongs to; `None` for a key given as is.
    pub fn user(&self) -> Option<&str> {
        match &self.key {
            WalletKey::Unlocked(key) => Some(key.user()),
            WalletKey::Signing(_) => None,
        }
    }

    /// The sequence of the last payment signed (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// The sequence the next payment signed at `now` carries: `max(last + 1, now)` in
    /// milliseconds (a clock before 1970 counts as 0); `None` once `last` is
    /// `u64::MAX`.
    pub fn next_sequence(&self, now: Timestamp) -> Option<u64> {
        let after_last = self.last_sequence.checked_add(1)?;
        let clock = u64::try_from(now.0).unwrap_or(0);
        Some(after_last.max(clock))
    }

    /// Signs the payment `request` asks for at `now`: the account, the request's
    /// merchant, service, payment identifier and amount, the next sequence, `now`. The
    /// sequence is taken only when the payment is signed.
    pub fn sign_payment(
        &mut self,
        request: &PaymentRequest,
        now: Timestamp,
    ) -> Result<SignedWalletPayment, WalletSignError> {
        let sequence =
            self.next_sequence(now)
                .ok_or_else(|| WalletSignError::SequenceExhausted {
                    payment: request.payment.clone(),
                    last: self.last_sequence,
                })?;
        let payment = WalletPayment {
            account: self.account(),
            merchant: request.merchant.clone(),
            service: request.service.clone(),
            payment: request.payment.clone(),
            amount: request.amount,
            sequence,
            time: now,
        };
        let signed = SignedWalletPayment::sign(payment, |message| self.key.sign(message))?;
        self.last_sequence = sequence;
        Ok(signed)
    }

    /// Signs the statement that answers the identification `request` at `now` with
    /// this wallet's account (claims 9, 12: the key serves identification). No
    /// sequence is spent: a statement moves no money.
    ///
    /// # Errors
    /// The statement has no encoding (a text of more than 65,535 bytes).
    pub fn sign_identity(
        &self,
        request: &IdentificationRequest,
        now: Timestamp,
    ) -> Result<SignedIdentity, StatementError> {
        let statement = IdentityStatement::answering(self.account(), request, now);
        SignedIdentity::sign(statement, |message| self.key.sign(message))
    }

    /// Signs a dispute statement (claims 9, 12: the key serves disputes). The statement
    /// should name this wallet's account: one naming another gets a signature that does
    /// not verify. No sequence is spent.
    ///
    /// # Errors
    /// The statement has no encoding (a text of more than 65,535 bytes).
    pub fn sign_dispute(
        &self,
        statement: DisputeStatement,
    ) -> Result<SignedDispute, StatementError> {
        SignedDispute::sign(statement, |message| self.key.sign(message))
    }
}

impl std::fmt::Debug for WalletSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletSigner")
            .field("account", &self.account().fingerprint())
            .field("user", &self.user())
            .field("last_sequence", &self.last_sequence)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Which means pays

/// How the payer device picks the means of each payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeansChoice {
    /// Always this means; the user confirms every payment. It must be accepted by the
    /// request and present on the device (a card module always is; the wallet with
    /// [`PayerDevice::with_wallet`]), or the payment is declined.
    Fixed(Means),
    /// The active user's plan chooses and their thresholds set the confirmation
    /// ([`Users::choose_among`]).
    Plan {
        /// The users, one active, with their plans, thresholds and session totals
        /// (boxed: they are large beside a fixed means).
        users: Box<Users>,
        /// The amounts each acquirer takes: a means without limits has no acquirer and
        /// pays nothing.
        limits: AcquirerLimits,
    },
}

impl Default for MeansChoice {
    /// The bank card, confirmed each time.
    fn default() -> MeansChoice {
        MeansChoice::Fixed(Means::BankCard)
    }
}

/// The means the device has at hand for `user`: the card module always; the wallet
/// when one was given and it is the user's (a key from the key store must be the
/// user's entry, so that one user never pays from another's account).
fn present_means(wallet: Option<&WalletSigner>, user: &User) -> Vec<Means> {
    let wallet_present = wallet.is_some_and(|wallet| {
        wallet
            .user()
            .is_none_or(|owner| user.means().key_store_user.as_deref() == Some(owner))
    });
    Means::ALL
        .into_iter()
        .filter(|&means| means == Means::BankCard || wallet_present)
        .collect()
}

/// The means decided for one payment.
struct Decision {
    means: Means,
    /// Whether the user is asked (explicit confirmation).
    ask: bool,
    /// The user paying, with a plan: their totals count the payment.
    user: Option<UserId>,
}

// ---------------------------------------------------------------------------------------
// The device

/// How one payment went on the payer device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentState {
    /// E sent; waiting for H.
    AwaitingAcknowledgement,
    /// The payment was declined on the device (no E): why.
    Declined(String),
    /// H arrived for a bank-card payment and the card completed the transaction.
    Completed(Completion),
    /// H arrived for a bank-card payment but the card could not complete: why.
    CompletionFailed(String),
    /// H arrived for a virtual-wallet payment. There is no card transaction to
    /// complete: the verdict is the end of it, the account debited or not.
    WalletSettled {
        /// Whether the acquirer authorised (debited) the payment.
        authorised: bool,
    },
    /// The front-end that took E went away before H: the card ended the transaction
    /// with an AAC ([`PayerDevice::abandon_unacknowledged`]), sent to another
    /// front-end as the proof for the acquirer to cancel the payment.
    Abandoned {
        /// The card's AAC.
        completion: Completion,
        /// The acquirer's word on the payment, once it came.
        outcome: Option<AbandonmentOutcome>,
    },
}

/// What E carried, kept to count the payment when H comes.
struct Paid {
    means: Means,
    amount: Money,
    user: Option<UserId>,
}

struct PaymentRecord {
    /// D, as the front-end asked: what an abandonment proves the card declined.
    request: PaymentRequest,
    answer: Envelope,
    state: PaymentState,
    /// `None` when the payment was declined on the device.
    paid: Option<Paid>,
    /// What the session totals did with the first H, with a plan.
    counted: Option<Result<Counted, PlanError>>,
}

/// How one identification went on the payer device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentificationState {
    /// The proof was sent; waiting for the result.
    AwaitingResult,
    /// The identification was declined on the device (no proof): why.
    Declined(String),
    /// The result arrived and the card completed: the customer named, if positive.
    Completed {
        /// How the card ended its transaction.
        completion: Completion,
        /// The customer the acquirer named, on a positive result.
        customer: Option<CustomerId>,
    },
    /// The result arrived but the card could not complete: why.
    CompletionFailed(String),
    /// The result arrived, positive, for a proof made with the wallet key: no card to
    /// complete; the customer the front-end named (a pseudonym of the key).
    KeyVerified {
        /// The customer named.
        customer: CustomerId,
    },
    /// The result arrived, negative (or naming nobody), for a proof made with the
    /// wallet key: why.
    KeyRefused(String),
}

struct IdentificationRecord {
    answer: Envelope,
    state: IdentificationState,
    /// Whether the wallet key made the proof (no card transaction to complete).
    by_key: bool,
}

/// Why the payer device could not make a dispute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisputeError {
    /// The device has no wallet key: disputes are signed with it.
    #[error("payment {payment} cannot be disputed: no wallet key was unlocked on this device")]
    NoWallet {
        /// The payment.
        payment: PaymentId,
    },
    /// The wallet key is not the active user's key-store entry (a plan's user without
    /// that wallet): one user never signs with another's key.
    #[error(
        "payment {payment} cannot be disputed by {user}: the wallet key on this device is not theirs"
    )]
    NotTheUsersKey {
        /// The payment.
        payment: PaymentId,
        /// The active user.
        user: String,
    },
    /// The reason breaks the rules of disputes (empty, too long).
    #[error(transparent)]
    Reason(#[from] DisputeFault),
    /// Every dispute number was used (the counter reached `u64::MAX`).
    #[error("payment {payment} cannot be disputed: the device's dispute numbers are exhausted")]
    NumbersExhausted {
        /// The payment.
        payment: PaymentId,
    },
    /// The statement has no encoding (an identifier too long).
    #[error(transparent)]
    Statement(#[from] StatementError),
}

/// A dispute the device made: the message, to send again, and the last outcome.
struct DisputeRecord {
    message: Envelope,
    outcome: Option<DisputeOutcome>,
}

/// The payer device of one terminal, with its card module, its user, and optionally a
/// wallet and a payment plan.
pub struct PayerDevice<C: CardChannel, U: PayerUser> {
    terminal: TerminalId,
    card: CardModule<C>,
    user: U,
    wallet: Option<WalletSigner>,
    means: MeansChoice,
    /// The means the user named for the next payment request.
    next_means: Option<Means>,
    // Found or filed by key four times a purchase and walked in order only on demand
    // (`payments`, `abandon_unacknowledged`): hashed, as the front-end's purchases, where
    // a tree took a dozen string comparisons a look-up once thousands were kept. Boxed:
    // a record holds a whole envelope, and growing the table moves pointers.
    payments: HashMap<PaymentId, Box<PaymentRecord>>,
    identifications: BTreeMap<IdentificationId, IdentificationRecord>,
    disputes: BTreeMap<DisputeId, DisputeRecord>,
    /// The number of the last dispute made (0 before the first).
    last_dispute: u64,
}

impl<C: CardChannel, U: PayerUser> PayerDevice<C, U> {
    /// The payer device of `terminal`: it pays by bank card, the user confirming each
    /// payment, until [`PayerDevice::with_means`] says otherwise.
    pub fn new(terminal: TerminalId, card: CardModule<C>, user: U) -> PayerDevice<C, U> {
        PayerDevice {
            terminal,
            card,
            user,
            wallet: None,
            means: MeansChoice::default(),
            next_means: None,
            payments: HashMap::new(),
            identifications: BTreeMap::new(),
            disputes: BTreeMap::new(),
            last_dispute: 0,
        }
    }

    /// The same device, with `wallet` at its disposal.
    pub fn with_wallet(mut self, wallet: WalletSigner) -> PayerDevice<C, U> {
        self.wallet = Some(wallet);
        self
    }

    /// Puts `wallet` at the device's disposal instead of the one it had (a user steps
    /// up and opens their key-store entry with their PIN), or none; gives the previous
    /// one back, to be dropped (its key is then zeroized).
    pub fn replace_wallet(&mut self, wallet: Option<WalletSigner>) -> Option<WalletSigner> {
        std::mem::replace(&mut self.wallet, wallet)
    }

    /// The same device, choosing the means of each payment by `means`.
    pub fn with_means(mut self, means: MeansChoice) -> PayerDevice<C, U> {
        self.means = means;
        self
    }

    /// Names the means of the next payment request (a repeated one excepted), or
    /// withdraws the name with `None`. With a plan it is the plan's override: the named
    /// means pays if the request accepts it, the device has it and its acquirer takes
    /// the amount, and the thresholds still set the confirmation; with a fixed means it
    /// replaces that means once. It is used up by the next payment, paid or not.
    pub fn override_next_means(&mut self, means: Option<Means>) {
        self.next_means = means;
    }

    /// The terminal this device belongs to.
    pub fn terminal(&self) -> &TerminalId {
        &self.terminal
    }

    /// The user.
    pub fn user(&self) -> &U {
        &self.user
    }

    /// The user, mutably (a script changing its answers between payments).
    pub fn user_mut(&mut self) -> &mut U {
        &mut self.user
    }

    /// The card module (its channel holds the card dialogue when recorded).
    pub fn card(&self) -> &CardModule<C> {
        &self.card
    }

    /// The card module, mutably.
    pub fn card_mut(&mut self) -> &mut CardModule<C> {
        &mut self.card
    }

    /// The wallet, when the device has one.
    pub fn wallet(&self) -> Option<&WalletSigner> {
        self.wallet.as_ref()
    }

    /// How the device picks the means.
    pub fn means_choice(&self) -> &MeansChoice {
        &self.means
    }

    /// The users and their session totals, with a plan.
    pub fn users(&self) -> Option<&Users> {
        match &self.means {
            MeansChoice::Plan { users, .. } => Some(users),
            MeansChoice::Fixed(_) => None,
        }
    }

    /// The users, mutably (to switch the active user, or start a new session), with a
    /// plan.
    pub fn users_mut(&mut self) -> Option<&mut Users> {
        match &mut self.means {
            MeansChoice::Plan { users, .. } => Some(users),
            MeansChoice::Fixed(_) => None,
        }
    }

    /// The active user's session totals as shown after each payment, with a plan:
    /// `alice: session: 27.00 EUR (bank card 25.00 EUR, virtual wallet 2.00 EUR)`.
    pub fn totals_line(&self) -> Option<String> {
        self.users()
            .map(|users| format!("{}: {}", users.active().id(), users.active_totals()))
    }

    /// How a payment went, if this device saw its request.
    pub fn payment_state(&self, payment: &PaymentId) -> Option<&PaymentState> {
        self.payments.get(payment).map(|record| &record.state)
    }

    /// Every payment this device saw a request for, in the order of their identifiers
    /// (sorted at each call: the device keeps them hashed).
    pub fn payments(&self) -> impl Iterator<Item = (&PaymentId, &PaymentState)> {
        let mut payments: Vec<(&PaymentId, &PaymentState)> = self
            .payments
            .iter()
            .map(|(payment, record)| (payment, &record.state))
            .collect();
        payments.sort_unstable_by_key(|(payment, _)| *payment);
        payments.into_iter()
    }

    /// Gives up the bank-card payment still waiting for its acknowledgement H, because
    /// the front-end that took E went away: the card ends the transaction with an AAC
    /// (second GENERATE AC asking for an AAC, response code `Z3` "unable to go online",
    /// no issuer authentication), and the device makes the [`PaymentAbandonment`] that
    /// any front-end passes to the card's acquirer, whose AAC check cancels the payment.
    ///
    /// Returns that message, or — when it was abandoned already — the same message
    /// again, so that a lost one can be sent anew. A wallet payment waiting for H is
    /// left as it is: nothing but the card proves a payment was not completed. An H
    /// arriving later for an abandoned payment changes nothing.
    pub fn abandon_unacknowledged(&mut self) -> Vec<Envelope> {
        let mut sent = Vec::new();
        // In the order of their identifiers, so that the messages come in a stable order.
        let mut records: Vec<(&PaymentId, &mut Box<PaymentRecord>)> =
            self.payments.iter_mut().collect();
        records.sort_unstable_by_key(|(payment, _)| *payment);
        for (_, record) in records {
            let card_paid = record
                .paid
                .as_ref()
                .is_some_and(|paid| paid.means == Means::BankCard);
            if !card_paid {
                continue;
            }
            let completion = match &record.state {
                PaymentState::AwaitingAcknowledgement => {
                    let unable_online = Verdict::Negative {
                        reason: RefusalReason::AcquirerUnreachable,
                        response_code: *b"Z3",
                        arpc: None,
                    };
                    match complete_own(&mut self.card, &record.answer, &unable_online) {
                        Ok(completion) => completion,
                        Err(why) => {
                            record.state = PaymentState::CompletionFailed(why);
                            continue;
                        }
                    }
                }
                PaymentState::Abandoned {
                    completion,
                    outcome: None,
                } => completion.clone(),
                _ => continue,
            };
            let Message::Transaction(transaction) = &record.answer.message else {
                continue;
            };
            sent.push(Envelope {
                from: Party::Payer(self.terminal.clone()),
                to: Party::FrontEnd,
                message: Message::PaymentAbandoned(Box::new(PaymentAbandonment {
                    request: record.request.clone(),
                    transaction: Transaction::clone(transaction),
                    decline: CardDecline {
                        cid: completion.cid,
                        cryptogram: completion.cryptogram,
                        iad: completion.iad.clone(),
                    },
                })),
            });
            if record.state == PaymentState::AwaitingAcknowledgement {
                record.state = PaymentState::Abandoned {
                    completion,
                    outcome: None,
                };
            }
        }
        sent
    }

    /// What the session totals did with a payment's acknowledgement, if one came for
    /// a payment this device made with a plan.
    pub fn counted(&self, payment: &PaymentId) -> Option<&Result<Counted, PlanError>> {
        self.payments
            .get(payment)
            .and_then(|record| record.counted.as_ref())
    }

    /// How an identification went, if this device saw its request.
    pub fn identification_state(
        &self,
        identification: &IdentificationId,
    ) -> Option<&IdentificationState> {
        self.identifications
            .get(identification)
            .map(|record| &record.state)
    }

    /// Disputes `payment`, made to `merchant`, because of `reason` (claims 8, 9): the
    /// user's initiative, so nobody is asked to confirm. The wallet key signs a
    /// [`DisputeStatement`] naming the dispute, the account, the merchant, the payment,
    /// the reason and `now`; the [`Dispute`] to send to the front-end is returned, and
    /// kept ([`PayerDevice::dispute_message`]) with the outcome to come
    /// ([`PayerDevice::dispute_outcome`]).
    ///
    /// The dispute is named `{terminal}-D{n}`, `n = max(last + 1, now)` in
    /// milliseconds, so that names stay unique across restarts of the device as its
    /// wallet's sequences do. Its means is the one the device paid `payment` with, when
    /// it remembers the payment, the virtual wallet otherwise: a card payment's dispute
    /// goes to the card's acquirer, which sends it to the card issuer.
    ///
    /// # Errors
    /// [`DisputeError`]: no wallet, or not the active user's; a reason empty or over
    /// [`crate::acquirer::wallet::dispute::MAX_DISPUTE_REASON_CHARS`] characters; no
    /// dispute number left; a text too long to encode. Nothing is kept then.
    pub fn dispute(
        &mut self,
        now: Timestamp,
        payment: PaymentId,
        merchant: MerchantId,
        reason: &str,
    ) -> Result<Envelope, DisputeError> {
        let Some(wallet) = self.wallet.as_ref() else {
            return Err(DisputeError::NoWallet { payment });
        };
        let Some(wallet) = self.usable_wallet() else {
            let user = match &self.means {
                MeansChoice::Plan { users, .. } => users.active().id().to_string(),
                MeansChoice::Fixed(_) => wallet.user().unwrap_or_default().to_owned(),
            };
            return Err(DisputeError::NotTheUsersKey { payment, user });
        };
        let number = self
            .last_dispute
            .checked_add(1)
            .map(|next| next.max(u64::try_from(now.0).unwrap_or(0)))
            .ok_or_else(|| DisputeError::NumbersExhausted {
                payment: payment.clone(),
            })?;
        let id = DisputeId::from(format!("{}-D{number}", self.terminal));
        check_reason(&id, reason)?;
        let means = self
            .payments
            .get(&payment)
            .and_then(|record| record.paid.as_ref())
            .map_or(Means::VirtualWallet, |paid| paid.means);
        let statement = DisputeStatement {
            dispute: id.clone(),
            account: wallet.account(),
            merchant,
            payment: payment.clone(),
            reason: reason.to_owned(),
            time: now,
        };
        let signed = wallet.sign_dispute(statement)?;
        let message = Envelope {
            from: Party::Payer(self.terminal.clone()),
            to: Party::FrontEnd,
            message: Message::Dispute(Box::new(Dispute {
                dispute: id.clone(),
                terminal: self.terminal.clone(),
                means,
                payment,
                reason: reason.to_owned(),
                signed,
            })),
        };
        self.last_dispute = number;
        self.disputes.insert(
            id,
            DisputeRecord {
                message: message.clone(),
                outcome: None,
            },
        );
        Ok(message)
    }

    /// The dispute `dispute` as sent, to send again (after an
    /// [`DisputeDecision::Unanswered`] outcome, or a lost message), if the device made
    /// it.
    pub fn dispute_message(&self, dispute: &DisputeId) -> Option<&Envelope> {
        self.disputes.get(dispute).map(|record| &record.message)
    }

    /// The last outcome the front-end gave for `dispute`, if any came.
    pub fn dispute_outcome(&self, dispute: &DisputeId) -> Option<&DisputeOutcome> {
        self.disputes
            .get(dispute)
            .and_then(|record| record.outcome.as_ref())
    }

    /// Keeps the outcome of a dispute this device made: a decision (accepted,
    /// rejected) replaces nothing once kept; "unanswered" is replaced by the decision
    /// that follows.
    fn on_dispute_outcome(&mut self, outcome: DisputeOutcome) {
        let Some(record) = self.disputes.get_mut(&outcome.dispute) else {
            return;
        };
        let decided = record
            .outcome
            .as_ref()
            .is_some_and(|kept| !matches!(kept.outcome, DisputeDecision::Unanswered));
        if !decided {
            record.outcome = Some(outcome);
        }
    }

    /// Takes a message from the front-end at `now` (the device's clock: a wallet
    /// payment is dated and sequenced with it).
    pub fn handle(&mut self, now: Timestamp, from: &Party, message: Message) -> Vec<Envelope> {
        if *from != Party::FrontEnd {
            return Vec::new();
        }
        match message {
            Message::PaymentRequest(request) => self.on_payment_request(request, now),
            Message::PayerAcknowledgement(acknowledgement) => {
                self.on_acknowledgement(&acknowledgement);
                // H expects no answer.
                Vec::new()
            }
            Message::IdentificationRequest(request) => self.on_identification_request(request, now),
            Message::IdentificationResult(result) => {
                self.on_identification_result(&result);
                // Like H, the result expects no answer.
                Vec::new()
            }
            Message::DisputeOutcome(outcome) => {
                self.on_dispute_outcome(outcome);
                // The outcome expects no answer either.
                Vec::new()
            }
            Message::AbandonmentResult(result) => {
                if let Some(record) = self.payments.get_mut(&result.payment)
                    && let PaymentState::Abandoned { outcome, .. } = &mut record.state
                    && result.terminal == self.terminal
                {
                    *outcome = Some(result.outcome);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// [`PayerDevice::handle`] for a message the caller keeps (the runner's log): the
    /// messages that only update a record are read in place; the others, which the
    /// device keeps, are copied once.
    pub fn handle_ref(&mut self, now: Timestamp, from: &Party, message: &Message) -> Vec<Envelope> {
        if *from != Party::FrontEnd {
            return Vec::new();
        }
        match message {
            Message::PayerAcknowledgement(acknowledgement) => {
                self.on_acknowledgement(acknowledgement);
                Vec::new()
            }
            Message::IdentificationResult(result) => {
                self.on_identification_result(result);
                Vec::new()
            }
            other => self.handle(now, from, other.clone()),
        }
    }

    fn on_payment_request(&mut self, request: PaymentRequest, now: Timestamp) -> Vec<Envelope> {
        if let Some(record) = self.payments.get(&request.payment) {
            // A repeated D: the same answer, without touching the card or the wallet
            // again (a second signature would spend a second sequence).
            return vec![record.answer.clone()];
        }
        let (message, state, paid) = match self.pay(&request, now) {
            Ok((payment, paid)) => (
                Message::Transaction(Box::new(Transaction {
                    purchase: request.purchase.clone(),
                    payment: request.payment.clone(),
                    terminal: self.terminal.clone(),
                    means: payment,
                })),
                PaymentState::AwaitingAcknowledgement,
                Some(paid),
            ),
            Err(reason) => (
                Message::PaymentDeclined(PaymentDeclined {
                    purchase: request.purchase.clone(),
                    payment: request.payment.clone(),
                    reason: reason.clone(),
                }),
                PaymentState::Declined(reason),
                None,
            ),
        };
        let answer = Envelope {
            from: Party::Payer(self.terminal.clone()),
            to: Party::FrontEnd,
            message,
        };
        self.payments.insert(
            request.payment.clone(),
            Box::new(PaymentRecord {
                request,
                answer: answer.clone(),
                state,
                paid,
                counted: None,
            }),
        );
        vec![answer]
    }

    fn on_identification_request(
        &mut self,
        request: IdentificationRequest,
        now: Timestamp,
    ) -> Vec<Envelope> {
        if let Some(record) = self.identifications.get(&request.identification) {
            // A repeated request: the same answer, without touching the card again.
            return vec![record.answer.clone()];
        }
        let by_key = self.identifies_by_key(&request);
        let (message, state) = match self.identify(&request, by_key, now) {
            Ok(proof) => (
                Message::IdentificationProof(Box::new(IdentificationProof {
                    purchase: request.purchase.clone(),
                    identification: request.identification.clone(),
                    terminal: self.terminal.clone(),
                    proof,
                })),
                IdentificationState::AwaitingResult,
            ),
            Err(reason) => (
                Message::IdentificationDeclined(IdentificationDeclined {
                    purchase: request.purchase.clone(),
                    identification: request.identification.clone(),
                    reason: reason.clone(),
                }),
                IdentificationState::Declined(reason),
            ),
        };
        let answer = Envelope {
            from: Party::Payer(self.terminal.clone()),
            to: Party::FrontEnd,
            message,
        };
        self.identifications.insert(
            request.identification.clone(),
            IdentificationRecord {
                answer: answer.clone(),
                state,
                by_key,
            },
        );
        vec![answer]
    }

    fn on_identification_result(&mut self, result: &IdentificationResult) {
        let Some(record) = self.identifications.get_mut(&result.identification) else {
            return;
        };
        if record.state != IdentificationState::AwaitingResult {
            return;
        }
        if record.by_key {
            record.state = match (&result.verdict, &result.customer) {
                (crate::messages::Verdict::Positive { .. }, Some(customer)) => {
                    IdentificationState::KeyVerified {
                        customer: customer.clone(),
                    }
                }
                (crate::messages::Verdict::Negative { reason, .. }, _) => {
                    IdentificationState::KeyRefused(reason.to_string())
                }
                (crate::messages::Verdict::Positive { .. }, None) => {
                    IdentificationState::KeyRefused("the front-end named no customer".into())
                }
            };
            return;
        }
        record.state = match complete_own(&mut self.card, &record.answer, &result.verdict) {
            Ok(completion) => IdentificationState::Completed {
                completion,
                customer: result.customer.clone(),
            },
            Err(why) => IdentificationState::CompletionFailed(why),
        };
    }

    /// The means, the confirmation, then the card's ARQC or the wallet's signature.
    fn pay(&mut self, request: &PaymentRequest, now: Timestamp) -> Result<(Payment, Paid), String> {
        let decision = self.decide(request)?;
        // Claim 5: an implicit confirmation does not ask the user at all.
        if decision.ask && !self.user.confirm(Solicitation::Payment(request)) {
            return Err("the user declined the payment".into());
        }
        let payment = match decision.means {
            Means::BankCard => {
                Payment::BankCard(self.card_cryptogram(Solicitation::Payment(request), request)?)
            }
            Means::VirtualWallet => {
                let Some(wallet) = self.wallet.as_mut() else {
                    return Err(no_wallet());
                };
                let signed = wallet
                    .sign_payment(request, now)
                    .map_err(|error| error.to_string())?;
                Payment::VirtualWallet(Box::new(signed))
            }
        };
        Ok((
            payment,
            Paid {
                means: decision.means,
                amount: request.amount,
                user: decision.user,
            },
        ))
    }

    /// Which means pays `request`, and whether the user is asked. Uses up the override.
    fn decide(&mut self, request: &PaymentRequest) -> Result<Decision, String> {
        let named = self.next_means.take();
        match &self.means {
            MeansChoice::Fixed(fixed) => {
                let means = named.unwrap_or(*fixed);
                if !request.accepted_means.contains(&means) {
                    return Err(format!(
                        "the front-end does not accept the {} for this payment",
                        means_name(means)
                    ));
                }
                if means == Means::VirtualWallet && self.wallet.is_none() {
                    return Err(no_wallet());
                }
                Ok(Decision {
                    means,
                    ask: true,
                    user: None,
                })
            }
            MeansChoice::Plan { users, limits } => {
                let present = present_means(self.wallet.as_ref(), users.active());
                // D carries no kind of service: only the plan's rules for every kind
                // apply.
                let context = PaymentContext::of_request(request, None);
                let context = match named {
                    Some(means) => context.with_means(means),
                    None => context,
                };
                let choice = users
                    .choose_among(&context, limits, &present)
                    .map_err(|refusal| refusal.to_string())?;
                Ok(Decision {
                    means: choice.means,
                    ask: choice.confirmation == Confirmation::Explicit,
                    user: Some(users.active().id().clone()),
                })
            }
        }
    }

    /// The wallet the active user may sign with: the device's, and with a plan only
    /// when it is the active user's own ([`present_means`], as for payments).
    fn usable_wallet(&self) -> Option<&WalletSigner> {
        let wallet = self.wallet.as_ref()?;
        match &self.means {
            MeansChoice::Fixed(_) => Some(wallet),
            MeansChoice::Plan { users, .. } => present_means(Some(wallet), users.active())
                .contains(&Means::VirtualWallet)
                .then_some(wallet),
        }
    }

    /// Whether `request` is answered with the wallet key: the device has a wallet its
    /// active user may use and the front-end accepts the virtual wallet. Otherwise the
    /// card answers, as before the wallet existed.
    fn identifies_by_key(&self, request: &IdentificationRequest) -> bool {
        request.accepted_means.contains(&Means::VirtualWallet) && self.usable_wallet().is_some()
    }

    /// The identification's consent, then the key's signed statement or the card's
    /// zero-amount ARQC (claims 12, 16): the user is always asked.
    fn identify(
        &mut self,
        request: &IdentificationRequest,
        by_key: bool,
        now: Timestamp,
    ) -> Result<IdentityProof, String> {
        if !by_key && !request.accepted_means.contains(&Means::BankCard) {
            return Err(
                "the front-end does not accept the bank card for this identification".into(),
            );
        }
        let solicitation = Solicitation::Identification(request);
        if !self.user.confirm(solicitation) {
            return Err("the user declined the identification".into());
        }
        if by_key {
            let Some(wallet) = self.usable_wallet() else {
                return Err(no_wallet());
            };
            let signed = wallet
                .sign_identity(request, now)
                .map_err(|error| error.to_string())?;
            return Ok(IdentityProof::Key(signed));
        }
        let card_request = request.card_request();
        Ok(IdentityProof::Card(
            self.card_cryptogram(solicitation, &card_request)?,
        ))
    }

    /// The card read, the PIN verified by the card, and the card's ARQC over
    /// `card_request`; the user has agreed already.
    fn card_cryptogram(
        &mut self,
        solicitation: Solicitation<'_>,
        card_request: &PaymentRequest,
    ) -> Result<CardTransaction, String> {
        self.card.read().map_err(|error| error.to_string())?;
        let Some(pin) = self.user.pin(solicitation) else {
            return Err("no PIN was entered".into());
        };
        self.card.present_pin(&pin).map_err(|error| match error {
            CardModuleError::WrongPin { tries_left } => format!(
                "wrong PIN: {tries_left} {} left",
                if tries_left == 1 { "try" } else { "tries" }
            ),
            CardModuleError::PinBlocked => "the card is blocked (PIN try limit exceeded)".into(),
            other => other.to_string(),
        })?;
        drop(pin);
        self.card
            .authorise(card_request)
            .map_err(|error| error.to_string())
    }

    fn on_acknowledgement(&mut self, acknowledgement: &PayerAcknowledgement) {
        let Some(record) = self.payments.get_mut(&acknowledgement.payment) else {
            return;
        };
        if record.state != PaymentState::AwaitingAcknowledgement {
            // A repeated H, or an H for a declined payment: nothing to complete, and
            // nothing to count again.
            return;
        }
        let Some(paid) = &record.paid else {
            return;
        };
        let authorised = acknowledgement.verdict.is_positive();
        record.state = match paid.means {
            Means::VirtualWallet => PaymentState::WalletSettled { authorised },
            Means::BankCard => {
                match complete_own(&mut self.card, &record.answer, &acknowledgement.verdict) {
                    Ok(completion) => PaymentState::Completed(completion),
                    Err(why) => PaymentState::CompletionFailed(why),
                }
            }
        };
        // The verdict decides whether the payment is made, whatever the card's second
        // GENERATE AC answered: the acquirer has authorised (or not) the amount.
        if let (Some(id), MeansChoice::Plan { users, .. }) = (&paid.user, &mut self.means) {
            let payment = SessionPayment {
                payment: acknowledgement.payment.clone(),
                means: paid.means,
                amount: paid.amount,
                outcome: if authorised {
                    PaymentOutcome::Completed
                } else {
                    PaymentOutcome::Refused
                },
            };
            record.counted = users
                .totals_mut(id.as_str())
                .map(|totals| totals.record(&payment));
        }
    }
}

/// Completes, with `verdict`, the card transaction of what the device sent in `sent` (a
/// payment's E, or an identification's proof) — only if it is the one the card waits to
/// complete: an answer to an earlier payment or identification, come too late, must not
/// end a later one.
fn complete_own<C: CardChannel>(
    card: &mut CardModule<C>,
    sent: &Envelope,
    verdict: &Verdict,
) -> Result<Completion, String> {
    let atc = match &sent.message {
        Message::Transaction(transaction) => transaction.means.card().map(|card| card.atc),
        Message::IdentificationProof(proof) => match &proof.proof {
            IdentityProof::Card(card) => Some(card.atc),
            _ => None,
        },
        _ => None,
    };
    match (atc, card.awaiting_completion()) {
        (Some(own), Some(awaited)) if own == awaited => {
            card.complete(verdict).map_err(|error| error.to_string())
        }
        (Some(own), Some(other)) => Err(format!(
            "the card waits to complete transaction {other}, not {own}: another one followed"
        )),
        (Some(own), None) => Err(format!(
            "the card does not wait to complete transaction {own}: its transaction is over"
        )),
        (None, _) => Err("the card made no cryptogram for it".into()),
    }
}

/// Why a wallet payment cannot be made on a device without a wallet.
fn no_wallet() -> String {
    format!(
        "this payer device has no {}: no wallet key was unlocked",
        means_name(Means::VirtualWallet)
    )
}
