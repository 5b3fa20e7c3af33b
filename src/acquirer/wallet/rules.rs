//! The Virtual Wallet's rules (claim 10), pure functions over values: an account's
//! state and a request in, a [`Refusal`] or the account's next state out. No clock, no
//! storage: [`super::WalletStore`] loads the state, applies the rule and stores what it
//! returns in one transaction.
//!
//! - a payment ([`decide_payment`]): signature, currency, amount, sequence, balance;
//! - a credit ([`apply_credit`]): the account's reload;
//! - a provision for incremental payment ([`reserve`], or [`open_provision`] when the
//!   session's first payment, signed, authenticates it) and its settlement
//!   ([`settle`]), whose per-payment check ([`ProvisionTally`]) is also what the
//!   front-end runs on each payment of the session before delivering.

use crate::messages::identifier;
use crate::messages::{Currency, MerchantId, Money, PaymentId};

use super::encoding::{AccountKey, SignedWalletPayment};

/// The largest amount, balance and sequence the wallet takes: the store keeps them as
/// SQLite's signed 64-bit integers.
pub const MAX_VALUE: u64 = i64::MAX as u64;

/// The front-end's name for a provision of an incremental-payment session: the
/// provision reserved and its settlement are keyed by it.
pub use crate::messages::SessionId;
identifier!(
    /// The reference of a credit (an account reload): a credit repeated with the same
    /// reference is the same credit.
    CreditReference
);

/// What the acquirer knows of an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountState {
    /// The account.
    pub key: AccountKey,
    /// The currency every amount of the account is in.
    pub currency: Currency,
    /// The balance, minor units; never negative.
    pub balance: u64,
    /// The part of the balance reserved by open provisions; at most the balance.
    pub reserved: u64,
    /// The sequence of the last payment accepted, 0 before the first: the next must
    /// carry a greater one.
    pub last_sequence: u64,
}

impl AccountState {
    /// A new account, empty.
    pub fn new(key: AccountKey, currency: Currency) -> AccountState {
        AccountState {
            key,
            currency,
            balance: 0,
            reserved: 0,
            last_sequence: 0,
        }
    }

    /// What a payment or a reservation may take: the balance less the provisions.
    pub fn available(&self) -> u64 {
        self.balance.saturating_sub(self.reserved)
    }
}

/// Why the wallet refuses a request. Every variant names the request (payment, credit
/// reference or session) and says what was expected against what came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The account is not known to the acquirer.
    #[error("{request}: account {account} is unknown")]
    UnknownAccount {
        /// The payment, credit or session.
        request: String,
        /// The account's fingerprint.
        account: String,
    },
    /// The request is for another account than the state given (a caller's mistake).
    #[error("{request}: for account {received}, the state given is account {expected}")]
    OtherAccount {
        /// The payment, credit or session.
        request: String,
        /// The account of the state.
        expected: String,
        /// The account of the request.
        received: String,
    },
    /// The signature does not verify, or the payment cannot be encoded.
    #[error("{0}")]
    Signature(#[from] super::encoding::WalletError),
    /// The amount is in another currency than the account's.
    #[error(
        "{request}: amount in currency {}, the account is in {}",
        received.alpha(),
        expected.alpha()
    )]
    WrongCurrency {
        /// The payment, credit or session.
        request: String,
        /// The account's currency.
        expected: Currency,
        /// The request's.
        received: Currency,
    },
    /// The amount is zero.
    #[error("{request}: the amount is zero")]
    ZeroAmount {
        /// The payment, credit or session.
        request: String,
    },
    /// The amount or the sequence is beyond what the store holds.
    #[error("{request}: {field} {value} is above {MAX_VALUE}")]
    OutOfRange {
        /// The payment, credit or session.
        request: String,
        /// `amount` or `sequence`.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// The sequence is not above the account's last: a replay, or a payment signed
    /// before one already accepted.
    #[error("payment {payment}: sequence {sequence}, the account's last accepted is {last}")]
    StaleSequence {
        /// The payment.
        payment: PaymentId,
        /// Its sequence.
        sequence: u64,
        /// The account's last.
        last: u64,
    },
    /// The balance less the provisions does not cover the amount.
    #[error("{request}: {amount} asked, {available} available")]
    InsufficientFunds {
        /// The payment or session.
        request: String,
        /// The amount asked.
        amount: Money,
        /// What the account can give.
        available: Money,
    },
    /// A credit would take the balance above [`MAX_VALUE`].
    #[error("credit {reference}: the balance {balance} plus {amount} exceeds {MAX_VALUE}")]
    BalanceOverflow {
        /// The credit.
        reference: CreditReference,
        /// The balance before.
        balance: u64,
        /// The credit's amount.
        amount: u64,
    },
    /// A credit reference already used for another account or amount.
    #[error("credit {reference}: the reference was used for another credit")]
    CreditReferenceReused {
        /// The credit.
        reference: CreditReference,
    },
    /// A session already used for another reservation.
    #[error("session {session}: already reserved for another account, merchant or amount")]
    SessionReused {
        /// The session.
        session: SessionId,
    },
    /// The provision was already settled.
    #[error("session {session}: the provision is already settled")]
    SessionSettled {
        /// The session.
        session: SessionId,
    },
    /// No provision was reserved for the session.
    #[error("session {session}: no provision was reserved for it")]
    UnknownSession {
        /// The session.
        session: SessionId,
    },
    /// A payment of a session names another merchant than the one the provision is
    /// for.
    #[error(
        "session {session}: payment {payment} pays merchant {received}, the provision is for {expected}"
    )]
    OtherMerchant {
        /// The session.
        session: SessionId,
        /// The payment.
        payment: PaymentId,
        /// The provision's merchant.
        expected: MerchantId,
        /// The payment's.
        received: MerchantId,
    },
    /// A payment of a session does not come after the previous one admitted.
    #[error("session {session}: payment {payment} has sequence {sequence}, not above {previous}")]
    SequenceNotIncreasing {
        /// The session.
        session: SessionId,
        /// The payment.
        payment: PaymentId,
        /// Its sequence.
        sequence: u64,
        /// The previous one's (or the account's last, for the first).
        previous: u64,
    },
    /// A payment would take the session's total above its provision.
    #[error(
        "session {session}: payment {payment} takes the total to {total}, above the provision of {provision}"
    )]
    ProvisionExceeded {
        /// The session.
        session: SessionId,
        /// The payment.
        payment: PaymentId,
        /// The total with it.
        total: Money,
        /// The provision.
        provision: Money,
    },
    /// The payment (or its sequence) already opened a provision: an opening payment
    /// is settled with its session, never paid again nor used to open another.
    #[error("payment {payment}: sequence {sequence} already opened session {session}")]
    OpeningReplayed {
        /// The payment.
        payment: PaymentId,
        /// Its sequence.
        sequence: u64,
        /// The session it opened.
        session: SessionId,
    },
    /// Another payment of the account was already debited with this sequence: a
    /// sequence pays once, whichever session or payment carries it.
    #[error("payment {payment}: sequence {sequence} was already used by a payment of the account")]
    SequenceUsed {
        /// The payment.
        payment: PaymentId,
        /// Its sequence.
        sequence: u64,
    },
    /// The front-end reversed the payment (cancelled it): it is never debited after.
    #[error("payment {payment}: the front-end reversed it")]
    Reversed {
        /// The payment.
        payment: PaymentId,
    },
    /// The payment's identifier names another payment already kept (another account
    /// or sequence): an identifier names one payment, which a reversal can then find.
    #[error("payment {payment}: the identifier names another payment already kept")]
    PaymentIdReused {
        /// The payment.
        payment: PaymentId,
    },
}

/// A payment accepted: the account's next state and what was debited.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The account after the debit.
    pub state: AccountState,
    /// The amount debited.
    pub debited: Money,
}

/// Refuses a request for another account than `state`'s.
fn same_account(state: &AccountState, request: &str, key: &AccountKey) -> Result<(), Refusal> {
    if &state.key == key {
        Ok(())
    } else {
        Err(Refusal::OtherAccount {
            request: request.to_owned(),
            expected: state.key.fingerprint(),
            received: key.fingerprint(),
        })
    }
}

/// Refuses an amount of another currency, zero or beyond [`MAX_VALUE`].
fn check_amount(state: &AccountState, request: &str, amount: Money) -> Result<(), Refusal> {
    if amount.currency != state.currency {
        return Err(Refusal::WrongCurrency {
            request: request.to_owned(),
            expected: state.currency,
            received: amount.currency,
        });
    }
    if amount.minor == 0 {
        return Err(Refusal::ZeroAmount {
            request: request.to_owned(),
        });
    }
    if amount.minor > MAX_VALUE {
        return Err(Refusal::OutOfRange {
            request: request.to_owned(),
            field: "amount",
            value: amount.minor,
        });
    }
    Ok(())
}

/// Decides a payment against its account's state, in this order:
///
/// 1. the payment is for this account;
/// 2. the signature verifies: first, so that nobody without the key learns anything of
///    the account (its currency, its sequence, whether it can pay an amount) from
///    the refusals;
/// 3. the amount is in the account's currency, above zero, within [`MAX_VALUE`];
/// 4. the sequence is above the account's last (replays and re-orderings refused);
/// 5. the balance less the provisions covers the amount.
///
/// Accepted, the account's balance drops by the amount and its last sequence becomes
/// the payment's.
pub fn decide_payment(
    state: &AccountState,
    signed: &SignedWalletPayment,
) -> Result<Decision, Refusal> {
    let payment = &signed.payment;
    let request = format!("payment {}", payment.payment);
    same_account(state, &request, &payment.account)?;
    signed.verify()?;
    check_amount(state, &request, payment.amount)?;
    check_sequence(state, payment.payment.clone(), payment.sequence)?;
    let available = state.available();
    if payment.amount.minor > available {
        return Err(Refusal::InsufficientFunds {
            request,
            amount: payment.amount,
            available: Money::new(available, state.currency),
        });
    }
    let mut next = state.clone();
    // Cannot underflow: the amount is at most the available part of the balance.
    next.balance = state.balance.saturating_sub(payment.amount.minor);
    next.last_sequence = payment.sequence;
    Ok(Decision {
        state: next,
        debited: payment.amount,
    })
}

fn check_sequence(state: &AccountState, payment: PaymentId, sequence: u64) -> Result<(), Refusal> {
    if sequence > MAX_VALUE {
        return Err(Refusal::OutOfRange {
            request: format!("payment {payment}"),
            field: "sequence",
            value: sequence,
        });
    }
    if sequence <= state.last_sequence {
        return Err(Refusal::StaleSequence {
            payment,
            sequence,
            last: state.last_sequence,
        });
    }
    Ok(())
}

/// A credit: an account reload, by a reference that makes it idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Credit {
    /// The reference (a bank transfer's, a voucher's...).
    pub reference: CreditReference,
    /// The account credited.
    pub account: AccountKey,
    /// How much.
    pub amount: Money,
}

/// The account's state after `credit`: its currency, an amount above zero, a balance
/// that stays within [`MAX_VALUE`]. Whether the reference was already used is the
/// store's to know.
pub fn apply_credit(state: &AccountState, credit: &Credit) -> Result<AccountState, Refusal> {
    let request = format!("credit {}", credit.reference);
    same_account(state, &request, &credit.account)?;
    check_amount(state, &request, credit.amount)?;
    let balance = state
        .balance
        .checked_add(credit.amount.minor)
        .filter(|balance| *balance <= MAX_VALUE)
        .ok_or_else(|| Refusal::BalanceOverflow {
            reference: credit.reference.clone(),
            balance: state.balance,
            amount: credit.amount.minor,
        })?;
    Ok(AccountState {
        balance,
        ..state.clone()
    })
}

/// A request to reserve a provision for an incremental-payment session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// The session.
    pub session: SessionId,
    /// The account reserved on.
    pub account: AccountKey,
    /// The merchant whose front-end runs the session: only its payments settle.
    pub merchant: MerchantId,
    /// How much.
    pub amount: Money,
}

/// Where a provision is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProvisionState {
    /// Reserved on the account, waiting for the session's payments.
    Open,
    /// Settled: its payments debited, the rest released.
    Settled,
}

impl ProvisionState {
    /// The name the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionState::Open => "open",
            ProvisionState::Settled => "settled",
        }
    }
}

/// A provision: part of an account's balance set aside for one session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provision {
    /// The reservation it answers.
    pub reservation: Reservation,
    /// The account's last sequence when it was reserved: the session's payments come
    /// after it.
    pub sequence_floor: u64,
    /// Where it is.
    pub state: ProvisionState,
}

/// Reserves a provision on the account when what is available covers it: the amount
/// moves from available to reserved (the balance is unchanged).
pub fn reserve(
    state: &AccountState,
    reservation: &Reservation,
) -> Result<(AccountState, Provision), Refusal> {
    let request = format!("session {}", reservation.session);
    same_account(state, &request, &reservation.account)?;
    check_amount(state, &request, reservation.amount)?;
    let available = state.available();
    if reservation.amount.minor > available {
        return Err(Refusal::InsufficientFunds {
            request,
            amount: reservation.amount,
            available: Money::new(available, state.currency),
        });
    }
    let mut next = state.clone();
    // Cannot exceed the balance: the amount is at most the available part.
    next.reserved = state.reserved.saturating_add(reservation.amount.minor);
    Ok((
        next,
        Provision {
            reservation: reservation.clone(),
            sequence_floor: state.last_sequence,
            state: ProvisionState::Open,
        },
    ))
}

/// Opens a provision with the session's first payment, signed by the account's key:
/// what authenticates the reservation (whoever can only call [`reserve`] could lock a
/// balance, not spend it; this needs the key). The checks run in this order:
///
/// 1. the payment is for this account, and so is the reservation;
/// 2. the signature verifies: first, as for [`decide_payment`], so that nobody without
///    the key learns the account's currency, sequence or balance from the refusals;
/// 3. the payment pays the reservation's merchant;
/// 4. the payment's amount is in the account's currency, above zero, within
///    [`MAX_VALUE`];
/// 5. its sequence is above the account's last (a replay is refused);
/// 6. the reservation's amount is in the account's currency, above zero, and covers
///    the payment;
/// 7. what is available covers the payment; the provision reserved is the amount asked,
///    or what is available when that is less ([`reserve`]): the front-end asks for a
///    standard provision without knowing the balance, and a session on an account
///    holding less still opens, its payments limited to what the account has.
///
/// The payment is **not** debited: it is the session's first, settled with the others
/// ([`settle`]). The provision's floor is the account's last sequence, below the
/// payment's, so the front-end's [`ProvisionTally`] admits it first. Whether the
/// payment or its sequence already opened a provision is the store's to know.
pub fn open_provision(
    state: &AccountState,
    signed: &SignedWalletPayment,
    reservation: &Reservation,
) -> Result<(AccountState, Provision), Refusal> {
    let payment = &signed.payment;
    let session = &reservation.session;
    let request = format!("session {session}: payment {}", payment.payment);
    same_account(state, &request, &payment.account)?;
    signed.verify()?;
    same_account(state, &format!("session {session}"), &reservation.account)?;
    if payment.merchant != reservation.merchant {
        return Err(Refusal::OtherMerchant {
            session: session.clone(),
            payment: payment.payment.clone(),
            expected: reservation.merchant.clone(),
            received: payment.merchant.clone(),
        });
    }
    check_amount(state, &request, payment.amount)?;
    check_sequence(state, payment.payment.clone(), payment.sequence)?;
    check_amount(state, &format!("session {session}"), reservation.amount)?;
    if payment.amount.minor > reservation.amount.minor {
        return Err(Refusal::ProvisionExceeded {
            session: session.clone(),
            payment: payment.payment.clone(),
            total: payment.amount,
            provision: reservation.amount,
        });
    }
    let available = state.available();
    if payment.amount.minor > available {
        return Err(Refusal::InsufficientFunds {
            request,
            amount: payment.amount,
            available: Money::new(available, state.currency),
        });
    }
    let granted = Reservation {
        amount: Money::new(
            reservation.amount.minor.min(available),
            reservation.amount.currency,
        ),
        ..reservation.clone()
    };
    reserve(state, &granted)
}

/// The running check of one session's payments against its provision: what the
/// front-end runs on each payment before delivering (signature, merchant, currency,
/// sequence above the previous, running total within the provision), and what
/// [`settle`] runs again at the acquirer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionTally {
    provision: Provision,
    previous: u64,
    total: u64,
}

impl ProvisionTally {
    /// A tally with nothing admitted yet; the first payment must come after `last`,
    /// the account's last sequence (the provision's floor at the front-end, the
    /// account's current one at settlement).
    pub fn new(provision: Provision, last: u64) -> ProvisionTally {
        ProvisionTally {
            previous: last.max(provision.sequence_floor),
            provision,
            total: 0,
        }
    }

    /// The total admitted.
    pub fn total(&self) -> Money {
        Money::new(self.total, self.provision.reservation.amount.currency)
    }

    /// The sequence of the last payment admitted (the floor before the first).
    pub fn last_sequence(&self) -> u64 {
        self.previous
    }

    /// What is left of the provision.
    pub fn remaining(&self) -> Money {
        let reservation = &self.provision.reservation;
        Money::new(
            reservation.amount.minor.saturating_sub(self.total),
            reservation.amount.currency,
        )
    }

    /// Admits `signed` into the session, or says why not (and admits nothing).
    pub fn admit(&mut self, signed: &SignedWalletPayment) -> Result<(), Refusal> {
        let reservation = &self.provision.reservation;
        let payment = &signed.payment;
        let session = reservation.session.clone();
        let request = format!("session {session}: payment {}", payment.payment);
        if payment.account != reservation.account {
            return Err(Refusal::OtherAccount {
                request,
                expected: reservation.account.fingerprint(),
                received: payment.account.fingerprint(),
            });
        }
        signed.verify()?;
        if payment.merchant != reservation.merchant {
            return Err(Refusal::OtherMerchant {
                session,
                payment: payment.payment.clone(),
                expected: reservation.merchant.clone(),
                received: payment.merchant.clone(),
            });
        }
        if payment.amount.currency != reservation.amount.currency {
            return Err(Refusal::WrongCurrency {
                request,
                expected: reservation.amount.currency,
                received: payment.amount.currency,
            });
        }
        if payment.amount.minor == 0 {
            return Err(Refusal::ZeroAmount { request });
        }
        if payment.sequence <= self.previous || payment.sequence > MAX_VALUE {
            return Err(Refusal::SequenceNotIncreasing {
                session,
                payment: payment.payment.clone(),
                sequence: payment.sequence,
                previous: self.previous,
            });
        }
        let total = self
            .total
            .checked_add(payment.amount.minor)
            .filter(|total| *total <= reservation.amount.minor);
        let Some(total) = total else {
            return Err(Refusal::ProvisionExceeded {
                session,
                payment: payment.payment.clone(),
                total: Money::new(
                    self.total.saturating_add(payment.amount.minor),
                    reservation.amount.currency,
                ),
                provision: reservation.amount,
            });
        };
        self.total = total;
        self.previous = payment.sequence;
        Ok(())
    }
}

/// A settlement: what a session's payments debited and what of the provision was
/// released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The session.
    pub session: SessionId,
    /// The account after the settlement.
    pub state: AccountState,
    /// The payments debited, in their order.
    pub settled: Vec<SignedWalletPayment>,
    /// The payments refused, each with why.
    pub refused: Vec<(PaymentId, Refusal)>,
    /// The sum of the payments debited.
    pub debited: Money,
    /// The part of the provision given back to the account.
    pub released: Money,
}

/// Settles an open provision with the session's payments: each is admitted in turn by
/// a [`ProvisionTally`] starting above the provision's floor (the account's last
/// sequence when it was reserved) — not the account's last sequence now, which another
/// provision of the account settled first, or a direct payment, may have moved past
/// payments this session's front-end already verified and delivered; a sequence used
/// twice is still refused, by the store, which keeps one payment per account and
/// sequence. Those admitted are
/// debited (exactly their sum), those refused are listed with why and the ones after
/// them still count, so a payment over the provision is refused while the earlier
/// ones settle. The provision leaves `reserved` whatever the outcome. A provision
/// already settled is the store's to answer (idempotence), not this rule's.
pub fn settle(
    state: &AccountState,
    provision: &Provision,
    payments: &[SignedWalletPayment],
) -> Result<Settlement, Refusal> {
    let reservation = &provision.reservation;
    if provision.state != ProvisionState::Open {
        return Err(Refusal::SessionSettled {
            session: reservation.session.clone(),
        });
    }
    same_account(
        state,
        &format!("session {}", reservation.session),
        &reservation.account,
    )?;
    let mut tally = ProvisionTally::new(provision.clone(), provision.sequence_floor);
    let mut settled = Vec::new();
    let mut refused = Vec::new();
    for signed in payments {
        match tally.admit(signed) {
            Ok(()) => settled.push(signed.clone()),
            Err(refusal) => refused.push((signed.payment.payment.clone(), refusal)),
        }
    }
    let debited = tally.total();
    let mut next = state.clone();
    // The provision was within the balance and the total within the provision, so
    // neither subtraction can go below zero; saturating keeps that true of bad input.
    next.reserved = state.reserved.saturating_sub(reservation.amount.minor);
    next.balance = state.balance.saturating_sub(debited.minor);
    next.last_sequence = tally.last_sequence().max(state.last_sequence);
    Ok(Settlement {
        session: reservation.session.clone(),
        state: next,
        settled,
        refused,
        debited,
        released: tally.remaining(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquirer::wallet::encoding::{WalletError, WalletPayment};
    use crate::messages::{ServiceId, Timestamp};
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    fn signer(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn account(seed: u8) -> AccountKey {
        AccountKey::new(signer(seed).verifying_key())
    }

    fn state(balance: u64, reserved: u64, last: u64) -> AccountState {
        AccountState {
            key: account(1),
            currency: Currency::EUR,
            balance,
            reserved,
            last_sequence: last,
        }
    }

    fn pay(id: &str, minor: u64, currency: Currency, sequence: u64) -> SignedWalletPayment {
        let key = signer(1);
        let payment = WalletPayment {
            account: account(1),
            merchant: MerchantId::from("FE-1"),
            service: ServiceId::from("news"),
            payment: PaymentId::from(id),
            amount: Money::new(minor, currency),
            sequence,
            time: Timestamp(1_795_651_200_000),
        };
        SignedWalletPayment::sign(payment, |m| key.sign(m)).unwrap()
    }

    fn eur(minor: u64) -> Money {
        Money::new(minor, Currency::EUR)
    }

    #[test]
    fn payments_are_decided_in_a_table() {
        let mut forged = pay("P-FORGED", 100, Currency::EUR, 6);
        forged.payment.amount = eur(1);
        let mut other = pay("P-OTHER", 100, Currency::EUR, 6);
        other.payment.account = account(2);
        let refused: [(SignedWalletPayment, AccountState, Refusal); 7] = [
            (
                forged.clone(),
                state(1000, 0, 5),
                Refusal::Signature(WalletError::BadSignature {
                    payment: PaymentId::from("P-FORGED"),
                    account: account(1).fingerprint(),
                }),
            ),
            (
                other,
                state(1000, 0, 5),
                Refusal::OtherAccount {
                    request: "payment P-OTHER".into(),
                    expected: account(1).fingerprint(),
                    received: account(2).fingerprint(),
                },
            ),
            (
                pay("P-USD", 100, Currency::USD, 6),
                state(1000, 0, 5),
                Refusal::WrongCurrency {
                    request: "payment P-USD".into(),
                    expected: Currency::EUR,
                    received: Currency::USD,
                },
            ),
            (
                pay("P-ZERO", 0, Currency::EUR, 6),
                state(1000, 0, 5),
                Refusal::ZeroAmount {
                    request: "payment P-ZERO".into(),
                },
            ),
            (
                pay("P-REPLAY", 100, Currency::EUR, 5),
                state(1000, 0, 5),
                Refusal::StaleSequence {
                    payment: PaymentId::from("P-REPLAY"),
                    sequence: 5,
                    last: 5,
                },
            ),
            (
                pay("P-BIG", 701, Currency::EUR, 6),
                state(1000, 300, 5),
                Refusal::InsufficientFunds {
                    request: "payment P-BIG".into(),
                    amount: eur(701),
                    available: eur(700),
                },
            ),
            (
                pay("P-SEQ", 1, Currency::EUR, u64::MAX),
                state(1000, 0, 5),
                Refusal::OutOfRange {
                    request: "payment P-SEQ".into(),
                    field: "sequence",
                    value: u64::MAX,
                },
            ),
        ];
        for (payment, state, expected) in refused {
            assert_eq!(
                decide_payment(&state, &payment),
                Err(expected.clone()),
                "{expected}"
            );
        }
        let accepted = decide_payment(&state(1000, 300, 5), &pay("P-OK", 700, Currency::EUR, 9));
        assert_eq!(
            accepted,
            Ok(Decision {
                state: state(300, 300, 9),
                debited: eur(700)
            })
        );
    }

    #[test]
    fn refusals_name_the_request() {
        let refusal =
            decide_payment(&state(10, 0, 0), &pay("P-7", 11, Currency::EUR, 1)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "payment P-7: 0.11 EUR asked, 0.10 EUR available"
        );
    }

    #[test]
    fn credits_add_to_the_balance_within_range() {
        let credit = |minor, currency| Credit {
            reference: CreditReference::from("R-1"),
            account: account(1),
            amount: Money::new(minor, currency),
        };
        assert_eq!(
            apply_credit(&state(5, 0, 0), &credit(10, Currency::EUR)),
            Ok(state(15, 0, 0))
        );
        assert_eq!(
            apply_credit(&state(MAX_VALUE, 0, 0), &credit(1, Currency::EUR)),
            Err(Refusal::BalanceOverflow {
                reference: CreditReference::from("R-1"),
                balance: MAX_VALUE,
                amount: 1
            })
        );
        assert_eq!(
            apply_credit(&state(5, 0, 0), &credit(10, Currency::JPY)),
            Err(Refusal::WrongCurrency {
                request: "credit R-1".into(),
                expected: Currency::EUR,
                received: Currency::JPY
            })
        );
    }

    fn reservation(minor: u64) -> Reservation {
        Reservation {
            session: SessionId::from("S-1"),
            account: account(1),
            merchant: MerchantId::from("FE-1"),
            amount: eur(minor),
        }
    }

    #[test]
    fn a_provision_reserves_what_is_available_and_settles_exactly_the_sum() {
        assert_eq!(
            reserve(&state(100, 60, 0), &reservation(41)),
            Err(Refusal::InsufficientFunds {
                request: "session S-1".into(),
                amount: eur(41),
                available: eur(40)
            })
        );
        let (reserved, provision) = reserve(&state(100, 0, 3), &reservation(50)).unwrap();
        assert_eq!(reserved, state(100, 50, 3));
        assert_eq!(provision.sequence_floor, 3);
        let payments = [
            pay("P-1", 20, Currency::EUR, 4),
            pay("P-2", 25, Currency::EUR, 5),
            pay("P-3", 10, Currency::EUR, 6),
            pay("P-4", 5, Currency::EUR, 7),
        ];
        let settlement = settle(&reserved, &provision, &payments).unwrap();
        assert_eq!(settlement.state, state(50, 0, 7));
        assert_eq!(settlement.debited, eur(50));
        assert_eq!(settlement.released, eur(0));
        let mut settled = provision.clone();
        settled.state = ProvisionState::Settled;
        assert_eq!(
            settle(&reserved, &settled, &payments),
            Err(Refusal::SessionSettled {
                session: SessionId::from("S-1")
            })
        );
        let ids: Vec<&str> = settlement
            .settled
            .iter()
            .map(|p| p.payment.payment.0.as_str())
            .collect();
        assert_eq!(ids, ["P-1", "P-2", "P-4"]);
        assert_eq!(
            settlement.refused,
            [(
                PaymentId::from("P-3"),
                Refusal::ProvisionExceeded {
                    session: SessionId::from("S-1"),
                    payment: PaymentId::from("P-3"),
                    total: eur(55),
                    provision: eur(50)
                }
            )]
        );
    }

    #[test]
    fn the_tally_refuses_out_of_order_and_foreign_payments() {
        let (_, provision) = reserve(&state(100, 0, 3), &reservation(50)).unwrap();
        let mut tally = ProvisionTally::new(provision, 3);
        let mut other_merchant = pay("P-M", 1, Currency::EUR, 9);
        other_merchant.payment.merchant = MerchantId::from("FE-2");
        let key = signer(1);
        let other_merchant =
            SignedWalletPayment::sign(other_merchant.payment, |m| key.sign(m)).unwrap();
        assert_eq!(tally.admit(&pay("P-1", 10, Currency::EUR, 5)), Ok(()));
        let cases = [
            (
                pay("P-0", 10, Currency::EUR, 5),
                Refusal::SequenceNotIncreasing {
                    session: SessionId::from("S-1"),
                    payment: PaymentId::from("P-0"),
                    sequence: 5,
                    previous: 5,
                },
            ),
            (
                other_merchant,
                Refusal::OtherMerchant {
                    session: SessionId::from("S-1"),
                    payment: PaymentId::from("P-M"),
                    expected: MerchantId::from("FE-1"),
                    received: MerchantId::from("FE-2"),
                },
            ),
        ];
        for (payment, expected) in cases {
            assert_eq!(tally.admit(&payment), Err(expected.clone()), "{expected}");
        }
        assert_eq!(
            (tally.total(), tally.remaining(), tally.last_sequence()),
            (eur(10), eur(40), 5)
        );
    }
    #[test]
    fn a_provision_is_what_is_available_when_less_than_asked() {
        // 0.50 EUR asked, 0.49 EUR available, a 0.10 EUR first payment: 0.49 reserved.
        let (next, provision) = open_provision(
            &state(100, 51, 5),
            &pay("P-1", 10, Currency::EUR, 6),
            &reservation(50),
        )
        .unwrap();
        assert_eq!(provision.reservation.amount, eur(49));
        assert_eq!(next.reserved, 100);
        assert_eq!(next.balance, 100);
    }

    #[test]
    fn a_provision_opens_with_its_signed_first_payment_in_a_table() {
        let mut forged = pay("P-FORGED", 10, Currency::EUR, 6);
        forged.payment.amount = eur(1);
        let mut other_merchant = pay("P-M", 10, Currency::EUR, 6).payment;
        other_merchant.merchant = MerchantId::from("FE-2");
        let other_merchant =
            SignedWalletPayment::sign(other_merchant, |m| signer(1).sign(m)).unwrap();
        let mut other_account = reservation(50);
        other_account.account = account(2);
        let mut usd_provision = reservation(50);
        usd_provision.amount = Money::new(50, Currency::USD);
        let session = || SessionId::from("S-1");
        // (first payment, reservation, the account's state, the refusal)
        let refused: [(SignedWalletPayment, Reservation, AccountState, Refusal); 10] = [
            (
                forged,
                reservation(50),
                state(100, 0, 5),
                Refusal::Signature(WalletError::BadSignature {
                    payment: PaymentId::from("P-FORGED"),
                    account: account(1).fingerprint(),
                }),
            ),
            (
                pay("P-1", 10, Currency::EUR, 6),
                other_account,
                state(100, 0, 5),
                Refusal::OtherAccount {
                    request: "session S-1".into(),
                    expected: account(1).fingerprint(),
                    received: account(2).fingerprint(),
                },
            ),
            (
                other_merchant,
                reservation(50),
                state(100, 0, 5),
                Refusal::OtherMerchant {
                    session: session(),
                    payment: PaymentId::from("P-M"),
                    expected: MerchantId::from("FE-1"),
                    received: MerchantId::from("FE-2"),
                },
            ),
            (
                pay("P-USD", 10, Currency::USD, 6),
                reservation(50),
                state(100, 0, 5),
                Refusal::WrongCurrency {
                    request: "session S-1: payment P-USD".into(),
                    expected: Currency::EUR,
                    received: Currency::USD,
                },
            ),
            (
                pay("P-ZERO", 0, Currency::EUR, 6),
                reservation(50),
                state(100, 0, 5),
                Refusal::ZeroAmount {
                    request: "session S-1: payment P-ZERO".into(),
                },
            ),
            (
                pay("P-REPLAY", 10, Currency::EUR, 5),
                reservation(50),
                state(100, 0, 5),
                Refusal::StaleSequence {
                    payment: PaymentId::from("P-REPLAY"),
                    sequence: 5,
                    last: 5,
                },
            ),
            (
                pay("P-1", 10, Currency::EUR, 6),
                usd_provision,
                state(100, 0, 5),
                Refusal::WrongCurrency {
                    request: "session S-1".into(),
                    expected: Currency::EUR,
                    received: Currency::USD,
                },
            ),
            (
                pay("P-1", 10, Currency::EUR, 6),
                reservation(0),
                state(100, 0, 5),
                Refusal::ZeroAmount {
                    request: "session S-1".into(),
                },
            ),
            (
                pay("P-BIG", 51, Currency::EUR, 6),
                reservation(50),
                state(100, 0, 5),
                Refusal::ProvisionExceeded {
                    session: session(),
                    payment: PaymentId::from("P-BIG"),
                    total: eur(51),
                    provision: eur(50),
                },
            ),
            (
                pay("P-1", 50, Currency::EUR, 6),
                reservation(60),
                state(100, 51, 5),
                Refusal::InsufficientFunds {
                    request: "session S-1: payment P-1".into(),
                    amount: eur(50),
                    available: eur(49),
                },
            ),
        ];
        for (first, reservation, state, expected) in refused {
            assert_eq!(
                open_provision(&state, &first, &reservation),
                Err(expected.clone()),
                "{expected}"
            );
        }
        // Accepted: reserved, not debited; the sequence is not spent either.
        let first = pay("P-1", 50, Currency::EUR, 9);
        let (next, provision) =
            open_provision(&state(100, 0, 5), &first, &reservation(50)).unwrap();
        assert_eq!(next, state(100, 50, 5));
        assert_eq!(provision.sequence_floor, 5);
        assert_eq!(provision.state, ProvisionState::Open);
        // The front-end's tally, from the grant's floor, admits the first payment first.
        let mut tally = ProvisionTally::new(provision.clone(), provision.sequence_floor);
        assert_eq!(tally.admit(&first), Ok(()));
        assert_eq!(tally.remaining(), eur(0));
    }
}
