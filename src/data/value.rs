use std::borrow::Cow;

use crate::schema::{push_short_ascii, write_json_str};

/// An attribute value. Borrowed strings avoid a copy on the recording path.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float (NaN and infinities encode as `null`).
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// JSON `null`.
    Null,
}

/// An owned attribute value.
pub type OwnedValue = Value<'static>;

impl Value<'_> {
    /// Writes the value as JSON.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Str(s) => write_json_str(out, s),
            Value::I64(v) => push_short_ascii(out, itoa::Buffer::new().format(*v).as_bytes()),
            Value::U64(v) => push_short_ascii(out, itoa::Buffer::new().format(*v).as_bytes()),
            Value::F64(v) => write_f64(out, *v),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Null => out.push_str("null"),
        }
    }

    /// An owned copy.
    pub fn into_owned(self) -> OwnedValue {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::I64(v) => Value::I64(v),
            Value::U64(v) => Value::U64(v),
            Value::F64(v) => Value::F64(v),
            Value::Bool(v) => Value::Bool(v),
            Value::Null => Value::Null,
        }
    }

    /// Converts a JSON value (strings, numbers, booleans, null; other JSON is kept as its
    /// text in a string).
    pub fn from_json(v: &serde_json::Value) -> OwnedValue {
        match v {
            serde_json::Value::String(s) => Value::Str(Cow::Owned(s.clone())),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Value::U64(u)
                } else if let Some(i) = n.as_i64() {
                    Value::I64(i)
                } else {
                    Value::F64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            other => Value::Str(Cow::Owned(other.to_string())),
        }
    }
}

/// Writes a duration given in microseconds as milliseconds with up to three decimals
/// (`12.345`, `12.5`, `12`), without going through floating point.
pub(crate) fn write_ms_from_us(out: &mut String, us: u64) {
    push_short_ascii(out, itoa::Buffer::new().format(us / 1000).as_bytes());
    let frac = us % 1000;
    if frac != 0 {
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let mut n = 4;
        while digits[n - 1] == b'0' {
            n -= 1;
        }
        push_short_ascii(out, &digits[..n]);
    }
}

/// Writes a float as JSON (`null` for NaN and infinities).
pub fn write_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            out.push_str(itoa::Buffer::new().format(v as i64));
        } else {
            crate::rt::write_f64(out, v);
        }
    } else {
        out.push_str("null");
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Str(Cow::Borrowed(s.as_str()))
    }
}
impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::Str(Cow::Owned(s))
    }
}
impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value<'_> {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<f32> for Value<'_> {
    fn from(v: f32) -> Self {
        Value::F64(v as f64)
    }
}
macro_rules! from_int {
    ($variant:ident, $as:ty: $($t:ty),*) => {$(
        impl From<$t> for Value<'_> {
            fn from(v: $t) -> Self {
                Value::$variant(v as $as)
            }
        }
    )*};
}
from_int!(I64, i64: i8, i16, i32, i64, isize);
from_int!(U64, u64: u8, u16, u32, u64, usize);

/// A list of attributes as the recording methods take them: `&[("plan", "pro".into())]`,
/// or built with [`attrs!`](crate::attrs).
pub type Attrs<'a> = [(&'a str, Value<'a>)];

/// Builds an attribute list: `attrs!["plan" => "pro", "seats" => 3]`.
#[macro_export]
macro_rules! attrs {
    () => { [] as [(&str, $crate::Value<'_>); 0] };
    ($($k:expr => $v:expr),+ $(,)?) => {
        [$(($k, $crate::Value::from($v))),+]
    };
}
