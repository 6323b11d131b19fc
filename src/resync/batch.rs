//! Batches of keys and items in flat buffers: one allocation per batch, not
//! per key, on the copy path.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::memcached::proto::{encode_key, KeyError, WireKey};
use std::ops::Range;

/// Keys in their wire form, with their vbuckets.
#[derive(Debug, Default, Clone)]
pub struct KeyBatch {
    buf: Vec<u8>,
    keys: Vec<KeyRef>,
}

#[derive(Debug, Clone, Copy)]
struct KeyRef {
    end: u32,
    raw_len: u16,
    vbucket: u8,
    base64: bool,
}

/// One key of a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchKey<'a> {
    pub wire: WireKey<'a>,
    pub vbucket: u8,
    /// Length of the key itself (not of its wire form).
    pub raw_len: usize,
}

impl KeyBatch {
    pub fn with_capacity(keys: usize) -> KeyBatch {
        KeyBatch { buf: Vec::with_capacity(keys * 48), keys: Vec::with_capacity(keys) }
    }

    /// Adds a key given its raw bytes and its bucket (the vbucket under
    /// Clearwater's placement).
    pub fn push(&mut self, raw: &[u8], vbucket: u8) -> Result<(), KeyError> {
        let base64 = encode_key(raw, &mut self.buf)?;
        self.keys.push(KeyRef { end: self.buf.len() as u32, raw_len: raw.len() as u16, vbucket, base64 });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Key `i`, which must be below [`KeyBatch::len`].
    #[expect(clippy::indexing_slicing, reason = "callers pass positions of keys they pushed; `end`s only grow")]
    pub fn get(&self, i: usize) -> BatchKey<'_> {
        let k = self.keys[i];
        let start = if i == 0 { 0 } else { self.keys[i - 1].end as usize };
        BatchKey {
            wire: WireKey { bytes: &self.buf[start..k.end as usize], base64: k.base64 },
            vbucket: k.vbucket,
            raw_len: k.raw_len as usize,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = BatchKey<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Gives back the room reserved beyond the keys pushed.
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
        self.keys.shrink_to_fit();
    }

    /// The memory this batch holds.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.keys.capacity() * std::mem::size_of::<KeyRef>()
    }

    /// Appends this batch as one record: its length (u64), the key count
    /// (u32), per key its end (u32), raw length (u16), vbucket and base64
    /// flag, then the wire bytes. All little-endian.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(self.keys.len() as u32).to_le_bytes());
        for k in &self.keys {
            out.extend_from_slice(&k.end.to_le_bytes());
            out.extend_from_slice(&k.raw_len.to_le_bytes());
            out.extend_from_slice(&[k.vbucket, u8::from(k.base64)]);
        }
        out.extend_from_slice(&self.buf);
        let len = (out.len() - start - 8) as u64;
        if let Some(field) = out.get_mut(start..start + 8) {
            field.copy_from_slice(&len.to_le_bytes());
        }
    }

    /// A batch from a record of [`KeyBatch::write_to`] (without its length);
    /// `None` if it is not one.
    pub fn read_from(record: &[u8]) -> Option<KeyBatch> {
        const REF: usize = 4 + 2 + 2;
        let (count, rest) = record.split_first_chunk::<4>()?;
        let count = u32::from_le_bytes(*count) as usize;
        let (refs, buf) = rest.split_at_checked(count.checked_mul(REF)?)?;
        let mut keys = Vec::with_capacity(count);
        let mut last = 0;
        for r in refs.chunks_exact(REF) {
            let (end, r) = r.split_first_chunk::<4>()?;
            let (raw_len, r) = r.split_first_chunk::<2>()?;
            let [vbucket, base64] = *r.first_chunk::<2>()?;
            let end = u32::from_le_bytes(*end);
            if (end as usize) < last || end as usize > buf.len() {
                return None;
            }
            last = end as usize;
            keys.push(KeyRef { end, raw_len: u16::from_le_bytes(*raw_len), vbucket, base64: base64 != 0 });
        }
        (last == buf.len()).then(|| KeyBatch { buf: buf.to_vec(), keys })
    }
}

/// Items fetched from a source for a [`KeyBatch`].
#[derive(Debug, Default)]
pub struct ItemBatch {
    pub keys: KeyBatch,
    data: Vec<u8>,
    pub items: Vec<FetchedItem>,
    /// Keys listed by the dump but gone by the time they were fetched.
    pub vanished: u64,
    /// Keys already landed from another replica whose copy here is not
    /// newer: checked, not fetched (indexes into `keys`).
    pub checked: Vec<usize>,
    /// The source's removal count read just before the values
    /// ([`crate::memcached::Connection::removals`]).
    pub removals_before: Option<u64>,
    /// Keys of vbuckets the source is primary for (see [`super::barrier`]).
    pub primary: bool,
    /// Keys (positions in `keys`) whose items the source sent but that
    /// cannot be copied: a value larger than the local memcached takes,
    /// or a TTL that is neither a time nor "none".
    pub refused: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct FetchedItem {
    /// Index into `keys`.
    pub key: usize,
    pub flags: u32,
    /// Remaining TTL on the source as it said it (`t`): -1 for none,
    /// `None` where it said nothing.
    pub ttl: Option<i64>,
    value: Range<usize>,
}

impl ItemBatch {
    pub fn new(keys: KeyBatch) -> ItemBatch {
        ItemBatch {
            items: Vec::with_capacity(keys.len()),
            keys,
            data: Vec::new(),
            vanished: 0,
            checked: Vec::new(),
            removals_before: None,
            primary: false,
            refused: Vec::new(),
        }
    }

    /// A batch for the same keys that holds nothing yet: where the values
    /// that did not fit this one go ([`ItemBatch::held`]).
    pub fn continuation(&self) -> ItemBatch {
        let mut next = ItemBatch::new(self.keys.clone());
        next.primary = self.primary;
        next
    }

    /// Value bytes held.
    pub fn held(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn push(&mut self, key: usize, flags: u32, ttl: Option<i64>, value: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(value);
        self.items.push(FetchedItem { key, flags, ttl, value: start..self.data.len() });
    }

    pub fn value(&self, item: &FetchedItem) -> &[u8] {
        self.data.get(item.value.clone()).unwrap_or_default()
    }

    pub fn key(&self, item: &FetchedItem) -> BatchKey<'_> {
        self.keys.get(item.key)
    }

    /// The key of item `i`, if there is one.
    pub fn key_at(&self, i: usize) -> Option<BatchKey<'_>> {
        self.items.get(i).map(|item| self.key(item))
    }

    /// Key and value bytes of the batch.
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| (self.keys.get(i.key).raw_len + i.value.len()) as u64).sum()
    }
}

/// What the copy's fetcher hands its injector.
#[derive(Debug)]
pub enum Step {
    Items(ItemBatch),
    /// Every key of the vbuckets this source is primary for came before.
    PrimaryDone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_items_round_trip() {
        let mut keys = KeyBatch::with_capacity(2);
        keys.push(b"reg\\\\a", 7).unwrap();
        keys.push(b"a b", 9).unwrap();
        assert!(keys.push(&[b'x'; 300], 1).is_err());
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get(0).wire.bytes, b"reg\\\\a");
        assert_eq!((keys.get(1).wire.bytes, keys.get(1).wire.base64), (&b"YSBi"[..], true));
        assert_eq!((keys.get(1).vbucket, keys.get(1).raw_len), (9, 3));
        let mut items = ItemBatch::new(keys);
        items.push(1, 5, Some(-1), b"value");
        assert_eq!(items.value(&items.items[0]), b"value");
        assert_eq!(items.key(&items.items[0]).vbucket, 9);
        assert_eq!(items.bytes(), 8);
    }
}
