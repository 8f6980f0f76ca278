//! The browser context stamped on items: `install_id` (kept in `localStorage`, created on
//! first use), `session_id` (kept in `sessionStorage`: one per tab session), and the page
//! attributes `page_path` (on events and logs, read when recorded, so single-page apps get
//! the current route), `page_referrer` and `user_agent`. Each can be switched off.
//!
//! Storage can be unavailable (privacy modes, sandboxed frames, workers): the id then lives
//! as long as the client.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

use crate::data::{OwnedValue, Value};
use crate::schema::fields;

/// `localStorage` key of the install id.
pub(crate) const INSTALL_KEY: &str = "beacon.install_id";
/// `sessionStorage` key of the session id.
pub(crate) const SESSION_KEY: &str = "beacon.session_id";

pub(crate) struct BrowserContext {
    pub(crate) install_id: Option<String>,
    pub(crate) session_id: Option<String>,
    page_path: bool,
    referrer: Option<String>,
    user_agent: Option<String>,
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn get_str(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key)?.as_string()
}

/// A new random id (a UUIDv7 string).
fn new_id() -> String {
    let id = crate::schema::uuid_v7(crate::rt::now_unix_ms(), &crate::random::uuid_bytes());
    String::from_utf8_lossy(&id).into_owned()
}

/// The id kept under `key` in the storage named `storage` (`localStorage` or
/// `sessionStorage`), created and stored on first use.
fn stored_id(storage: &str, key: &str) -> String {
    // Reading `localStorage` itself can throw (e.g. storage disabled): Reflect catches it.
    let store = get(&js_sys::global(), storage).and_then(|s| s.dyn_into::<web_sys::Storage>().ok());
    if let Some(store) = &store {
        if let Ok(Some(id)) = store.get_item(key) {
            if !id.is_empty() && id.len() <= crate::schema::MAX_ID_LEN {
                return id;
            }
        }
    }
    let id = new_id();
    if let Some(store) = &store {
        // Quota or privacy errors: keep the id for this client only.
        let _ = store.set_item(key, &id);
    }
    id
}

impl BrowserContext {
    pub(crate) fn detect(
        install_id: bool,
        session_id: bool,
        page_path: bool,
        referrer: bool,
        user_agent: bool,
    ) -> Self {
        let global = js_sys::global();
        let document = get(&global, "document");
        BrowserContext {
            install_id: install_id.then(|| stored_id("localStorage", INSTALL_KEY)),
            session_id: session_id.then(|| stored_id("sessionStorage", SESSION_KEY)),
            page_path: page_path && get(&global, "location").is_some(),
            referrer: if referrer {
                document
                    .and_then(|d| get_str(&d, "referrer"))
                    .filter(|r| !r.is_empty())
            } else {
                None
            },
            user_agent: if user_agent {
                get(&global, "navigator").and_then(|n| get_str(&n, "userAgent"))
            } else {
                None
            },
        }
    }

    /// The attributes every item carries.
    pub(crate) fn client_attrs(&self) -> Vec<(&'static str, OwnedValue)> {
        let mut out = Vec::new();
        if let Some(v) = &self.install_id {
            out.push((fields::INSTALL_ID, Value::from(v.clone())));
        }
        if let Some(v) = &self.session_id {
            out.push((fields::SESSION_ID, Value::from(v.clone())));
        }
        if let Some(v) = &self.referrer {
            out.push(("page_referrer", Value::from(v.clone())));
        }
        if let Some(v) = &self.user_agent {
            out.push(("user_agent", Value::from(v.clone())));
        }
        out
    }

    /// Adds the per-call attributes (the current `page_path`) unless the call set them.
    pub(crate) fn add_call_attrs(&self, attrs: &mut Vec<(String, OwnedValue)>) {
        if !self.page_path || attrs.iter().any(|(k, _)| k == "page_path") {
            return;
        }
        let path = get(&js_sys::global(), "location").and_then(|l| get_str(&l, "pathname"));
        if let Some(p) = path {
            attrs.push(("page_path".to_owned(), Value::from(p)));
        }
    }
}
