//! Alarm 5501 (ASTAIRE_RESYNC_IN_PROGRESS) as SNMPv2c INFORMs in the RFC
//! 3877 form: the state machine ([`alarm`]), the message ([`message`]) and
//! delivery ([`sender`]). A dead receiver never delays a resync.

pub mod alarm;
pub mod message;
pub mod sender;

pub use alarm::{Notification, ResyncAlarm, RESYNC_ALARM_INDEX};
pub use sender::{InformConfig, Informer};
