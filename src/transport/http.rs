use crate::data::Batch;
use crate::rt::{self, BoxFuture, Duration, HttpClient, HttpRequest};

use super::{parse_retry_after, SendError, Transport};

/// How the HTTP transport encodes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// One JSON object per line (`application/x-ndjson`), as Rill's intake sink sends.
    #[default]
    Ndjson,
    /// One JSON array (`application/json`).
    JsonArray,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Bearer(String),
    Basic(String),
    WriteKey(String),
}

/// Builds an [`HttpTransport`].
#[derive(Debug, Clone)]
pub struct HttpTransportBuilder {
    url: String,
    auth: Auth,
    format: BodyFormat,
    gzip_min_bytes: Option<usize>,
    timeout: Duration,
    headers: Vec<(String, String)>,
}

impl HttpTransportBuilder {
    /// Authenticates with `Authorization: Bearer <token>`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    /// Authenticates with HTTP basic auth (as Rill's `IntakeUser` / `IntakePassword`).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Auth::Basic(base64([user, ":", password].concat().as_bytes()));
        self
    }

    /// Authenticates with a public write key in the query string (`?key=`), for browsers.
    pub fn write_key(mut self, key: impl Into<String>) -> Self {
        self.auth = Auth::WriteKey(key.into());
        self
    }

    /// The body format (NDJSON by default).
    pub fn format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// Compresses bodies of at least this many bytes with gzip (default 1 KiB); `None` never
    /// compresses. Where the target has no compressor (the browser) bodies go uncompressed.
    pub fn gzip_min_bytes(mut self, min: Option<usize>) -> Self {
        self.gzip_min_bytes = min;
        self
    }

    /// Time limit for one request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a header to every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Builds the transport. Fails if the URL is not `http://` or `https://`, or the
    /// target's HTTP client cannot be created.
    pub fn build(self) -> Result<HttpTransport, String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err([
                "intake URL ",
                &rt::quoted(&self.url),
                " must start with http:// or https://",
            ]
            .concat());
        }
        let client = HttpClient::new()?;
        let mut url = self.url;
        if let Auth::WriteKey(k) = &self.auth {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("key=");
            url.push_str(&percent_encode(k));
        }
        let mut headers = self.headers;
        match &self.auth {
            Auth::Bearer(t) => headers.push(("authorization".into(), ["Bearer ", t].concat())),
            Auth::Basic(b) => headers.push(("authorization".into(), ["Basic ", b].concat())),
            Auth::None | Auth::WriteKey(_) => {}
        }
        headers.push((
            "content-type".into(),
            match self.format {
                BodyFormat::Ndjson => "application/x-ndjson".into(),
                BodyFormat::JsonArray => "application/json".into(),
            },
        ));
        Ok(HttpTransport {
            client,
            url,
            headers,
            format: self.format,
            gzip_min_bytes: self.gzip_min_bytes,
            timeout: self.timeout,
        })
    }
}

/// Sends batches to a Beacon intake (or any HTTP endpoint) with `POST`.
///
/// 2xx is success; 408, 429 and 5xx are retried (honouring `Retry-After`); other statuses give
/// up; network errors and timeouts are retried.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    format: BodyFormat,
    gzip_min_bytes: Option<usize>,
    timeout: Duration,
}

impl HttpTransport {
    /// Starts building a transport that posts to `url` (e.g. `http://127.0.0.1:7070/v1/events`).
    pub fn builder(url: impl Into<String>) -> HttpTransportBuilder {
        HttpTransportBuilder {
            url: url.into(),
            auth: Auth::None,
            format: BodyFormat::Ndjson,
            gzip_min_bytes: Some(1024),
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
        }
    }

    /// A transport with default settings.
    pub fn new(url: impl Into<String>) -> Result<HttpTransport, String> {
        Self::builder(url).build()
    }

    /// The URL requests go to (with the write key, when there is one).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request for a batch (body encoded and maybe compressed).
    pub fn request(&self, batch: &Batch, keepalive: bool) -> HttpRequest {
        let text = match self.format {
            BodyFormat::Ndjson => batch.to_ndjson(),
            BodyFormat::JsonArray => batch.to_json_array(),
        };
        let mut headers = self.headers.clone();
        let body = match self.gzip_min_bytes {
            Some(min) if text.len() >= min => match rt::gzip(text.as_bytes()) {
                Some(z) => {
                    headers.push(("content-encoding".into(), "gzip".into()));
                    z
                }
                None => text.into_bytes(),
            },
            _ => text.into_bytes(),
        };
        HttpRequest {
            url: self.url.clone(),
            headers,
            body,
            timeout: self.timeout,
            keepalive,
        }
    }
}

impl Transport for HttpTransport {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        let req = self.request(&batch, false);
        Box::pin(async move {
            let resp = self.client.post(req).await.map_err(SendError::retry)?;
            classify(resp.status, resp.retry_after.as_deref(), &resp.body)
        })
    }
}

/// Classifies an HTTP answer for the retry policy.
pub(crate) fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> Result<(), SendError> {
    if (200..=299).contains(&status) {
        return Ok(());
    }
    // The first 200 bytes of the body, cut back to a character boundary.
    let mut end = body.len().min(200);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let reason = [
        "intake answered ",
        itoa::Buffer::new().format(status),
        ": ",
        body.get(..end).unwrap_or(body),
    ]
    .concat();
    match status {
        408 | 429 | 500..=599 => Err(SendError::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, rt::now_unix_ms())),
            reason,
        }),
        _ => Err(SendError::give_up(reason)),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(204, None, ""), Ok(()));
        assert!(
            matches!(classify(503, Some("2"), ""), Err(SendError::Retry { after: Some(d), .. }) if d == Duration::from_secs(2))
        );
        assert!(matches!(
            classify(429, None, ""),
            Err(SendError::Retry { after: None, .. })
        ));
        assert!(
            matches!(classify(400, None, "bad"), Err(SendError::GiveUp { reason }) if reason.contains("400"))
        );
    }

    #[test]
    fn write_key_goes_in_the_query() {
        let t = HttpTransport::builder("http://127.0.0.1:1/v1/events?x=1")
            .write_key("k y")
            .build()
            .unwrap();
        assert_eq!(t.url, "http://127.0.0.1:1/v1/events?x=1&key=k%20y");
    }
}
