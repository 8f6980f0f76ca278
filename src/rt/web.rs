//! Browser runtime: futures run on the JS event loop, timers are `setTimeout`, HTTP is `fetch`.
//!
//! The browser calls themselves are a few lines of JavaScript (`inline_js` below; the npm
//! build bundles them into `index.js`): a `fetch` request or a timer set up in JavaScript is
//! much smaller than the same set up from Rust through `web-sys` and `Reflect`.
//!
//! Futures run on a small executor of their own (instead of `wasm-bindgen-futures`): ready
//! tasks are polled in a microtask, and JavaScript wakes them by calling methods of an
//! exported class ([`Wake`]) rather than through `wasm-bindgen` closures, whose machinery
//! (in the wasm and in the glue) is larger than the executor itself.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{BoxFuture, HttpRequest, HttpResponse};

#[wasm_bindgen(inline_js = r#"
export function tick(t) { queueMicrotask(() => t.run()); }
export function settle(p, s) {
  p.then((v) => { s.ok(v); s.free(); }, (e) => { s.err(e); s.free(); });
}
export function sleep(ms) {
  let t, r;
  const p = new Promise((res) => { r = res; t = setTimeout(res, Math.min(ms, 2147483647)); });
  p.t = t;
  p.r = r;
  return p;
}
export function cancel(p) { clearTimeout(p.t); p.r(); }
export function random(buf) { crypto.getRandomValues(buf); }
export function offline() { return globalThis.navigator?.onLine === false; }
export function httpDate(s) { return Date.parse(s); }
export function monoUs() { return (globalThis.performance ?? Date).now() * 1000; }
export function nowMs() { return Date.now(); }
export function iso(ms) { return new Date(Math.min(ms, 253402300799999)).toISOString(); }
export function quoted(s) { return JSON.stringify(s); }
export function num(v) { return String(v); }
export async function post(url, headers, body, keepalive, ms) {
  const h = new Headers();
  const a = headers.split('\n');
  for (let i = 1; i < a.length; i += 2) h.set(a[i - 1], a[i]);
  const c = new AbortController();
  const t = setTimeout(() => c.abort(), Math.min(ms, 2147483647));
  try {
    const r = await fetch(url, { method: 'POST', headers: h, body: body.slice(), keepalive, signal: c.signal });
    return [r.status, r.headers.get('retry-after'), await r.text()];
  } catch (e) {
    throw c.signal.aborted ? `request to ${url} timed out` : String(e?.message ?? e);
  } finally {
    clearTimeout(t);
  }
}
export function exitFetch(url, body) {
  try {
    return fetch(url, { method: 'POST', body, keepalive: true, headers: { 'content-type': 'text/plain;charset=UTF-8' } })
      .then((r) => r.ok, () => false);
  } catch {}
}
export function exitBeacon(url, body) {
  try { return navigator.sendBeacon(url, body); } catch { return false; }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = tick)]
    fn js_tick(t: &JsValue);
    #[wasm_bindgen(js_name = settle)]
    fn js_settle(p: &Promise, s: Wake);
    #[wasm_bindgen(js_name = sleep)]
    fn set_timer(ms: f64) -> Promise;
    #[wasm_bindgen(js_name = cancel)]
    fn clear_timer(p: &Promise);
    #[wasm_bindgen(js_name = random)]
    fn get_random(buf: &mut [u8]);
    #[wasm_bindgen(js_name = offline)]
    fn js_offline() -> bool;
    #[wasm_bindgen(js_name = httpDate)]
    fn http_date(s: &str) -> f64;
    #[wasm_bindgen(js_name = monoUs)]
    fn js_mono_us() -> f64;
    #[wasm_bindgen(js_name = nowMs)]
    fn js_now_ms() -> f64;
    #[wasm_bindgen(js_name = iso)]
    fn js_iso(ms: f64) -> String;
    #[wasm_bindgen(js_name = quoted)]
    fn js_quoted(s: &str) -> String;
    #[wasm_bindgen(js_name = num)]
    fn number_text(v: f64) -> String;
    #[wasm_bindgen(js_name = post)]
    fn js_post(url: &str, headers: &str, body: &[u8], keepalive: bool, ms: f64) -> Promise;
    #[wasm_bindgen(js_name = exitFetch)]
    fn js_exit_fetch(url: &str, body: &str) -> JsValue;
    #[wasm_bindgen(js_name = exitBeacon)]
    fn js_exit_beacon(url: &str, body: &str) -> bool;
}

/// A spawned future and whether it waits in the ready queue.
struct Task {
    fut: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    queued: Cell<bool>,
}

thread_local! {
    static READY: RefCell<VecDeque<Rc<Task>>> = const { RefCell::new(VecDeque::new()) };
    static TICK: JsValue = Wake(None).into();
    static TICKING: Cell<bool> = const { Cell::new(false) };
}

/// JavaScript's way back into Rust: `run()` polls the ready tasks (called from a
/// microtask, on the executor's own instance); `ok(value)` and `err(error)` settle the
/// promise an instance was handed for (see [`PromiseFuture`]).
#[doc(hidden)]
#[wasm_bindgen]
pub struct Wake(Option<Rc<Slot>>);

#[wasm_bindgen]
impl Wake {
    /// Polls every ready task, including those woken meanwhile.
    pub fn run(&self) {
        TICKING.with(|t| t.set(false));
        while let Some(task) = READY.with(|r| r.borrow_mut().pop_front()) {
            task.queued.set(false);
            let waker = task_waker(task.clone());
            let mut cx = Context::from_waker(&waker);
            let mut slot = task.fut.borrow_mut();
            if let Some(fut) = slot.as_mut() {
                if fut.as_mut().poll(&mut cx).is_ready() {
                    *slot = None;
                }
            }
        }
    }

    /// The promise resolved with `v`.
    pub fn ok(&self, v: JsValue) {
        self.set(Ok(v));
    }

    /// The promise rejected with `e`.
    pub fn err(&self, e: JsValue) {
        self.set(Err(e));
    }
}

impl Wake {
    fn set(&self, outcome: Result<JsValue, JsValue>) {
        if let Some(slot) = &self.0 {
            *slot.outcome.borrow_mut() = Some(outcome);
            if let Some(w) = slot.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }
}

/// Queues `task` to be polled in a microtask.
fn wake_task(task: Rc<Task>) {
    if task.queued.replace(true) {
        return;
    }
    READY.with(|r| r.borrow_mut().push_back(task));
    if !TICKING.with(|t| t.replace(true)) {
        TICK.with(js_tick);
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(
    |p| {
        // SAFETY: `p` comes from `Rc::into_raw` in `task_waker`; one more owner.
        unsafe { Rc::increment_strong_count(p as *const Task) };
        RawWaker::new(p, &VTABLE)
    },
    // SAFETY (these three): `p` is an owned `Rc<Task>` pointer (see `task_waker`).
    |p| wake_task(unsafe { Rc::from_raw(p as *const Task) }),
    |p| {
        let task = unsafe { Rc::from_raw(p as *const Task) };
        wake_task(task.clone());
        std::mem::forget(task);
    },
    |p| drop(unsafe { Rc::from_raw(p as *const Task) }),
);

/// A waker that queues `task`. (The page has one thread: the waker never crosses one.)
fn task_waker(task: Rc<Task>) -> Waker {
    let raw = RawWaker::new(Rc::into_raw(task) as *const (), &VTABLE);
    // SAFETY: the vtable keeps the `Rc` count right, and on wasm32 without threads nothing
    // can send the waker to another thread.
    unsafe { Waker::from_raw(raw) }
}

/// Runs a future on the JS event loop. Always returns `true`.
pub fn spawn<F>(fut: F) -> bool
where
    F: Future<Output = ()> + 'static,
{
    wake_task(Rc::new(Task {
        fut: RefCell::new(Some(Box::pin(fut))),
        queued: Cell::new(false),
    }));
    true
}

/// Where a promise's outcome lands, and who waits for it.
#[derive(Default)]
struct Slot {
    outcome: RefCell<Option<Result<JsValue, JsValue>>>,
    waker: RefCell<Option<Waker>>,
}

/// A JS promise as a future.
pub struct PromiseFuture(Rc<Slot>);

impl PromiseFuture {
    fn new(p: &Promise) -> Self {
        let slot = Rc::new(Slot::default());
        js_settle(p, Wake(Some(slot.clone())));
        PromiseFuture(slot)
    }
}

impl Future for PromiseFuture {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.outcome.borrow_mut().take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                *self.0.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for PromiseFuture {
    fn drop(&mut self) {
        self.0.waker.borrow_mut().take();
    }
}

/// Runs `fut` and hands its output to the caller: in the browser, where everything runs on
/// the page's one event loop, it is simply awaited. Always `Some`.
pub async fn run<T: 'static>(fut: impl Future<Output = T> + 'static) -> Option<T> {
    Some(fut.await)
}

/// A `setTimeout` timer as a future; the timer is cleared when the future is dropped.
pub struct Sleep {
    timer: Promise,
    done: PromiseFuture,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.done).poll(cx).map(|_| ())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        clear_timer(&self.timer);
    }
}

/// Sleeps for `d` with `setTimeout`.
pub fn sleep(d: Duration) -> Sleep {
    let timer = set_timer(d.as_millis() as u64 as f64);
    let done = PromiseFuture::new(&timer);
    Sleep { timer, done }
}

/// Fills `buf` with random bytes from `crypto.getRandomValues` (at most 65 536 bytes).
pub fn fill_random(buf: &mut [u8]) {
    get_random(buf);
}

/// Appends a finite `v` as the shortest decimal that reads back as `v`: JavaScript's own
/// number formatting (`1e+21` where ryu writes `1e21`; the same number in JSON), smaller
/// than a Rust float formatter.
pub fn write_f64(out: &mut String, v: f64) {
    out.push_str(&number_text(v));
}

/// Compression is left to the browser: always `None`.
pub fn gzip(_data: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Whether the browser reports being offline (`navigator.onLine === false`).
pub fn is_offline() -> bool {
    js_offline()
}

/// Parses an HTTP date (`Retry-After`) into Unix ms with the browser's `Date.parse` (smaller
/// than a Rust date parser); `None` if malformed or before 1970.
pub fn parse_http_date_ms(s: &str) -> Option<u64> {
    let ms = http_date(s);
    (ms >= 0.0).then_some(ms as u64)
}

/// `s` in double quotes, escaped as a JSON string (`JSON.stringify`: smaller in the wasm
/// than `{:?}`'s formatting, and the same for the URLs and names it quotes in messages).
pub fn quoted(s: &str) -> String {
    js_quoted(s)
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

/// Page exit: starts `fetch(url, { keepalive: true })` with a `text/plain` body. `None` if
/// the request could not be started; else a future of whether the intake answered 2xx.
pub fn exit_fetch(url: &str, body: &str) -> Option<impl Future<Output = bool>> {
    let p = js_exit_fetch(url, body);
    if p.is_undefined() {
        return None;
    }
    let p: Promise = p.unchecked_into();
    let answer = PromiseFuture::new(&p);
    Some(async move { answer.await.ok().and_then(|v| v.as_bool()) == Some(true) })
}

/// Page exit: queues `body` with `navigator.sendBeacon`; `false` if the browser refused it
/// (or has no `sendBeacon`).
pub fn exit_beacon(url: &str, body: &str) -> bool {
    js_exit_beacon(url, body)
}

/// The target's HTTP client: the global `fetch` (works in windows and workers).
#[derive(Clone, Debug, Default)]
pub struct HttpClient {}

impl HttpClient {
    /// A new client.
    pub fn new() -> Result<Self, String> {
        Ok(HttpClient {})
    }

    /// Sends a POST request with `fetch`. A network failure or a timeout is an `Err`.
    pub fn post(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, String>> {
        Box::pin(async move {
            if is_offline() {
                return Err("browser is offline".to_owned());
            }
            // Every request that fits the page's keepalive budget is sent with keepalive, so
            // a batch in flight when the tab closes still arrives.
            let reserved = keepalive_reserve(req.body.len());
            let _release = KeepaliveGuard(if reserved { req.body.len() } else { 0 });
            let mut headers = String::new();
            for (k, v) in &req.headers {
                for s in [k, v] {
                    headers.push_str(s);
                    headers.push('\n');
                }
            }
            let promise = js_post(
                &req.url,
                &headers,
                &req.body,
                req.keepalive || reserved,
                req.timeout.as_millis() as u64 as f64,
            );
            let resp: Array = PromiseFuture::new(&promise)
                .await
                .map_err(|e| e.as_string().unwrap_or_default())?
                .unchecked_into();
            Ok(HttpResponse {
                status: resp.get(0).as_f64().unwrap_or(0.0) as u16,
                retry_after: resp.get(1).as_string(),
                body: resp.get(2).as_string().unwrap_or_default(),
            })
        })
    }
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

/// Wall-clock Unix ms: `Date.now()`, 0 before 1970.
pub fn now_ms() -> u64 {
    js_now_ms().max(0.0) as u64
}

/// Whether two byte strings are equal (natively without `memcmp` for short ones).
#[inline(always)]
pub(crate) fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    a == b
}

/// A cache hint natively; nothing here.
#[inline(always)]
pub(crate) fn prefetch_write(_p: *const u8) {}

/// Copies `src` to `dst` (natively, short copies avoid `memcpy`; here code size matters
/// more).
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` bytes and must not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
}

/// Whether shared code should take its general, smaller paths over its fast ones: in the browser build size wins
/// (see `ItemWriter::attr`, `ItemWriter::ms_from_us` and `schema::push_u64`).
pub(crate) const SMALL_CODE: bool = true;

/// Writes the lowercase hex digits of the first `n` little-endian bytes of `id` at `dst`, a
/// byte at a time.
///
/// # Safety
///
/// `dst` must be valid for writes of `2 * n` bytes.
pub(crate) unsafe fn write_hex(id: u128, n: usize, dst: *mut u8) {
    for (i, b) in id.to_le_bytes().iter().take(n).enumerate() {
        let [hi, lo] = hex_pair(*b);
        // SAFETY: `2 * i + 1 < 2 * n`, inside what the caller vouches for.
        unsafe {
            *dst.add(2 * i) = hi;
            *dst.add(2 * i + 1) = lo;
        }
    }
}

/// The two lowercase hex digits of a byte, a digit at a time (a 512-byte table natively).
#[inline]
pub(crate) fn hex_pair(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
}

/// Writes `s` as a JSON string literal with escapes (the slow path of
/// `schema::write_json_str`): `JSON.stringify`.
pub(crate) fn write_escaped_json_str(out: &mut String, s: &str) {
    out.push_str(&js_quoted(s));
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms, from `Date.prototype.toISOString` (years
/// past 9999 written as 9999, as natively).
pub(crate) fn rfc3339_ms(unix_ms: u64) -> [u8; 24] {
    let text = js_iso(unix_ms as f64);
    let mut out = *b"1970-01-01T00:00:00.000Z";
    if text.len() == out.len() {
        out.copy_from_slice(text.as_bytes());
    }
    out
}

/// Monotonic microseconds (`performance.now()`; `Date.now()` where there is no
/// `performance`), without `Instant` (whose browser clock goes through `js_sys::global`).
pub fn mono_us() -> u64 {
    js_mono_us() as u64
}

/// Wall-clock Unix ms (`Date.now()` is already cheap in the browser).
pub fn now_unix_ms_coarse() -> u64 {
    super::now_unix_ms()
}

/// The hasher for series and bucket keys: 64-bit FNV-1a, a few bytes of code (the browser
/// holds few series, and the native word-at-a-time hasher is larger).
pub(crate) struct SeriesHasher(u64);

impl Default for SeriesHasher {
    fn default() -> Self {
        SeriesHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for SeriesHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
