use std::borrow::Cow;
use std::sync::Arc;

use crate::schema::{write_json_str, write_own_header};

/// One encoded item: a complete JSON object in the shared schema, ready to send.
///
/// Items are encoded once, when recorded; the batching core and the transports only move
/// bytes around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    json: String,
    ty: (u32, u32),
    name: (u32, u32),
}

impl Item {
    /// Starts an item: writes the envelope's required fields into a new buffer.
    /// Finish it with [`ItemWriter::finish`].
    /// `ty` must be a valid `event_type` (see [`crate::schema::check_type`]).
    #[inline]
    pub(crate) fn writer(
        capacity: usize,
        id: &[u8; 36],
        time: &[u8; 24],
        ty: &str,
        name: &str,
    ) -> ItemWriter {
        let mut json = String::with_capacity(capacity);
        let (t, n) = write_own_header(&mut json, id, time, ty, name);
        let item = Item {
            json,
            ty: (t.start as u32, t.end as u32),
            name: (n.start as u32, n.end as u32),
        };
        ItemWriter { item }
    }

    /// Wraps a canonical encoding (as [`crate::schema::validate_object`] returns it).
    pub(crate) fn from_canonical(json: String) -> Item {
        Item::locate(json)
    }

    fn locate(json: String) -> Item {
        // The header is `{"event_id":"…","event_time":"…","event_type":"…","event_name":"…"`:
        // find the type and name by their keys, after the id (whose text is escaped).
        let find = |key: &str, from: usize| -> (u32, u32) {
            // A plain byte search over the short header: `str::find` would bring its two-way
            // searcher and the formatting of its panic path into the wasm.
            let bytes = json.as_bytes();
            let Some(rel) = bytes
                .get(from..)
                .and_then(|rest| rest.windows(key.len()).position(|w| w == key.as_bytes()))
            else {
                return (0, 0);
            };
            let start = from + rel + key.len();
            let mut end = start;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            (start as u32, end.min(bytes.len()) as u32)
        };
        let ty = find("\",\"event_type\":\"", 0);
        let name = find("\",\"event_name\":\"", ty.1 as usize);
        Item { json, ty, name }
    }

    /// The item's JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The encoded size in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Always `false`: an item is never empty.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// The `event_type`.
    pub fn event_type(&self) -> &str {
        &self.json[self.ty.0 as usize..self.ty.1 as usize]
    }

    /// The `event_name`, unescaped.
    pub fn event_name(&self) -> Cow<'_, str> {
        let raw = &self.json[self.name.0 as usize..self.name.1 as usize];
        if raw.contains('\\') {
            serde_json::from_str::<String>(&format!("\"{raw}\""))
                .map(Cow::Owned)
                .unwrap_or(Cow::Borrowed(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// The `event_id`.
    pub fn event_id(&self) -> &str {
        // `{"event_id":"` is 13 bytes; ids Beacon writes need no escaping.
        let rest = &self.json[13.min(self.json.len())..];
        rest.split('"').next().unwrap_or("")
    }

    /// Parses the item into a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or(serde_json::Value::Null)
    }

    /// Consumes the item, returning its JSON text.
    pub fn into_json(self) -> String {
        self.json
    }
}

/// Appends attributes to an item being encoded.
pub(crate) struct ItemWriter {
    item: Item,
}

impl ItemWriter {
    /// Starts a key: writes `,"key":`.
    #[inline]
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        let out = &mut self.item.json;
        out.push(',');
        write_json_str(out, key);
        out.push(':');
        out
    }

    /// Writes `,"key":"value"`.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        write_json_str(self.key(key), value);
    }

    /// Writes `,"key":"<lowercase hex of bytes>"`.
    pub(crate) fn hex(&mut self, key: &str, bytes: &[u8]) {
        let out = self.key(key);
        out.reserve(2 * bytes.len() + 2);
        out.push('"');
        crate::data::span::write_hex(out, bytes);
        out.push('"');
    }

    /// The item's `event_name`.
    pub(crate) fn event_name(&self) -> Cow<'_, str> {
        self.item.event_name()
    }

    /// Writes a pre-encoded fragment (`,"key":value` pairs) as is.
    pub(crate) fn raw(&mut self, fragment: &str) {
        self.item.json.push_str(fragment);
    }

    /// Closes the object.
    pub(crate) fn finish(mut self) -> Item {
        self.item.json.push('}');
        self.item
    }
}

/// A batch of items handed to a transport. Cloning is cheap (the items are shared).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    items: Arc<Vec<Item>>,
}

impl Batch {
    /// A batch of these items.
    pub fn new(items: Vec<Item>) -> Self {
        Batch {
            items: Arc::new(items),
        }
    }

    /// The items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sum of the items' encoded sizes.
    pub fn bytes(&self) -> usize {
        self.items.iter().map(Item::len).sum()
    }

    /// The items as NDJSON (one object per line, each line ending in `\n`).
    pub fn to_ndjson(&self) -> String {
        let mut out = String::with_capacity(self.bytes() + self.len());
        for it in self.items.iter() {
            out.push_str(it.json());
            out.push('\n');
        }
        out
    }

    /// The items as a JSON array.
    pub fn to_json_array(&self) -> String {
        let mut out = String::with_capacity(self.bytes() + self.len() + 2);
        out.push('[');
        for (i, it) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(it.json());
        }
        out.push(']');
        out
    }

    /// A new batch with the items for which `keep` returns `true`.
    pub fn filter(&self, mut keep: impl FnMut(&Item) -> bool) -> Batch {
        Batch::new(self.items.iter().filter(|i| keep(i)).cloned().collect())
    }

    /// Takes the items back (copying them only if the batch is still shared).
    pub fn into_items(self) -> Vec<Item> {
        Arc::try_unwrap(self.items).unwrap_or_else(|shared| (*shared).clone())
    }
}
