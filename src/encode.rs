//! Encoding items with a client's context: the attributes set on the client and its children
//! (pre-encoded once) merged with the attributes of each call (precedence: client < child <
//! call).

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

use crate::data::item::ItemWriter;
use crate::data::{Attrs, Item, OwnedValue, Value};
use crate::schema::{self, Rule};

/// The attributes every item of a client (or child) carries.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) attrs: Vec<(Box<str>, OwnedValue)>,
    fragment: String,
    pub(crate) hash: u64,
}

/// An attribute key that breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadKey {
    pub(crate) key: String,
    pub(crate) rule: Rule,
}

impl Ctx {
    /// A context with these attributes (later keys replace earlier ones).
    pub(crate) fn new(attrs: Vec<(Box<str>, OwnedValue)>) -> Result<Ctx, BadKey> {
        let mut merged: Vec<(Box<str>, OwnedValue)> = Vec::with_capacity(attrs.len());
        for (k, v) in attrs {
            schema::check_key(&k).map_err(|rule| BadKey {
                key: String::from(&*k),
                rule,
            })?;
            match merged.iter_mut().find(|(mk, _)| *mk == k) {
                Some(slot) => slot.1 = v,
                None => merged.push((k, v)),
            }
        }
        let mut fragment = String::new();
        let mut h = FxHasher::default();
        for (k, v) in &merged {
            fragment.push(',');
            schema::write_json_str(&mut fragment, k);
            fragment.push(':');
            v.write_json(&mut fragment);
            k.hash(&mut h);
            hash_value(v, &mut h);
        }
        Ok(Ctx {
            attrs: merged,
            fragment,
            hash: h.finish(),
        })
    }

    /// This context's attributes followed by `more` (which win on equal keys).
    pub(crate) fn with(&self, more: &Attrs<'_>) -> Result<Ctx, BadKey> {
        let mut all = self.attrs.clone();
        all.extend(
            more.iter()
                .map(|(k, v)| (Box::<str>::from(*k), v.clone().into_owned())),
        );
        Ctx::new(all)
    }

    /// Starts an item: the envelope (with a new UUIDv7 id), this context's attributes not
    /// overridden by `call`, then `call`'s attributes.
    #[inline]
    pub(crate) fn begin(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        call: &Attrs<'_>,
    ) -> Result<ItemWriter, BadKey> {
        self.begin_sized(ty, name, time_ms, call, 48)
    }

    /// Like [`Ctx::begin`], reserving `extra` more bytes for the fields the caller adds.
    #[inline]
    pub(crate) fn begin_sized(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        call: &Attrs<'_>,
        extra: usize,
    ) -> Result<ItemWriter, BadKey> {
        for (k, _) in call {
            schema::check_key(k).map_err(|rule| BadKey {
                key: (*k).to_owned(),
                rule,
            })?;
        }
        let capacity = 32 * call.len() + extra;
        let mut w = self.begin_bare(ty, name, time_ms, capacity);
        let overridden = !call.is_empty()
            && !self.attrs.is_empty()
            && call.iter().any(|(ck, _)| self.index_of(ck).is_some());
        self.write_attrs(&mut w, overridden, |_, k| {
            call.iter().any(|(ck, _)| *ck == k)
        });
        for (k, v) in call {
            v.write_json(w.key(k));
        }
        Ok(w)
    }

    /// Starts an item with the envelope only, with room for this context's
    /// attributes (see [`Ctx::write_attrs`]) and `extra` more bytes. `ty` must be a valid
    /// `event_type`.
    #[inline]
    pub(crate) fn begin_bare(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        extra: usize,
    ) -> ItemWriter {
        let capacity = 112 + ty.len() + name.len() + self.fragment.len() + extra;
        Item::writer(capacity, time_ms, ty, name)
    }

    /// The position of `key` among this context's attributes.
    #[inline]
    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        self.attrs.iter().position(|(k, _)| **k == *key)
    }

    /// Writes this context's attributes: all of them when `overridden` is false, else those
    /// for which `skip(index, key)` is false.
    #[inline]
    pub(crate) fn write_attrs(
        &self,
        w: &mut ItemWriter,
        overridden: bool,
        skip: impl Fn(usize, &str) -> bool,
    ) {
        if !overridden {
            w.raw(&self.fragment);
            return;
        }
        for (i, (k, v)) in self.attrs.iter().enumerate() {
            if !skip(i, k) {
                v.write_json(w.key(k));
            }
        }
    }
}

thread_local! {
    /// The last second formatted on this thread: `YYYY-MM-DDTHH:MM:SS.` is reused within it.
    static TIME_CACHE: std::cell::Cell<(u64, [u8; 24])> = const { std::cell::Cell::new((u64::MAX, [0; 24])) };
}

/// `event_time` text for a Unix time in ms, formatting the date only once per second.
#[inline]
pub(crate) fn rfc3339_cached(unix_ms: u64) -> [u8; 24] {
    let sec = unix_ms / 1000;
    let (cached_sec, mut text) = TIME_CACHE.with(|c| c.get());
    if cached_sec != sec {
        text = schema::rfc3339_ms_bytes(unix_ms);
        TIME_CACHE.with(|c| c.set((sec, text)));
    }
    let ms = (unix_ms % 1000) as u16;
    text[20] = b'0' + (ms / 100) as u8;
    text[21] = b'0' + (ms / 10 % 10) as u8;
    text[22] = b'0' + (ms % 10) as u8;
    text
}

/// Hashes a value (floats by their bits).
pub(crate) fn hash_value(v: &Value<'_>, h: &mut impl Hasher) {
    match v {
        Value::Str(s) => {
            0u8.hash(h);
            s.hash(h)
        }
        Value::I64(x) => {
            1u8.hash(h);
            x.hash(h)
        }
        Value::U64(x) => {
            2u8.hash(h);
            x.hash(h)
        }
        Value::F64(x) => {
            3u8.hash(h);
            x.to_bits().hash(h)
        }
        Value::Bool(x) => {
            4u8.hash(h);
            x.hash(h)
        }
        Value::Null => 5u8.hash(h),
    }
}

/// Owned copies of call attributes.
pub(crate) fn to_owned_attrs(attrs: &Attrs<'_>) -> Vec<(Box<str>, OwnedValue)> {
    attrs
        .iter()
        .map(|(k, v)| (Box::<str>::from(*k), v.clone().into_owned()))
        .collect()
}

/// Borrowed views of owned attributes.
pub(crate) fn as_attrs(owned: &[(Box<str>, OwnedValue)]) -> Vec<(&str, Value<'_>)> {
    owned
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Str(s) => Value::Str(std::borrow::Cow::Borrowed(s.as_ref())),
                other => other.clone(),
            };
            (&**k, v)
        })
        .collect()
}
