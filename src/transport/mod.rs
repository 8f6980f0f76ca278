//! Transports: the one async trait every destination implements (the flush callback), the
//! retry policy they share, and the transports themselves, one per file.
//!
//! A closure `Fn(Batch) -> impl Future<Output = Result<(), SendError>>` is a transport too.

mod file;
mod filter;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "kafka")]
pub(crate) mod kafka;
#[cfg(feature = "testing")]
mod memory;
mod noop;
mod route;
mod stdout;

use std::fmt;
use std::future::Future;

use crate::data::Batch;
use crate::rt::{self, BoxFuture, Duration, MaybeSend, MaybeSync};

pub use file::FileTransport;
pub use filter::FilterTransport;
#[cfg(feature = "http")]
pub use http::{BodyFormat, HttpTransport, HttpTransportBuilder};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaConfig, KafkaRecord, KafkaStartError, KafkaTransport, DEFAULT_TOPIC};
#[cfg(feature = "testing")]
pub use memory::MemoryTransport;
pub use noop::NoopTransport;
pub use route::RouteTransport;
pub use stdout::StdoutTransport;

/// Why a batch was not delivered, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// A passing failure: try again, after `after` if the receiver said when.
    Retry {
        /// The receiver's requested delay (`Retry-After`), if any.
        after: Option<Duration>,
        /// What went wrong.
        reason: String,
    },
    /// A failure that retrying will not fix (e.g. HTTP 400): the batch is dropped and counted.
    GiveUp {
        /// What went wrong.
        reason: String,
    },
}

impl SendError {
    /// A retryable failure without a requested delay.
    pub fn retry(reason: impl Into<String>) -> Self {
        SendError::Retry {
            after: None,
            reason: reason.into(),
        }
    }

    /// A permanent failure.
    pub fn give_up(reason: impl Into<String>) -> Self {
        SendError::GiveUp {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Retry {
                after: Some(d),
                reason,
            } => write!(f, "{reason} (retry after {} ms)", d.as_millis()),
            SendError::Retry {
                after: None,
                reason,
            } => write!(f, "{reason} (will retry)"),
            SendError::GiveUp { reason } => write!(f, "{reason} (giving up)"),
        }
    }
}

impl std::error::Error for SendError {}

/// A destination for batches.
///
/// `send` is called with at most `max_concurrent_sends` batches at once and must classify its
/// failures. It must not block the thread (natively it runs on Beacon's background thread; in
/// the browser, on the page's event loop).
pub trait Transport: MaybeSend + MaybeSync + 'static {
    /// Delivers one batch.
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>>;

    /// Releases resources; called once, after the last `send`, at shutdown.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The flush callback: any `Fn(Batch) -> Future<Output = Result<(), SendError>>` is a transport.
impl<F, Fut> Transport for F
where
    F: Fn(Batch) -> Fut + MaybeSend + MaybeSync + 'static,
    Fut: Future<Output = Result<(), SendError>> + MaybeSend + 'static,
{
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(self(batch))
    }
}

impl Transport for Box<dyn Transport> {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        (**self).send(batch)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        (**self).shutdown()
    }
}

/// One retry policy for every transport: exponential backoff with full jitter, capped, a
/// maximum number of attempts and a total time budget per round; `Retry-After` is honoured
/// (within the budget).
///
/// When a round ends without delivery, the batch goes back to the front of the queue and is
/// tried again on the next flush, so nothing is lost while it fits the memory bound.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per round, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Largest backoff (before jitter).
    pub max_backoff: Duration,
    /// Total time one round may take.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            budget: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based), with full jitter: uniform in
    /// `[0, min(max_backoff, initial_backoff * 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let cap = exp.min(self.max_backoff);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(crate::random::u64() % (nanos + 1))
    }
}

/// How one batch's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every transport has it.
    Delivered,
    /// Some transports have it; this many gave up or ran out of retries (their copy is
    /// dropped and counted as a failed batch, not re-sent to the others).
    PartlyFailed(usize),
    /// The only transport (or every transport) refused it for good.
    GaveUp,
    /// No transport has it yet: put it back in the queue.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum One {
    Ok,
    GaveUp,
    Exhausted,
}

async fn with_retries(t: &dyn Transport, policy: &RetryPolicy, batch: &Batch) -> One {
    let start_us = rt::mono_us();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match t.send(batch.clone()).await {
            Ok(()) => return One::Ok,
            Err(SendError::GiveUp { .. }) => return One::GaveUp,
            Err(SendError::Retry { after, .. }) => {
                if attempt >= policy.max_attempts || rt::is_offline() {
                    return One::Exhausted;
                }
                let delay = after.unwrap_or_else(|| policy.backoff(attempt));
                let elapsed = Duration::from_micros(rt::mono_us().saturating_sub(start_us));
                if elapsed + delay > policy.budget {
                    return One::Exhausted;
                }
                rt::sleep(delay).await;
            }
        }
    }
}

/// Delivers a batch to every transport, each with its own retries.
pub(crate) async fn deliver(
    transports: &[Box<dyn Transport>],
    policy: &RetryPolicy,
    batch: Batch,
) -> Outcome {
    let results: Vec<One> = if transports.len() == 1 {
        vec![with_retries(transports[0].as_ref(), policy, &batch).await]
    } else {
        rt::join_all(
            transports
                .iter()
                .map(|t| with_retries(t.as_ref(), policy, &batch)),
        )
        .await
    };
    let ok = results.iter().filter(|r| **r == One::Ok).count();
    let exhausted = results.iter().filter(|r| **r == One::Exhausted).count();
    if ok == results.len() {
        Outcome::Delivered
    } else if ok > 0 {
        Outcome::PartlyFailed(results.len() - ok)
    } else if exhausted > 0 {
        Outcome::Retry
    } else {
        Outcome::GaveUp
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (relative to `now_unix_ms`).
pub fn parse_retry_after(value: &str, now_unix_ms: u64) -> Option<Duration> {
    let v = value.trim_ascii();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at_ms = crate::rt::parse_http_date_ms(v)?;
    Some(Duration::from_millis(at_ms.saturating_sub(now_unix_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("3", 0), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(Duration::ZERO));
        let now = 1_445_412_470_000; // 2015-10-21T07:27:50Z
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now + 60_000),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            ..RetryPolicy::default()
        };
        for retry in 1..10 {
            for _ in 0..50 {
                let d = p.backoff(retry);
                let cap = Duration::from_millis((100u64 << (retry - 1)).min(250));
                assert!(d <= cap, "retry {retry}: {d:?} > {cap:?}");
            }
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(distinct.len() > 10, "full jitter spreads delays");
    }
}
