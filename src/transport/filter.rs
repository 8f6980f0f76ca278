use crate::data::{Batch, Item};
use crate::rt::{BoxFuture, MaybeSend, MaybeSync};

use super::{SendError, Transport};

/// Passes on only the items for which a predicate returns `true` (as Rill's filter sink).
pub struct FilterTransport<T, F> {
    inner: T,
    keep: F,
}

impl<T, F> FilterTransport<T, F>
where
    T: Transport,
    F: Fn(&Item) -> bool + MaybeSend + MaybeSync + 'static,
{
    /// Wraps `inner`, keeping items for which `keep` is true.
    pub fn new(inner: T, keep: F) -> Self {
        FilterTransport { inner, keep }
    }
}

impl<T, F> Transport for FilterTransport<T, F>
where
    T: Transport,
    F: Fn(&Item) -> bool + MaybeSend + MaybeSync + 'static,
{
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        let kept = batch.filter(|i| (self.keep)(i));
        if kept.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        self.inner.send(kept)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.shutdown()
    }
}
