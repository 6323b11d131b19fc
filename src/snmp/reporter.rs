//! The resync alarm around resyncs, for every mode that resyncs: the state
//! machine ([`ResyncAlarm`]) feeding one route. On a Clearwater node, where
//! the alarm agent's socket exists, that is the agent ([`AgentLink`]);
//! elsewhere INFORMs straight to `snmp_ip` ([`Informer`]). Never both, so a
//! manager sees each change once. Never waits, except for
//! [`AlarmReporter::finish`], which is bounded.

use super::alarm_agent::{AgentLink, AgentSettings};
use super::inform::{InformConfig, Informer, Notification, ResyncAlarm};
use std::time::Duration;
use tracing::{info, warn};

enum Route {
    Agent(AgentLink),
    Inform(Informer),
    /// No agent and no targets: the state is still tracked.
    Nowhere,
}

pub struct AlarmReporter {
    alarm: ResyncAlarm,
    route: Route,
    inform: InformConfig,
    agent: AgentSettings,
}

impl AlarmReporter {
    /// Starts reporting: through the agent if its socket is there, else to
    /// `inform`'s targets, if any. The cleared state is sent once now with
    /// `announce_at_start`, and always to the agent (as the original
    /// daemon's first idle pass did), whose alarms start undefined.
    pub fn new(inform: InformConfig, agent: AgentSettings, announce_at_start: bool) -> AlarmReporter {
        let route = choose(&inform, &agent);
        let (alarm, announce) = ResyncAlarm::new(announce_at_start || matches!(route, Route::Agent(_)));
        let mut reporter = AlarmReporter { alarm, route, inform, agent };
        reporter.send(announce);
        reporter
    }

    fn send(&mut self, n: Option<Notification>) {
        let Some(n) = n else { return };
        // An agent that started after this process takes over from then on.
        if !matches!(self.route, Route::Agent(_)) && self.agent.present().is_some() {
            if let Route::Inform(informer) = std::mem::replace(&mut self.route, Route::Nowhere) {
                informer.shutdown();
            }
            self.route = choose(&self.inform, &self.agent);
        }
        match &self.route {
            Route::Agent(agent) => {
                info!("alarm {} (to the alarm agent)", n.describe());
                agent.notify(n);
            }
            Route::Inform(informer) => {
                info!("alarm {}", n.describe());
                informer.notify(n);
            }
            Route::Nowhere => {}
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
        match self.route {
            Route::Agent(agent) => {
                if !agent.flush(linger).await {
                    warn!("alarm state not taken by the alarm agent before exit");
                }
                agent.shutdown();
            }
            Route::Inform(informer) => {
                if !informer.flush(linger).await {
                    warn!("alarm state not acknowledged by every SNMP target before exit");
                }
                informer.shutdown();
            }
            Route::Nowhere => {}
        }
    }
}

/// The agent while its socket is there, else the INFORM targets, if any.
fn choose(inform: &InformConfig, agent: &AgentSettings) -> Route {
    if let Some(socket) = agent.present() {
        return Route::Agent(AgentLink::spawn(socket.to_owned(), agent.resend));
    }
    match inform.targets.is_empty() {
        true => Route::Nowhere,
        false => Route::Inform(Informer::spawn(inform.clone())),
    }
}
