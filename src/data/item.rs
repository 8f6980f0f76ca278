use std::borrow::Cow;
use std::sync::Arc;

pub(crate) use pool::recycle;

use crate::data::Value;
use crate::schema::{needs_escape, push3, write_json_str, write_own_header};

/// [`Item::unstamped_ms`] of an item whose id and time are written.
const STAMPED: u64 = u64::MAX;

/// One encoded item: a complete JSON object in the shared schema, ready to send.
///
/// Items are encoded once, when recorded; the batching core and the transports only move
/// bytes around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    json: String,
    ty: (u32, u32),
    name: (u32, u32),
    /// While the envelope's `event_id` and `event_time` are placeholders, the item's time in
    /// Unix ms, which [`Item::stamp`] writes when the item leaves the queue; [`STAMPED`] once
    /// they are written (a sentinel rather than an `Option`, which would take 8 more bytes).
    unstamped_ms: u64,
}

impl Item {
    /// Starts an item: writes the envelope's required fields into a new buffer, with
    /// placeholders for `event_id` and `event_time` (see [`Item::stamp`]). Finish it with
    /// [`ItemWriter::finish`]. `ty` must be a valid `event_type` (see
    /// [`crate::schema::check_type`]).
    // Inlined, so the writer's fields go to where the caller keeps them without a trip
    // through a returned copy.
    #[inline(always)]
    pub(crate) fn writer(capacity: usize, time_ms: u64, ty: &str, name: &str) -> ItemWriter {
        let mut json = pool::buffer(capacity);
        let (t, n) = write_own_header(&mut json, ty, name);
        let item = Item {
            json,
            ty: (t.start as u32, t.end as u32),
            name: (n.start as u32, n.end as u32),
            unstamped_ms: time_ms.min(STAMPED - 1),
        };
        ItemWriter { item }
    }

    /// Writes the envelope's `event_id` (a new UUIDv7) and `event_time`, once. The batching
    /// core calls it when the item leaves the queue, on the flushing side, so recording
    /// threads do not pay for the id's randomness and the time's formatting; the encoded size
    /// does not change. A requeued item keeps its id. The id's random bits come from
    /// `bits`.
    #[inline]
    fn stamp(&mut self, bits: &mut crate::random::UuidBits<'_>) {
        let ms = std::mem::replace(&mut self.unstamped_ms, STAMPED);
        if ms == STAMPED {
            return;
        }
        let time = crate::schema::rfc3339_ms_bytes(ms);
        crate::schema::fill_own_header(&mut self.json, ms, bits.next(), &time);
    }

    /// Stamps every item (see [`Item::stamp`]), with one visit to the thread's random bytes.
    /// The headers were last written on the recording threads' cores: the lines of items a
    /// few places ahead are asked for early, so their transfers overlap instead of stalling
    /// one after another.
    pub(crate) fn stamp_all(items: &mut [Item]) {
        const AHEAD: usize = 6;
        crate::random::with_uuid_bits(|bits| {
            for i in 0..items.len() {
                if let Some(next) = items.get(i + AHEAD) {
                    let p = next.json.as_ptr();
                    crate::rt::prefetch_write(p);
                    crate::rt::prefetch_write(p.wrapping_add(64));
                }
                items[i].stamp(bits);
            }
        })
    }

    /// Wraps a canonical encoding (as [`crate::schema::validate_object`] returns it).
    pub(crate) fn from_canonical(json: String) -> Item {
        Item::locate(json)
    }

    fn locate(json: String) -> Item {
        // The header is `{"event_id":"…","event_time":"…","event_type":"…","event_name":"…"`:
        // find the type and name by their keys, after the id (whose text is escaped).
        let find = |key: &str, from: usize| -> (u32, u32) {
            // A plain byte search over the short header: `str::find` would bring its two-way
            // searcher and the formatting of its panic path into the wasm.
            let bytes = json.as_bytes();
            let Some(rel) = bytes
                .get(from..)
                .and_then(|rest| rest.windows(key.len()).position(|w| w == key.as_bytes()))
            else {
                return (0, 0);
            };
            let start = from + rel + key.len();
            let mut end = start;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            (start as u32, end.min(bytes.len()) as u32)
        };
        let ty = find("\",\"event_type\":\"", 0);
        let name = find("\",\"event_name\":\"", ty.1 as usize);
        Item {
            json,
            ty,
            name,
            unstamped_ms: STAMPED,
        }
    }

    /// The item's JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The encoded size in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Always `false`: an item is never empty.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// The `event_type`.
    pub fn event_type(&self) -> &str {
        &self.json[self.ty.0 as usize..self.ty.1 as usize]
    }

    /// The `event_name`, unescaped.
    pub fn event_name(&self) -> Cow<'_, str> {
        let raw = &self.json[self.name.0 as usize..self.name.1 as usize];
        if raw.contains('\\') {
            serde_json::from_str::<String>(&format!("\"{raw}\""))
                .map(Cow::Owned)
                .unwrap_or(Cow::Borrowed(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// The `event_id`.
    pub fn event_id(&self) -> &str {
        // `{"event_id":"` is 13 bytes; ids Beacon writes need no escaping.
        let rest = &self.json[13.min(self.json.len())..];
        rest.split('"').next().unwrap_or("")
    }

    /// Parses the item into a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or(serde_json::Value::Null)
    }

    /// Consumes the item, returning its JSON text.
    pub fn into_json(self) -> String {
        self.json
    }
}

/// Appends attributes to an item being encoded.
pub(crate) struct ItemWriter {
    item: Item,
}

impl ItemWriter {
    /// Starts a key: writes `,"key":`.
    #[inline]
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        let out = &mut self.item.json;
        if needs_escape(key.as_bytes()) {
            out.push(',');
            write_json_str(out, key);
            out.push(':');
        } else {
            push3(out, b",\"", key, b"\":");
        }
        out
    }

    /// Writes `,"key":value`. A string value, an integer or a boolean that need no escaping
    /// are written with one capacity check and without calls; anything else goes through
    /// [`ItemWriter::key`] and [`Value::write_json`].
    #[inline]
    pub(crate) fn attr(&mut self, key: &str, value: &Value<'_>) {
        if crate::rt::SMALL_CODE {
            return value.write_json(self.key(key));
        }
        let (text, quoted): (&[u8], bool) = match value {
            Value::Str(s) => (s.as_bytes(), true),
            Value::Bool(true) => (b"true", false),
            Value::Bool(false) => (b"false", false),
            Value::I64(v) if *v >= 0 => return self.attr_u64(key, *v as u64),
            Value::U64(v) => return self.attr_u64(key, *v),
            _ => return value.write_json(self.key(key)),
        };
        if needs_escape(key.as_bytes()) || quoted && needs_escape(text) {
            return value.write_json(self.key(key));
        }
        let q = quoted as usize;
        // SAFETY: a string value is a whole `str` (a boolean's text is ASCII), written in
        // exactly `text.len() + 2 * q` bytes: its quotes only when it has them.
        unsafe {
            self.keyed(key, text.len() + 2 * q, |at| {
                if quoted {
                    *at = b'"';
                    *at.add(1 + text.len()) = b'"';
                }
                crate::rt::copy_short(text, at.add(q));
            });
        }
    }

    /// `,"key":digits`, with one capacity check when the key needs no escaping.
    #[inline]
    fn attr_u64(&mut self, key: &str, v: u64) {
        if needs_escape(key.as_bytes()) {
            return crate::schema::push_u64(self.key(key), v);
        }
        let digits = crate::schema::decimal_len(v);
        // SAFETY: `write_decimal` writes exactly the `digits` ASCII digits of `v`.
        unsafe {
            self.keyed(key, digits, |at| {
                crate::schema::write_decimal(at, v, digits)
            })
        }
    }

    /// Writes `,"key":` and a value of `len` bytes that `write` stores at the pointer it is
    /// given, with one capacity check and without calls: the shared part of
    /// [`ItemWriter::attr`], [`ItemWriter::ms_from_us`] and [`ItemWriter::hex`]. The key must
    /// need no escaping.
    ///
    /// # Safety
    ///
    /// `write` must initialise exactly the `len` bytes at the pointer, with valid UTF-8 (it
    /// may write the first byte and overwrite it, as long as all `len` end up written).
    #[inline(always)]
    unsafe fn keyed(&mut self, key: &str, len: usize, write: impl FnOnce(*mut u8)) {
        debug_assert!(!needs_escape(key.as_bytes()));
        let n = key.len() + 4 + len;
        // SAFETY: the key is a whole `str` and the punctuation ASCII, and the caller vouches
        // for the value, so the string stays UTF-8. `reserve` makes room for the `n` bytes
        // written after the initialised part, and `set_len` covers exactly them.
        unsafe {
            let buf = self.item.json.as_mut_vec();
            buf.reserve(n);
            let at = buf.as_mut_ptr().add(buf.len());
            std::ptr::copy_nonoverlapping(b",\"".as_ptr(), at, 2);
            crate::rt::copy_short(key.as_bytes(), at.add(2));
            std::ptr::copy_nonoverlapping(b"\":".as_ptr(), at.add(2 + key.len()), 2);
            write(at.add(4 + key.len()));
            buf.set_len(buf.len() + n);
        }
    }

    /// Starts one of Beacon's own fields, whose key needs no escaping: writes `,"key":`.
    #[inline]
    pub(crate) fn field(&mut self, key: &str) -> &mut String {
        debug_assert!(!needs_escape(key.as_bytes()));
        let out = &mut self.item.json;
        push3(out, b",\"", key, b"\":");
        out
    }

    /// Writes `,"key":"word"` for one of Beacon's own fields and a value that needs no
    /// escaping (a level, a status, a unit).
    #[inline]
    pub(crate) fn word(&mut self, key: &str, word: &str) {
        debug_assert!(!needs_escape(word.as_bytes()));
        push3(self.field(key), b"\"", word, b"\"");
    }

    /// Writes `,"key":<ms>` for one of Beacon's own fields and a duration given in
    /// microseconds, as milliseconds with up to three decimals (`12.345`, `12.5`, `12`),
    /// with one capacity check.
    #[inline]
    pub(crate) fn ms_from_us(&mut self, key: &str, us: u64) {
        debug_assert!(!needs_escape(key.as_bytes()));
        let (whole, frac) = (us / 1000, us % 1000);
        if crate::rt::SMALL_CODE {
            return push_ms(self.field(key), whole, frac);
        }
        let digits = crate::schema::decimal_len(whole);
        // The fraction's digits, trailing zeros left out.
        let decimals = match frac {
            0 => 0,
            f if f % 100 == 0 => 1,
            f if f % 10 == 0 => 2,
            _ => 3,
        };
        let len = digits + decimals + (decimals > 0) as usize;
        // SAFETY: the digits, and the point and the decimals when there is a fraction, are
        // exactly `len` ASCII bytes.
        unsafe {
            self.keyed(key, len, |at| {
                crate::schema::write_decimal(at, whole, digits);
                if decimals > 0 {
                    *at.add(digits) = b'.';
                    let mut f = frac / [1, 100, 10, 1][decimals];
                    for i in (1..=decimals).rev() {
                        *at.add(digits + i) = b'0' + (f % 10) as u8;
                        f /= 10;
                    }
                }
            });
        }
    }

    /// Writes `,"key":"value"` for one of Beacon's own fields.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        write_json_str(self.field(key), value);
    }

    /// Writes `,"key":"<lowercase hex>"` for one of Beacon's own fields (a key that needs no
    /// escaping) and an id of `bytes` bytes (8 or 16; the id's little-endian bytes, first byte
    /// first), with one capacity check.
    #[inline]
    pub(crate) fn hex(&mut self, key: &str, id: u128, bytes: usize) {
        debug_assert!(!needs_escape(key.as_bytes()) && matches!(bytes, 8 | 16));
        let digits = 2 * bytes;
        // SAFETY: two quotes around `digits` hex digits are exactly `digits + 2` ASCII bytes.
        unsafe {
            self.keyed(key, digits + 2, |at| {
                *at = b'"';
                crate::rt::write_hex(id, bytes, at.add(1));
                *at.add(1 + digits) = b'"';
            });
        }
    }

    /// The item's `event_name`.
    pub(crate) fn event_name(&self) -> Cow<'_, str> {
        self.item.event_name()
    }

    /// Writes a pre-encoded fragment (`,"key":value` pairs) as is.
    #[inline]
    pub(crate) fn raw(&mut self, fragment: &str) {
        // Short fragments (a service name) without a call to `memcpy`.
        push3(&mut self.item.json, b"", fragment, b"");
    }

    /// Closes the object.
    pub(crate) fn finish(mut self) -> Item {
        self.item.json.push('}');
        self.item
    }
}

/// `whole[.fff]` milliseconds, trailing zeros of the fraction left out, through `push_u64`
/// (the browser build's [`ItemWriter::ms_from_us`]; natively it writes in place).
fn push_ms(out: &mut String, whole: u64, frac: u64) {
    crate::schema::push_u64(out, whole);
    if frac != 0 {
        // `1fff` with its `1` turned into the point, then the trailing zeros off.
        crate::schema::push_u64(out, 1000 + frac % 1000);
        // SAFETY: an ASCII byte replaces an ASCII digit; the string stays UTF-8.
        unsafe {
            let v = out.as_mut_vec();
            let n = v.len();
            v[n - 4] = b'.';
        }
        let keep = out.bytes().rposition(|b| b != b'0').map_or(0, |i| i + 1);
        out.truncate(keep);
    }
}

/// A batch of items handed to a transport. Cloning is cheap (the items are shared).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    items: Arc<Vec<Item>>,
}

impl Batch {
    /// A batch of these items.
    pub fn new(items: Vec<Item>) -> Self {
        Batch {
            items: Arc::new(items),
        }
    }

    /// The items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sum of the items' encoded sizes.
    pub fn bytes(&self) -> usize {
        self.items.iter().map(Item::len).sum()
    }

    /// The items as NDJSON (one object per line, each line ending in `\n`).
    pub fn to_ndjson(&self) -> String {
        let mut out = String::with_capacity(self.bytes() + self.len());
        for it in self.items.iter() {
            out.push_str(it.json());
            out.push('\n');
        }
        out
    }

    /// The items as a JSON array.
    pub fn to_json_array(&self) -> String {
        let mut out = String::with_capacity(self.bytes() + self.len() + 2);
        out.push('[');
        for (i, it) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(it.json());
        }
        out.push(']');
        out
    }

    /// A new batch with the items for which `keep` returns `true`.
    pub fn filter(&self, mut keep: impl FnMut(&Item) -> bool) -> Batch {
        Batch::new(self.items.iter().filter(|i| keep(i)).cloned().collect())
    }

    /// The items, if this is the last handle to them.
    pub(crate) fn try_into_items(self) -> Result<Vec<Item>, Batch> {
        Arc::try_unwrap(self.items).map_err(|items| Batch { items })
    }

    /// Takes the items back (copying them only if the batch is still shared).
    pub fn into_items(self) -> Vec<Item> {
        Arc::try_unwrap(self.items).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// Spent item buffers go back to the recording threads.
///
/// Natively the flusher frees what recording threads allocate, and an allocation freed on
/// another thread is the slow path of most allocators. Delivered batches hand their buffers
/// to a shared pool instead; a recording thread takes a few dozen at a time into its own
/// cache. Both stay small (a bounded number of buffers of bounded capacity). On wasm32 there
/// is one thread, and the pool is compiled out.
mod pool {
    use std::cell::RefCell;
    use std::sync::Mutex;

    use super::Item;
    use crate::rt;

    /// At most this many spent buffers wait in the shared pool, with at most
    /// [`SHARED_MAX_BYTES`] of capacity in all. A busy thread records a few thousand items
    /// between two of the flusher's looks: with a pool smaller than that, buffers were
    /// allocated on the recording thread and freed on the flusher's as the backlog came and
    /// went, and the two threads slept on each other's malloc arena locks.
    const SHARED_MAX: usize = 16384;
    /// See [`SHARED_MAX`].
    const SHARED_MAX_BYTES: usize = 4 << 20;
    /// A thread takes this many at a time.
    const REFILL: usize = 256;
    /// Larger buffers are freed, not kept.
    const KEEP_CAPACITY: usize = 1024;
    /// At most this many bytes of the next buffer are asked for ahead of time.
    const PREFETCH_MAX: usize = 512;

    /// Spent buffers, and their capacity in all.
    struct Shared {
        buffers: Vec<String>,
        bytes: usize,
    }

    static SHARED: Mutex<Shared> = Mutex::new(Shared {
        buffers: Vec::new(),
        bytes: 0,
    });

    thread_local! {
        static LOCAL: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer with room for `capacity` bytes, reused when one is at hand.
    #[inline]
    pub(super) fn buffer(capacity: usize) -> String {
        if !rt::CAN_BLOCK {
            return String::with_capacity(capacity);
        }
        let reused = LOCAL.try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            if local.is_empty() {
                let mut shared = SHARED.try_lock().ok()?;
                let shared = &mut *shared;
                let from = shared.buffers.len().saturating_sub(REFILL);
                let taken: usize = shared.buffers[from..].iter().map(String::capacity).sum();
                shared.bytes -= taken;
                local.extend(shared.buffers.drain(from..));
            }
            let buf = local.pop();
            if let Some(next) = local.last() {
                // The next buffer's lines were last written on the flushing thread's core,
                // or have left this core's caches since this thread last wrote them: ask
                // for them now, ready for writing, so the next item's first stores do not
                // each wait for a line.
                let p = next.as_ptr();
                let mut off = 0;
                while off < next.capacity().min(PREFETCH_MAX) {
                    rt::prefetch_write(p.wrapping_add(off));
                    off += 64;
                }
            }
            buf
        });
        match reused {
            Ok(Some(mut buf)) => {
                buf.reserve(capacity);
                buf
            }
            _ => String::with_capacity(capacity),
        }
    }

    /// Takes the buffers of items that are done with (delivered or dropped).
    ///
    /// What the pool has no room for is freed after the pool's lock is let go. The buffers
    /// were allocated on the recording threads, so freeing them takes those threads' malloc
    /// arena locks; doing that under the pool's lock made a recording thread that found the
    /// pool locked allocate instead, contend for its own arena with the free, and sleep.
    pub(crate) fn recycle(items: Vec<Item>) {
        if !rt::CAN_BLOCK {
            return;
        }
        let mut items = items.into_iter();
        let mut large = Vec::new();
        {
            let Ok(mut shared) = SHARED.lock() else {
                return;
            };
            let shared = &mut *shared;
            while shared.buffers.len() < SHARED_MAX && shared.bytes < SHARED_MAX_BYTES {
                let Some(item) = items.next() else { break };
                let mut buf = item.json;
                if buf.capacity() <= KEEP_CAPACITY {
                    buf.clear();
                    shared.bytes += buf.capacity();
                    shared.buffers.push(buf);
                } else {
                    large.push(buf);
                }
            }
        }
        drop(large);
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_encode_as_json_whatever_path_they_take() {
        let keys = [
            "k",
            "plan",
            "http.status",
            "a key with \"quotes\"",
            "tab\there",
            "ключ",
        ];
        let values: Vec<Value<'_>> = vec![
            Value::from("x"),
            Value::from(""),
            Value::from("a longer value than thirty-two bytes, to be copied"),
            Value::from("needs \\ escaping \" and \n"),
            Value::from("ünïcödé"),
            Value::Bool(true),
            Value::Bool(false),
            Value::I64(0),
            Value::I64(-1),
            Value::I64(i64::MIN),
            Value::I64(i64::MAX),
            Value::U64(u64::MAX),
            Value::U64(7),
            Value::F64(1.5),
            Value::F64(f64::NAN),
            Value::Null,
        ];
        for key in keys {
            for value in &values {
                let mut w = Item::writer(0, 0, "t", "n");
                w.attr(key, value);
                let item = w.finish();
                let parsed: serde_json::Value = serde_json::from_str(item.json())
                    .unwrap_or_else(|e| panic!("{key:?} = {value:?}: {e}: {}", item.json()));
                let expected = match value {
                    Value::Str(s) => serde_json::json!(s),
                    Value::Bool(b) => serde_json::json!(b),
                    Value::I64(v) => serde_json::json!(v),
                    Value::U64(v) => serde_json::json!(v),
                    Value::F64(v) if v.is_finite() => serde_json::json!(v),
                    Value::F64(_) | Value::Null => serde_json::Value::Null,
                };
                assert_eq!(parsed[key], expected, "{key:?} = {value:?}");
            }
        }
    }

    #[test]
    fn durations_keep_up_to_three_decimals_without_trailing_zeros() {
        for (us, text) in [
            (0, "0"),
            (1, "0.001"),
            (10, "0.01"),
            (100, "0.1"),
            (999, "0.999"),
            (1_000, "1"),
            (1_500, "1.5"),
            (12_340, "12.34"),
            (12_345, "12.345"),
            (1_000_001, "1000.001"),
            (u64::MAX, "18446744073709551.615"),
        ] {
            let mut w = Item::writer(0, 0, "t", "n");
            w.ms_from_us("d", us);
            let json = w.finish().into_json();
            assert!(
                json.ends_with(&format!(",\"d\":{text}}}")),
                "{us} µs: {json}"
            );
            // The browser build's path.
            let mut out = String::from("d=");
            push_ms(&mut out, us / 1000, us % 1000);
            assert_eq!(out, format!("d={text}"), "{us} µs, browser path");
        }
    }
}
