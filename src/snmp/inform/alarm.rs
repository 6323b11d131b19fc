//! Alarm 5501 ASTAIRE_RESYNC_IN_PROGRESS as a state machine: resync events
//! in, notifications to send out. Pure; the sender delivers them.

/// Astaire's resync alarm.
pub const RESYNC_ALARM_INDEX: u32 = 5501;
/// Its probable cause, databaseInconsistency (RFC 3877/ITU X.733).
pub const PROBABLE_CAUSE_DATABASE_INCONSISTENCY: u32 = 160;

/// What one INFORM announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub index: u32,
    /// Raised (MINOR) or cleared.
    pub raised: bool,
}

impl Notification {
    /// RFC 3877 model state: minor 4 when raised, clear 1 when cleared.
    pub fn model_state(&self) -> u32 {
        if self.raised {
            4
        } else {
            1
        }
    }

    pub fn describe(&self) -> &'static str {
        if self.raised {
            "ASTAIRE_RESYNC_IN_PROGRESS raised (minor)"
        } else {
            "ASTAIRE_RESYNC_IN_PROGRESS cleared"
        }
    }
}

/// The resync alarm's state in this process.
#[derive(Debug, Clone, Default)]
pub struct ResyncAlarm {
    raised: bool,
}

impl ResyncAlarm {
    /// A new alarm. With `announce_at_start` it says "cleared" once at
    /// start, so a receiver that saw a raise from a previous process life
    /// is told it is over; without, a clear is only sent after a raise.
    pub fn new(announce_at_start: bool) -> (ResyncAlarm, Option<Notification>) {
        let start = announce_at_start.then_some(Notification { index: RESYNC_ALARM_INDEX, raised: false });
        (ResyncAlarm::default(), start)
    }

    /// A resync starts with `pairs` (vbucket, source) pairs of work.
    pub fn resync_started(&mut self, pairs: usize) -> Option<Notification> {
        if pairs == 0 || self.raised {
            return None;
        }
        self.raised = true;
        Some(Notification { index: RESYNC_ALARM_INDEX, raised: true })
    }

    /// A resync ended, successfully or not: failure is told by logs, exit
    /// codes and status, not by leaving the alarm up.
    pub fn resync_ended(&mut self) -> Option<Notification> {
        if !self.raised {
            return None;
        }
        self.raised = false;
        Some(Notification { index: RESYNC_ALARM_INDEX, raised: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_on_start_with_work_clear_on_end_change_only() {
        let (mut a, start) = ResyncAlarm::new(false);
        assert_eq!(start, None, "no clear for an alarm never raised");
        assert_eq!(a.resync_ended(), None);
        assert_eq!(a.resync_started(0), None, "a resync with nothing to do raises nothing");
        let raise = a.resync_started(108).unwrap();
        assert_eq!((raise.index, raise.raised, raise.model_state()), (5501, true, 4));
        assert_eq!(a.resync_started(108), None, "already raised");
        let clear = a.resync_ended().unwrap();
        assert_eq!((clear.raised, clear.model_state()), (false, 1));
        assert_eq!(a.resync_ended(), None, "already cleared");
    }

    #[test]
    fn announcing_at_start_sends_the_clear_state_once() {
        let (mut a, start) = ResyncAlarm::new(true);
        assert_eq!(start, Some(Notification { index: 5501, raised: false }));
        assert_eq!(a.resync_ended(), None);
    }
}
