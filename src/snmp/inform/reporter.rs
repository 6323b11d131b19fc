//! The resync alarm around resyncs, for every mode that resyncs: the state
//! machine ([`ResyncAlarm`]) feeding the sender ([`Informer`]). Never waits,
//! except for [`AlarmReporter::finish`], which is bounded.

use super::{InformConfig, Informer, Notification, ResyncAlarm};
use std::time::Duration;
use tracing::{info, warn};

pub struct AlarmReporter {
    alarm: ResyncAlarm,
    /// `None` when there are no targets: the state is still tracked.
    informer: Option<Informer>,
}

impl AlarmReporter {
    /// Starts sending to `config`'s targets, if any. With
    /// `announce_at_start`, the cleared state is sent once now.
    pub fn new(config: InformConfig, announce_at_start: bool) -> AlarmReporter {
        let informer = (!config.targets.is_empty()).then(|| Informer::spawn(config));
        let (alarm, announce) = ResyncAlarm::new(announce_at_start);
        let reporter = AlarmReporter { alarm, informer };
        reporter.send(announce);
        reporter
    }

    fn send(&self, n: Option<Notification>) {
        if let (Some(n), Some(informer)) = (n, &self.informer) {
            info!("alarm {}", n.describe());
            informer.notify(n);
        }
    }

    /// A resync with `pairs` (vbucket, source) pairs of work starts.
    pub fn resync_started(&mut self, pairs: usize) {
        let n = self.alarm.resync_started(pairs);
        self.send(n);
    }

    /// The resync ended, whatever its result.
    pub fn resync_ended(&mut self) {
        let n = self.alarm.resync_ended();
        self.send(n);
    }

    /// Clears what is still raised, then gives the receivers at most
    /// `linger` to acknowledge before the process goes.
    pub async fn finish(mut self, linger: Duration) {
        self.resync_ended();
        if let Some(informer) = self.informer {
            if !informer.flush(linger).await {
                warn!("alarm state not acknowledged by every SNMP target before exit");
            }
            informer.shutdown();
        }
    }
}
