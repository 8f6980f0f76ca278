use std::borrow::Cow;

use crate::schema::{push_i64, push_u64, write_json_str};

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
            Value::I64(v) => push_i64(out, *v),
            Value::U64(v) => push_u64(out, *v),
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

/// Writes a float as JSON (`null` for NaN and infinities).
pub fn write_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            push_i64(out, v as i64);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Zero, powers of ten and their neighbours, powers of two and their neighbours, the
    /// extremes.
    fn unsigned_edges() -> Vec<u64> {
        let mut v = vec![
            0,
            1,
            9,
            10,
            11,
            99,
            100,
            101,
            999,
            1000,
            u64::MAX,
            u64::MAX - 1,
        ];
        v.extend((0..20).map(|p| 10u64.pow(p)));
        v.extend((1..20).map(|p| 10u64.pow(p) - 1));
        v.extend((1..20).map(|p| 10u64.pow(p) + 1));
        v.extend((0..64).map(|b| 1u64 << b));
        v.extend((1..64).map(|b| (1u64 << b) - 1));
        v
    }

    #[test]
    fn integers_are_written_as_the_standard_formatting_writes_them() {
        for v in unsigned_edges() {
            assert_eq!(crate::schema::decimal_len(v), v.to_string().len(), "{v}");
            let mut out = String::from("x");
            Value::U64(v).write_json(&mut out);
            assert_eq!(out, format!("x{v}"));
        }
        for v in [
            0,
            -1,
            1,
            -9,
            -10,
            42,
            -99_999,
            i64::MIN,
            i64::MAX,
            i64::MIN + 1,
        ] {
            let mut out = String::from("x");
            Value::I64(v).write_json(&mut out);
            assert_eq!(out, format!("x{v}"));
        }
    }
}
