//! Key store unlock time at the production KDF cost, against the KDF alone measured in
//! the same run (the floor: an unlock can be no faster than its PBKDF2) and, when
//! `python3` is on the PATH, against OpenSSL's PBKDF2 through Python's `hashlib` (the
//! kind of optimised implementation an attacker searching PINs would use). Prints
//! figures and asserts nothing about time. Run with
//! `cargo bench -p telepay --bench keystore`.
//!
//! - unlock: [`KeyStore::unlock`] of an entry sealed at [`KdfCost::production`]:
//!   PBKDF2-HMAC-SHA-256 (600,000 iterations), two HMACs, AES-256-GCM, the public key
//!   recomputed from the scalar. Median of 5.
//! - the floor: `pbkdf2::pbkdf2::<Hmac<Sha256>>` with the same parameters. Median of 5.
//! - seal: [`KeyStore::add`] (key generation and one PBKDF2), median of 5.
//! - the PIN search this cost implies: guesses per second per core and the time to try
//!   every 8-digit PIN and every 8-character lower-case-and-digit PIN.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hmac::Hmac;
use sha2::Sha256;
use telepay::terminal::keystore::{
    CostPolicy, KdfCost, KeyStore, PRODUCTION_ITERATIONS, Pin, SystemRandom, Timestamp,
};

const ROUNDS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(mut run: impl FnMut() -> T) -> Duration {
    let samples = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            black_box(run());
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    let pin = Pin::new("correct horse").expect("a valid PIN");
    let salt = [0x5a_u8; 16];

    let floor = time(|| {
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2::<Hmac<Sha256>>(b"correct horse", &salt, PRODUCTION_ITERATIONS, &mut key)
            .expect("HMAC takes any key length");
        key
    });

    let mut store = KeyStore::new(CostPolicy::Production);
    let mut count = 0u32;
    let seal = time(|| {
        count += 1;
        store
            .add(
                &format!("user{count}"),
                &pin,
                KdfCost::production(),
                Timestamp(1_795_651_200),
                &mut SystemRandom,
            )
            .expect("sealed")
    });
    let unlock = time(|| store.unlock("user1", &pin).expect("unlocked"));

    let openssl = python_pbkdf2();

    println!(
        "key store, PBKDF2-HMAC-SHA-256 at {PRODUCTION_ITERATIONS} iterations (release, median of {ROUNDS}):"
    );
    println!(
        "  PBKDF2 alone (pbkdf2 crate) — the floor   {:8.1} ms",
        millis(floor)
    );
    println!(
        "  unlock (KDF + HMAC×2 + AES-GCM + point)   {:8.1} ms",
        millis(unlock)
    );
    println!(
        "  seal (key generation + KDF + AES-GCM)     {:8.1} ms",
        millis(seal)
    );
    println!(
        "  unlock / floor                            {:8.3}×",
        unlock.as_secs_f64() / floor.as_secs_f64()
    );
    if let Some(openssl) = openssl {
        println!(
            "  PBKDF2 in OpenSSL (python3 hashlib)       {:8.1} ms",
            millis(openssl)
        );
        println!(
            "  ours / OpenSSL                            {:8.3}×",
            floor.as_secs_f64() / openssl.as_secs_f64()
        );
    } else {
        println!("  (python3 not found: no OpenSSL comparison)");
    }
    let per_guess = floor.as_secs_f64();
    let guesses_per_second = 1.0 / per_guess;
    let days = |space: f64| space * per_guess / 86_400.0;
    println!("  PIN search, one core of this machine: {guesses_per_second:.1} guesses/s");
    println!(
        "    every 8-digit PIN (10^8):                 {:10.0} core-days",
        days(1e8)
    );
    println!(
        "    every 8-char [a-z0-9] PIN (36^8):         {:10.0} core-days",
        days(36f64.powi(8))
    );
}

/// PBKDF2-HMAC-SHA-256 at the production cost in OpenSSL, through `python3 -c`:
/// median of 5 timed inside Python (interpreter start excluded).
fn python_pbkdf2() -> Option<Duration> {
    let script = format!(
        "import hashlib, time\n\
         samples = []\n\
         for _ in range({ROUNDS}):\n\
         \x20   start = time.perf_counter()\n\
         \x20   hashlib.pbkdf2_hmac('sha256', b'correct horse', b'Z' * 16, {PRODUCTION_ITERATIONS}, 32)\n\
         \x20   samples.append(time.perf_counter() - start)\n\
         print(sorted(samples)[len(samples) // 2])\n"
    );
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(seconds))
}
