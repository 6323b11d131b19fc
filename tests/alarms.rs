//! Alarm 5501 INFORMs received by a real net-snmp snmptrapd.

mod common;

use astaire::snmp::inform::message::encode_inform;
use astaire::snmp::inform::{InformConfig, Informer, Notification, ResyncAlarm};
use common::alarm_agent::StandInAgent;
use common::snmptrapd::{Received, Snmptrapd};
use common::*;
use std::time::{Duration, Instant};

const RAISE: [(&str, &str); 3] = [
    (".1.3.6.1.6.3.1.1.4.1.0", "OID: .1.3.6.1.2.1.118.0.2"),
    (".1.3.6.1.2.1.118.1.2.2.1.13.0", "OID: .1.3.6.1.2.1.118.1.1.2.1.3.0.5501.4"),
    (".1.3.6.1.2.1.118.1.2.2.1.10.0", "OID: .0.0"),
];
const CLEAR: [(&str, &str); 3] = [
    (".1.3.6.1.6.3.1.1.4.1.0", "OID: .1.3.6.1.2.1.118.0.3"),
    (".1.3.6.1.2.1.118.1.2.2.1.13.0", "OID: .1.3.6.1.2.1.118.1.1.2.1.3.0.5501.1"),
    (".1.3.6.1.2.1.118.1.2.2.1.10.0", "OID: .0.0"),
];

/// The notification's varbinds are sysUpTime.0 then exactly `expected`.
fn assert_alarm(got: &Received, expected: &[(&str, &str); 3]) {
    let vars = &got.1;
    assert_eq!(vars.len(), 4, "{got:?}");
    assert_eq!(vars[0].0, ".1.3.6.1.2.1.1.3.0");
    assert!(vars[0].1.starts_with("Timeticks: ("), "{got:?}");
    for (i, (oid, value)) in expected.iter().enumerate() {
        assert_eq!((vars[i + 1].0.as_str(), vars[i + 1].1.as_str()), (*oid, *value), "{got:?}");
    }
}

/// A small 3→4 resize whose new node has work.
async fn small_resize() -> Resize {
    let r = Resize::three_to_four();
    load(&view(&r.stable), &plain_items("reg\\\\sip:alarm", 300, 1)).await;
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_raises_then_clears_exactly_once_and_both_are_acknowledged() {
    let r = small_resize().await;
    let trapd = Snmptrapd::start_any("clearwater");
    let target = format!("127.0.0.1:{}", trapd.port);
    let out = resync_cli(r.new_node(), &r.resize, &["--snmp-ip", &target]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = trapd.wait_for(2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let got_later = trapd.received();
    assert_eq!(got_later.len(), 2, "exactly one raise and one clear: {got_later:?}");
    assert_alarm(&got[0], &RAISE);
    assert_alarm(&got[1], &CLEAR);
    // Acknowledged: Astaire saw snmptrapd's Responses (and so never resent).
    let t = text(&out);
    assert!(t.contains("INFORM delivered: ASTAIRE_RESYNC_IN_PROGRESS raised"), "{t}");
    assert!(t.contains("INFORM delivered: ASTAIRE_RESYNC_IN_PROGRESS cleared"), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_with_nothing_to_do_sends_nothing() {
    let r = small_resize().await;
    let trapd = Snmptrapd::start_any("clearwater");
    let target = format!("127.0.0.1:{}", trapd.port);
    let out = resync_cli(&r.old[0], &r.resize, &["--snmp-ip", &target]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(500));
    assert!(trapd.received().is_empty(), "{:?}", trapd.received());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_target_receives_the_alarm_including_one_on_the_default_port() {
    let r = small_resize().await;
    let first = Snmptrapd::start_any("clearwater");
    // Port 162 needs root and must be free; CI runs as root.
    // (The probe socket is dropped before snmptrapd binds the port.)
    let can_bind_162 = std::net::UdpSocket::bind("127.0.0.1:162").is_ok();
    let default_port = can_bind_162.then(|| Snmptrapd::start(162, "clearwater"));
    let mut targets = format!("127.0.0.1:{}", first.port);
    if default_port.is_some() {
        targets.push_str(",127.0.0.1"); // no port: 162
    } else {
        eprintln!("note: 127.0.0.1:162 cannot be bound here; default port part not exercised");
    }
    let out = resync_cli(r.new_node(), &r.resize, &["--snmp-ip", &targets]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for trapd in std::iter::once(&first).chain(default_port.as_ref()) {
        let got = trapd.wait_for(2, Duration::from_secs(5));
        assert_eq!(got.len(), 2, "port {}: {got:?}", trapd.port);
        assert_alarm(&got[0], &RAISE);
        assert_alarm(&got[1], &CLEAR);
    }
}

/// An INFORM as the sink saw it: its request-id, and whether it raises.
fn inform_of(packet: &[u8]) -> (i32, bool) {
    use rasn_snmp::v2::Pdus;
    let m: rasn_snmp::v2c::Message<Pdus> = rasn::ber::decode(packet).expect("an SNMPv2c message");
    let Pdus::InformRequest(rasn_snmp::v2::InformRequest(pdu)) = m.data else { panic!("not an INFORM") };
    let trap_oid = format!("{:?}", pdu.variable_bindings[1].value);
    (pdu.request_id, trap_oid.contains("118, 0, 2"))
}

/// The acknowledgement a receiver sends for request `id`.
fn ack(id: i32) -> Vec<u8> {
    use rasn_snmp::v2::{Pdu, Pdus, Response};
    rasn::ber::encode(&rasn_snmp::v2c::Message {
        version: rasn::types::Integer::from(1),
        community: rasn::types::OctetString::from(b"clearwater".to_vec()),
        data: Pdus::Response(Response(Pdu {
            request_id: id,
            error_status: 0,
            error_index: 0,
            variable_bindings: vec![],
        })),
    })
    .unwrap()
}

/// Receives for `within`, answering nothing: (arrival, request-id, raises).
async fn sink_for(sink: &tokio::net::UdpSocket, within: Duration) -> Vec<(Instant, i32, bool)> {
    let (deadline, mut got, mut buf) = (Instant::now() + within, Vec::new(), vec![0u8; 4096]);
    while let Ok(Ok(n)) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), sink.recv(&mut buf)).await
    {
        let (id, raised) = inform_of(&buf[..n]);
        got.push((Instant::now(), id, raised));
    }
    got
}

/// A receiver that is away (a raw UDP sink that answers nothing, with the
/// retry timings shortened): each state is retried with one request-id,
/// rounds back off to the cap, a newer state replaces the one still
/// pending, and an acknowledgement ends the retries. This is the
/// receiver-away-for-minutes case in seconds.
#[tokio::test(flavor = "multi_thread")]
async fn unanswered_informs_retry_with_one_request_id_back_off_to_the_cap_and_the_newest_state_wins() {
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = InformConfig::from_settings(&sink.local_addr().unwrap().to_string(), None).unwrap();
    (config.timeout, config.tries) = (Duration::from_millis(100), 3);
    (config.first_backoff, config.max_backoff) = (Duration::from_millis(200), Duration::from_millis(400));
    let informer = Informer::spawn(config);
    let (mut alarm, _) = ResyncAlarm::new(false);

    informer.notify(alarm.resync_started(10).unwrap());
    let raises = sink_for(&sink, Duration::from_millis(2500)).await;
    assert!(raises.iter().all(|(_, id, raised)| *raised && *id == raises[0].1), "one request-id: {raises:?}");
    // Rounds of 3 tries 100 ms apart, then pauses of 200 ms, then 400 ms
    // from then on: over 2.5 s about 5 rounds, never a pause over the cap.
    let pauses: Vec<Duration> =
        raises.windows(2).map(|w| w[1].0 - w[0].0).filter(|d| *d > Duration::from_millis(150)).collect();
    assert!(raises.len() >= 9 && pauses.len() >= 3, "rounds: {} sends, pauses {pauses:?}", raises.len());
    assert!(pauses.iter().all(|p| *p < Duration::from_millis(400 + 100 + 300)), "capped: {pauses:?}");
    assert!(pauses.last().unwrap() > &Duration::from_millis(350), "backed off to the cap: {pauses:?}");

    // The resync ended while the receiver was away: only the clear goes on.
    informer.notify(alarm.resync_ended().unwrap());
    let after = sink_for(&sink, Duration::from_millis(1500)).await;
    let first_clear = after.iter().position(|(_, _, raised)| !raised).expect("the clear is sent");
    assert!(first_clear <= 1, "at most the raise already in flight before it: {after:?}");
    let clears = &after[first_clear..];
    assert!(clears.iter().all(|(_, id, raised)| !raised && *id == clears[0].1), "{after:?}");
    assert_ne!(clears[0].1, raises[0].1, "a new state, a new request-id");

    // The receiver comes back and acknowledges: the retries stop.
    let mut buf = vec![0u8; 4096];
    let (n, from) = sink.recv_from(&mut buf).await.unwrap();
    let (id, raised) = inform_of(&buf[..n]);
    assert!(!raised);
    sink.send_to(&ack(id), from).await.unwrap();
    assert!(informer.flush(Duration::from_secs(2)).await, "acknowledged");
    let later = sink_for(&sink, Duration::from_millis(800)).await;
    assert!(later.is_empty(), "nothing after the acknowledgement: {later:?}");
    informer.shutdown();
}

/// The resync never waits for a receiver that is away.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_away_never_slows_the_resync() {
    let r = small_resize().await;
    // A receiver away: a socket that holds the port and never answers.
    let away = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let informer = Informer::spawn(InformConfig::from_settings(&away.local_addr().unwrap().to_string(), None).unwrap());
    let (mut alarm, _) = ResyncAlarm::new(false);
    let work = astaire_work_list(&r.resize, r.new_node(), false);
    let alone = Instant::now();
    resync_within(&work, &astaire::resync::Options::default(), &astaire::stats::Stats::new()).await.unwrap();
    let alone = alone.elapsed();
    for n in 0..3 {
        let r = small_resize().await;
        let work = astaire_work_list(&r.resize, r.new_node(), false);
        let started = Instant::now();
        informer.notify(alarm.resync_started(work.pairs()).unwrap());
        let report =
            resync_within(&work, &astaire::resync::Options::default(), &astaire::stats::Stats::new()).await.unwrap();
        informer.notify(alarm.resync_ended().unwrap());
        assert!(report.succeeded());
        // An INFORM try times out after 1 s: a resync that waited for one
        // would take over a second longer than alone.
        assert!(started.elapsed() < alone + Duration::from_secs(1), "round {n}: {:?} vs {alone:?}", started.elapsed());
    }
    informer.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_receiver_is_retried_in_the_log_and_nothing_blocks_the_exit() {
    let r = small_resize().await;
    // snmptrapd stays silent for a community it does not accept.
    let trapd = Snmptrapd::start_any("clearwater");
    let target = format!("127.0.0.1:{}", trapd.port);
    let started = Instant::now();
    let out = resync_cli(
        r.new_node(),
        &r.resize,
        &["--snmp-ip", &target, "--snmp-community", "wrong", "--inform-linger", "2"],
    );
    let took = started.elapsed();
    let t = text(&out).to_string();
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(took < Duration::from_secs(8), "exit after {took:?}");
    assert!(t.contains("alarm state not acknowledged by every SNMP target before exit"), "{t}");
    assert!(!t.contains("wrong"), "no community in the logs: {t}");
    let debug = resync_cli(
        r.new_node(),
        &r.resize,
        &["--snmp-ip", &target, "--snmp-community", "wrong", "--inform-linger", "2", "--log-level", "4"],
    );
    assert!(text(&debug).contains("attempt=2"), "retries are logged: {}", text(&debug));
    assert!(trapd.received().is_empty());
}

/// Our encoding of a raise is byte for byte what net-snmp's snmpinform sends
/// for the same varbinds, request-id and uptime; a second, independent
/// decoder (snmp-parser) reads it the same way.
#[test]
fn the_raise_matches_snmpinform_byte_for_byte() {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sink.local_addr().unwrap().port();
    let inform = std::process::Command::new("snmpinform")
        .args(["-v2c", "-c", "clearwater", "-r", "0", "-t", "1", "-On"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["4200", ".1.3.6.1.2.1.118.0.2"])
        .args([".1.3.6.1.2.1.118.1.2.2.1.13.0", "o", ".1.3.6.1.2.1.118.1.1.2.1.3.0.5501.4"])
        .args([".1.3.6.1.2.1.118.1.2.2.1.10.0", "o", ".0.0"])
        .env("MIBS", "")
        .spawn()
        .expect("snmpinform (package snmp)");
    let mut buf = [0u8; 2048];
    let (n, _) = sink.recv_from(&mut buf).expect("snmpinform's INFORM");
    let captured = buf[..n].to_vec();
    let mut inform = inform;
    let _ = inform.kill();
    let _ = inform.wait();

    let (_, parsed) = snmp_parser::parse_snmp_v2c(&captured).expect("snmp-parser reads net-snmp's INFORM");
    let snmp_parser::SnmpPdu::Generic(pdu) = &parsed.pdu else { panic!("not a generic PDU") };
    let ours =
        encode_inform(b"clearwater", pdu.req_id as i32, 4200, &Notification { index: 5501, raised: true }).unwrap();
    assert_eq!(ours, captured, "\nours:     {ours:02x?}\nsnmpinform: {captured:02x?}");

    let (_, mine) = snmp_parser::parse_snmp_v2c(&ours).unwrap();
    assert_eq!((mine.version, mine.community.as_str()), (1, "clearwater"));
    let snmp_parser::SnmpPdu::Generic(p) = &mine.pdu else { panic!() };
    assert_eq!(p.pdu_type, snmp_parser::PduType::InformRequest);
    let names: Vec<String> = p.vars_iter().map(|v| v.oid.to_id_string()).collect();
    assert_eq!(
        names,
        ["1.3.6.1.2.1.1.3.0", "1.3.6.1.6.3.1.1.4.1.0", "1.3.6.1.2.1.118.1.2.2.1.13.0", "1.3.6.1.2.1.118.1.2.2.1.10.0"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_resync_stopped_by_sigterm_clears_its_alarm_and_exits_130() {
    let r = Resize::three_to_four();
    load_fast(&view(&r.stable), &plain_items("reg\\\\sip:stop", 20_000, 1)).await;
    let trapd = Snmptrapd::start_any("clearwater");
    let target = format!("127.0.0.1:{}", trapd.port);
    let settings = r.resize.to_str().expect("utf-8 path");
    // 100 kB/s: the copy (about 1 MB for the new node) takes about 10 s.
    let child = std::process::Command::new(common::astaire_binary())
        .args(["resync", "--quiet", "--log-level", "2", "--local-name", r.new_node(), "--cluster-settings", settings])
        .args(["--bandwidth-limit", "100000", "--snmp-ip", &target])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run astaire");
    let raised = trapd.wait_for(1, Duration::from_secs(5));
    assert_eq!(raised.len(), 1, "the raise arrives while the resync runs: {raised:?}");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sent = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let out = wait_bounded(child, Duration::from_secs(60), "the resync stopped by SIGTERM to exit");
    let t = text(&out);
    assert!(sent.elapsed() < Duration::from_secs(5), "stopped within a batch, not at the end: {t}");
    assert_eq!(out.status.code(), Some(130), "{t}");
    assert!(t.contains("stopped by a signal before the resync finished"), "{t}");
    let got = trapd.wait_for(2, Duration::from_secs(5));
    assert_eq!(got.len(), 2, "a raise then a clear: {got:?}");
    assert_alarm(&got[0], &RAISE);
    assert_alarm(&got[1], &CLEAR);
    assert!(t.contains("INFORM delivered: ASTAIRE_RESYNC_IN_PROGRESS cleared"), "{t}");
    // Stopped part way: the restart tag is not written, so the node is not
    // taken as complete.
    let mut local =
        astaire::memcached::Connection::connect(r.new_node(), Duration::from_secs(2)).await.expect("connect");
    assert!(get(&mut local, astaire::resync::TAG_KEY).await.is_none(), "no tag after an interrupted resync");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_announces_the_cleared_state_at_start_when_asked() {
    let cluster = Cluster::start(3);
    let names = cluster.names(0..3);
    let settings = cluster.settings("cs3", &names, None);
    load_fast(&view(&settings), &plain_items("reg\\\\sip:announce", 300, 1)).await;
    let trapd = Snmptrapd::start_any("clearwater");
    let target = format!("127.0.0.1:{}", trapd.port);
    // The local memcached has no restart tag, so the daemon also runs a
    // full resync at start: the announced clear, then its raise and clear.
    let extra = ["--snmp-ip", &target, "--announce-alarm-state", "--no-agentx", "--inform-linger", "1"];
    let mut d = common::daemon::Daemon::start(&names[0], &settings, &extra);
    let got = trapd.wait_for(3, Duration::from_secs(10));
    assert_eq!(got.len(), 3, "{got:?}\n{}", d.log());
    assert_alarm(&got[0], &CLEAR);
    assert_alarm(&got[1], &RAISE);
    assert_alarm(&got[2], &CLEAR);
    assert_eq!(d.stop(), Some(0), "{}", d.log());
}

/// Clearwater's agent socket exists: the alarm goes to it as the original
/// daemon sent it (the cleared state first, as the agent's alarms start
/// undefined; then raise and clear), and no INFORM goes to snmp_ip, so a
/// manager sees each change once (from the agent).
#[tokio::test(flavor = "multi_thread")]
async fn on_a_clearwater_node_the_alarm_goes_through_the_agent_and_no_inform_is_sent() {
    let r = small_resize().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = StandInAgent::start(&dir.path().join("alarms"), false);
    let trapd = Snmptrapd::start_any("clearwater");
    let target = format!("127.0.0.1:{}", trapd.port);
    let socket = agent.socket.to_str().unwrap();
    let out = resync_cli(r.new_node(), &r.resize, &["--snmp-ip", &target, "--alarm-agent", socket]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = agent.wait_for(3, Duration::from_secs(5));
    assert_eq!(
        got,
        ["issue-alarm astaire 5501.1", "issue-alarm astaire 5501.5", "issue-alarm astaire 5501.1"],
        "{}",
        text(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(trapd.received(), vec![], "no INFORM beside the agent");
    assert!(!text(&out).contains("not taken"), "the agent answered every request: {}", text(&out));
}

/// The daemon sends the alarm's last state again every interval (30 s on
/// a node; 1 s here), so an agent that restarted learns it; a change goes
/// out at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_resends_the_state_and_a_restarted_agent_learns_it() {
    let cluster = Cluster::start(3);
    let names = cluster.names(0..3);
    let settings = cluster.settings("cs3", &names, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alarms");
    let agent = StandInAgent::start(&path, false);
    let extra = ["--no-agentx", "--alarm-agent", path.to_str().unwrap(), "--alarm-agent-resend", "1"];
    let mut d = common::daemon::Daemon::start(&names[0], &settings, &extra);
    // At start: no restart tag, so a full resync (raise, clear) follows the
    // first clear; then the clear again every second.
    let got = agent.wait_for(6, Duration::from_secs(15));
    assert_eq!(got[..3], ["issue-alarm astaire 5501.1", "issue-alarm astaire 5501.5", "issue-alarm astaire 5501.1"]);
    assert!(got[3..].iter().all(|r| r == "issue-alarm astaire 5501.1"), "{got:?}");
    let timed = agent.timed();
    let gaps: Vec<f64> = timed[3..].windows(2).map(|w| (w[1].0 - w[0].0).as_secs_f64()).collect();
    assert!(gaps.iter().all(|g| (0.7..2.0).contains(g)), "resent about every second: {gaps:?}");
    drop(agent);
    let again = StandInAgent::start(&path, false);
    let got = again.wait_for(1, Duration::from_secs(8));
    assert_eq!(got.first().map(String::as_str), Some("issue-alarm astaire 5501.1"), "{}", d.log());
    assert_eq!(d.stop(), Some(0), "{}", d.log());
}

/// An agent that takes a request and never answers costs a warning, not
/// the resync: it completes, and the exit waits only the linger.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_never_answers_does_not_hold_the_resync() {
    let r = small_resize().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = StandInAgent::start(&dir.path().join("alarms"), true);
    let started = Instant::now();
    let socket = agent.socket.to_str().unwrap();
    let out = resync_cli(r.new_node(), &r.resize, &["--alarm-agent", socket, "--inform-linger", "1"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(took < Duration::from_secs(8), "{took:?}");
    let t = text(&out);
    assert!(t.contains("not delivered to the alarm agent") || t.contains("not taken by the alarm agent"), "{t}");
    assert_eq!(agent.requests(), ["issue-alarm astaire 5501.1"], "one request taken, never answered");
    let mut local = astaire::memcached::Connection::connect(r.new_node(), Duration::from_secs(2)).await.unwrap();
    assert!(get(&mut local, astaire::resync::TAG_KEY).await.is_some(), "the resync completed");
}

/// Issue 29: a hostile agent at the socket. Before, one frame announced as
/// 2^62 bytes aborted the daemon (SIGABRT, exit 134, 0.2 s after start),
/// and an answer of endless legal frames grew it by the flood (1.3 GB for
/// a 1 GiB flood). Now each is a dropped connection and one warning naming
/// what the agent did; the daemon stays up and small, and a good agent at
/// the same socket then gets the alarm.
fn survives_a_hostile_agent(mode: &str, said: &str) {
    use common::alarm_agent::HostileAgent;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alarms");
    // Not a member: the daemon needs no memcached, and only the alarm's
    // cleared state goes to the agent, again every second.
    let settings = dir.path().join("cluster_settings");
    std::fs::write(&settings, "servers=127.0.0.1:1\n").unwrap();
    let hostile = HostileAgent::start(&path, mode);
    let extra = ["--no-agentx", "--alarm-agent", path.to_str().unwrap(), "--alarm-agent-resend", "1"];
    let mut d = common::daemon::Daemon::start("127.0.0.1:2", &settings, &extra);
    let lines = hostile.wait_for_drops(3, Duration::from_secs(15));
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon is still running: {}", d.log());
    let (status, took) = d.client_within(&["status", "--json"], Duration::from_secs(10));
    assert!(status.status.success(), "status answered after {took:?}: {}", text(&status));
    let warned = d.log_lines("not delivered to the alarm agent");
    assert_eq!(warned.len(), 1, "one warning for the whole streak: {}", d.log());
    assert!(warned[0].contains(said) && warned[0].contains("connection dropped"), "{}", warned[0]);
    let peak = d.peak_rss_kib();
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB; the agent said {lines:?}");
    eprintln!("{mode}: peak RSS {peak} KiB; {:?}", &lines[..lines.len().min(4)]);

    drop(hostile);
    let good = StandInAgent::start(&path, false);
    let got = good.wait_for(1, Duration::from_secs(8));
    assert_eq!(got.first().map(String::as_str), Some("issue-alarm astaire 5501.1"), "{}", d.log());
    // The agent has the request before the daemon has its answer: the
    // line comes just after.
    let log = d.log.clone();
    let answered =
        || std::fs::read_to_string(&log).unwrap_or_default().matches("the alarm agent answers again").count();
    wait_until(Duration::from_secs(5), "the daemon to log that the agent answers again", || answered() > 0, || d.log());
    assert_eq!(answered(), 1, "{}", d.log());
    assert_eq!(d.stop(), Some(0), "{}", d.log());
}

#[test]
fn an_agent_announcing_a_frame_of_2_to_the_62_bytes_costs_a_dropped_connection() {
    survives_a_hostile_agent("huge", "the agent announced a frame of 4611686018427387904 bytes (at most 1024 taken)");
}

#[test]
fn an_agent_answering_with_a_flood_of_legal_frames_costs_a_dropped_connection() {
    survives_a_hostile_agent("flood", "the agent sent a message of more than 1024 bytes");
}

#[test]
fn an_agent_announcing_a_huge_command_in_the_handshake_costs_a_dropped_connection() {
    survives_a_hostile_agent("command", "the agent announced a frame of 4611686018427387904 bytes");
}
