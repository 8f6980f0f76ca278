use std::sync::{Arc, Mutex};

use crate::data::{Batch, Item};
use crate::rt::BoxFuture;

use super::{SendError, Transport};

/// Keeps every delivered batch in memory, for tests. Cloning shares the storage.
///
/// Set a script of failures with [`MemoryTransport::fail_next`] to test the retry policy.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    batches: Vec<Batch>,
    failures: Vec<SendError>,
    attempts: usize,
}

impl MemoryTransport {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `send` calls fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = SendError>) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.failures.extend(errors);
        s.failures.reverse();
    }

    /// Delivered batches.
    pub fn batches(&self) -> Vec<Batch> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .batches
            .clone()
    }

    /// Delivered items, in delivery order.
    pub fn items(&self) -> Vec<Item> {
        self.batches()
            .iter()
            .flat_map(|b| b.items().to_vec())
            .collect()
    }

    /// Delivered items parsed as JSON.
    pub fn values(&self) -> Vec<serde_json::Value> {
        self.items().iter().map(Item::to_value).collect()
    }

    /// Number of `send` calls so far, failed ones included.
    pub fn attempts(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .attempts
    }

    /// Forgets what was delivered.
    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .batches
            .clear();
    }
}

impl Transport for MemoryTransport {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.attempts += 1;
        let r = match s.failures.pop() {
            Some(e) => Err(e),
            None => {
                s.batches.push(batch);
                Ok(())
            }
        };
        Box::pin(async move { r })
    }
}
