//! The request body: decompression with a size cut-off, and parsing of a JSON array, a single
//! JSON object or NDJSON into items validated against the shared schema.
//!
//! Everything here is pure (bytes in, values out; no I/O, no clock), so the fuzz target in
//! `intake/fuzz/` calls [`decode`] and [`parse`] exactly as the server does.

use std::fmt;
use std::io::Read;

use beacon::schema::{self, keys, SchemaError};
use serde_json::{Map, Value};

/// How the client said the body is encoded (from `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: a JSON array or one JSON object (NDJSON is accepted too).
    Json,
    /// `application/x-ndjson`: one JSON object per line.
    Ndjson,
    /// `text/plain` (browsers' `sendBeacon` and keepalive requests) or no content type: any of
    /// the above, recognised from the body.
    Sniff,
}

impl Format {
    /// The format for a `Content-Type` header value; `None` if it is not accepted.
    pub fn from_content_type(ct: Option<&str>) -> Option<Format> {
        let Some(ct) = ct else {
            return Some(Format::Sniff);
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(Format::Ndjson)
            }
            "text/plain" | "" => Some(Format::Sniff),
            _ => None,
        }
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most items in one request.
    pub max_items: usize,
    /// Largest item, in canonical encoded bytes.
    pub max_item_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_items: 10_000,
            max_item_bytes: schema::DEFAULT_MAX_ITEM_BYTES,
        }
    }
}

/// Why a body could not be decoded or parsed at all (as opposed to single items failing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is empty (or only whitespace).
    Empty,
    /// The body is not JSON, or not an array, an object or NDJSON.
    Malformed(String),
    /// More items than [`Limits::max_items`].
    TooManyItems {
        /// Items in the body (at least; counting stops past the limit).
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The decompressed body is larger than allowed (decompression stopped at the limit).
    DecompressedTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `Content-Encoding: gzip` but the body is not valid gzip.
    BadGzip(String),
}

impl BodyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooManyItems { .. } | BodyError::DecompressedTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A short reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::Empty => "empty_body",
            BodyError::Malformed(_) => "malformed_body",
            BodyError::TooManyItems { .. } => "too_many_items",
            BodyError::DecompressedTooLarge { .. } => "decompressed_too_large",
            BodyError::BadGzip(_) => "bad_gzip",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Empty => {
                f.write_str("empty body: send a JSON array, a JSON object or NDJSON")
            }
            BodyError::Malformed(m) => f.write_str(m),
            BodyError::TooManyItems { count, limit } => write!(
                f,
                "too many items: {count} in one request, the limit is {limit}; split the batch"
            ),
            BodyError::DecompressedTooLarge { limit } => write!(
                f,
                "decompressed body is over the limit of {limit} bytes (decompression stopped there)"
            ),
            BodyError::BadGzip(e) => write!(f, "body is not valid gzip: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Decompresses a gzip body, stopping as soon as the output passes `max_bytes`: a gzip bomb
/// costs at most `max_bytes + 1` bytes of memory.
pub fn gunzip(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity((body.len() * 4).min(max_bytes) + 1);
    let dec = flate2::read::MultiGzDecoder::new(body);
    dec.take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(e.to_string()))?;
    if out.len() > max_bytes {
        return Err(BodyError::DecompressedTooLarge { limit: max_bytes });
    }
    Ok(out)
}

/// Decodes a body by its `Content-Encoding` (`gzip` or none) and checks the decompressed size.
pub fn decode(body: &[u8], gzip: bool, max_decompressed: usize) -> Result<Vec<u8>, BodyError> {
    if gzip {
        gunzip(body, max_decompressed)
    } else if body.len() > max_decompressed {
        Err(BodyError::DecompressedTooLarge {
            limit: max_decompressed,
        })
    } else {
        Ok(body.to_vec())
    }
}

/// One valid item, encoded canonically, with the columns the store indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// Position in the request (0-based; NDJSON blank lines are not counted).
    pub index: usize,
    /// `event_id`.
    pub event_id: String,
    /// `event_time`, normalised to `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub event_time: String,
    /// `event_type`.
    pub event_type: String,
    /// `event_name`.
    pub event_name: String,
    /// The whole item as canonical JSON.
    pub json: String,
}

/// One rejected item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Position in the request.
    pub index: usize,
    /// Short reason for metrics (see [`SchemaError::reason`]).
    pub reason: &'static str,
    /// The message: names the field and the rule, e.g. `field event_time: not RFC 3339`.
    pub error: String,
}

/// The items of one body, valid and rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Items that fit the schema, in request order.
    pub valid: Vec<Valid>,
    /// Items that did not, in request order.
    pub rejected: Vec<Rejected>,
}

impl Parsed {
    /// Number of items in the body.
    pub fn total(&self) -> usize {
        self.valid.len() + self.rejected.len()
    }

    fn push(&mut self, index: usize, item: Result<Value, String>, limits: &Limits) {
        let res = match item {
            Ok(Value::Object(obj)) => check(index, &obj, limits),
            Ok(_) => Err(reject(index, &SchemaError::NotAnObject)),
            Err(msg) => Err(Rejected {
                index,
                reason: "json",
                error: msg,
            }),
        };
        match res {
            Ok(v) => self.valid.push(v),
            Err(r) => self.rejected.push(r),
        }
    }
}

fn reject(index: usize, e: &SchemaError) -> Rejected {
    Rejected {
        index,
        reason: e.reason(),
        error: e.to_string(),
    }
}

fn check(index: usize, obj: &Map<String, Value>, limits: &Limits) -> Result<Valid, Rejected> {
    let json =
        schema::validate_object(obj, limits.max_item_bytes).map_err(|e| reject(index, &e))?;
    // validate_object guarantees the four required strings and a parseable time.
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let time = obj
        .get(keys::EVENT_TIME)
        .and_then(Value::as_str)
        .and_then(schema::parse_rfc3339_ms)
        .map(schema::format_rfc3339_ms)
        .unwrap_or_default();
    Ok(Valid {
        index,
        event_id: s(keys::EVENT_ID),
        event_time: time,
        event_type: s(keys::EVENT_TYPE),
        event_name: s(keys::EVENT_NAME),
        json,
    })
}

fn json_error(e: &serde_json::Error) -> String {
    format!("malformed JSON: {e}")
}

/// Parses a (decompressed) body into validated items.
///
/// A JSON array gives one item per element; a JSON object is one item; otherwise the body is
/// read as NDJSON, one object per non-blank line. A line that is not JSON rejects that item
/// only; a body with no JSON at all is [`BodyError::Malformed`].
pub fn parse(body: &[u8], format: Format, limits: &Limits) -> Result<Parsed, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(BodyError::Empty);
    };
    let body = &body[start..];
    match body[0] {
        b'[' => parse_array(body, limits),
        b'{' if format == Format::Ndjson => parse_ndjson(body, limits),
        b'{' => match serde_json::from_slice::<Value>(body) {
            Ok(v) => {
                let mut p = Parsed::default();
                p.push(0, Ok(v), limits);
                Ok(p)
            }
            // More than one line: NDJSON sent as JSON or text (as sendBeacon does).
            Err(e) if e.line() > 1 || has_two_lines(body) => parse_ndjson(body, limits),
            Err(e) => Err(BodyError::Malformed(json_error(&e))),
        },
        c => Err(BodyError::Malformed(format!(
            "body is not JSON: expected a JSON array, a JSON object or NDJSON, but it starts with {:?}",
            char::from(c)
        ))),
    }
}

fn has_two_lines(body: &[u8]) -> bool {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .nth(1)
        .is_some()
}

fn parse_array(body: &[u8], limits: &Limits) -> Result<Parsed, BodyError> {
    let items: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| BodyError::Malformed(json_error(&e)))?;
    if items.len() > limits.max_items {
        return Err(BodyError::TooManyItems {
            count: items.len(),
            limit: limits.max_items,
        });
    }
    let mut p = Parsed::default();
    p.valid.reserve(items.len());
    for (i, v) in items.into_iter().enumerate() {
        p.push(i, Ok(v), limits);
    }
    Ok(p)
}

fn parse_ndjson(body: &[u8], limits: &Limits) -> Result<Parsed, BodyError> {
    let mut p = Parsed::default();
    let mut index = 0;
    let mut first_error = None;
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if index == limits.max_items {
            return Err(BodyError::TooManyItems {
                count: index + 1,
                limit: limits.max_items,
            });
        }
        let item = serde_json::from_slice::<Value>(line).map_err(|e| {
            let msg = format!("line {}: {}", index + 1, json_error(&e));
            first_error.get_or_insert_with(|| msg.clone());
            msg
        });
        p.push(index, item, limits);
        index += 1;
    }
    // Not one line was JSON: the body as a whole is malformed.
    if p.valid.is_empty() && p.rejected.iter().all(|r| r.reason == "json") {
        if let Some(e) = first_error {
            return Err(BodyError::Malformed(e));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"event_id":"a","event_time":"2026-11-22T02:19:30.123Z","event_type":"behavioral","event_name":"x"}"#;
    const BAD_TIME: &str =
        r#"{"event_id":"b","event_time":"yesterday","event_type":"behavioral","event_name":"x"}"#;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn array_object_and_ndjson() {
        let arr = format!("[{OK},{BAD_TIME}]");
        let p = parse(arr.as_bytes(), Format::Json, &lim()).unwrap();
        assert_eq!(p.valid.len(), 1);
        assert_eq!(p.rejected[0].index, 1);
        assert_eq!(p.rejected[0].error, "field event_time: not RFC 3339");

        let p = parse(OK.as_bytes(), Format::Sniff, &lim()).unwrap();
        assert_eq!(p.valid[0].event_id, "a");
        assert_eq!(p.valid[0].event_time, "2026-11-22T02:19:30.123Z");

        let nd = format!("{OK}\r\n\n{BAD_TIME}\n{{oops\n");
        for f in [Format::Ndjson, Format::Json, Format::Sniff] {
            let p = parse(nd.as_bytes(), f, &lim()).unwrap();
            assert_eq!(p.total(), 3, "{f:?}");
            assert_eq!(p.rejected[1].index, 2);
            assert!(
                p.rejected[1].error.starts_with("line 3: malformed JSON"),
                "{:?}",
                p.rejected[1]
            );
        }
    }

    #[test]
    fn whole_body_errors() {
        assert_eq!(parse(b"  \n", Format::Json, &lim()), Err(BodyError::Empty));
        let e = parse(b"[1,", Format::Json, &lim()).unwrap_err();
        assert!(e.to_string().contains("malformed JSON"), "{e}");
        let e = parse(b"hello", Format::Sniff, &lim()).unwrap_err();
        assert!(e.to_string().contains("starts with 'h'"), "{e}");
        let e = parse(b"{nope}\n{nope}", Format::Ndjson, &lim()).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let small = Limits {
            max_items: 1,
            ..lim()
        };
        let two = format!("[{OK},{OK}]");
        assert_eq!(
            parse(two.as_bytes(), Format::Json, &small),
            Err(BodyError::TooManyItems { count: 2, limit: 1 })
        );
    }

    #[test]
    fn gzip_is_cut_off_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 1 << 20]).unwrap();
        let z = enc.finish().unwrap();
        assert!(z.len() < 4096);
        assert_eq!(
            decode(&z, true, 1000),
            Err(BodyError::DecompressedTooLarge { limit: 1000 })
        );
        assert_eq!(decode(&z, true, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            decode(b"nope", true, 10),
            Err(BodyError::BadGzip(_))
        ));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain;charset=UTF-8")),
            Some(Format::Sniff)
        );
        assert_eq!(Format::from_content_type(Some("image/png")), None);
    }
}
