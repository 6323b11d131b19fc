//! The Astaire subtree of PROJECT-CLEARWATER-MIB as a sorted OID space,
//! computed from a [`Snapshot`], with Get, GetNext and GetBulk as pure
//! functions. OIDs, types and index encodings follow `shared/spec/snmp.md`.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::agentx::pdu::{Oid, SearchRange, Value, VarBind};
use crate::stats::Snapshot;
use std::net::SocketAddr;

/// `astaire`: 1.2.826.0.1.1578918.9.9.
pub const ASTAIRE: [u32; 8] = [1, 2, 826, 0, 1, 1578918, 9, 9];

/// Objects that exist (so a missing instance under them is noSuchInstance):
/// the scalars and the readable columns, relative to [`ASTAIRE`].
const OBJECTS: [&[u32]; 10] =
    [&[1], &[2], &[3], &[4], &[5, 1, 2], &[6, 1, 4], &[6, 1, 5], &[7, 1, 5], &[7, 1, 6], &[8, 1, 6]];

/// `scopePrevious5SecondPeriod(1)`.
const SCOPE_PREVIOUS_5S: u32 = 1;

/// The table index of a source connection: InetAddressType, the address
/// (length-prefixed, not IMPLIED), then the port.
pub fn connection_index(addr: &SocketAddr) -> Vec<u32> {
    let mut idx = Vec::with_capacity(19);
    match addr {
        SocketAddr::V4(a) => {
            idx.extend_from_slice(&[1, 4]);
            idx.extend(a.ip().octets().iter().map(|b| u32::from(*b)));
        }
        SocketAddr::V6(a) => {
            idx.extend_from_slice(&[2, 16]);
            idx.extend(a.ip().octets().iter().map(|b| u32::from(*b)));
        }
    }
    idx.push(u32::from(addr.port()));
    idx
}

/// Every instance with its value, in OID order. The OIDs live in one flat
/// arena: building a view allocates a handful of vectors, not one per
/// instance, because a view may be built for every request a walk sends.
#[derive(Debug, Clone, Default)]
pub struct MibView {
    subids: Vec<u32>,
    /// End of each instance's OID in `subids`.
    ends: Vec<u32>,
    values: Vec<u32>,
}

impl MibView {
    fn push(&mut self, parts: &[&[u32]], value: u32) {
        self.subids.extend_from_slice(&ASTAIRE);
        parts.iter().for_each(|p| self.subids.extend_from_slice(p));
        self.ends.push(self.subids.len() as u32);
        self.values.push(value);
    }

    /// The OID of instance `i` (empty past the end).
    fn oid_at(&self, i: usize) -> &[u32] {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(0, |e| *e as usize),
            None => 0,
        };
        let end = self.ends.get(i).map_or(0, |e| *e as usize);
        self.subids.get(start..end).unwrap_or_default()
    }

    /// Index of `oid`, or where it would be inserted.
    fn search(&self, oid: &[u32]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.values.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.oid_at(mid).cmp(oid) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }
}

impl MibView {
    pub fn new(s: &Snapshot) -> MibView {
        let mut conns: Vec<(Vec<u32>, &crate::stats::ConnectionSnapshot)> =
            s.connections.iter().map(|c| (connection_index(&c.addr), c)).collect();
        conns.sort_by(|a, b| a.0.cmp(&b.0));
        conns.dedup_by(|a, b| a.0 == b.0);
        let buckets: usize = conns.iter().map(|(_, c)| c.buckets.len()).sum();
        let instances = 5 + 2 * conns.len() + 3 * buckets;
        let mut v = MibView {
            subids: Vec::with_capacity(instances * (ASTAIRE.len() + 14)),
            ends: Vec::with_capacity(instances),
            values: Vec::with_capacity(instances),
        };

        v.push(&[&[1, 0]], s.buckets_needing_resync);
        v.push(&[&[2, 0]], s.buckets_resynchronized);
        v.push(&[&[3, 0]], s.entries_resynchronized);
        v.push(&[&[4, 0]], s.data_resynchronized);
        v.push(&[&[5, 1, 2, SCOPE_PREVIOUS_5S]], s.bandwidth);
        for (idx, c) in &conns {
            v.push(&[&[6, 1, 4], idx], c.buckets_needing_resync);
        }
        for (idx, c) in &conns {
            v.push(&[&[6, 1, 5], idx], c.buckets_resynchronized);
        }
        for column in [5u32, 6] {
            for (idx, c) in &conns {
                for b in &c.buckets {
                    let value = if column == 5 { b.entries } else { b.data };
                    v.push(&[&[7, 1, column], idx, &[u32::from(b.vbucket)]], value);
                }
            }
        }
        for (idx, c) in &conns {
            for b in &c.buckets {
                v.push(&[&[8, 1, 6], idx, &[u32::from(b.vbucket), SCOPE_PREVIOUS_5S]], b.bandwidth);
            }
        }
        debug_assert!((1..v.len()).all(|i| v.oid_at(i - 1) < v.oid_at(i)), "instances in OID order");
        v
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of exactly `name`.
    pub fn get(&self, name: &Oid) -> Value {
        match self.search(&name.0) {
            Ok(i) => self.values.get(i).map_or(Value::NoSuchInstance, |v| Value::Gauge32(*v)),
            Err(_) => {
                let rel = name.0.strip_prefix(&ASTAIRE[..]).unwrap_or(&[]);
                if OBJECTS.iter().any(|o| rel.starts_with(o) && rel.len() > o.len()) {
                    Value::NoSuchInstance
                } else {
                    Value::NoSuchObject
                }
            }
        }
    }

    /// The first instance in `range` (after its start, or at it when
    /// `include`), or endOfMibView named by the start.
    pub fn get_next(&self, range: &SearchRange) -> VarBind {
        let i = match self.search(&range.start.0) {
            Ok(i) if range.include => i,
            Ok(i) => i + 1,
            Err(i) => i,
        };
        if let Some(value) = self.values.get(i) {
            let name = self.oid_at(i);
            if range.end.is_null() || name < range.end.0.as_slice() {
                return VarBind { name: Oid(name.to_vec()), value: Value::Gauge32(*value) };
            }
        }
        VarBind { name: range.start.clone(), value: Value::EndOfMibView }
    }

    /// RFC 2741 7.2.3.2: the first `non_repeaters` ranges once, then the
    /// others `max_repetitions` times, each continuing after the last.
    /// Whole repetitions stop once the answer would pass
    /// [`MAX_BULK_VARBINDS`] (at least one is always given): GetBulk may
    /// answer fewer repetitions than asked, and a large `max_repetitions`
    /// over many ranges must not make a reply hundreds of times the request.
    pub fn get_bulk(&self, non_repeaters: u16, max_repetitions: u16, ranges: &[SearchRange]) -> Vec<VarBind> {
        let (once, repeated) = ranges.split_at((non_repeaters as usize).min(ranges.len()));
        let mut out: Vec<VarBind> = once.iter().map(|r| self.get_next(r)).collect();
        let mut cursors: Vec<SearchRange> = repeated.to_vec();
        for repetition in 0..max_repetitions {
            if cursors.is_empty() || (repetition > 0 && out.len() + cursors.len() > MAX_BULK_VARBINDS) {
                break;
            }
            let mut all_ended = true;
            for cursor in cursors.iter_mut() {
                let vb = self.get_next(cursor);
                if vb.value != Value::EndOfMibView {
                    all_ended = false;
                    cursor.start = vb.name.clone();
                    cursor.include = false;
                }
                out.push(vb);
            }
            if all_ended {
                break;
            }
        }
        out
    }
}

/// The most varbinds a GetBulk answer grows to by repetition (net-snmp's
/// own walks ask for 10 to 50 at a time; the whole subtree of a big
/// resync has a few thousand instances).
pub const MAX_BULK_VARBINDS: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{BucketSnapshot, ConnectionSnapshot};

    fn o(s: &str) -> Oid {
        s.parse().unwrap()
    }

    const A: &str = "1.2.826.0.1.1578918.9.9";

    fn snapshot() -> Snapshot {
        let bucket = |vbucket, entries| BucketSnapshot { vbucket, entries, data: entries * 100, bandwidth: 7 };
        Snapshot {
            buckets_needing_resync: 3,
            buckets_resynchronized: 1,
            entries_resynchronized: 50,
            data_resynchronized: 5000,
            bandwidth: 1000,
            connections: vec![
                ConnectionSnapshot {
                    addr: "10.0.0.2:11211".parse().unwrap(),
                    buckets_needing_resync: 1,
                    buckets_resynchronized: 1,
                    buckets: vec![bucket(9, 20)],
                },
                ConnectionSnapshot {
                    addr: "10.0.0.1:11211".parse().unwrap(),
                    buckets_needing_resync: 2,
                    buckets_resynchronized: 0,
                    buckets: vec![bucket(3, 10), bucket(4, 20)],
                },
            ],
        }
    }

    #[test]
    fn idle_scalars_read_zero_and_tables_are_empty() {
        let view = MibView::new(&Snapshot::default());
        for n in 1..=4 {
            assert_eq!(view.get(&o(&format!("{A}.{n}.0"))), Value::Gauge32(0));
        }
        assert_eq!(view.len(), 5, "four scalars and the bandwidth row");
        assert_eq!(view.get(&o(&format!("{A}.6.1.4.1.4.10.0.0.1.11211"))), Value::NoSuchInstance);
        assert_eq!(view.get(&o(&format!("{A}.1.1"))), Value::NoSuchInstance);
        assert_eq!(view.get(&o(&format!("{A}.99.0"))), Value::NoSuchObject);
        assert_eq!(view.get(&o("1.3.6.1.2.1.1.3.0")), Value::NoSuchObject);
    }

    #[test]
    fn index_encoding_matches_the_spec_example() {
        let view = MibView::new(&snapshot());
        // IPv4 10.0.0.1:11211, bucket 3, scope 1.
        assert_eq!(view.get(&o(&format!("{A}.8.1.6.1.4.10.0.0.1.11211.3.1"))), Value::Gauge32(7));
        assert_eq!(view.get(&o(&format!("{A}.7.1.5.1.4.10.0.0.1.11211.4"))), Value::Gauge32(20));
        assert_eq!(view.get(&o(&format!("{A}.6.1.4.1.4.10.0.0.2.11211"))), Value::Gauge32(1));
        assert_eq!(view.get(&o(&format!("{A}.5.1.2.1"))), Value::Gauge32(1000));
        let v6: SocketAddr = "[2001:db8::1]:11211".parse().unwrap();
        let idx = connection_index(&v6);
        assert_eq!(&idx[..2], &[2, 16]);
        assert_eq!(idx.len(), 19);
        assert_eq!(idx[18], 11211);
    }

    #[test]
    fn a_walk_visits_every_instance_in_order_then_ends() {
        let view = MibView::new(&snapshot());
        let end = o("1.2.826.0.1.1578918.9.10");
        let mut range = SearchRange { start: o(A), include: false, end: end.clone() };
        let mut seen = Vec::new();
        loop {
            let vb = view.get_next(&range);
            if vb.value == Value::EndOfMibView {
                assert_eq!(vb.name, range.start);
                break;
            }
            seen.push(vb.name.clone());
            range = SearchRange { start: vb.name, include: false, end: end.clone() };
        }
        // 5 + 2 columns × 2 connections + 3 bucket values × 3 buckets.
        assert_eq!(seen.len(), 5 + 4 + 9);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(seen[5], o(&format!("{A}.6.1.4.1.4.10.0.0.1.11211")), "rows in index order");
    }

    #[test]
    fn getnext_respects_include_and_the_range_end() {
        let view = MibView::new(&snapshot());
        let scalar = o(&format!("{A}.2.0"));
        let inc = view.get_next(&SearchRange { start: scalar.clone(), include: true, end: Oid::default() });
        assert_eq!(inc.name, scalar);
        let exc = view.get_next(&SearchRange { start: scalar.clone(), include: false, end: Oid::default() });
        assert_eq!(exc.name, o(&format!("{A}.3.0")));
        let bounded = view.get_next(&SearchRange { start: scalar.clone(), include: false, end: o(&format!("{A}.3")) });
        assert_eq!((bounded.name, bounded.value), (scalar, Value::EndOfMibView));
    }

    #[test]
    fn getbulk_non_repeaters_then_repetitions() {
        let view = MibView::new(&snapshot());
        let r = |s: &str| SearchRange { start: o(s), include: false, end: Oid::default() };
        let out = view.get_bulk(1, 3, &[r(&format!("{A}.1")), r(&format!("{A}.2")), r(&format!("{A}.8.1.6"))]);
        let names: Vec<String> = out.iter().map(|v| v.name.to_string().replace(A, "A")).collect();
        assert_eq!(
            names,
            [
                "A.1.0",
                "A.2.0",
                "A.8.1.6.1.4.10.0.0.1.11211.3.1",
                "A.3.0",
                "A.8.1.6.1.4.10.0.0.1.11211.4.1",
                "A.4.0",
                "A.8.1.6.1.4.10.0.0.2.11211.9.1",
            ]
        );
        let ended = view.get_bulk(0, 5, &[r(&format!("{A}.8.1.6.1.4.10.0.0.2.11211.9.1"))]);
        assert_eq!(ended.len(), 1, "stops once every repeater has ended");
        assert_eq!(ended[0].value, Value::EndOfMibView);
    }

    /// Issue 15: a 1 MiB GetBulk with a large max-repetitions was answered
    /// in full (42 MB idle, 285 MB during a resync).
    #[test]
    fn getbulk_answers_whole_repetitions_up_to_the_cap() {
        let view = MibView::new(&snapshot());
        // Ranges that never end: each repetition of this many ranges
        // starting before the subtree finds the first scalar again.
        let r = |s: &str| SearchRange { start: o(s), include: false, end: Oid::default() };
        let ranges: Vec<SearchRange> = (0..700).map(|_| r(&format!("{A}.1"))).collect();
        let out = view.get_bulk(0, u16::MAX, &ranges);
        assert!(out.len() <= MAX_BULK_VARBINDS, "{} varbinds", out.len());
        assert_eq!(out.len() % ranges.len(), 0, "whole repetitions only: {}", out.len());
        let huge: Vec<SearchRange> = (0..3000).map(|_| r(&format!("{A}.1"))).collect();
        assert_eq!(view.get_bulk(0, u16::MAX, &huge).len(), 3000, "one repetition is always answered");
        assert_eq!(view.get_bulk(10, u16::MAX, &huge).len(), 3000, "non-repeaters once, then one repetition");
        let ended = view.get_bulk(0, 5, &[r(&format!("{A}.8.1.6.1.4.10.0.0.2.11211.9.1"))]);
        assert_eq!(ended.len(), 1, "stops once every repeater has ended");
        assert_eq!(ended[0].value, Value::EndOfMibView);
    }
}
