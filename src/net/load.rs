//! Many terminals buying at once through a deployment, for the load test and the
//! network benchmark: each terminal loops purchases until the time is up, and every
//! purchase is kept as a sample (how long it took, how it ended, what it paid with).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::emv::CardChannel;
use crate::messages::{Message, Money, PaymentId, ProviderId, ServiceId};
use crate::terminal::client::RequestResult;
use crate::terminal::payer::PayerUser;

use super::terminal::RemoteTerminal;

/// One purchase of a load run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The terminal that made it.
    pub terminal: usize,
    /// From the request to the end of the purchase at the terminal.
    pub latency: Duration,
    /// The payment request's identifier, when there was one.
    pub payment: Option<PaymentId>,
    /// What was paid, when the service was delivered.
    pub paid: Option<Money>,
    /// Why it did not deliver, when it did not (`None`: delivered).
    pub failure: Option<String>,
}

/// What a load run came to.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Every purchase, in the order they ended.
    pub samples: Vec<Sample>,
    /// From the start to the last purchase's end.
    pub elapsed: Duration,
}

impl LoadReport {
    /// The purchases that delivered.
    pub fn delivered(&self) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(|sample| sample.failure.is_none())
    }

    /// The latency below which `fraction` (0 to 1) of the purchases ended, by the
    /// nearest-rank method; zero with no purchase.
    pub fn percentile(&self, fraction: f64) -> Duration {
        let mut latencies: Vec<Duration> =
            self.samples.iter().map(|sample| sample.latency).collect();
        latencies.sort_unstable();
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (fraction.clamp(0.0, 1.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    }

    /// Delivered purchases per second over the run.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.delivered().count() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Runs `terminals` at once, each buying `service` of `provider` again and again
/// until `duration` has passed (a purchase under way is finished, waiting at most
/// `patience`).
pub async fn run<C, U>(
    terminals: Vec<RemoteTerminal<C, U>>,
    provider: ProviderId,
    service: ServiceId,
    duration: Duration,
    patience: Duration,
) -> LoadReport
where
    C: CardChannel + Send + 'static,
    U: PayerUser + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(terminals.len());
    let provider = Arc::new(provider);
    let service = Arc::new(service);
    for (index, terminal) in terminals.into_iter().enumerate() {
        let provider = Arc::clone(&provider);
        let service = Arc::clone(&service);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let began = Instant::now();
                let run = terminal
                    .purchase((*provider).clone(), (*service).clone(), None, patience)
                    .await;
                let payment = run
                    .messages
                    .iter()
                    .find_map(|envelope| match &envelope.message {
                        Message::PaymentRequest(d) => Some(d.payment.clone()),
                        _ => None,
                    });
                let (paid, failure) = match &run.result {
                    Some(RequestResult::Delivered(k)) => (Some(k.paid), None),
                    Some(RequestResult::Damaged(_)) => (None, Some("damaged".to_owned())),
                    Some(RequestResult::Failed(failure)) => (None, Some(failure.to_string())),
                    None => (None, Some(format!("no answer: {:?}", run.troubles))),
                };
                samples.push(Sample {
                    terminal: index,
                    latency: began.elapsed(),
                    payment,
                    paid,
                    failure,
                });
            }
            samples
        }));
    }
    let mut report = LoadReport::default();
    for task in tasks {
        match task.await {
            Ok(samples) => report.samples.extend(samples),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    report.elapsed = started.elapsed();
    report
}
