//! Browser runtime: futures run on the JS event loop, timers are `setTimeout`, HTTP is `fetch`.

use std::future::Future;
use std::time::Duration;

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{BoxFuture, HttpRequest, HttpResponse};

/// Runs a future on the JS event loop. Always returns `true`.
pub fn spawn<F>(fut: F) -> bool
where
    F: Future<Output = ()> + 'static,
{
    wasm_bindgen_futures::spawn_local(fut);
    true
}

/// Sleeps for `d` with `setTimeout`.
pub async fn sleep(d: Duration) {
    gloo_timers::future::sleep(d).await
}

/// Fills `buf` with random bytes from `crypto.getRandomValues` (zeros if unavailable).
pub fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        buf.fill(0);
    }
}

/// Compression is left to the browser: always `None`.
pub fn gzip(_data: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Whether the browser reports being offline (`navigator.onLine === false`).
pub fn is_offline() -> bool {
    let global = js_sys::global();
    let nav = Reflect::get(&global, &JsValue::from_str("navigator")).unwrap_or(JsValue::UNDEFINED);
    if nav.is_undefined() {
        return false;
    }
    matches!(
        Reflect::get(&nav, &JsValue::from_str("onLine"))
            .ok()
            .and_then(|v| v.as_bool()),
        Some(false)
    )
}

/// Parses an HTTP date (`Retry-After`) into Unix ms with the browser's `Date.parse` (smaller
/// than a Rust date parser); `None` if malformed or before 1970.
pub fn parse_http_date_ms(s: &str) -> Option<u64> {
    let ms = js_sys::Date::parse(s);
    (ms >= 0.0).then_some(ms as u64)
}

/// `s` in double quotes with `"`, `\` and ASCII control characters escaped as `{:?}` does;
/// other characters are kept as they are (`{:?}`'s Unicode tables cost the wasm some 5 KB).
pub fn quoted(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_ascii_control() => {
                let b = c as u8;
                out.push_str("\\u{");
                if b >= 16 {
                    out.push(HEX[(b >> 4) as usize] as char);
                }
                out.push(HEX[(b & 15) as usize] as char);
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bytes of request bodies a page may have in flight with `keepalive` (browsers allow 64 KiB
/// in all; a little is left for the requests' other parts).
pub const KEEPALIVE_BUDGET: usize = 60 * 1024;

thread_local! {
    static KEEPALIVE_INFLIGHT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Reserves `n` bytes of the keepalive budget; `false` (nothing reserved) if they do not fit.
/// Release them with [`keepalive_release`] when the request settles.
pub fn keepalive_reserve(n: usize) -> bool {
    KEEPALIVE_INFLIGHT.with(|c| {
        let used = c.get();
        if used + n <= KEEPALIVE_BUDGET {
            c.set(used + n);
            true
        } else {
            false
        }
    })
}

/// Bytes of the keepalive budget not reserved now.
pub fn keepalive_available() -> usize {
    KEEPALIVE_INFLIGHT.with(|c| KEEPALIVE_BUDGET.saturating_sub(c.get()))
}

/// Returns `n` bytes to the keepalive budget.
pub fn keepalive_release(n: usize) {
    KEEPALIVE_INFLIGHT.with(|c| c.set(c.get().saturating_sub(n)));
}

/// Releases its bytes when the request settles (or its future is dropped).
struct KeepaliveGuard(usize);

impl Drop for KeepaliveGuard {
    fn drop(&mut self) {
        keepalive_release(self.0);
    }
}

/// The target's HTTP client: the global `fetch` (works in windows and workers).
#[derive(Clone, Debug, Default)]
pub struct HttpClient {}

impl HttpClient {
    /// A new client.
    pub fn new() -> Result<Self, String> {
        Ok(HttpClient {})
    }

    /// Sends a POST request with `fetch`. A network failure is an `Err`.
    pub fn post(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, String>> {
        Box::pin(async move {
            if is_offline() {
                return Err("browser is offline".to_owned());
            }
            let init = web_sys::RequestInit::new();
            init.set_method("POST");
            // Every request that fits the page's keepalive budget is sent with keepalive, so
            // a batch in flight when the tab closes still arrives.
            let reserved = keepalive_reserve(req.body.len());
            let _release = KeepaliveGuard(if reserved { req.body.len() } else { 0 });
            if req.keepalive || reserved {
                Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE)
                    .map_err(js_err)?;
            }
            let headers = web_sys::Headers::new().map_err(js_err)?;
            for (k, v) in &req.headers {
                headers.set(k, v).map_err(js_err)?;
            }
            init.set_headers(&headers);
            let body = Uint8Array::from(req.body.as_slice());
            init.set_body(&body);
            let global = js_sys::global();
            let fetch = Reflect::get(&global, &JsValue::from_str("fetch"))
                .map_err(js_err)?
                .dyn_into::<js_sys::Function>()
                .map_err(|_| "fetch is not available".to_owned())?;
            let promise = fetch
                .call2(&global, &JsValue::from_str(&req.url), &init)
                .map_err(js_err)?
                .dyn_into::<js_sys::Promise>()
                .map_err(|_| "fetch did not return a promise".to_owned())?;
            let fetch_fut = JsFuture::from(promise);
            let timeout = gloo_timers::future::sleep(req.timeout);
            let resp = match futures_util::future::select(fetch_fut, Box::pin(timeout)).await {
                futures_util::future::Either::Left((r, _)) => r.map_err(js_err)?,
                futures_util::future::Either::Right(_) => {
                    return Err(["request to ", &req.url, " timed out"].concat())
                }
            };
            let resp: web_sys::Response = resp.dyn_into().map_err(js_err)?;
            let status = resp.status();
            let retry_after = resp.headers().get("retry-after").ok().flatten();
            let body = match resp.text() {
                Ok(p) => JsFuture::from(p)
                    .await
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            Ok(HttpResponse {
                status,
                retry_after,
                body,
            })
        })
    }
}

fn js_err(v: JsValue) -> String {
    v.as_string()
        .or_else(|| {
            Reflect::get(&v, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "JavaScript error".to_owned())
}

/// The browser never blocks: always `None`, without running `fut` to completion here (it is
/// spawned on the event loop instead).
pub fn block_on_timeout<F, T>(fut: F, _timeout: Duration) -> Option<T>
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    spawn(async move {
        let _ = fut.await;
    });
    None
}

/// Wall-clock Unix ms (`Date.now()` is already cheap in the browser).
pub fn now_unix_ms_coarse() -> u64 {
    super::now_unix_ms()
}
