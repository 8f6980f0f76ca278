use std::io::Write;

use crate::data::Batch;
use crate::rt::BoxFuture;

use super::{SendError, Transport};

/// Writes each item as one JSON line to standard output.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutTransport;

impl Transport for StdoutTransport {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let text = batch.to_ndjson();
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| SendError::retry(format!("writing to stdout: {e}")))
        })
    }
}
