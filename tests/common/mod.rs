//! Helpers shared by the integration tests (each test file that needs them declares
//! `mod common;`).

// Each test file uses the part it needs; the rest is unused there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod postgres;
pub mod wallet;

/// A directory under the system's temporary directory, unique to this process and
/// call, removed with everything in it when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory whose name starts `telepay-NAME-`.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "telepay-{name}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `telepay ARGS` as a user runs it, on the data directory `data` only (no
/// `XDG_DATA_HOME`, no `TELEPAY_READER` from the environment), `stdin` as its standard
/// input, the key store's key derivation at its test cost: what the process left.
pub fn telepay_output(data: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_telepay"))
        .args(args)
        .env("TELEPAY_DATA_DIR", data)
        .env("TELEPAY_KEYSTORE_TEST_COST", "1")
        .env_remove("XDG_DATA_HOME")
        .env_remove("TELEPAY_READER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the telepay binary runs");
    // A command refused before it reads its standard input closes it: not an error.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("telepay ends")
}

/// [`telepay_output`] as exit status, standard output and standard error.
pub fn run_telepay(data: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let output = telepay_output(data, args, stdin);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The authorised transactions of the acquirer journal at `path`, payment → amount in
/// minor units, after checking that no payment is there twice.
pub fn authorised_payments(path: &Path) -> std::collections::BTreeMap<String, u64> {
    use telepay::acquirer::journal::{Journal, JournalError, TransactionFilter, TransactionState};
    let journal = Journal::open(path).expect("the journal opens");
    let mut authorised = std::collections::BTreeMap::new();
    let mut twice = Vec::new();
    journal
        .transactions::<JournalError>(
            &TransactionFilter {
                state: Some(TransactionState::Authorised),
                ..TransactionFilter::default()
            },
            |entry| {
                if authorised
                    .insert(entry.payment.0.to_string(), entry.amount_minor.unwrap_or(0))
                    .is_some()
                {
                    twice.push(entry.payment.0.to_string());
                }
                Ok(())
            },
        )
        .expect("the journal lists");
    assert_eq!(twice, Vec::<String>::new(), "payments authorised twice");
    authorised
}

/// The delivered purchases of a load run, payment → amount in minor units, after
/// checking that no payment was delivered twice.
pub fn delivered_payments(
    report: &telepay::net::load::LoadReport,
) -> std::collections::BTreeMap<String, u64> {
    let mut delivered = std::collections::BTreeMap::new();
    for sample in report.delivered() {
        let payment = sample.payment.clone().expect("a paid purchase had a D");
        let amount = sample.paid.expect("delivered").minor;
        assert!(
            delivered.insert(payment.0.to_string(), amount).is_none(),
            "{payment:?} delivered twice"
        );
    }
    delivered
}

/// A hand-built F at `at`: payment `payment` of `amount`, card `pan` with counter
/// `atc`, acquirer `ACQ-1`, merchant `FRONT-END`. Its cryptogram is not a card's (it
/// only varies with the counter): for journal and telecollection tests that do not run
/// the banking rules.
pub fn hand_built_f(
    payment: &str,
    pan: &str,
    atc: u16,
    amount: telepay::messages::Money,
    at: telepay::messages::Timestamp,
) -> telepay::messages::AcquirerTransaction {
    use telepay::messages::{
        AcquirerId, AcquirerTransaction, CardTransaction, Means, MerchantId, Payment, PaymentId,
        PaymentRequest, PurchaseId, ServiceId, TerminalId, Transaction,
    };
    let designation_digest = PaymentRequest::digest_designation("Annual report");
    let nonce = [3u8; 16];
    let request = PaymentRequest {
        purchase: PurchaseId::from(format!("PUR-{payment}")),
        payment: PaymentId::from(payment),
        merchant: MerchantId::from("FRONT-END"),
        service: ServiceId::from("S1"),
        designation: "Annual report".into(),
        designation_digest,
        amount,
        date: at,
        nonce,
        valid_until: at.plus_millis(120_000),
        accepted_means: vec![Means::BankCard],
        session: None,
    };
    let card = CardTransaction {
        pan: pan.into(),
        pan_sequence: 1,
        expiry: "281231".into(),
        aid: vec![0xA0, 0, 0, 0, 0x42, 0x10, 0x10],
        aip: [0x39, 0x00],
        atc,
        cid: 0x80,
        cryptogram: (u64::from(atc) * 0x0101_0101).to_be_bytes(),
        iad: vec![0x06, 0x01, 0x0A, 0x03, 0xA0, 0x00, 0x00],
        amount: amount.emv_amount().expect("an amount of 12 digits"),
        amount_other: [0; 6],
        terminal_country: [0x02, 0x50],
        tvr: [0; 5],
        currency: amount.currency.emv_code(),
        date: at.emv_date(),
        transaction_type: 0,
        unpredictable_number: PaymentRequest::unpredictable_number(&nonce, &designation_digest),
        pin_verified: true,
    };
    AcquirerTransaction {
        acquirer: AcquirerId::from("ACQ-1"),
        merchant: MerchantId::from("FRONT-END"),
        transaction: Transaction {
            purchase: request.purchase.clone(),
            payment: request.payment.clone(),
            terminal: TerminalId::from("T-1"),
            means: Payment::BankCard(card),
        },
        request,
        provision: None,
    }
}
