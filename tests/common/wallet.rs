//! A user's wallet key as a payer device holds it, signing the payments the wallet tests
//! send: one seed, one key, one account; payments to merchant `FE-1` for service
//! `news`.

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use telepay::acquirer::wallet::{AccountKey, SignedWalletPayment, WalletPayment};
use telepay::messages::{MerchantId, Money, PaymentId, ServiceId, Timestamp};

/// A user's key, as a payer device holds it.
pub struct Payer {
    /// The key (tests that sign other statements use it).
    pub key: SigningKey,
}

impl Payer {
    /// The key of 32 bytes `seed`.
    pub fn new(seed: u8) -> Payer {
        Payer {
            key: SigningKey::from_slice(&[seed; 32]).unwrap(),
        }
    }

    /// The account the key names.
    pub fn account(&self) -> AccountKey {
        AccountKey::new(self.key.verifying_key())
    }

    /// The payment `payment` of `amount`, the account's `sequence`-th, made at `time`
    /// to FE-1 for "news", signed.
    pub fn pay_at(
        &self,
        payment: &str,
        amount: Money,
        sequence: u64,
        time: Timestamp,
    ) -> SignedWalletPayment {
        self.sign(WalletPayment {
            account: self.account(),
            merchant: MerchantId::from("FE-1"),
            service: ServiceId::from("news"),
            payment: PaymentId::from(payment),
            amount,
            sequence,
            time,
        })
    }

    /// `payment`, signed.
    pub fn sign(&self, payment: WalletPayment) -> SignedWalletPayment {
        SignedWalletPayment::sign(payment, |message| self.key.sign(message)).unwrap()
    }
}
