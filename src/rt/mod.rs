//! The only module that knows which target Beacon runs on.
//!
//! Both targets export the same names: [`spawn`], [`sleep`], [`now`], [`BoxFuture`],
//! [`MaybeSend`], [`MaybeSync`], [`fill_random`], the HTTP primitive [`HttpClient`] and
//! [`gzip`]. Natively, futures run on one lazily started background thread ("beacon-rt");
//! on wasm32 they run on the browser's event loop (a small executor in `web.rs`), and timers
//! are `setTimeout`. The rest of the crate never writes a target `cfg`.

use std::future::Future;
use std::pin::Pin;

pub use web_time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod join;
pub use join::{join_all, run_bounded};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(all(feature = "kafka", target_arch = "wasm32"))]
compile_error!("the `kafka` feature is native only: librdkafka cannot run in the browser");

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::*;

/// A boxed future; `Send` natively, not on wasm32 (JS futures are not `Send`).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future; `Send` natively, not on wasm32 (JS futures are not `Send`).
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// `Send` natively; implemented by every type on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` natively; implemented by every type on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` natively; implemented by every type on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` natively; implemented by every type on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// A map keyed by precomputed 64-bit hashes (the aggregators' series and buckets). Natively a
/// hash table; in the browser, which holds few keys and pays for every byte of code, a vector
/// searched in order.
pub(crate) struct HashIndex<V> {
    #[cfg(not(target_arch = "wasm32"))]
    map: std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<native::Identity>>,
    #[cfg(target_arch = "wasm32")]
    list: Vec<(u64, V)>,
}

impl<V> Default for HashIndex<V> {
    fn default() -> Self {
        HashIndex {
            #[cfg(not(target_arch = "wasm32"))]
            map: Default::default(),
            #[cfg(target_arch = "wasm32")]
            list: Vec::new(),
        }
    }
}

impl<V: Default> HashIndex<V> {
    /// The value for `key`, inserted as `V::default()` if there is none.
    #[inline]
    pub(crate) fn get_or_default(&mut self, key: u64) -> &mut V {
        #[cfg(not(target_arch = "wasm32"))]
        return self.map.entry(key).or_default();
        #[cfg(target_arch = "wasm32")]
        {
            let at = match self.list.iter().position(|(k, _)| *k == key) {
                Some(at) => at,
                None => {
                    self.list.push((key, V::default()));
                    self.list.len() - 1
                }
            };
            &mut self.list[at].1
        }
    }

    /// Keeps the values for which `keep` (given the key too) returns `true`.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        #[cfg(not(target_arch = "wasm32"))]
        self.map.retain(|k, v| keep(*k, v));
        #[cfg(target_arch = "wasm32")]
        self.list.retain_mut(|(k, v)| keep(*k, v));
    }
}

/// Whether this target can block a thread (natively yes; never in the browser).
pub const CAN_BLOCK: bool = cfg!(not(target_arch = "wasm32"));

/// Wall-clock time in milliseconds since the Unix epoch (0 if the clock is before it).
/// Natively on Linux it is derived from the monotonic clock (see [`now_unix_ms_and_mono_us`]).
#[inline]
pub fn now_unix_ms() -> u64 {
    #[cfg(all(target_os = "linux", not(target_arch = "wasm32")))]
    if let Some((ms, _)) = native::unix_ms_and_mono_us() {
        return ms;
    }
    #[cfg(target_arch = "wasm32")]
    {
        web::now_ms()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Monotonic time.
pub fn now() -> Instant {
    Instant::now()
}

/// Monotonic time in microseconds from an arbitrary start, for measuring durations
/// (natively the calibrated time-stamp counter once ready, else on Linux `CLOCK_MONOTONIC`
/// straight, without `Instant`'s checked arithmetic).
#[inline]
pub fn mono_us() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        web::mono_us()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::fast_mono_us().unwrap_or_else(native::slow_mono_us)
    }
}

/// The wall-clock time in Unix ms and the [`mono_us`] time of one moment. Natively on Linux
/// only the monotonic clock is read: the wall clock is the monotonic one plus an offset each
/// thread reads again once a second, so a step of the wall clock shows in item times within
/// a second (and [`now_unix_ms`] works the same way).
#[inline]
pub fn now_unix_ms_and_mono_us() -> (u64, u64) {
    #[cfg(all(target_os = "linux", not(target_arch = "wasm32")))]
    if let Some(both) = native::unix_ms_and_mono_us() {
        return both;
    }
    (now_unix_ms(), mono_us())
}

/// Boxes a future as a [`BoxFuture`].
pub fn boxed<'a, F>(f: F) -> BoxFuture<'a, F::Output>
where
    F: Future + MaybeSend + 'a,
{
    Box::pin(f)
}

/// One HTTP request, as the HTTP transport hands it to the target's client.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Absolute URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body bytes (already compressed when a `Content-Encoding` header is present).
    pub body: Vec<u8>,
    /// Time limit for the whole request.
    pub timeout: Duration,
    /// Browser only: ask `fetch` to keep the request alive past page unload.
    pub keepalive: bool,
}

/// What came back from an HTTP request.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body, as text (lossy).
    pub body: String,
}
