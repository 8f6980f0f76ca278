//! Native runtime: one background thread runs Beacon's futures on a small tokio runtime.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use super::{BoxFuture, HttpRequest, HttpResponse};

fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("beacon-rt")
            .enable_all()
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs a future in the background. Returns `false` if the runtime could not start.
pub fn spawn<F>(fut: F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    match runtime() {
        Some(rt) => {
            rt.spawn(fut);
            true
        }
        None => false,
    }
}

/// Sleeps for `d` (the future must run on Beacon's runtime, as every future given to
/// [`spawn`] does).
pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await
}

/// Whether the current thread is Beacon's own runtime thread (where blocking would deadlock).
fn on_runtime_thread() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
        && std::thread::current().name() == Some("beacon-rt")
}

/// Runs `fut` on the background runtime and blocks the calling thread until it finishes or
/// `timeout` passes. Returns `None` on timeout (the future keeps running), or when called
/// from Beacon's own runtime thread, where waiting would deadlock.
pub fn block_on_timeout<F, T>(fut: F, timeout: Duration) -> Option<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if on_runtime_thread() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = spawn(async move {
        let _ = tx.send(fut.await);
    });
    if !spawned {
        return None;
    }
    rx.recv_timeout(timeout).ok()
}

/// Fills `buf` with random bytes from the operating system (zeros if it has none).
pub fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        buf.fill(0);
    }
}

/// Compresses `data` with gzip. `None` where compression is not available.
pub fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// The target's HTTP client (reqwest natively).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// A new client with connection pooling.
    pub fn new() -> Result<Self, String> {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map(|inner| HttpClient { inner })
            .map_err(|e| format!("cannot create HTTP client: {e}"))
    }

    /// Sends a POST request. A network failure is an `Err` with a description.
    pub fn post(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, String>> {
        let client = self.inner.clone();
        Box::pin(async move {
            let mut builder = client.post(&req.url).timeout(req.timeout);
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let resp = builder.body(req.body).send().await.map_err(|e| {
                if e.is_timeout() {
                    format!("request to {} timed out", req.url)
                } else {
                    // reqwest's own text hides the cause ("connection refused"): add the chain.
                    let mut text = format!("request to {} failed: {e}", req.url);
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        text.push_str(": ");
                        text.push_str(&cause.to_string());
                        source = cause.source();
                    }
                    text
                }
            })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp.text().await.unwrap_or_default();
            Ok(HttpResponse {
                status,
                retry_after,
                body,
            })
        })
    }
}

/// Parses an HTTP date (`Retry-After`) into Unix ms; `None` if malformed or before 1970.
pub fn parse_http_date_ms(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// `s` quoted and escaped as `{:?}` writes it.
pub fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Natively, offline detection is left to the network: always `false`.
pub fn is_offline() -> bool {
    false
}

/// Runs `fut` on Beacon's runtime thread and hands its output to the caller, whichever
/// executor awaits it; `None` if the runtime could not run it.
pub async fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
    let (tx, rx) = futures_channel::oneshot::channel();
    spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.await.ok()
}

/// Appends a finite `v` as the shortest decimal that reads back as `v` (ryu).
pub fn write_f64(out: &mut String, v: f64) {
    out.push_str(ryu::Buffer::new().format_finite(v));
}

/// Wall-clock Unix ms from the kernel's coarse clock (a few ms of resolution, a fraction of the
/// cost): enough to pick a usage bucket.
pub fn now_unix_ms_coarse() -> u64 {
    #[cfg(target_os = "linux")]
    if let Some(us) = clock_us(libc::CLOCK_REALTIME_COARSE) {
        return us / 1000;
    }
    super::now_unix_ms()
}

/// Microseconds on one of the kernel's clocks (`None` if it fails or is negative):
/// `clock_gettime` straight, without `SystemTime`'s and `Instant`'s checked arithmetic.
#[cfg(target_os = "linux")]
#[inline]
pub(super) fn clock_us(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes into the `timespec` we own.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r != 0 || ts.tv_sec < 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000)
}

/// The CPU's time-stamp counter as a monotonic clock, on x86-64 Linux where the kernel
/// itself keeps time with it (its clock source is `tsc`, so the counter is invariant and
/// synchronised across cores). Reading it costs a fraction of a `clock_gettime` call, which
/// on this project's virtual machines costs tens of nanoseconds.
///
/// It is calibrated without waiting: the first reading notes the counter and
/// `CLOCK_MONOTONIC` together, and a reading at least 0.5 s later (on any thread) notes them
/// again and fixes the rate (within a few µs per second). Until then, and everywhere
/// else, [`super::mono_us`] reads `CLOCK_MONOTONIC`. Calibrated readings continue
/// `CLOCK_MONOTONIC` from the second note, so a duration spanning the switch stays right.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod tsc {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The counter and the monotonic µs at one moment.
    #[derive(Clone, Copy)]
    struct Note {
        ticks: u64,
        us: u64,
    }

    struct Rate {
        at: Note,
        /// µs per tick, as a 32.32 fixed-point number.
        us_per_tick: u64,
    }

    /// How far apart the two notes are: the rate is right within the clock's 1 µs steps per
    /// this long (2 ppm).
    const WINDOW_US: u64 = 500_000;

    /// `None` when the counter is not the kernel's clock source.
    static FIRST: OnceLock<Option<Note>> = OnceLock::new();
    static RATE: OnceLock<Rate> = OnceLock::new();
    /// No calibration attempt before this (monotonic µs) after a failed one.
    static RETRY_AT: AtomicU64 = AtomicU64::new(0);

    fn ticks() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor.
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_rdtsc()
        }
    }

    /// Reads the counter on both sides of the monotonic clock. A reading interrupted in
    /// between (the gap is more than about 40 µs at 2.5 GHz) is taken again, a few times.
    fn note() -> Option<Note> {
        for _ in 0..5 {
            let before = ticks();
            let us = super::clock_us(libc::CLOCK_MONOTONIC)?;
            let gap = ticks().wrapping_sub(before);
            if gap < 100_000 {
                return Some(Note {
                    ticks: before + gap / 2,
                    us,
                });
            }
        }
        None
    }

    /// Monotonic µs from the counter, once calibrated.
    #[inline]
    pub(super) fn now_us() -> Option<u64> {
        let rate = RATE.get()?;
        let ticks = ticks().saturating_sub(rate.at.ticks);
        Some(rate.at.us + ((ticks as u128 * rate.us_per_tick as u128) >> 32) as u64)
    }

    /// Takes part in the calibration; called with each `CLOCK_MONOTONIC` reading until the
    /// counter is calibrated.
    pub(super) fn calibrate(now_us: u64) {
        let first = FIRST.get_or_init(|| {
            let source = std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            );
            match source {
                Ok(s) if s.trim() == "tsc" => note(),
                _ => None,
            }
        });
        let Some(first) = *first else { return };
        if now_us < first.us + WINDOW_US || now_us < RETRY_AT.load(Ordering::Relaxed) {
            return;
        }
        let Some(second) = note() else {
            // Interrupted each time (a busy machine): try again in a while, not on every
            // reading.
            RETRY_AT.store(now_us + WINDOW_US, Ordering::Relaxed);
            return;
        };
        let (dt, dus) = (second.ticks.wrapping_sub(first.ticks), second.us - first.us);
        if dt == 0 || second.ticks < first.ticks {
            return;
        }
        let us_per_tick = ((dus as u128) << 32) / dt as u128;
        let _ = RATE.set(Rate {
            at: second,
            us_per_tick: us_per_tick.min(u64::MAX as u128) as u64,
        });
    }
}

/// Monotonic µs from the calibrated time-stamp counter, once it is calibrated.
#[inline]
pub(super) fn fast_mono_us() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        tsc::now_us()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        None
    }
}

/// Monotonic µs from the operating system.
pub(super) fn slow_mono_us() -> u64 {
    #[cfg(target_os = "linux")]
    if let Some(us) = clock_us(libc::CLOCK_MONOTONIC) {
        #[cfg(target_arch = "x86_64")]
        tsc::calibrate(us);
        return us;
    }
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

thread_local! {
    /// When this thread last read the wall clock (monotonic µs), and the wall clock minus the
    /// monotonic one then (µs).
    static WALL_OFFSET: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// See [`super::now_unix_ms_and_mono_us`].
#[cfg(target_os = "linux")]
#[inline]
pub(super) fn unix_ms_and_mono_us() -> Option<(u64, u64)> {
    let mono = super::mono_us();
    let (at, mut offset) = WALL_OFFSET.try_with(|w| w.get()).ok()?;
    if at == 0 || mono.wrapping_sub(at) > 1_000_000 {
        offset = clock_us(libc::CLOCK_REALTIME)?.wrapping_sub(mono);
        let _ = WALL_OFFSET.try_with(|w| w.set((mono, offset)));
    }
    Some((mono.wrapping_add(offset) / 1000, mono))
}

/// Whether two byte strings are equal. Up to 16 bytes (most names, keys and label values) it
/// compares two overlapping words from each, without a call to `memcmp`.
#[inline(always)]
pub(crate) fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    use std::ptr::read_unaligned as get;
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: every read is inside `a` or `b`, both `n` bytes long (the two words overlap
    // when `n` is below twice their width).
    unsafe {
        if n >= 8 {
            if n > 16 {
                return a == b;
            }
            let x = get(pa as *const u64) ^ get(pb as *const u64);
            let y = get(pa.add(n - 8) as *const u64) ^ get(pb.add(n - 8) as *const u64);
            (x | y) == 0
        } else if n >= 4 {
            let x = get(pa as *const u32) ^ get(pb as *const u32);
            let y = get(pa.add(n - 4) as *const u32) ^ get(pb.add(n - 4) as *const u32);
            (x | y) == 0
        } else if n > 0 {
            // The first, middle and last bytes are every byte of 1 to 3.
            *pa == *pb && *pa.add(n / 2) == *pb.add(n / 2) && *pa.add(n - 1) == *pb.add(n - 1)
        } else {
            true
        }
    }
}

/// Asks for the cache line at `p` to be brought close, ready for writing, ahead of time.
///
/// On x86-64 this is `PREFETCHW`, which takes the line for writing in one step. (Without the
/// `prfchw` target feature, `_mm_prefetch` with the write hint compiles to a plain read
/// prefetch, which brings the line shared; the first store then has to ask again for it.)
/// Processors without the instruction execute it as a no-op: its opcode is in the hint
/// space that older Intel parts decode as `NOP`.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address, and it
    // touches no register, flag or stack.
    unsafe {
        std::arch::asm!(
            "prefetchw [{p}]",
            p = in(reg) p,
            options(nostack, preserves_flags, readonly)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A hasher for keys that are already hashes (see [`super::HashIndex`]).
#[derive(Default)]
pub(crate) struct Identity(u64);

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

thread_local! {
    /// The last second formatted on this thread: `YYYY-MM-DDTHH:MM:SS.` is reused within it.
    static TIME_CACHE: std::cell::Cell<(u64, [u8; 24])> =
        const { std::cell::Cell::new((u64::MAX, [0; 24])) };
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms (years past 9999 written as 9999),
/// formatting the date only once per second on each thread.
#[inline]
pub(crate) fn rfc3339_ms(unix_ms: u64) -> [u8; 24] {
    let sec = unix_ms / 1000;
    let (cached_sec, mut text) = TIME_CACHE.with(|c| c.get());
    if cached_sec != sec {
        text = format_rfc3339_ms(unix_ms);
        TIME_CACHE.with(|c| c.set((sec, text)));
    }
    // The milliseconds go into the last eight bytes (`:SS.mmmZ`) as one word: stored a byte
    // at a time, the 8-byte load that copies the text out waited for those three stores
    // (perf put half of the flusher's stamping on that load).
    let ms = unix_ms % 1000;
    let digits = (u64::from(b'0') + ms / 100)
        | (u64::from(b'0') + ms / 10 % 10) << 8
        | (u64::from(b'0') + ms % 10) << 16;
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&text[16..24]);
    let tail = u64::from_le_bytes(tail) & !(0xff_ffff << 32) | digits << 32;
    text[16..24].copy_from_slice(&tail.to_le_bytes());
    text
}

fn format_rfc3339_ms(unix_ms: u64) -> [u8; 24] {
    let secs = unix_ms / 1000;
    let ms = (unix_ms % 1000) as u32;
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let y = y.clamp(0, 9999) as u32;
    put_digits(&mut b[0..4], y);
    put_digits(&mut b[5..7], m);
    put_digits(&mut b[8..10], d);
    put_digits(&mut b[11..13], sod / 3600);
    put_digits(&mut b[14..16], sod / 60 % 60);
    put_digits(&mut b[17..19], sod % 60);
    put_digits(&mut b[20..23], ms);
    b
}

fn put_digits(dst: &mut [u8], mut v: u32) {
    for slot in dst.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

// Howard Hinnant's civil calendar algorithms (the inverse is in `schema`, which parses times).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The hasher for series and bucket keys, which are short strings and numbers: each 8-byte
/// word (a string's last, partial word read with overlapping loads) is folded in with one
/// multiplication, as `FxHasher` does a word at a time, but without `FxHasher`'s byte loop
/// for the tail. A weak hash, but its users compare keys in full: a collision costs a
/// comparison, never a wrong series.
#[derive(Default)]
pub(crate) struct SeriesHasher(u64);

impl SeriesHasher {
    /// The multiplier `rustc-hash` uses (an odd number with well-spread bits).
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for SeriesHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // The multiplication leaves its best-mixed bits at the top; hash tables index with the
        // low ones.
        self.0.rotate_left(26)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        use std::ptr::read_unaligned as get;
        let mut rest = bytes;
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            if tail.is_empty() {
                break;
            }
            self.add(u64::from_le_bytes(*word));
            rest = tail;
        }
        // 0 to 8 bytes are left.
        let n = rest.len();
        let p = rest.as_ptr();
        // SAFETY: every read is inside `rest` (the two halves overlap below twice the width).
        let word = unsafe {
            if n >= 4 {
                u64::from(get(p as *const u32)) | u64::from(get(p.add(n - 4) as *const u32)) << 32
            } else if n > 0 {
                u64::from(*p) | u64::from(*p.add(n / 2)) << 8 | u64::from(*p.add(n - 1)) << 16
            } else {
                0
            }
        };
        self.add(word ^ (n as u64) << 56);
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.add(v as u64);
    }

    #[inline]
    fn write_isize(&mut self, v: isize) {
        self.add(v as u64);
    }
}

/// Writes `s` as a JSON string literal, escaping quotes, backslashes and control characters
/// (the slow path of `schema::write_json_str`).
pub(crate) fn write_escaped_json_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.push('"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is an ASCII byte, so a char boundary.
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Copies `src` to `dst`. Up to 64 bytes (most keys and values, and a client's usual
/// attributes) it is overlapping unaligned loads and stores, without the call into `memcpy`
/// that a copy of unknown length costs otherwise.
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` bytes and must not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    use std::ptr::{read_unaligned as get, write_unaligned as put};
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY: every read is inside `src` (the first and last pieces overlap when `n` is below
    // twice their width) and every write inside the `n` bytes at `dst`.
    unsafe {
        if n >= 16 {
            if n > 32 {
                if n > 64 {
                    std::ptr::copy_nonoverlapping(s, dst, n);
                    return;
                }
                let (a, b) = (get(s as *const u128), get(s.add(16) as *const u128));
                let (y, z) = (
                    get(s.add(n - 32) as *const u128),
                    get(s.add(n - 16) as *const u128),
                );
                put(dst as *mut u128, a);
                put(dst.add(16) as *mut u128, b);
                put(dst.add(n - 32) as *mut u128, y);
                put(dst.add(n - 16) as *mut u128, z);
                return;
            }
            let (a, b) = (get(s as *const u128), get(s.add(n - 16) as *const u128));
            put(dst as *mut u128, a);
            put(dst.add(n - 16) as *mut u128, b);
        } else if n >= 8 {
            let (a, b) = (get(s as *const u64), get(s.add(n - 8) as *const u64));
            put(dst as *mut u64, a);
            put(dst.add(n - 8) as *mut u64, b);
        } else if n >= 4 {
            let (a, b) = (get(s as *const u32), get(s.add(n - 4) as *const u32));
            put(dst as *mut u32, a);
            put(dst.add(n - 4) as *mut u32, b);
        } else if n > 0 {
            let (a, m, z) = (*s, *s.add(n / 2), *s.add(n - 1));
            *dst = a;
            *dst.add(n / 2) = m;
            *dst.add(n - 1) = z;
        }
    }
}

/// Whether shared code should take its general, smaller paths over its fast ones: natively speed wins
/// (see `ItemWriter::attr`, `ItemWriter::ms_from_us` and `schema::push_u64`).
pub(crate) const SMALL_CODE: bool = false;

/// Writes the lowercase hex digits of the first `n` little-endian bytes of `id` (`n` is 8 or
/// 16), first byte first, at `dst`: with SSE2 (always there on x86-64) all at once, from
/// registers, elsewhere a byte at a time. The digits go straight to their place: built on the
/// stack and copied, the copy's wide load would wait for the narrower stores that wrote them.
///
/// # Safety
///
/// `dst` must be valid for writes of `2 * n` bytes.
#[inline]
pub(crate) unsafe fn write_hex(id: u128, n: usize, dst: *mut u8) {
    debug_assert!(n == 8 || n == 16);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86-64; the stores are unaligned ones, inside the `2 * n` bytes
    // at `dst` the caller vouches for.
    unsafe {
        use std::arch::x86_64::*;
        let x = _mm_set_epi64x((id >> 64) as i64, id as i64);
        let nibble = _mm_set1_epi8(0x0f);
        let high = _mm_and_si128(_mm_srli_epi16(x, 4), nibble);
        let low = _mm_and_si128(x, nibble);
        // Digits 10 to 15 become 'a' to 'f': '0' + d, plus 39 where d > 9.
        let ascii = |d: __m128i| {
            let letters = _mm_and_si128(_mm_cmpgt_epi8(d, _mm_set1_epi8(9)), _mm_set1_epi8(39));
            _mm_add_epi8(_mm_add_epi8(d, _mm_set1_epi8(b'0' as i8)), letters)
        };
        _mm_storeu_si128(dst as *mut __m128i, ascii(_mm_unpacklo_epi8(high, low)));
        if n == 16 {
            _mm_storeu_si128(
                dst.add(16) as *mut __m128i,
                ascii(_mm_unpackhi_epi8(high, low)),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (i, b) in id.to_le_bytes()[..n].iter().enumerate() {
        let [hi, lo] = hex_pair(*b);
        // SAFETY: `2 * i + 1 < 2 * n`, inside what the caller vouches for.
        unsafe {
            *dst.add(2 * i) = hi;
            *dst.add(2 * i + 1) = lo;
        }
    }
}

/// Two lowercase hex digits for every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [HEX[b >> 4], HEX[b & 15]];
        b += 1;
    }
    t
};

/// The two lowercase hex digits of a byte, from one table lookup.
#[inline]
pub(crate) fn hex_pair(b: u8) -> [u8; 2] {
    HEX_PAIRS[b as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn the_calibrated_clock_keeps_pace_with_the_system_clocks() {
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        );
        if source.map_or(true, |s| s.trim() != "tsc") {
            // The counter is only used where the kernel keeps time with it.
            assert!(fast_mono_us().is_none());
            return;
        }
        let mut waited = 0;
        while fast_mono_us().is_none() && waited < 300 {
            let _ = slow_mono_us();
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        let (fast0, slow0) = (
            fast_mono_us().expect("calibrated within 3 s"),
            slow_mono_us(),
        );
        std::thread::sleep(Duration::from_millis(200));
        let (fast1, slow1) = (fast_mono_us().unwrap_or(0), slow_mono_us());
        let (fast, slow) = (fast1 - fast0, slow1 - slow0);
        assert!(fast.abs_diff(slow) < 2_000, "{fast} µs against {slow} µs");
        // It continues CLOCK_MONOTONIC: the two read the same moment within 2 ms.
        assert!(fast1.abs_diff(slow1) < 2_000, "{fast1} against {slow1}");
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        assert!(super::super::now_unix_ms().abs_diff(wall) <= 2);
    }

    #[test]
    fn wide_hex_matches_byte_formatting() {
        let mut x = 0x0123_4567_89ab_cdefu64;
        let mut cases = vec![[0u8; 16], [0xff; 16]];
        cases.push(std::array::from_fn(|i| (i * 17) as u8));
        for _ in 0..1000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            cases.push(std::array::from_fn(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8));
        }
        for bytes in cases {
            for n in [8, 16] {
                let expected: String = bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
                let mut out = [b'#'; 34];
                let id = u128::from_le_bytes(bytes);
                // SAFETY: `out` has room for 32 digits after its first byte.
                unsafe { write_hex(id, n, out.as_mut_ptr().add(1)) };
                assert_eq!(std::str::from_utf8(&out[1..=2 * n]).unwrap(), expected);
                assert_eq!(out[0], b'#', "nothing before the digits");
                assert!(out[2 * n + 1..].iter().all(|b| *b == b'#'), "nothing after");
            }
        }
    }

    #[test]
    fn the_series_hasher_reads_every_byte_of_every_length() {
        use std::hash::{Hash, Hasher};
        let hash = |s: &str| {
            let mut h = SeriesHasher::default();
            s.hash(&mut h);
            h.finish()
        };
        let mut seen = std::collections::HashMap::new();
        let base: String = (0..40u8).map(|i| (b'a' + i % 26) as char).collect();
        for len in 0..=40 {
            let s = &base[..len];
            let copy: String = s.chars().collect();
            assert_eq!(
                hash(s),
                hash(&copy),
                "equal keys at other addresses, equal hashes"
            );
            // A change in any one byte changes the hash.
            for at in 0..len {
                let mut other = s.as_bytes().to_vec();
                other[at] = b'#';
                let other = String::from_utf8(other).unwrap();
                assert_ne!(hash(s), hash(&other), "{len} bytes, byte {at} changed");
                seen.insert(hash(&other), other);
            }
            assert!(
                seen.insert(hash(s), s.to_owned()).is_none(),
                "{s:?} collides"
            );
        }
    }

    #[test]
    fn short_copies_and_comparisons_agree_with_the_slice_operations() {
        let text: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=80 {
            for start in [0, 1, 7, 13] {
                let src = &text[start..start + len];
                let mut dst = vec![b'#'; len + 2];
                // SAFETY: `dst` has room for `len` bytes after its first one.
                unsafe { copy_short(src, dst.as_mut_ptr().add(1)) };
                assert_eq!(&dst[1..=len], src, "copy of {len} bytes");
                assert_eq!((dst[0], dst[len + 1]), (b'#', b'#'), "nothing around it");

                let copy = src.to_vec();
                assert!(eq_bytes(src, &copy));
                for at in 0..len {
                    let mut other = src.to_vec();
                    other[at] ^= 1;
                    assert!(!eq_bytes(src, &other), "{len} bytes differing at {at}");
                }
                assert!(!eq_bytes(src, &text[start..start + len + 1]));
            }
        }
    }
}
