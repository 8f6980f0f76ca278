//! Proxy mode: valid items go into the SDK's own [`beacon::Client`] with its
//! [`HttpTransport`] (bounded queue, retries, `Retry-After`, drops reported upstream as
//! `client_report` items). The request is answered as soon as its items are queued.

use std::time::Duration;

use beacon::transport::HttpTransport;
use beacon::{BatchConfig, Client, RetryPolicy};

use crate::body::Valid;

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The upstream intake's `POST /v1/events` URL.
    pub url: String,
    /// A bearer token for the upstream, if it needs one.
    pub token: Option<String>,
    /// Most items held (queued or in flight) while the upstream is slow or down.
    pub max_queue_items: usize,
    /// Longest wait between retries of a batch.
    pub max_backoff: Duration,
}

/// The forward queue.
pub struct Forwarder {
    client: Client,
    max_queue_items: usize,
}

/// Why items were not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// The queue cannot take the whole request: answered with 503 and `Retry-After`.
    Full {
        /// Items held now.
        held: usize,
        /// The bound.
        limit: usize,
    },
    /// The client is shut down.
    Closed,
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::Full { held, limit } => write!(
                f,
                "forward queue full: {held} of {limit} items wait for the upstream intake; retry later"
            ),
            ForwardError::Closed => f.write_str("the forward queue is shut down"),
        }
    }
}

impl Forwarder {
    /// Builds the SDK client that forwards.
    pub fn new(cfg: &ForwardConfig) -> Result<Forwarder, String> {
        let mut t = HttpTransport::builder(cfg.url.clone());
        if let Some(tok) = &cfg.token {
            t = t.bearer_token(tok.clone());
        }
        let transport = t.build()?;
        let client = Client::builder()
            .service_name("beacon-intake")
            .transport(transport)
            .batch_config(BatchConfig {
                max_queue_items: cfg.max_queue_items,
                flush_interval: Duration::from_millis(200),
                ..BatchConfig::default()
            })
            .retry_policy(RetryPolicy {
                max_backoff: cfg.max_backoff,
                ..RetryPolicy::default()
            })
            .build()
            .map_err(|e| format!("cannot start the forward queue: {e}"))?;
        Ok(Forwarder {
            client,
            max_queue_items: cfg.max_queue_items,
        })
    }

    /// Items queued or in flight.
    pub fn held(&self) -> usize {
        let s = self.client.stats();
        s.queued_items + s.inflight_items
    }

    /// The SDK's counters (drops by reason).
    pub fn stats(&self) -> beacon::Stats {
        self.client.stats()
    }

    /// Queues validated items. A request that does not fit is refused whole (the sender
    /// retries); items that race past the bound are dropped and counted by the SDK, which
    /// reports them upstream in a `client_report` item.
    pub fn queue(&self, items: &[Valid]) -> Result<usize, ForwardError> {
        let held = self.held();
        if held > 0 && held + items.len() > self.max_queue_items {
            return Err(ForwardError::Full {
                held,
                limit: self.max_queue_items,
            });
        }
        let mut n = 0;
        for v in items {
            // The canonical JSON was produced by the schema's own encoder: it parses.
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&v.json) else {
                continue;
            };
            match self.client.record_raw(&value) {
                Ok(()) => n += 1,
                Err(beacon::RecordError::Closed) => return Err(ForwardError::Closed),
                // Already validated by the same function: cannot happen; counted by the SDK.
                Err(beacon::RecordError::Invalid(_)) => {}
            }
        }
        Ok(n)
    }

    /// Delivers what is queued, retrying until `timeout`, then stops the client.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.client.flush()).await {
                Ok(Ok(())) if self.held() == 0 => break,
                Err(_) => break,
                _ if tokio::time::Instant::now() >= deadline => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let left = self.held();
        let _ = self.client.shutdown(Duration::from_secs(2)).await;
        if left == 0 {
            Ok(())
        } else {
            Err(format!(
                "{left} items were not delivered to the upstream intake before the shutdown timeout"
            ))
        }
    }
}
