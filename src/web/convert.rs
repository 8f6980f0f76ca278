//! Reading JS values without a JSON parser: options objects and attribute objects are read
//! with `Reflect`, numbers stay `f64` (JS numbers), nested objects and arrays become their
//! JSON text.

use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsError, JsValue};

use crate::data::{OwnedValue, Value};

/// A `JsError` with this message.
pub(crate) fn err(msg: &str) -> JsError {
    JsError::new(msg)
}

fn is_plain_object(v: &JsValue) -> bool {
    v.is_object() && !Array::is_array(v) && !v.is_function()
}

/// Converts one attribute value.
pub(crate) fn value(v: &JsValue) -> OwnedValue {
    if let Some(s) = v.as_string() {
        Value::from(s)
    } else if let Some(n) = v.as_f64() {
        Value::F64(n)
    } else if let Some(b) = v.as_bool() {
        Value::Bool(b)
    } else if v.is_null() || v.is_undefined() {
        Value::Null
    } else {
        match JSON::stringify(v).ok().and_then(|s| s.as_string()) {
            Some(s) => Value::from(s),
            None => Value::Null,
        }
    }
}

/// The attributes of a plain object (`undefined` and `null` are none).
pub(crate) fn attrs(v: &JsValue) -> Result<Vec<(String, OwnedValue)>, JsError> {
    if v.is_undefined() || v.is_null() {
        return Ok(Vec::new());
    }
    if !is_plain_object(v) {
        return Err(err("attributes must be a plain object"));
    }
    let keys = Object::keys(v.unchecked_ref::<Object>());
    let mut out = Vec::with_capacity(keys.length() as usize);
    for k in keys.iter() {
        let val = Reflect::get(v, &k).unwrap_or(JsValue::UNDEFINED);
        if val.is_undefined() {
            continue;
        }
        if let Some(key) = k.as_string() {
            out.push((key, value(&val)));
        }
    }
    Ok(out)
}

/// Borrows attributes in the form the recording methods take.
pub(crate) fn borrow_attrs(attrs: &[(String, OwnedValue)]) -> Vec<(&str, Value<'_>)> {
    attrs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

/// An options object: typed getters whose errors name the option.
pub(crate) struct Opts<'a> {
    obj: JsValue,
    path: &'a str,
}

impl<'a> Opts<'a> {
    /// Reads `obj` (named `path` in errors); a key not in `known` is refused.
    pub(crate) fn new(obj: &JsValue, path: &'a str, known: &[&str]) -> Result<Self, JsError> {
        if !is_plain_object(obj) {
            return Err(err(&[path, " must be an object"].concat()));
        }
        for k in Object::keys(obj.unchecked_ref::<Object>()).iter() {
            let k = k.as_string().unwrap_or_default();
            if !known.contains(&k.as_str()) {
                return Err(err(&[path, ": unknown option \"", &k, "\""].concat()));
            }
        }
        Ok(Opts {
            obj: obj.clone(),
            path,
        })
    }

    fn wrong(&self, key: &str, what: &str) -> JsError {
        err(&[self.path, ".", key, " must be ", what].concat())
    }

    /// The raw value (`undefined` when absent).
    pub(crate) fn get(&self, key: &str) -> JsValue {
        Reflect::get(&self.obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn present(&self, key: &str) -> Option<JsValue> {
        let v = self.get(key);
        (!v.is_undefined() && !v.is_null()).then_some(v)
    }

    /// A string option.
    pub(crate) fn str(&self, key: &str) -> Result<Option<String>, JsError> {
        self.present(key)
            .map(|v| v.as_string().ok_or_else(|| self.wrong(key, "a string")))
            .transpose()
    }

    /// A boolean option.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, JsError> {
        self.present(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong(key, "a boolean")))
            .transpose()
    }

    /// A number option (finite, not negative).
    pub(crate) fn num(&self, key: &str) -> Result<Option<f64>, JsError> {
        self.present(key)
            .map(|v| {
                v.as_f64()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| self.wrong(key, "a number >= 0"))
            })
            .transpose()
    }

    /// A nested options object.
    pub(crate) fn object(&self, key: &str, known: &[&str]) -> Result<Option<Opts<'a>>, JsError> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => {
                if !is_plain_object(&v) {
                    return Err(self.wrong(key, "an object"));
                }
                Opts::new(&v, self.path, known).map(Some)
            }
        }
    }

    fn entries(&self, key: &str) -> Result<Vec<(String, JsValue)>, JsError> {
        let Some(v) = self.present(key) else {
            return Ok(Vec::new());
        };
        if !is_plain_object(&v) {
            return Err(self.wrong(key, "an object"));
        }
        Ok(Object::keys(v.unchecked_ref::<Object>())
            .iter()
            .map(|k| {
                let val = Reflect::get(&v, &k).unwrap_or(JsValue::UNDEFINED);
                (k.as_string().unwrap_or_default(), val)
            })
            .collect())
    }

    /// An object of strings (e.g. `headers`).
    pub(crate) fn string_map(&self, key: &str) -> Result<Vec<(String, String)>, JsError> {
        self.entries(key)?
            .into_iter()
            .map(|(k, v)| match v.as_string() {
                Some(s) => Ok((k, s)),
                None => Err(err(
                    &[self.path, ".", key, ".", &k, " must be a string"].concat()
                )),
            })
            .collect()
    }

    /// An object of numbers (e.g. `sampleRates`).
    pub(crate) fn num_map(&self, key: &str) -> Result<Vec<(String, f64)>, JsError> {
        self.entries(key)?
            .into_iter()
            .map(|(k, v)| match v.as_f64() {
                Some(n) => Ok((k, n)),
                None => Err(err(
                    &[self.path, ".", key, ".", &k, " must be a number"].concat()
                )),
            })
            .collect()
    }
}
