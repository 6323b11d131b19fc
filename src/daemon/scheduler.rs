//! Which resync runs next: requests (signals, start-up, a missing restart
//! tag, a retry) are numbered and coalesced; resyncs never overlap. Pure.
//!
//! A request numbered `g` is *covered* once a resync that started after it
//! has finished: `completed >= g`. `wait-sync` waits for that, with nothing
//! running or pending.

/// How much a resync pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Only what the node did not hold before (SIGHUP, a view change).
    Minimal,
    /// Everything the node should hold (SIGUSR1, the restart tag missing).
    Full,
}

/// The result of one resync, as reported by `status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub generation: u64,
    pub kind: Kind,
    pub success: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    pub failed_vbuckets: Vec<u8>,
    pub keys_landed: u64,
    pub seconds: f64,
}

#[derive(Debug, Default, Clone)]
pub struct Scheduler {
    requested: u64,
    pending: Option<Kind>,
    running: Option<(u64, Kind)>,
    completed: u64,
    last: Option<Outcome>,
}

impl Scheduler {
    /// Records a request; returns its generation.
    pub fn request(&mut self, kind: Kind) -> u64 {
        self.requested += 1;
        self.pending = Some(self.pending.map_or(kind, |p| p.max(kind)));
        self.requested
    }

    /// The resync to start now, if one is pending and none runs. It covers
    /// every request made so far.
    pub fn start_next(&mut self) -> Option<(u64, Kind)> {
        if self.running.is_some() {
            return None;
        }
        let kind = self.pending.take()?;
        self.running = Some((self.requested, kind));
        self.running
    }

    /// The running resync finished.
    pub fn finished(&mut self, outcome: Outcome) {
        if let Some((generation, _)) = self.running.take() {
            self.completed = generation;
        }
        self.last = Some(outcome);
    }

    pub fn requested(&self) -> u64 {
        self.requested
    }

    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn running(&self) -> Option<(u64, Kind)> {
        self.running
    }

    pub fn pending(&self) -> Option<Kind> {
        self.pending
    }

    pub fn last(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    /// Nothing running or pending, and every request up to `generation`
    /// covered.
    pub fn settled(&self, generation: u64) -> bool {
        self.completed >= generation && self.running.is_none() && self.pending.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(generation: u64, success: bool) -> Outcome {
        Outcome {
            generation,
            kind: Kind::Minimal,
            success,
            error: None,
            failed_vbuckets: vec![],
            keys_landed: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn requests_during_a_resync_coalesce_into_one_more() {
        let mut s = Scheduler::default();
        let first = s.request(Kind::Minimal);
        assert_eq!(s.start_next(), Some((first, Kind::Minimal)));
        let a = s.request(Kind::Minimal);
        let b = s.request(Kind::Minimal);
        assert_eq!(s.start_next(), None, "never two at once");
        assert!(!s.settled(b));
        s.finished(outcome(first, true));
        assert!(s.completed() >= first);
        assert!(!s.settled(first), "not settled while another resync is pending");
        assert!(s.completed() < a, "a later request is not covered by an earlier resync");
        assert_eq!(s.start_next(), Some((b, Kind::Minimal)), "one resync covers both");
        s.finished(outcome(b, true));
        assert!(s.settled(b) && s.settled(a));
        assert_eq!(s.start_next(), None);
    }

    #[test]
    fn full_wins_over_minimal() {
        let mut s = Scheduler::default();
        s.request(Kind::Minimal);
        s.request(Kind::Full);
        s.request(Kind::Minimal);
        assert_eq!(s.start_next(), Some((3, Kind::Full)));
    }

    #[test]
    fn nothing_requested_is_settled() {
        let s = Scheduler::default();
        assert!(s.settled(0));
        assert_eq!(s.last(), None);
    }
}
