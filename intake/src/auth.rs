//! Credentials: bearer tokens, basic auth and public write keys (`?key=`), every one checked
//! in constant time (candidates are hashed with SHA-256 and compared with `subtle`, so neither
//! the content nor the length of a secret leaks through timing).

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

type Hash = [u8; 32];

fn hash(b: &[u8]) -> Hash {
    Sha256::digest(b).into()
}

/// Finds `candidate` among `known` without stopping early.
fn find(known: &[Hash], candidate: &[u8]) -> Option<usize> {
    let h = hash(candidate);
    let mut found = Choice::from(0);
    let mut index = 0usize;
    for (i, k) in known.iter().enumerate() {
        let eq = k.ct_eq(&h);
        // Branch-free select of the index of the (unique) match.
        index |= i & (0usize.wrapping_sub(eq.unwrap_u8() as usize));
        found |= eq;
    }
    bool::from(found).then_some(index)
}

/// Who a request authenticated as. Rate limits are kept per identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials are configured (loopback only).
    Anonymous,
    /// The n-th bearer token.
    Token(usize),
    /// A basic-auth user.
    Basic(String),
    /// The n-th public write key.
    WriteKey(usize),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::Token(i) => write!(f, "token #{}", i + 1),
            Identity::Basic(u) => write!(f, "user {u}"),
            Identity::WriteKey(i) => write!(f, "write key #{}", i + 1),
        }
    }
}

/// Why a request was not authenticated. Answered with 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials in the request.
    Missing,
    /// A bearer token that is not configured.
    WrongToken,
    /// A basic-auth user or password that is not configured.
    WrongPassword,
    /// A `?key=` that is not configured.
    WrongKey,
    /// An `Authorization` header that is neither `Bearer` nor valid `Basic`.
    Malformed(&'static str),
    /// A write key used where only a secret is accepted (e.g. `/metrics`).
    KeyNotAllowed,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str(
                "missing credentials: send Authorization: Bearer <token>, basic auth, or ?key=<write key>",
            ),
            AuthError::WrongToken => f.write_str("wrong bearer token"),
            AuthError::WrongPassword => f.write_str("wrong basic-auth user or password"),
            AuthError::WrongKey => f.write_str("wrong write key (?key=)"),
            AuthError::Malformed(m) => write!(f, "malformed Authorization header: {m}"),
            AuthError::KeyNotAllowed => {
                f.write_str("a write key is not enough here: use a bearer token or basic auth")
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// The configured credentials.
#[derive(Clone, Default)]
pub struct Credentials {
    tokens: Vec<Hash>,
    basic: Vec<Hash>,
    basic_users: Vec<String>,
    write_keys: Vec<Hash>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens.len())
            .field("basic_users", &self.basic_users)
            .field("write_keys", &self.write_keys.len())
            .finish()
    }
}

impl Credentials {
    /// Credentials from lists of tokens, `user:password` pairs and write keys. Empty entries are
    /// ignored; a pair without `:` is an error.
    pub fn new(tokens: &[String], basic: &[String], write_keys: &[String]) -> Result<Self, String> {
        let nonempty = |v: &[String]| -> Vec<Hash> {
            v.iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| hash(s.as_bytes()))
                .collect()
        };
        let mut c = Credentials {
            tokens: nonempty(tokens),
            write_keys: nonempty(write_keys),
            ..Credentials::default()
        };
        for pair in basic.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let (user, pass) = pair.split_once(':').ok_or_else(|| {
                format!(
                    "basic-auth entry {user:?} must be user:password",
                    user = pair.split(':').next().unwrap_or("")
                )
            })?;
            if user.is_empty() || pass.is_empty() {
                return Err(
                    "basic-auth entries must be user:password with both parts non-empty".into(),
                );
            }
            c.basic.push(hash(pair.as_bytes()));
            c.basic_users.push(user.to_owned());
        }
        Ok(c)
    }

    /// Whether any credential is configured (if not, everything is allowed, on loopback only).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.basic.is_empty() && self.write_keys.is_empty()
    }

    /// Checks a request's `Authorization` header and `?key=` value. `allow_key` is false where
    /// only secrets are accepted.
    pub fn check(
        &self,
        authorization: Option<&str>,
        key: Option<&str>,
        allow_key: bool,
    ) -> Result<Identity, AuthError> {
        if self.is_empty() {
            return Ok(Identity::Anonymous);
        }
        if let Some(h) = authorization {
            let h = h.trim();
            let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("bearer") {
                return find(&self.tokens, rest.as_bytes())
                    .map(Identity::Token)
                    .ok_or(AuthError::WrongToken);
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| AuthError::Malformed("basic credentials are not base64"))?;
                if !raw.contains(&b':') {
                    return Err(AuthError::Malformed(
                        "basic credentials must be user:password",
                    ));
                }
                return find(&self.basic, &raw)
                    .map(|i| Identity::Basic(self.basic_users[i].clone()))
                    .ok_or(AuthError::WrongPassword);
            }
            return Err(AuthError::Malformed("use the Bearer or Basic scheme"));
        }
        if let Some(k) = key {
            if !allow_key {
                return Err(AuthError::KeyNotAllowed);
            }
            return find(&self.write_keys, k.as_bytes())
                .map(Identity::WriteKey)
                .ok_or(AuthError::WrongKey);
        }
        Err(AuthError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(
            &["t1".into(), "t2".into()],
            &["ingest:s3cret".into()],
            &["pk_live".into()],
        )
        .unwrap()
    }

    #[test]
    fn each_kind_of_credential() {
        let c = creds();
        assert_eq!(
            c.check(Some("Bearer t2"), None, true),
            Ok(Identity::Token(1))
        );
        assert_eq!(
            c.check(Some("Bearer t3"), None, true),
            Err(AuthError::WrongToken)
        );
        assert_eq!(
            c.check(Some("Bearer t"), None, true),
            Err(AuthError::WrongToken)
        );
        // "ingest:s3cret"
        assert_eq!(
            c.check(Some("Basic aW5nZXN0OnMzY3JldA=="), None, true),
            Ok(Identity::Basic("ingest".into()))
        );
        // "ingest:wrong"
        assert_eq!(
            c.check(Some("Basic aW5nZXN0Ondyb25n"), None, true),
            Err(AuthError::WrongPassword)
        );
        assert_eq!(
            c.check(None, Some("pk_live"), true),
            Ok(Identity::WriteKey(0))
        );
        assert_eq!(
            c.check(None, Some("pk_live"), false),
            Err(AuthError::KeyNotAllowed)
        );
        assert_eq!(
            c.check(None, Some("pk_test"), true),
            Err(AuthError::WrongKey)
        );
        assert_eq!(c.check(None, None, true), Err(AuthError::Missing));
        assert!(matches!(
            c.check(Some("Digest x"), None, true),
            Err(AuthError::Malformed(_))
        ));
        assert!(Credentials::new(&[], &["nocolon".into()], &[]).is_err());
        let open = Credentials::default();
        assert_eq!(open.check(None, None, true), Ok(Identity::Anonymous));
    }
}
