use std::fmt;

/// The identity of a span: a 128-bit trace id, a 64-bit span id and the sampled flag.
/// It crosses process boundaries as a W3C `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanContext {
    /// The trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The span id (never all zeros).
    pub span_id: [u8; 8],
    /// The W3C `sampled` flag.
    pub sampled: bool,
}

/// Why a `traceparent` header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceparentError(&'static str);

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid traceparent: {}", self.0)
    }
}

impl std::error::Error for TraceparentError {}

impl SpanContext {
    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The W3C `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id_hex(),
            self.span_id_hex(),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// Parses a W3C `traceparent` header value.
    pub fn from_traceparent(s: &str) -> Result<SpanContext, TraceparentError> {
        let s = s.trim();
        let mut parts = s.split('-');
        let (Some(ver), Some(tid), Some(sid), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceparentError("expected version-traceid-spanid-flags"));
        };
        if ver.len() != 2 || ver == "ff" {
            return Err(TraceparentError("bad version"));
        }
        let ver = unhex::<1>(ver).ok_or(TraceparentError("version is not hex"))?;
        if ver[0] == 0 && parts.next().is_some() {
            return Err(TraceparentError("version 00 has exactly four fields"));
        }
        let trace_id =
            unhex::<16>(tid).ok_or(TraceparentError("trace id is not 32 lowercase hex digits"))?;
        let span_id =
            unhex::<8>(sid).ok_or(TraceparentError("span id is not 16 lowercase hex digits"))?;
        let flags = unhex::<1>(flags).ok_or(TraceparentError("flags are not 2 hex digits"))?;
        if trace_id == [0; 16] {
            return Err(TraceparentError("trace id is all zeros"));
        }
        if span_id == [0; 8] {
            return Err(TraceparentError("span id is all zeros"));
        }
        Ok(SpanContext {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }
}

/// The status of a finished span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpanStatus {
    /// Not set.
    #[default]
    Unset,
    /// Completed successfully.
    Ok,
    /// Failed, with a message.
    Error(String),
}

impl SpanStatus {
    /// The name on the wire: `unset`, `ok` or `error`.
    pub fn as_str(&self) -> &'static str {
        Self::name_of(self.code())
    }

    /// The status without its message, as a number (a span in progress keeps the message
    /// apart, to stay small).
    pub(crate) fn code(&self) -> u8 {
        match self {
            SpanStatus::Unset => 0,
            SpanStatus::Ok => 1,
            SpanStatus::Error(_) => 2,
        }
    }

    /// The name on the wire of a [`SpanStatus::code`].
    pub(crate) fn name_of(code: u8) -> &'static str {
        match code {
            1 => "ok",
            2 => "error",
            _ => "unset",
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    write_hex(&mut s, bytes);
    s
}

pub(crate) fn write_hex(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.chunks(16) {
        let mut buf = [0u8; 32];
        for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair.copy_from_slice(&crate::schema::hex_pair(*b));
        }
        crate::schema::push_ascii(out, &buf[..2 * chunk.len()]);
    }
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for i in 0..N {
        out[i] = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = SpanContext::from_traceparent(tp).unwrap();
        assert!(cx.sampled);
        assert_eq!(cx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(cx.traceparent(), tp);
    }

    #[test]
    fn traceparent_rejects_bad_input() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(SpanContext::from_traceparent(bad).is_err(), "{bad}");
        }
    }
}
