//! Reading JS values without a JSON parser. The JS layer (`js/index.js`) checks options and
//! attributes and hands them over flat: an attribute object becomes the array
//! `[key, value, key, value, …]` whose values are strings, numbers, booleans or `null`
//! (nested objects and arrays already turned into their JSON text).

use js_sys::Array;
use wasm_bindgen::{JsCast, JsError, JsValue};

use crate::data::{OwnedValue, Value};

/// A `JsError` with this message.
pub(crate) fn err(msg: &str) -> JsError {
    JsError::new(msg)
}

/// Converts one attribute value.
fn value(v: JsValue) -> OwnedValue {
    if let Some(s) = v.as_string() {
        Value::from(s)
    } else if let Some(n) = v.as_f64() {
        Value::F64(n)
    } else if let Some(b) = v.as_bool() {
        Value::Bool(b)
    } else {
        Value::Null
    }
}

/// The pairs of a flat `[key, value, …]` array (anything else is none).
pub(crate) fn pairs(v: &JsValue) -> impl Iterator<Item = (String, JsValue)> + '_ {
    let a = v.dyn_ref::<Array>();
    let n = a.map_or(0, |a| a.length());
    (1..n).step_by(2).filter_map(move |i| {
        let a = a?;
        Some((a.get(i - 1).as_string().unwrap_or_default(), a.get(i)))
    })
}

/// The attributes of a flat `[key, value, …]` array.
pub(crate) fn attrs(v: &JsValue) -> Vec<(String, OwnedValue)> {
    pairs(v).map(|(k, v)| (k, value(v))).collect()
}

/// Borrows attributes in the form the recording methods take.
pub(crate) fn borrow_attrs(attrs: &[(String, OwnedValue)]) -> Vec<(&str, Value<'_>)> {
    attrs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}
