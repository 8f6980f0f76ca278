use crate::data::Batch;
use crate::rt::BoxFuture;

use super::{SendError, Transport};

/// Sends each item to the transport registered for its `event_type` (as Metlog routes message
/// types to back ends), or to the default one.
///
/// The batch succeeds when every destination that got part of it succeeded; if one asks for a
/// retry, the whole batch is retried (destinations should de-duplicate by `event_id`).
#[derive(Default)]
pub struct RouteTransport {
    routes: Vec<(String, Box<dyn Transport>)>,
    default: Option<Box<dyn Transport>>,
}

impl RouteTransport {
    /// A router with no routes: items of unrouted types are discarded unless a default is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends items whose `event_type` is `event_type` to `to`.
    pub fn route(mut self, event_type: impl Into<String>, to: impl Transport) -> Self {
        self.routes.push((event_type.into(), Box::new(to)));
        self
    }

    /// Sends items of every other type to `to`.
    pub fn default_route(mut self, to: impl Transport) -> Self {
        self.default = Some(Box::new(to));
        self
    }
}

impl Transport for RouteTransport {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let mut parts: Vec<(&dyn Transport, Batch)> = Vec::new();
            for (ty, t) in &self.routes {
                let part = batch.filter(|i| i.event_type() == ty);
                if !part.is_empty() {
                    parts.push((t.as_ref(), part));
                }
            }
            if let Some(d) = &self.default {
                let part =
                    batch.filter(|i| !self.routes.iter().any(|(ty, _)| i.event_type() == ty));
                if !part.is_empty() {
                    parts.push((d.as_ref(), part));
                }
            }
            let results =
                futures_util::future::join_all(parts.into_iter().map(|(t, b)| t.send(b))).await;
            let mut retry: Option<SendError> = None;
            for r in results {
                match r {
                    Ok(()) => {}
                    Err(e @ SendError::GiveUp { .. }) => return Err(e),
                    Err(e) => retry = Some(e),
                }
            }
            retry.map_or(Ok(()), Err)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for (_, t) in &self.routes {
                t.shutdown().await;
            }
            if let Some(d) = &self.default {
                d.shutdown().await;
            }
        })
    }
}
