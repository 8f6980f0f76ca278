//! Page exit: when the page is hidden (`visibilitychange` to `hidden`) or left (`pagehide`;
//! never `unload`, which breaks the back/forward cache), the JS layer calls
//! [`PageExit::drain`]: the open aggregates are emitted and the queue is drained
//! synchronously into requests the browser finishes after the page is gone:
//! `fetch(..., { keepalive: true })` while the bytes in flight stay under the page's
//! keepalive budget (64 KiB in all browsers), then `navigator.sendBeacon`.
//!
//! Page-exit requests carry `text/plain` bodies (no CORS preflight, which a closing page
//! could not wait for) and the write key in the URL (`sendBeacon` cannot set headers).
//! Whatever the browser refuses stays queued, bounded as always, for the next flush.

use crate::batch::ExitBatch;
use crate::data::Batch;
use crate::rt;
use crate::transport::{BodyFormat, HttpTransport};
use crate::Client;

/// Page-exit delivery of one client: where the requests go and how bodies are encoded.
pub(crate) struct PageExit {
    client: Client,
    url: String,
    ndjson: bool,
}

impl PageExit {
    /// The page-exit URL of `http`: its own URL, write key included.
    pub(crate) fn url_of(http: &HttpTransport) -> String {
        http.url().to_owned()
    }

    /// Page-exit delivery of `client` to `url`, in `format`.
    pub(crate) fn new(client: Client, url: String, format: BodyFormat) -> Self {
        PageExit {
            client,
            url,
            ndjson: format == BodyFormat::Ndjson,
        }
    }

    fn body(&self, batch: &Batch) -> String {
        if self.ndjson {
            batch.to_ndjson()
        } else {
            batch.to_json_array()
        }
    }

    /// Emits the open aggregates and hands the queue to the browser: keepalive `fetch`
    /// within the keepalive budget, then `sendBeacon` until the browser refuses. Returns the
    /// number of items handed over. Never blocks, never waits.
    pub(crate) fn drain(&self) -> usize {
        self.client.collect_now(true);
        let mut handed = 0;
        // Bounded: every round takes at least one item out of the finite queue, or stops.
        loop {
            let avail = rt::keepalive_available();
            let limit = if avail > 0 {
                avail
            } else {
                rt::KEEPALIVE_BUDGET
            };
            let taken = match self.client.take_for_exit(limit) {
                Some(taken) => taken,
                // The oldest item did not fit what is left of the keepalive budget: try it
                // with sendBeacon.
                None if limit < rt::KEEPALIVE_BUDGET => {
                    match self.client.take_for_exit(rt::KEEPALIVE_BUDGET) {
                        Some(taken) => taken,
                        None => break,
                    }
                }
                None => break,
            };
            let n = taken.batch().len();
            let body = self.body(taken.batch());
            let taken = if avail > 0 {
                match self.send_fetch(&body, taken) {
                    Ok(()) => {
                        handed += n;
                        continue;
                    }
                    Err(taken) => taken,
                }
            } else {
                taken
            };
            // sendBeacon gives no answer: queued means handed over for good.
            let queued = rt::exit_beacon(&self.url, &body);
            self.client.settle_exit(taken, queued);
            if !queued {
                break;
            }
            handed += n;
        }
        handed
    }

    /// Starts a keepalive `fetch`; it settles the batch when it answers. Hands the batch
    /// back if the body does not fit the keepalive budget or `fetch` could not be started.
    fn send_fetch(&self, body: &str, taken: ExitBatch) -> Result<(), ExitBatch> {
        let len = body.len();
        if !rt::keepalive_reserve(len) {
            return Err(taken);
        }
        let Some(answer) = rt::exit_fetch(&self.url, body) else {
            rt::keepalive_release(len);
            return Err(taken);
        };
        let client = self.client.clone();
        rt::spawn(async move {
            let ok = answer.await;
            rt::keepalive_release(len);
            client.settle_exit(taken, ok);
        });
        Ok(())
    }
}
