//! Page exit: when the page is hidden (`visibilitychange` to `hidden`) or left (`pagehide`;
//! never `unload`, which breaks the back/forward cache), the open aggregates are emitted and
//! the queue is drained synchronously into requests the browser finishes after the page is
//! gone: `fetch(..., { keepalive: true })` while the bytes in flight stay under the page's
//! keepalive budget (64 KiB in all browsers), then `navigator.sendBeacon`.
//!
//! Page-exit requests carry `text/plain` bodies (no CORS preflight, which a closing page
//! could not wait for) and the write key in the URL (`sendBeacon` cannot set headers).
//! Whatever the browser refuses stays queued, bounded as always, for the next flush.
//!
//! When the browser comes back `online`, the queue is flushed at once.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::data::Batch;
use crate::rt;
use crate::transport::{BodyFormat, HttpTransport};
use crate::Client;

/// Where page-exit requests go and how their bodies are encoded.
pub(crate) struct ExitTarget {
    url: String,
    ndjson: bool,
}

impl ExitTarget {
    pub(crate) fn new(http: &HttpTransport, format: BodyFormat) -> Self {
        // The transport's own URL, write key included.
        let url = http.request(&Batch::default(), true).url;
        ExitTarget {
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
}

type Listener = Closure<dyn FnMut(JsValue)>;

/// The page-exit listeners of one client.
pub(crate) struct PageExit {
    client: Client,
    target: ExitTarget,
    listeners: RefCell<Vec<(JsValue, &'static str, Listener)>>,
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn method(obj: &JsValue, name: &str) -> Option<Function> {
    get(obj, name)?.dyn_into::<Function>().ok()
}

impl PageExit {
    /// Registers the listeners on the page (on a worker's global scope only `online`).
    pub(crate) fn install(client: Client, target: ExitTarget) -> Rc<PageExit> {
        let exit = Rc::new(PageExit {
            client,
            target,
            listeners: RefCell::new(Vec::new()),
        });
        let global = js_sys::global();
        let document = get(&global, "document");
        if let Some(doc) = &document {
            let weak = Rc::downgrade(&exit);
            let doc2 = doc.clone();
            exit.listen(
                doc,
                "visibilitychange",
                Box::new(move |_| {
                    let hidden = get(&doc2, "visibilityState")
                        .and_then(|v| v.as_string())
                        .is_some_and(|s| s == "hidden");
                    if hidden {
                        drain_weak(&weak);
                    }
                }),
            );
            let weak = Rc::downgrade(&exit);
            exit.listen(&global, "pagehide", Box::new(move |_| drain_weak(&weak)));
        }
        let weak = Rc::downgrade(&exit);
        exit.listen(
            &global,
            "online",
            Box::new(move |_| {
                if let Some(exit) = weak.upgrade() {
                    let client = exit.client.clone();
                    rt::spawn(async move {
                        let _ = client.flush().await;
                    });
                }
            }),
        );
        exit
    }

    fn listen(&self, target: &JsValue, event: &'static str, f: Box<dyn FnMut(JsValue)>) {
        let Some(add) = method(target, "addEventListener") else {
            return;
        };
        let closure = Closure::wrap(f);
        if add
            .call2(target, &JsValue::from_str(event), closure.as_ref())
            .is_ok()
        {
            self.listeners
                .borrow_mut()
                .push((target.clone(), event, closure));
        }
    }

    /// Removes the listeners (at shutdown).
    pub(crate) fn uninstall(&self) {
        for (target, event, closure) in self.listeners.borrow_mut().drain(..) {
            if let Some(remove) = method(&target, "removeEventListener") {
                let _ = remove.call2(&target, &JsValue::from_str(event), closure.as_ref());
            }
        }
    }

    /// Emits the open aggregates and hands the queue to the browser: keepalive `fetch`
    /// within the keepalive budget, then `sendBeacon` until the browser refuses. Returns the
    /// number of items handed over. Never blocks, never waits.
    pub(crate) fn drain(&self) -> usize {
        self.client.collect_now(true);
        let global = js_sys::global();
        let fetch = method(&global, "fetch");
        let beacon =
            get(&global, "navigator").and_then(|n| method(&n, "sendBeacon").map(|f| (n, f)));
        let mut handed = 0;
        // Bounded: every round takes at least one item out of the finite queue, or stops.
        loop {
            let avail = rt::keepalive_available();
            let via_fetch = fetch.is_some() && avail > 0;
            let limit = if via_fetch {
                avail
            } else {
                rt::KEEPALIVE_BUDGET
            };
            let Some(taken) = self.client.take_for_exit(limit) else {
                if via_fetch && beacon.is_some() && avail < rt::KEEPALIVE_BUDGET {
                    // The oldest item did not fit what is left of the keepalive budget:
                    // try it with sendBeacon.
                    if let Some(taken) = self.client.take_for_exit(rt::KEEPALIVE_BUDGET) {
                        match self.send_beacon(beacon.as_ref(), taken) {
                            Some(n) => {
                                handed += n;
                                continue;
                            }
                            None => break,
                        }
                    }
                }
                break;
            };
            if via_fetch {
                let n = taken.batch().len();
                match self.send_fetch(fetch.as_ref(), taken) {
                    Ok(()) => handed += n,
                    Err(taken) => match self.send_beacon(beacon.as_ref(), taken) {
                        Some(n) => handed += n,
                        None => break,
                    },
                }
            } else {
                match self.send_beacon(beacon.as_ref(), taken) {
                    Some(n) => handed += n,
                    None => break,
                }
            }
        }
        handed
    }

    /// Starts a keepalive `fetch`; it settles the batch when it answers. Hands the batch
    /// back if `fetch` could not be started.
    fn send_fetch(
        &self,
        fetch: Option<&Function>,
        taken: crate::batch::ExitBatch,
    ) -> Result<(), crate::batch::ExitBatch> {
        let Some(fetch) = fetch else {
            return Err(taken);
        };
        let body = self.target.body(taken.batch());
        let len = body.len();
        if !rt::keepalive_reserve(len) {
            return Err(taken);
        }
        let init = Object::new();
        let set = |k: &str, v: &JsValue| {
            let _ = Reflect::set(&init, &JsValue::from_str(k), v);
        };
        set("method", &JsValue::from_str("POST"));
        set("body", &JsValue::from_str(&body));
        set("keepalive", &JsValue::TRUE);
        let headers = Object::new();
        let _ = Reflect::set(
            &headers,
            &JsValue::from_str("content-type"),
            &JsValue::from_str("text/plain;charset=UTF-8"),
        );
        set("headers", &headers);
        let promise = fetch
            .call2(
                &js_sys::global(),
                &JsValue::from_str(&self.target.url),
                &init,
            )
            .ok()
            .and_then(|p| p.dyn_into::<Promise>().ok());
        let Some(promise) = promise else {
            rt::keepalive_release(len);
            return Err(taken);
        };
        let client = self.client.clone();
        rt::spawn(async move {
            let ok = match JsFuture::from(promise).await {
                Ok(resp) => get(&resp, "ok").and_then(|v| v.as_bool()).unwrap_or(false),
                Err(_) => false,
            };
            rt::keepalive_release(len);
            client.settle_exit(taken, ok);
        });
        Ok(())
    }

    /// Queues the batch with `navigator.sendBeacon`. `None` (the batch back in the queue)
    /// when the browser refuses it or has no `sendBeacon`.
    fn send_beacon(
        &self,
        beacon: Option<&(JsValue, Function)>,
        taken: crate::batch::ExitBatch,
    ) -> Option<usize> {
        let n = taken.batch().len();
        let queued = beacon.is_some_and(|(nav, f)| {
            let body = self.target.body(taken.batch());
            f.call2(
                nav,
                &JsValue::from_str(&self.target.url),
                &JsValue::from_str(&body),
            )
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
        });
        // sendBeacon gives no answer: queued means handed over for good.
        self.client.settle_exit(taken, queued);
        queued.then_some(n)
    }
}

impl Drop for PageExit {
    fn drop(&mut self) {
        self.uninstall();
    }
}

fn drain_weak(weak: &Weak<PageExit>) {
    if let Some(exit) = weak.upgrade() {
        exit.drain();
    }
}
