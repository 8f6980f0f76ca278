//! The shared event envelope (schema v1): required fields, names of the standard types and
//! their fields, the JSON encoding of items, and validation of raw events.
//!
//! Every item travels as one flat JSON object whose first four keys are `event_id`,
//! `event_time`, `event_type` and `event_name`; every other key is an attribute. This module
//! is pure data: no I/O, no clock, no threads (times and random bytes are passed in).

use std::fmt;

use serde_json::{Map, Value as Json};

/// The version of the envelope this crate writes and accepts.
pub const SCHEMA_VERSION: u32 = 1;
/// Default limit on the encoded size of one item, in bytes.
pub const DEFAULT_MAX_ITEM_BYTES: usize = 32 * 1024;
/// Longest `event_type`, in characters.
pub const MAX_TYPE_LEN: usize = 64;
/// Longest `event_name`, in characters.
pub const MAX_NAME_LEN: usize = 128;
/// Longest attribute key, in characters.
pub const MAX_KEY_LEN: usize = 128;
/// Longest `event_id`, in characters.
pub const MAX_ID_LEN: usize = 128;
/// The prefix reserved for the envelope's own keys.
pub const RESERVED_PREFIX: &str = "event_";

/// Names of the envelope's required keys.
pub mod keys {
    /// Unique id of the item (a UUIDv7 when Beacon generates it), used for de-duplication.
    pub const EVENT_ID: &str = "event_id";
    /// RFC 3339 UTC time with millisecond precision.
    pub const EVENT_TIME: &str = "event_time";
    /// The item's type: one of [`super::types`] or your own (`[a-z0-9_.-]{1,64}`).
    pub const EVENT_TYPE: &str = "event_type";
    /// The item's name within its type (1 to 128 characters).
    pub const EVENT_NAME: &str = "event_name";
}

/// The standard event types.
pub mod types {
    /// Something a user or a program did.
    pub const BEHAVIORAL: &str = "behavioral";
    /// A log record.
    pub const LOG: &str = "log";
    /// A metric: a pre-aggregated series, a timer, a counter increment or a plain value.
    pub const METRIC: &str = "metric";
    /// A finished span.
    pub const SPAN: &str = "span";
    /// Usage of a shared resource by a feature, summed per time bucket.
    pub const USAGE: &str = "usage";
    /// A periodic roll-up of statistics (deltas) and traits (state).
    pub const ROLLUP: &str = "rollup";
    /// The SDK's own report of dropped items.
    pub const CLIENT_REPORT: &str = "client_report";
    /// All standard types.
    pub const ALL: [&str; 7] = [BEHAVIORAL, LOG, METRIC, SPAN, USAGE, ROLLUP, CLIENT_REPORT];
}

/// Well-known attribute keys: the client's context and the standard types' fields.
pub mod fields {
    /// The service (or app) that produced the item.
    pub const SERVICE_NAME: &str = "service_name";
    /// The service's version.
    pub const SERVICE_VERSION: &str = "service_version";
    /// The service's source commit.
    pub const SERVICE_COMMIT: &str = "service_commit";
    /// Set to `true` for development builds.
    pub const IS_DEV: &str = "is_dev";
    /// A stable id of the installation (or browser profile).
    pub const INSTALL_ID: &str = "install_id";
    /// The user, when known.
    pub const USER_ID: &str = "user_id";
    /// A browser tab session.
    pub const SESSION_ID: &str = "session_id";
    /// The SDK that produced the item, e.g. `beacon-rust/0.1.0`.
    pub const SDK: &str = "sdk";

    /// metric: the value (counter sum, gauge value, timer ms, plain value).
    pub const VALUE: &str = "value";
    /// metric: `counter`, `gauge`, `histogram`, `timer`, `incr` or `value`.
    pub const METRIC_TYPE: &str = "metric_type";
    /// metric: the sample rate the value was recorded at (0 < rate ≤ 1).
    pub const RATE: &str = "rate";
    /// metric: unit of the value (e.g. `ms`).
    pub const UNIT: &str = "unit";
    /// metric (histogram): number of observations.
    pub const COUNT: &str = "count";
    /// metric (histogram): sum of observations.
    pub const SUM: &str = "sum";
    /// metric (histogram): smallest observation.
    pub const MIN: &str = "min";
    /// metric (histogram): largest observation.
    pub const MAX: &str = "max";
    /// metric (histogram): upper bucket boundaries (inclusive).
    pub const BOUNDS: &str = "bounds";
    /// metric (histogram): counts per bucket (`bounds.len() + 1` entries).
    pub const BUCKET_COUNTS: &str = "bucket_counts";
    /// metric (aggregated): start of the aggregation period, RFC 3339.
    pub const PERIOD_START: &str = "period_start";

    /// log: `trace`, `debug`, `info`, `warn`, `error` or `fatal`.
    pub const LEVEL: &str = "level";
    /// log: the message.
    pub const MESSAGE: &str = "message";

    /// span / log: 32 lowercase hex digits.
    pub const TRACE_ID: &str = "trace_id";
    /// span / log: 16 lowercase hex digits.
    pub const SPAN_ID: &str = "span_id";
    /// span: the parent span's id.
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    /// span: duration in milliseconds.
    pub const DURATION_MS: &str = "duration_ms";
    /// span: `unset`, `ok` or `error`.
    pub const STATUS: &str = "status";
    /// span: the error message when `status` is `error`.
    pub const STATUS_MESSAGE: &str = "status_message";
    /// span: start time, RFC 3339.
    pub const START_TIME: &str = "start_time";

    /// usage: the shared resource.
    pub const RESOURCE_ID: &str = "resource_id";
    /// usage: the feature that used it.
    pub const APP_FEATURE: &str = "app_feature";
    /// usage: the summed amount (an unsigned integer).
    pub const AMOUNT: &str = "amount";
    /// usage: start of the bucket, RFC 3339 (also the item's `event_time`).
    pub const BUCKET_START: &str = "bucket_start";
    /// usage: bucket length in seconds.
    pub const GRANULARITY_S: &str = "granularity_s";

    /// client_report: items dropped because the queue was full.
    pub const DROPPED_QUEUE_FULL: &str = "dropped_queue_full";
    /// client_report: items dropped because they were over the item size limit.
    pub const DROPPED_TOO_LARGE: &str = "dropped_too_large";
    /// client_report: items dropped because they broke the schema.
    pub const DROPPED_INVALID: &str = "dropped_invalid";
    /// client_report: items not kept by sampling.
    pub const DROPPED_SAMPLED_OUT: &str = "dropped_sampled_out";
    /// client_report: items whose delivery failed for good.
    pub const DROPPED_DELIVERY_FAILED: &str = "dropped_delivery_failed";
}

/// The JSON type a standard field must have when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A non-negative integer.
    UInt,
    /// A boolean.
    Bool,
    /// An array of numbers.
    Numbers,
}

impl FieldKind {
    fn describe(self) -> &'static str {
        match self {
            FieldKind::String => "must be a string",
            FieldKind::Number => "must be a number",
            FieldKind::UInt => "must be a non-negative integer",
            FieldKind::Bool => "must be a boolean",
            FieldKind::Numbers => "must be an array of numbers",
        }
    }

    fn accepts(self, v: &Json) -> bool {
        match self {
            FieldKind::String => v.is_string(),
            FieldKind::Number => v.is_number(),
            FieldKind::UInt => v.is_u64(),
            FieldKind::Bool => v.is_boolean(),
            FieldKind::Numbers => v.as_array().is_some_and(|a| a.iter().all(Json::is_number)),
        }
    }
}

/// The extra fields of the standard types: (event_type, field, kind, required).
///
/// This table is the one definition; `schema/beacon-event.schema.json` and the TypeScript
/// types mirror it, and a test checks the JSON Schema against it.
pub const STANDARD_FIELDS: &[(&str, &str, FieldKind, bool)] = {
    use fields::*;
    use types::*;
    use FieldKind::*;
    &[
        (METRIC, VALUE, Number, false),
        (METRIC, METRIC_TYPE, String, true),
        (METRIC, RATE, Number, false),
        (METRIC, UNIT, String, false),
        (METRIC, COUNT, UInt, false),
        (METRIC, SUM, Number, false),
        (METRIC, MIN, Number, false),
        (METRIC, MAX, Number, false),
        (METRIC, BOUNDS, Numbers, false),
        (METRIC, BUCKET_COUNTS, Numbers, false),
        (LOG, LEVEL, String, true),
        (LOG, MESSAGE, String, true),
        (LOG, TRACE_ID, String, false),
        (LOG, SPAN_ID, String, false),
        (SPAN, TRACE_ID, String, true),
        (SPAN, SPAN_ID, String, true),
        (SPAN, PARENT_SPAN_ID, String, false),
        (SPAN, DURATION_MS, Number, true),
        (SPAN, STATUS, String, true),
        (SPAN, STATUS_MESSAGE, String, false),
        (USAGE, RESOURCE_ID, String, true),
        (USAGE, APP_FEATURE, String, true),
        (USAGE, UNIT, String, true),
        (USAGE, AMOUNT, UInt, true),
        (CLIENT_REPORT, DROPPED_QUEUE_FULL, UInt, false),
        (CLIENT_REPORT, DROPPED_TOO_LARGE, UInt, false),
        (CLIENT_REPORT, DROPPED_INVALID, UInt, false),
        (CLIENT_REPORT, DROPPED_SAMPLED_OUT, UInt, false),
        (CLIENT_REPORT, DROPPED_DELIVERY_FAILED, UInt, false),
    ]
};

/// Standard fields whose value is one of a fixed set: (event_type, field, allowed values).
pub const ENUM_FIELDS: &[(&str, &str, &[&str], &str)] = &[
    (
        types::METRIC,
        fields::METRIC_TYPE,
        &["counter", "gauge", "histogram", "timer", "incr", "value"],
        "counter, gauge, histogram, timer, incr, value",
    ),
    (
        types::LOG,
        fields::LEVEL,
        &["trace", "debug", "info", "warn", "error", "fatal"],
        "trace, debug, info, warn, error, fatal",
    ),
    (
        types::SPAN,
        fields::STATUS,
        &["unset", "ok", "error"],
        "unset, ok, error",
    ),
    (
        types::USAGE,
        fields::UNIT,
        &["milliseconds", "bytes", "bytes_sec"],
        "milliseconds, bytes, bytes_sec",
    ),
];

/// The rule a field broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A required field is absent.
    Missing,
    /// The field has the wrong JSON type.
    WrongType(&'static str),
    /// `event_time` is not an RFC 3339 date-time.
    NotRfc3339,
    /// A string that must not be empty is empty.
    Empty,
    /// A string is longer than the limit (in characters).
    TooLong(usize),
    /// `event_type` has characters outside `[a-z0-9_.-]`.
    BadTypeChars,
    /// An attribute key starts with the reserved `event_` prefix.
    Reserved,
    /// A field value is not one of the allowed values.
    NotOneOf(&'static str),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Missing => f.write_str("missing"),
            Rule::WrongType(t) => f.write_str(t),
            Rule::NotRfc3339 => f.write_str("not RFC 3339"),
            Rule::Empty => f.write_str("must not be empty"),
            Rule::TooLong(n) => write!(f, "longer than {n} characters"),
            Rule::BadTypeChars => f.write_str("must match [a-z0-9_.-]{1,64}"),
            Rule::Reserved => f.write_str("the event_ prefix is reserved"),
            Rule::NotOneOf(s) => write!(f, "must be one of {s}"),
        }
    }
}

/// Why an item does not fit the schema. Its message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// The text is not JSON.
    Json(String),
    /// The JSON value is not an object.
    NotAnObject,
    /// A field broke a rule.
    Field {
        /// The field's key.
        field: String,
        /// The rule it broke.
        rule: Rule,
    },
    /// The encoded item is larger than the limit.
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl SchemaError {
    fn field(field: &str, rule: Rule) -> Self {
        SchemaError::Field {
            field: field.to_owned(),
            rule,
        }
    }

    /// A short machine-readable reason: `json`, `not_object`, `missing`, `wrong_type`,
    /// `bad_time`, `empty`, `too_long`, `bad_type`, `reserved`, `not_one_of`, `too_large`.
    pub fn reason(&self) -> &'static str {
        match self {
            SchemaError::Json(_) => "json",
            SchemaError::NotAnObject => "not_object",
            SchemaError::TooLarge { .. } => "too_large",
            SchemaError::Field { rule, .. } => match rule {
                Rule::Missing => "missing",
                Rule::WrongType(_) => "wrong_type",
                Rule::NotRfc3339 => "bad_time",
                Rule::Empty => "empty",
                Rule::TooLong(_) => "too_long",
                Rule::BadTypeChars => "bad_type",
                Rule::Reserved => "reserved",
                Rule::NotOneOf(_) => "not_one_of",
            },
        }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Json(e) => write!(f, "malformed JSON: {e}"),
            SchemaError::NotAnObject => f.write_str("item is not a JSON object"),
            SchemaError::Field { field, rule } if field.is_empty() => {
                write!(f, "attribute key: {rule}")
            }
            SchemaError::Field { field, rule } => write!(f, "field {field}: {rule}"),
            SchemaError::TooLarge { size, limit } => write!(
                f,
                "item: encoded size {size} bytes is over the limit of {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for SchemaError {}

/// Checks an `event_type`: `[a-z0-9_.-]{1,64}`.
pub fn check_type(t: &str) -> Result<(), Rule> {
    if t.is_empty() {
        return Err(Rule::Empty);
    }
    if t.len() > MAX_TYPE_LEN {
        return Err(Rule::TooLong(MAX_TYPE_LEN));
    }
    if !t.bytes().all(|b| TYPE_CHARS[b as usize]) {
        return Err(Rule::BadTypeChars);
    }
    Ok(())
}

/// The bytes an `event_type` may contain: `[a-z0-9_.-]`.
static TYPE_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-');
        b += 1;
    }
    t
};

/// Checks an `event_name`: 1 to 128 characters.
pub fn check_name(n: &str) -> Result<(), Rule> {
    check_len(n, MAX_NAME_LEN)
}

/// Checks an attribute key: 1 to 128 characters, not starting with `event_`.
pub fn check_key(k: &str) -> Result<(), Rule> {
    check_len(k, MAX_KEY_LEN)?;
    if k.starts_with(RESERVED_PREFIX) {
        return Err(Rule::Reserved);
    }
    Ok(())
}

fn check_len(s: &str, max: usize) -> Result<(), Rule> {
    if s.is_empty() {
        return Err(Rule::Empty);
    }
    // Byte length bounds the character count from above: only count when it could matter
    // (every byte that is not a UTF-8 continuation byte starts a character).
    if s.len() > max && s.bytes().filter(|b| b & 0xc0 != 0x80).count() > max {
        return Err(Rule::TooLong(max));
    }
    Ok(())
}

/// Validates a raw JSON object against the schema and returns it encoded canonically:
/// required keys first, `event_time` normalised to UTC with millisecond precision.
pub fn validate_object(
    obj: &Map<String, Json>,
    max_item_bytes: usize,
) -> Result<String, SchemaError> {
    let req_str = |key: &str| -> Result<&str, SchemaError> {
        match obj.get(key) {
            None | Some(Json::Null) => Err(SchemaError::field(key, Rule::Missing)),
            Some(Json::String(s)) => Ok(s.as_str()),
            Some(_) => Err(SchemaError::field(key, Rule::WrongType("must be a string"))),
        }
    };
    let id = req_str(keys::EVENT_ID)?;
    check_len(id, MAX_ID_LEN).map_err(|r| SchemaError::field(keys::EVENT_ID, r))?;
    let time = req_str(keys::EVENT_TIME)?;
    let ms = parse_rfc3339_ms(time)
        .ok_or_else(|| SchemaError::field(keys::EVENT_TIME, Rule::NotRfc3339))?;
    let ty = req_str(keys::EVENT_TYPE)?;
    check_type(ty).map_err(|r| SchemaError::field(keys::EVENT_TYPE, r))?;
    let name = req_str(keys::EVENT_NAME)?;
    check_name(name).map_err(|r| SchemaError::field(keys::EVENT_NAME, r))?;
    for (k, v) in obj {
        if matches!(
            k.as_str(),
            keys::EVENT_ID | keys::EVENT_TIME | keys::EVENT_TYPE | keys::EVENT_NAME
        ) {
            continue;
        }
        check_key(k).map_err(|r| SchemaError::field(k, r))?;
        if let Some((_, _, kind, _)) = STANDARD_FIELDS
            .iter()
            .find(|(t, f, _, _)| *t == ty && f == k)
        {
            if !kind.accepts(v) {
                return Err(SchemaError::field(k, Rule::WrongType(kind.describe())));
            }
        }
        if let Some((_, _, allowed, list)) =
            ENUM_FIELDS.iter().find(|(t, f, _, _)| *t == ty && f == k)
        {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                return Err(SchemaError::field(k, Rule::NotOneOf(list)));
            }
        }
    }
    for (t, f, _, required) in STANDARD_FIELDS {
        if *required && *t == ty && !obj.contains_key(*f) {
            return Err(SchemaError::field(f, Rule::Missing));
        }
    }
    let mut out = String::with_capacity(256);
    write_header(&mut out, id, &format_rfc3339_ms(ms), ty, name);
    for (k, v) in obj {
        if matches!(
            k.as_str(),
            keys::EVENT_ID | keys::EVENT_TIME | keys::EVENT_TYPE | keys::EVENT_NAME
        ) {
            continue;
        }
        out.push(',');
        write_json_str(&mut out, k);
        out.push(':');
        // Serialising a `serde_json::Value` into a String cannot fail.
        out.push_str(&v.to_string());
    }
    out.push('}');
    if out.len() > max_item_bytes {
        return Err(SchemaError::TooLarge {
            size: out.len(),
            limit: max_item_bytes,
        });
    }
    Ok(out)
}

/// Parses JSON text and validates it as one item (see [`validate_object`]).
pub fn validate_str(text: &str, max_item_bytes: usize) -> Result<String, SchemaError> {
    let v: Json = serde_json::from_str(text).map_err(|e| SchemaError::Json(e.to_string()))?;
    match v {
        Json::Object(m) => validate_object(&m, max_item_bytes),
        _ => Err(SchemaError::NotAnObject),
    }
}

/// The fixed start of the items Beacon encodes itself: the id and the time are filled in.
const OWN_HEAD: &[u8; 105] = b"{\"event_id\":\"00000000-0000-0000-0000-000000000000\",\"event_time\":\"1970-01-01T00:00:00.000Z\",\"event_type\":\"";

/// Appends `pre`, `s` and `post` with one capacity check and one copy each; the caller's
/// constant `pre` and `post` (ASCII) become plain stores when this is inlined.
#[inline(always)]
pub(crate) fn push3(out: &mut String, pre: &[u8], s: &str, post: &[u8]) {
    debug_assert!(pre.is_ascii() && post.is_ascii());
    let n = pre.len() + s.len() + post.len();
    // SAFETY: ASCII, a whole `str` and ASCII keep the string UTF-8. `reserve` makes room for
    // the `n` bytes written at the end of the initialised part, and `set_len` covers exactly
    // those bytes.
    unsafe {
        let v = out.as_mut_vec();
        v.reserve(n);
        let len = v.len();
        let at = v.as_mut_ptr().add(len);
        std::ptr::copy_nonoverlapping(pre.as_ptr(), at, pre.len());
        crate::rt::copy_short(s.as_bytes(), at.add(pre.len()));
        std::ptr::copy_nonoverlapping(post.as_ptr(), at.add(pre.len() + s.len()), post.len());
        v.set_len(len + n);
    }
}

/// Appends the decimal digits of `v`, written where they belong. Formatted in a buffer and
/// copied, as `itoa` does, the copy's wide loads would wait for the narrow stores that wrote
/// the digits, a stall on the hottest recording paths.
#[inline]
pub(crate) fn push_u64(out: &mut String, v: u64) {
    if crate::rt::SMALL_CODE {
        // `itoa`, which the browser build carries anyway.
        out.push_str(itoa::Buffer::new().format(v));
        return;
    }
    let n = decimal_len(v);
    // SAFETY: ASCII digits keep the string UTF-8. `reserve` makes room for the `n` bytes
    // `write_decimal` writes after the initialised part, and `set_len` covers exactly them.
    unsafe {
        let buf = out.as_mut_vec();
        buf.reserve(n);
        let len = buf.len();
        write_decimal(buf.as_mut_ptr().add(len), v, n);
        buf.set_len(len + n);
    }
}

/// The number of decimal digits of `v`: estimated from its bit length, then corrected with
/// one comparison (`ilog10` takes a chain of them).
#[inline]
pub(crate) fn decimal_len(v: u64) -> usize {
    let v = v | 1;
    let bits = 64 - v.leading_zeros() as usize;
    // 1233 / 4096 is just above log10(2): `guess` is the digit count of 2^bits - 1 or one
    // less, and at most 19, where POW10 still fits.
    let guess = (bits * 1233) >> 12;
    guess + (v >= POW10[guess]) as usize
}

/// 10^0 to 10^19.
static POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Writes the `n` decimal digits of `v` (`n` is [`decimal_len`]`(v)`) at `at`.
///
/// # Safety
///
/// `at` must be valid for writes of `n` bytes.
#[inline]
pub(crate) unsafe fn write_decimal(at: *mut u8, v: u64, n: usize) {
    let (mut v, mut i) = (v, n);
    // SAFETY: every index written is below `n`, inside what the caller vouches for.
    unsafe {
        // Two digits at a time.
        while i >= 2 {
            i -= 2;
            let [hi, lo] = DIGIT_PAIRS[(v % 100) as usize];
            *at.add(i) = hi;
            *at.add(i + 1) = lo;
            v /= 100;
        }
        if i == 1 {
            *at = b'0' + v as u8;
        }
    }
}

/// Appends the decimal digits of `v`, with a `-` when it is negative (see [`push_u64`]).
#[inline]
pub(crate) fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// `00` to `99`.
static DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Appends ASCII bytes to a string.
#[inline]
pub(crate) fn push_ascii(out: &mut String, bytes: &[u8]) {
    debug_assert!(bytes.is_ascii());
    // SAFETY: ASCII bytes are valid UTF-8 on their own, so the string stays UTF-8. Every
    // caller passes bytes it built from ASCII templates, hex digits and decimal digits.
    unsafe { out.as_mut_vec() }.extend_from_slice(bytes);
}

/// Like [`write_header`] for an item Beacon encodes itself, with placeholders for the id and
/// the time (filled by [`fill_own_header`]). `ty` must have passed [`check_type`], so only
/// the name needs escaping. Returns the ranges [`write_header`] returns.
#[inline]
pub(crate) fn write_own_header(
    out: &mut String,
    ty: &str,
    name: &str,
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    debug_assert!(out.is_empty() && check_type(ty).is_ok());
    // SAFETY: ASCII keeps the string UTF-8; `reserve` makes room for the bytes written after
    // the initialised part, and `set_len` covers exactly them. A copy of a constant length
    // is a few vector moves, not a call to `memcpy`.
    unsafe {
        let v = out.as_mut_vec();
        v.reserve(OWN_HEAD.len());
        let len = v.len();
        std::ptr::copy_nonoverlapping(OWN_HEAD.as_ptr(), v.as_mut_ptr().add(len), OWN_HEAD.len());
        v.set_len(len + OWN_HEAD.len());
    }
    let t0 = out.len();
    push3(out, b"", ty, b"\",\"event_name\":");
    let t1 = t0 + ty.len();
    let n0 = out.len() + 1;
    write_json_str(out, name);
    (t0..t1, n0..out.len() - 1)
}

/// Writes a new UUIDv7 (see [`uuid_v7`]: 48 bits of `unix_ms`, then `random`'s ten bytes,
/// given as a little-endian word and half-word, under the version and the variant) and the
/// time (as [`rfc3339_ms_bytes`] gives it) into the placeholders of a header
/// [`write_own_header`] wrote at the start of `out`.
///
/// The id is built in registers and its digits written in pieces that each lie within one of
/// the two stores that produced them: assembled byte by byte and copied whole, the copy's
/// wide loads waited for the narrow stores (the flusher stamps every item).
pub(crate) fn fill_own_header(out: &mut str, unix_ms: u64, random: (u64, u16), time: &[u8; 24]) {
    if out.len() < OWN_HEAD.len() {
        return;
    }
    let (r, r2) = random;
    // The id's bytes, little-endian: 0..6 the time, most significant first; 6 the version over
    // the low nibble of random byte 0; 7 random byte 1; 8 the variant over random byte 2;
    // 9..16 random bytes 3..10.
    let low = ((unix_ms & 0xffff_ffff_ffff) << 16).swap_bytes()
        | ((r & 0x0f) | 0x70) << 48
        | (r >> 8 & 0xff) << 56;
    let high = (r >> 16 | u64::from(r2) << 48) & !0xc0 | 0x80;
    let mut hex = [0u8; 32];
    // SAFETY: `hex` has room for the 32 digits of 16 bytes.
    unsafe {
        crate::rt::write_hex(
            u128::from(high) << 64 | u128::from(low),
            16,
            hex.as_mut_ptr(),
        )
    };
    // SAFETY: ASCII replaces ASCII (the placeholders' digits), so the string stays UTF-8.
    let bytes = unsafe { out.as_bytes_mut() };
    // `{"event_id":"` is 13 bytes; the placeholder's hyphens (8-4-4-4-12) stay.
    bytes[13..21].copy_from_slice(&hex[..8]);
    bytes[22..26].copy_from_slice(&hex[8..12]);
    bytes[27..31].copy_from_slice(&hex[12..16]);
    bytes[32..36].copy_from_slice(&hex[16..20]);
    bytes[37..49].copy_from_slice(&hex[20..]);
    bytes[65..89].copy_from_slice(time);
}

/// Writes `{"event_id":…,"event_time":…,"event_type":…,"event_name":…` (no closing brace);
/// `time` is the already formatted `event_time` (see [`write_rfc3339_ms`]).
/// Returns the byte ranges of the type's and the name's text (inside their quotes).
pub fn write_header(
    out: &mut String,
    id: &str,
    time: &str,
    ty: &str,
    name: &str,
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    out.push_str("{\"event_id\":");
    write_json_str(out, id);
    out.push_str(",\"event_time\":\"");
    out.push_str(time);
    out.push_str("\",\"event_type\":");
    let t0 = out.len() + 1;
    write_json_str(out, ty);
    let t1 = out.len() - 1;
    out.push_str(",\"event_name\":");
    let n0 = out.len() + 1;
    write_json_str(out, name);
    let n1 = out.len() - 1;
    (t0..t1, n0..n1)
}

/// Whether any byte is a control character, `"` or `\\`; eight bytes at a time.
#[inline]
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline]
    fn word_needs_escape(v: u64) -> bool {
        let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
        // Bytes below 0x20, equal to '"' (0x22) or to '\\' (0x5c).
        let below = v.wrapping_sub(LO * 0x20) & !v & HI;
        below | has_zero(v ^ (LO * 0x22)) | has_zero(v ^ (LO * 0x5c)) != 0
    }
    #[inline]
    fn load8(c: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&c[..8]);
        u64::from_le_bytes(w)
    }
    #[inline]
    fn load4(c: &[u8]) -> u64 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&c[..4]);
        u32::from_le_bytes(w) as u64
    }
    let n = bytes.len();
    if n >= 8 {
        let mut chunks = bytes.chunks_exact(8);
        if chunks.by_ref().any(|c| word_needs_escape(load8(c))) {
            return true;
        }
        // The last eight bytes (overlapping what was checked) cover the remainder.
        return !chunks.remainder().is_empty() && word_needs_escape(load8(&bytes[n - 8..]));
    }
    if n >= 4 {
        // Two overlapping four-byte loads cover 4 to 7 bytes.
        return word_needs_escape(load4(bytes) | load4(&bytes[n - 4..]) << 32);
    }
    bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes `s` as a JSON string literal, quotes included.
pub fn write_json_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: almost every key and value needs no escaping.
    if !needs_escape(bytes) {
        push3(out, b"\"", s, b"\"");
        return;
    }
    crate::rt::write_escaped_json_str(out, s);
}

/// Writes a Unix time in ms as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn write_rfc3339_ms(out: &mut String, unix_ms: u64) {
    push_ascii(out, &rfc3339_ms_bytes(unix_ms));
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms, as ASCII bytes (years past 9999 are
/// written as 9999). The browser build asks JavaScript's `Date`.
#[inline]
pub(crate) fn rfc3339_ms_bytes(unix_ms: u64) -> [u8; 24] {
    crate::rt::rfc3339_ms(unix_ms)
}

/// Formats a Unix time in ms as RFC 3339 UTC with milliseconds.
pub fn format_rfc3339_ms(unix_ms: u64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339_ms(&mut s, unix_ms);
    s
}

// Howard Hinnant's civil calendar algorithms (the inverse is in `rt`, which formats times).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 date-time (`2026-11-22T02:19:30.123Z`, any offset, any fraction) into
/// Unix milliseconds (fractions below a millisecond are truncated). `None` if it is not one,
/// or if it is before 1970.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        Some(v)
    };
    let year = num(0..4)? as i64;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let min = num(14..16)?;
    let sec = num(17..19)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month as usize - 1];
    if day > dim {
        return None;
    }
    let mut i = 19;
    let mut ms = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    let offset_s: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)? as i64;
            let om = num(i + 4..i + 6)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + (hour * 3600 + min * 60 + sec.min(59)) as i64 - offset_s;
    if secs < 0 {
        return None;
    }
    Some(secs as u64 * 1000 + ms as u64)
}

/// Builds a UUIDv7 string from a Unix time in ms and 10 random bytes.
#[inline]
pub fn uuid_v7(unix_ms: u64, random: &[u8; 10]) -> [u8; 36] {
    // RFC 9562: 48 bits of Unix ms, the version (7) in the top four bits of byte 6, the
    // variant (0b10) in the top two bits of byte 8, random bits everywhere else.
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(random);
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    hyphenated(&b)
}

/// The two lowercase hex digits of a byte (natively from a 512-byte table; the browser build
/// looks up each digit, smaller and fast enough there).
#[inline]
pub(crate) fn hex_pair(b: u8) -> [u8; 2] {
    crate::rt::hex_pair(b)
}

/// The hyphenated lowercase form of a UUID (`8-4-4-4-12` hex digits), a byte pair at a time.
#[inline]
fn hyphenated(bytes: &[u8; 16]) -> [u8; 36] {
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at..at + 2].copy_from_slice(&hex_pair(*b));
        at += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        for ms in [
            0u64,
            1,
            999,
            1_000,
            86_399_999,
            951_782_400_000,
            1_795_314_570_123,
            253_402_300_799_999,
        ] {
            let s = format_rfc3339_ms(ms);
            assert_eq!(s.len(), 24, "{s}");
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
        }
        assert_eq!(
            format_rfc3339_ms(1_795_314_570_123),
            "2026-11-22T02:29:30.123Z"
        );
    }

    #[test]
    fn times_within_one_second_keep_their_milliseconds() {
        // Natively the seconds are formatted once and the milliseconds filled in per call.
        for ms in 1_795_314_569_990..1_795_314_572_010u64 {
            let s = format_rfc3339_ms(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
            assert_eq!(&s[19..], format!(".{:03}Z", ms % 1000), "{s}");
        }
    }

    #[test]
    fn time_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(
            parse_rfc3339_ms("1970-01-01T00:00:00.123456789Z"),
            Some(123)
        );
        assert!(parse_rfc3339_ms("2024-02-29T00:00:00Z").is_some());
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22 02:19",
            "yesterday",
            "2026-11-22T02:19:30",
            "2026-11-22T24:00:00Z",
            "2026-11-22T02:19:30.Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn escape_detection_matches_a_byte_scan() {
        let slow = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..40 {
            for _ in 0..500 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly printable ASCII, sometimes a byte that needs escaping or is high.
                        match x % 40 {
                            0 => b'"',
                            1 => b'\\',
                            2 => (x >> 8) as u8 % 0x20,
                            3 => 0x80 | (x >> 8) as u8,
                            _ => 0x20 + (x >> 8) as u8 % 0x5f,
                        }
                    })
                    .collect();
                assert_eq!(needs_escape(&s), slow(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn json_strings_escape() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn stamped_ids_are_the_uuid_v7_of_the_same_bits() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (r, r2) = (x ^ i.rotate_left(17), (x >> 23) as u16);
            let mut random = [0u8; 10];
            random[..8].copy_from_slice(&r.to_le_bytes());
            random[8..].copy_from_slice(&r2.to_le_bytes());
            let ms = (x >> 3) % 253_402_300_799_999;
            let mut out = String::new();
            write_own_header(&mut out, "t", "n");
            fill_own_header(&mut out, ms, (r, r2), &rfc3339_ms_bytes(ms));
            let id = uuid_v7(ms, &random);
            assert_eq!(&out.as_bytes()[13..49], &id[..], "{out}");
            let u = uuid::Uuid::parse_str(&out[13..49]).unwrap();
            assert_eq!(
                (u.get_version_num(), u.get_variant()),
                (7, uuid::Variant::RFC4122)
            );
            assert_eq!(parse_rfc3339_ms(&out[65..89]), Some(ms));
        }
    }

    #[test]
    fn uuid_v7_has_version_and_time() {
        let id = uuid_v7(1_795_314_570_123, &[0xab; 10]);
        let s = std::str::from_utf8(&id).unwrap();
        let u = uuid::Uuid::parse_str(s).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        let ms = 1_795_314_570_123u64;
        assert_eq!(s[..13], format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff));
        // The uuid crate's own v7 from the same time and random bytes is the same id.
        let random = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x0f, 0xed];
        let ours = uuid_v7(ms, &random);
        let theirs = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
        assert_eq!(
            std::str::from_utf8(&ours).unwrap(),
            theirs.hyphenated().to_string()
        );
    }
}
