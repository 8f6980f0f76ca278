//! Encoding items with a client's context: the attributes set on the client and its children
//! (pre-encoded once) merged with the attributes of each call (precedence: client < child <
//! call).

use std::hash::{Hash, Hasher};

use crate::rt::SeriesHasher;

use crate::data::item::ItemWriter;
use crate::data::{Attrs, Item, OwnedValue, Value};
use crate::schema::{self, Rule};

/// The attributes every item of a client (or child) carries.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) attrs: Vec<(Box<str>, OwnedValue)>,
    fragment: String,
    pub(crate) hash: u64,
    /// Bit `n` (`n` up to 63) is set when a key is `n` bytes long (63: 63 or more), so most
    /// keys are known not to be here without a search.
    key_lens: u64,
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
        let mut h = SeriesHasher::default();
        for (k, v) in &merged {
            fragment.push(',');
            schema::write_json_str(&mut fragment, k);
            fragment.push(':');
            v.write_json(&mut fragment);
            k.hash(&mut h);
            hash_value(v, &mut h);
        }
        Ok(Ctx {
            key_lens: merged.iter().fold(0, |m, (k, _)| m | len_bit(k)),
            attrs: merged,
            fragment,
            hash: h.finish(),
        })
    }

    /// This context's attributes followed by `more` (which win on equal keys); keys that break
    /// the schema are left out.
    pub(crate) fn with(&self, more: &Attrs<'_>) -> Ctx {
        let mut all = self.attrs.clone();
        all.extend(
            more.iter()
                .filter(|(k, _)| schema::check_key(k).is_ok())
                .map(|(k, v)| (Box::<str>::from(*k), v.clone().into_owned())),
        );
        // Every key is valid now: this context's were checked when it was made.
        Ctx::new(all).unwrap_or_default()
    }

    /// Starts an item: the envelope, this context's attributes not overridden by `call`, then
    /// `call`'s attributes, whose keys are checked first. `extra` bytes are reserved for the
    /// fields the caller adds.
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
        Ok(self.begin_checked(ty, name, time_ms, call, extra))
    }

    /// Starts an item with only this context's attributes.
    pub(crate) fn begin_plain(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        extra: usize,
    ) -> ItemWriter {
        self.begin_checked::<&str>(ty, name, time_ms, &[], extra)
    }

    /// Like [`Ctx::begin_sized`] for attributes whose keys were already checked.
    #[inline]
    pub(crate) fn begin_checked<K: AsRef<str>>(
        &self,
        ty: &str,
        name: &str,
        time_ms: u64,
        call: &[(K, Value<'_>)],
        extra: usize,
    ) -> ItemWriter {
        let capacity = 32 * call.len() + extra;
        let mut w = self.begin_bare(ty, name, time_ms, capacity);
        let overridden = !call.is_empty()
            && !self.attrs.is_empty()
            && call
                .iter()
                .any(|(ck, _)| self.index_of(ck.as_ref()).is_some());
        self.write_attrs(&mut w, overridden, |_, k| {
            call.iter().any(|(ck, _)| ck.as_ref() == k)
        });
        for (k, v) in call {
            w.attr(k.as_ref(), v);
        }
        w
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
        if self.key_lens & len_bit(key) == 0 {
            return None;
        }
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

/// A key's bit in [`Ctx`]'s `key_lens`.
#[inline]
fn len_bit(key: &str) -> u64 {
    1 << key.len().min(63)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_63_bytes_or_more_share_a_length_bit_and_are_still_found() {
        let (k65, k70) = ("k".repeat(65), "q".repeat(70));
        let ctx = Ctx::new(vec![
            (k65.as_str().into(), Value::from(1)),
            (k70.as_str().into(), Value::from(2)),
            ("region".into(), Value::from("eu")),
        ])
        .unwrap();
        assert_eq!(ctx.index_of(&k65), Some(0));
        assert_eq!(ctx.index_of(&k70), Some(1));
        assert_eq!(ctx.index_of("region"), Some(2));
        assert_eq!(ctx.index_of(&"k".repeat(66)), None);
        assert_eq!(ctx.index_of("regio"), None);
        // A call attribute replaces the client's, which is then written once.
        let call = [(k70.as_str(), Value::from(3))];
        let item = ctx
            .begin_sized("behavioral", "x", 0, &call, 0)
            .unwrap()
            .finish();
        let json = item.json();
        assert_eq!(json.matches(&format!("\"{k70}\":")).count(), 1, "{json}");
        assert!(json.contains(&format!("\"{k70}\":3")), "{json}");
        assert!(json.contains(&format!("\"{k65}\":1")), "{json}");
        assert!(json.contains("\"region\":\"eu\""), "{json}");
    }
}
