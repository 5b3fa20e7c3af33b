//! A purchase log for people: one decoded line per message, and a Mermaid sequence
//! diagram of the same exchanges. PANs are masked; nothing secret is in a message.

use std::fmt::Write as _;

use crate::acquirer::wallet::SignedWalletPayment;
use crate::emv::mask_pan;
use crate::messages::{
    AccountBalance, CustomerId, Delivery, DisputeDecision, IdentificationId, IdentityProof,
    Message, Money, Party, Payment, PaymentService, Verdict,
};

use super::{Fate, PurchaseLog};

/// The log as text: one line per message, `step  from → to  summary`, lost messages
/// marked, ignored ones followed by the addressee's note.
pub fn text(log: &PurchaseLog) -> String {
    // Fig. 6's letters fit in 8 columns; the service messages' names widen the column.
    let width = log
        .entries
        .iter()
        .map(|entry| entry.envelope.message.step().len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = String::new();
    for entry in &log.entries {
        let envelope = &entry.envelope;
        let lost = match entry.fate {
            Fate::Delivered => "",
            Fate::Dropped => " [lost]",
        };
        let _ = writeln!(
            out,
            "{:<width$} {} → {}{lost}: {}",
            envelope.message.step(),
            envelope.from,
            envelope.to,
            summary(&envelope.message)
        );
        if let Some(note) = &entry.note {
            let _ = writeln!(out, "         ({note})");
        }
    }
    out
}

/// One message in a line.
pub fn summary(message: &Message) -> String {
    match message {
        Message::ServiceRequest(m) => format!(
            "service request {}: {} of {}{}{}",
            m.request,
            m.service,
            m.provider,
            if m.delivery_address.is_some() {
                ", with a delivery address"
            } else {
                ""
            },
            payment_service(m.payment_service.as_ref())
        ),
        Message::QuoteRequest(m) => format!(
            "quote request for {}: {}{}",
            m.purchase,
            m.service,
            payment_service(m.payment_service.as_ref())
        ),
        Message::Quote(m) => format!(
            "quote {}: \"{}\" ({}), {}, valid until {}{}",
            m.quote,
            m.static_info.designation,
            m.static_info.kind.name(),
            m.variable.price,
            m.validity.valid_until,
            if m.service_enclosed.is_some() {
                ", service enclosed (Fig. 7)"
            } else {
                ""
            }
        ),
        Message::Unavailable(m) => {
            format!("{} unavailable for {}: {}", m.service, m.purchase, m.reason)
        }
        Message::PaymentRequest(m) => format!(
            "payment request {}: {} to {} for \"{}\" (designation digest {}), nonce {}, valid until {}",
            m.payment,
            m.amount,
            m.merchant,
            m.designation,
            hex::encode_upper(m.designation_digest),
            hex::encode_upper(m.nonce),
            m.valid_until
        ),
        Message::Transaction(m) => format!("transaction for {}: {}", m.payment, payment(&m.means)),
        Message::PaymentDeclined(m) => format!("payment {} declined: {}", m.payment, m.reason),
        Message::AcquirerTransaction(m) => format!(
            "transaction for {} to {} for merchant {}: {}{}",
            m.transaction.payment,
            m.acquirer,
            m.merchant,
            payment(&m.transaction.means),
            m.provision
                .as_ref()
                .map(|asked| format!(", provision {} of {} asked", asked.segment, asked.amount))
                .unwrap_or_default()
        ),
        Message::Acknowledgement(m) => format!(
            "{} for {}{}",
            verdict(&m.verdict),
            m.payment,
            m.provision
                .as_ref()
                .map(|grant| format!(
                    ", provision {} of {} reserved (sequences above {})",
                    grant.segment, grant.amount, grant.sequence_floor
                ))
                .unwrap_or_default()
        ),
        Message::PayerAcknowledgement(m) => format!("{} for {}", verdict(&m.verdict), m.payment),
        Message::ServiceOrder(m) => format!(
            "service order for {} on quote {}{}",
            m.service,
            m.quote,
            m.customer
                .as_ref()
                .map(|customer| format!(", for customer {customer}"))
                .unwrap_or_default()
        ),
        Message::ServiceDelivery(m) => format!("{}: {}", m.service, delivery(&m.delivery)),
        Message::ClientDelivery(m) => format!(
            "{} for request {}, paid {}: {}",
            m.service,
            m.request,
            m.paid,
            delivery(&m.delivery)
        ),
        Message::PurchaseOutcome(m) => format!("request {} ended: {}", m.request, m.failure),
        Message::Reversal(m) => format!("reversal of {}: {}", m.payment, m.reason),
        Message::IdentificationRequest(m) => format!(
            "identification {} for \"{}\", nonce {}",
            m.identification,
            m.purpose,
            hex::encode_upper(m.nonce)
        ),
        Message::IdentificationProof(m) => {
            format!(
                "proof for {}: {}",
                m.identification,
                identity_proof(&m.proof)
            )
        }
        Message::IdentificationDeclined(m) => {
            format!("identification {} declined: {}", m.identification, m.reason)
        }
        Message::IdentityCheck(m) => format!(
            "check of {} at {}: {}",
            m.request.identification,
            m.acquirer,
            identity_proof(&m.proof.proof)
        ),
        Message::IdentityVerdict(m) => identity(&m.identification, &m.verdict, &m.customer),
        Message::IdentificationResult(m) => identity(&m.identification, &m.verdict, &m.customer),
        Message::SessionEnd(m) => format!("end of session {}", m.session),
        Message::StopService(m) => format!("stop {}", m.purchase),
        Message::ServiceStopped(m) => format!(
            "{} stopped after {} unit(s), {} paid: {}",
            m.service, m.units, m.paid, m.reason
        ),
        Message::SessionSettlement(m) => format!(
            "settlement of {} at {}: {} payment(s), {}",
            m.segment,
            m.acquirer,
            m.payments.len(),
            sum_of(&m.payments)
        ),
        Message::SettlementResult(m) => format!(
            "{} settled: {} payment(s) debited, {}, {} released{}",
            m.segment,
            m.settled,
            m.debited,
            m.released,
            if m.refused.is_empty() {
                String::new()
            } else {
                format!(
                    ", refused: {}",
                    m.refused
                        .iter()
                        .map(|(payment, why)| format!("{payment} ({why})"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
        Message::SessionClosed(m) => format!(
            "session {} closed: {} wallet payment(s), {}{}",
            m.session,
            m.payments,
            m.debited
                .map(|debited| format!("{debited} debited"))
                .unwrap_or_else(|| "nothing debited".into()),
            if m.settled {
                ""
            } else {
                ", settlement pending"
            }
        ),
        Message::Dispute(m) => format!(
            "dispute {} of {} ({}): \"{}\", signed by wallet {} at {}",
            m.dispute,
            m.payment,
            crate::terminal::plan::means_name(m.means),
            m.reason,
            m.signed.statement.account.fingerprint(),
            m.signed.statement.time
        ),
        Message::DisputeCase(m) => format!(
            "dispute {} of {} to {} for merchant {}",
            m.dispute.dispute, m.dispute.payment, m.acquirer, m.merchant
        ),
        Message::DisputeOutcome(m) => format!(
            "dispute {}: {}",
            m.dispute,
            match &m.outcome {
                DisputeDecision::Accepted { case } => {
                    format!("accepted for review as case {case} (not a refund)")
                }
                DisputeDecision::Rejected { reason } => format!("rejected: {reason}"),
                DisputeDecision::Unanswered => format!(
                    "{} did not answer in time",
                    m.acquirer
                        .as_ref()
                        .map_or_else(|| "the acquirer".to_owned(), ToString::to_string)
                ),
            }
        ),
        Message::PaymentAbandoned(m) => format!(
            "{} abandoned: the front-end went away before H; the card declined with AAC {} \
             (ATC {})",
            m.transaction.payment,
            hex::encode_upper(m.decline.cryptogram),
            m.transaction
                .means
                .card()
                .map_or_else(|| "none".to_owned(), |card| card.atc.to_string())
        ),
        Message::AbandonmentResult(m) => format!("{} {}", m.payment, m.outcome),
    }
}

/// A proof of identity: the card's cryptogram as a payment's, or the key's statement.
fn identity_proof(proof: &IdentityProof) -> String {
    match proof {
        IdentityProof::Card(card) => payment(&Payment::BankCard(card.clone())),
        IdentityProof::Key(signed) => format!(
            "wallet key {} (customer {}), signed at {}, signature {}…",
            signed.statement.account.fingerprint(),
            crate::acquirer::wallet::identity::customer_id(&signed.statement.account),
            signed.statement.time,
            hex::encode_upper(signed.signature.get(..8).unwrap_or_default())
        ),
    }
}

/// The sum of signed payments, written with its currency ("nothing" when empty).
fn sum_of(payments: &[SignedWalletPayment]) -> String {
    let Some(first) = payments.first() else {
        return "nothing".into();
    };
    let currency = first.payment.amount.currency;
    let minor = payments
        .iter()
        .map(|signed| signed.payment.amount.minor)
        .fold(0u64, u64::saturating_add);
    Money::new(minor, currency).to_string()
}

fn payment_service(service: Option<&PaymentService>) -> String {
    match service {
        Some(PaymentService::Bill { reference }) => format!(", bill {reference}"),
        Some(PaymentService::Reload { account, amount }) => {
            format!(", reload of account {account} by {amount}")
        }
        None => String::new(),
    }
}

fn identity(
    identification: &IdentificationId,
    verdict: &Verdict,
    customer: &Option<CustomerId>,
) -> String {
    match (verdict, customer) {
        (Verdict::Positive { arpc, .. }, Some(customer)) => format!(
            "{identification}: identified as customer {customer}{}",
            arpc.map(|arpc| format!(", ARPC {}", hex::encode_upper(arpc)))
                .unwrap_or_default()
        ),
        _ => format!("{identification}: {}", self::verdict(verdict)),
    }
}

fn payment(payment: &Payment) -> String {
    match payment {
        Payment::BankCard(card) => format!(
            "bank card {} PSN {:02}, ATC {}, CID {:02X}, cryptogram {}, UN {}{}",
            mask_pan(&card.pan),
            card.pan_sequence,
            card.atc,
            card.cid,
            hex::encode_upper(card.cryptogram),
            hex::encode_upper(card.unpredictable_number),
            if card.pin_verified {
                ", PIN verified by the card"
            } else {
                ""
            }
        ),
        Payment::VirtualWallet(signed) => format!(
            "wallet {}, sequence {}, {} signed at {}, signature {}…",
            signed.payment.account.fingerprint(),
            signed.payment.sequence,
            signed.payment.amount,
            signed.payment.time,
            hex::encode_upper(signed.signature.get(..8).unwrap_or_default())
        ),
    }
}

fn verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Positive {
            authorisation_code,
            arpc,
            ..
        } => format!(
            "positive, authorisation {authorisation_code}{}",
            arpc.map(|arpc| format!(", ARPC {}", hex::encode_upper(arpc)))
                .unwrap_or_default()
        ),
        Verdict::Negative {
            reason,
            response_code,
            ..
        } => format!(
            "negative ({}): {reason}",
            String::from_utf8_lossy(response_code)
        ),
    }
}

fn delivery(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Content {
            media_type,
            bytes,
            sha256,
        } => format!(
            "{media_type}, {} bytes, SHA-256 {}",
            bytes.len(),
            hex::encode_upper(sha256)
        ),
        Delivery::Order { order, address } => format!(
            "order {order}, to {} in {} ({})",
            address.name, address.town, address.country
        ),
        Delivery::Receipt {
            receipt,
            reference,
            amount,
            balance,
            customer,
        } => format!(
            "receipt {receipt}: {amount} to {reference}{}{}",
            match balance {
                Some(AccountBalance::Credit(credit)) => format!(", credit now {credit}"),
                Some(AccountBalance::Owed(owed)) => format!(", still owed {owed}"),
                None => String::new(),
            },
            customer
                .as_ref()
                .map(|customer| format!(", paid by customer {customer}"))
                .unwrap_or_default()
        ),
    }
}

/// The log as a Mermaid sequence diagram (`sequenceDiagram`), one arrow per message, a
/// crossed arrow for a lost one.
pub fn mermaid(log: &PurchaseLog) -> String {
    let mut parties: Vec<Party> = Vec::new();
    for entry in &log.entries {
        for party in [&entry.envelope.from, &entry.envelope.to] {
            if !parties.contains(party) {
                parties.push(party.clone());
            }
        }
    }
    // The patent's left-to-right order: terminal, front-end, servers, acquirers.
    parties.sort_by_key(|party| match party {
        Party::Client(_) => 0,
        Party::Payer(_) => 1,
        Party::FrontEnd => 2,
        Party::Server(_) => 3,
        Party::Acquirer(_) => 4,
    });
    let mut out = String::from("sequenceDiagram\n");
    for (index, party) in parties.iter().enumerate() {
        let _ = writeln!(
            out,
            "    participant P{index} as {}",
            mermaid_text(&party.to_string())
        );
    }
    let alias = |party: &Party| {
        parties
            .iter()
            .position(|candidate| candidate == party)
            .map(|index| format!("P{index}"))
            .unwrap_or_default()
    };
    for entry in &log.entries {
        let envelope = &entry.envelope;
        let arrow = match entry.fate {
            Fate::Delivered => "->>",
            Fate::Dropped => "-x",
        };
        let label = match envelope.message {
            Message::PurchaseOutcome(ref outcome) => format!("outcome: {}", outcome.failure),
            // Fig. 6's steps are letters; the messages it does not draw go by name.
            ref other if other.step().len() == 1 => {
                format!("{} {}", other.step(), short_name(other))
            }
            ref other => short_name(other).to_owned(),
        };
        let _ = writeln!(
            out,
            "    {}{arrow}{}: {}",
            alias(&envelope.from),
            alias(&envelope.to),
            mermaid_text(&label)
        );
    }
    out
}

/// What each message is called on a diagram arrow.
fn short_name(message: &Message) -> &'static str {
    match message {
        Message::ServiceRequest(_) => "service request",
        Message::QuoteRequest(_) => "quote request",
        Message::Quote(_) => "quote",
        Message::Unavailable(_) => "service unavailable",
        Message::PaymentRequest(_) => "payment request",
        Message::Transaction(_) => "transaction",
        Message::PaymentDeclined(_) => "payment declined",
        Message::AcquirerTransaction(_) => "transaction",
        Message::Acknowledgement(m) => acknowledgement_name(&m.verdict),
        Message::PayerAcknowledgement(m) => acknowledgement_name(&m.verdict),
        Message::ServiceOrder(_) => "service order",
        Message::ServiceDelivery(_) => "service",
        Message::ClientDelivery(_) => "service",
        Message::PurchaseOutcome(_) => "outcome",
        Message::Reversal(_) => "reversal",
        Message::IdentificationRequest(_) => "identification request",
        Message::IdentificationProof(_) => "proof of identity",
        Message::IdentificationDeclined(_) => "identification declined",
        Message::IdentityCheck(_) => "identity check",
        Message::IdentityVerdict(m) => {
            if m.verdict.is_positive() {
                "identity confirmed"
            } else {
                "identity refused"
            }
        }
        Message::IdentificationResult(_) => "identification result",
        Message::SessionEnd(_) => "end of session",
        Message::StopService(_) => "stop",
        Message::ServiceStopped(_) => "service stopped",
        Message::SessionSettlement(_) => "settlement",
        Message::SettlementResult(_) => "settled",
        Message::SessionClosed(_) => "session closed",
        Message::Dispute(_) => "dispute",
        Message::DisputeCase(_) => "dispute case",
        Message::DisputeOutcome(_) => "dispute outcome",
        Message::PaymentAbandoned(_) => "payment abandoned",
        Message::AbandonmentResult(_) => "abandonment result",
    }
}

fn acknowledgement_name(verdict: &Verdict) -> &'static str {
    if verdict.is_positive() {
        "positive acknowledgement"
    } else {
        "negative acknowledgement"
    }
}

/// Mermaid treats `;` and `#` specially in labels; keep them out.
fn mermaid_text(text: &str) -> String {
    text.replace(';', ",").replace('#', "no. ")
}
