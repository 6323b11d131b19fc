//! The alarm agent link's ZMTP decoder on arbitrary bytes, fed as the
//! link reads them (never more than there is room for): it may refuse
//! them, never panic, never hold more than its buffer, and never wait with
//! a full buffer (issue 29).
#![no_main]

use astaire::snmp::zmtp::{Limits, Progress, ReqClient};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, mut rest)) = data.split_first() else { return };
    let cut = usize::from(cut.max(1));
    let limits = Limits::ALARM_AGENT;
    let (mut client, _) = ReqClient::new(limits);
    while !rest.is_empty() {
        let n = cut.min(client.decoder().room()).min(rest.len());
        assert!(n > 0, "waiting with a full buffer");
        let (chunk, after) = rest.split_at(n);
        rest = after;
        client.decoder().received(chunk);
        assert!(client.decoder().buffered() <= limits.buffer());
        match client.poll() {
            Err(_) => return,
            Ok(Progress::Ready) => {
                client.request(&["issue-alarm", "astaire", "5501.1"]);
            }
            Ok(_) => {}
        }
    }
});
