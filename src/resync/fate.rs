//! The injector's decisions, one per answer it reads: what became of an
//! item on the local node. Pure functions of the answer (and the policy),
//! each unit-tested below without memcached.
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::rules::ConflictPolicy;
use crate::memcached::proto::{Meta, Status};

/// What happened to each item of a batch on the local node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Skipped,
    /// Added by us, with the CAS memcached gave it.
    Written(u64),
    /// An older local value replaced by ours, with the new CAS.
    Replaced(u64),
    Conflict,
    /// The local value stayed; with its flags when they were read.
    Kept(Option<u32>),
    Failed,
}

impl Fate {
    /// The CAS of what we wrote, if we wrote.
    pub(super) fn cas(self) -> Option<u64> {
        match self {
            Fate::Written(cas) | Fate::Replaced(cas) => Some(cas),
            _ => None,
        }
    }
}

/// Indexes of the fates matching `pred`.
pub(super) fn positions(fates: &[Fate], pred: impl Fn(&Fate) -> bool) -> Vec<usize> {
    fates.iter().enumerate().filter(|(_, f)| pred(f)).map(|(i, _)| i).collect()
}

/// The fate of an item from the local node's answer to its add (`ms … ME`):
/// written (with the CAS it got), a conflict (the key is there), or failed
/// alone (the server refused this one item).
pub(super) fn after_add(m: &Meta) -> Result<Fate, String> {
    match m.status {
        Status::Stored => Ok(Fate::Written(m.cas.unwrap_or(0))),
        Status::NotStored => Ok(Fate::Conflict),
        Status::ServerError | Status::ClientError => Ok(Fate::Failed),
        other => Err(format!("{other:?} in answer to ms ME")),
    }
}

/// The local value a conflict found (`mg <key> f c`): its flags and CAS, or
/// none when it was deleted since (then it stays deleted).
pub(super) fn local_value(m: &Meta) -> Result<Option<(u32, u64)>, String> {
    match m.status {
        Status::Stored => Ok(Some((m.flags.unwrap_or(0), m.cas.unwrap_or(0)))),
        Status::Miss => Ok(None),
        other => Err(format!("{other:?} in answer to mg f c")),
    }
}

/// A conflict's outcome before any replace: the local value is kept (with
/// its flags), and it is replaced, under the CAS just read, only when the
/// policy says ours (`ours` = our flags) is newer.
pub(super) fn on_conflict(policy: ConflictPolicy, local: Option<(u32, u64)>, ours: u32) -> (Fate, Option<u64>) {
    match local {
        Some((flags, cas)) => (Fate::Kept(Some(flags)), policy.should_replace(flags, ours).then_some(cas)),
        None => (Fate::Kept(None), None),
    }
}

/// The fate of a CAS-guarded replace: replaced, or kept when a client wrote
/// in between (newer than both; its flags unknown).
pub(super) fn after_replace(m: &Meta) -> Result<Fate, String> {
    match m.status {
        Status::Stored => Ok(Fate::Replaced(m.cas.unwrap_or(0))),
        Status::Exists | Status::NotFound => Ok(Fate::Kept(None)),
        Status::ServerError | Status::ClientError => Ok(Fate::Failed),
        other => Err(format!("{other:?} in answer to ms MS C")),
    }
}

/// Whether the delete guard's look at the source (`mg <key>`) finds the
/// key gone: a client deleted it after we read it.
pub(super) fn gone_from_source(m: &Meta) -> Result<bool, String> {
    match m.status {
        Status::Stored => Ok(false),
        Status::Miss => Ok(true),
        other => Err(format!("{other:?} in answer to mg")),
    }
}

/// Whether deleting exactly what we wrote (`md <key> C<cas>`) took it back;
/// a CAS mismatch or a miss means a client's write or delete came since,
/// which stays.
pub(super) fn taken_back(m: &Meta) -> Result<bool, String> {
    match m.status {
        Status::Stored => Ok(true),
        Status::Exists | Status::NotFound => Ok(false),
        other => Err(format!("{other:?} in answer to md C")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Status, flags: Option<u32>, cas: Option<u64>) -> Meta {
        Meta {
            status,
            len: 0,
            flags,
            ttl: None,
            cas,
            key: None,
            base64: false,
            value: None,
            message: None,
            opaque: Some(0),
            oversized: None,
        }
    }

    #[test]
    fn an_add_is_written_a_conflict_or_a_failed_item() {
        assert_eq!(after_add(&answer(Status::Stored, None, Some(9))), Ok(Fate::Written(9)));
        assert_eq!(after_add(&answer(Status::NotStored, None, None)), Ok(Fate::Conflict));
        assert_eq!(after_add(&answer(Status::ServerError, None, None)), Ok(Fate::Failed));
        assert_eq!(after_add(&answer(Status::ClientError, None, None)), Ok(Fate::Failed));
        assert!(after_add(&answer(Status::Exists, None, None)).is_err(), "not an answer to an add");
    }

    #[test]
    fn a_conflict_keeps_the_local_value_unless_ours_is_newer() {
        let newer = ConflictPolicy::ClearwaterTimestamp;
        assert_eq!(local_value(&answer(Status::Stored, Some(5), Some(77))), Ok(Some((5, 77))));
        assert_eq!(local_value(&answer(Status::Miss, None, None)), Ok(None));
        assert!(local_value(&answer(Status::NotStored, None, None)).is_err());
        // Ours (flags 6) newer than the local (5): replace under its CAS.
        assert_eq!(on_conflict(newer, Some((5, 77)), 6), (Fate::Kept(Some(5)), Some(77)));
        // Local newer or equal: kept, nothing sent.
        assert_eq!(on_conflict(newer, Some((7, 77)), 6), (Fate::Kept(Some(7)), None));
        assert_eq!(on_conflict(newer, Some((6, 77)), 6), (Fate::Kept(Some(6)), None));
        // Deleted locally since: stays deleted.
        assert_eq!(on_conflict(newer, None, 6), (Fate::Kept(None), None));
        // Add-only never replaces.
        assert_eq!(on_conflict(ConflictPolicy::AddOnly, Some((5, 77)), 6), (Fate::Kept(Some(5)), None));
    }

    #[test]
    fn a_replace_lands_or_yields_to_a_client_write() {
        assert_eq!(after_replace(&answer(Status::Stored, None, Some(8))), Ok(Fate::Replaced(8)));
        assert_eq!(after_replace(&answer(Status::Exists, None, None)), Ok(Fate::Kept(None)));
        assert_eq!(after_replace(&answer(Status::NotFound, None, None)), Ok(Fate::Kept(None)));
        assert_eq!(after_replace(&answer(Status::ServerError, None, None)), Ok(Fate::Failed));
        assert!(after_replace(&answer(Status::Miss, None, None)).is_err());
    }

    #[test]
    fn the_delete_guard_takes_back_only_what_we_wrote_of_a_deleted_key() {
        assert_eq!(gone_from_source(&answer(Status::Stored, None, None)), Ok(false));
        assert_eq!(gone_from_source(&answer(Status::Miss, None, None)), Ok(true));
        assert!(gone_from_source(&answer(Status::NotStored, None, None)).is_err());
        assert_eq!(taken_back(&answer(Status::Stored, None, None)), Ok(true));
        assert_eq!(taken_back(&answer(Status::Exists, None, None)), Ok(false), "a client wrote since");
        assert_eq!(taken_back(&answer(Status::NotFound, None, None)), Ok(false), "a client deleted it");
        assert!(taken_back(&answer(Status::Miss, None, None)).is_err());
        assert_eq!(Fate::Written(3).cas(), Some(3));
        assert_eq!(Fate::Replaced(4).cas(), Some(4));
        assert_eq!(Fate::Kept(None).cas(), None, "nothing of ours to take back");
    }
}
