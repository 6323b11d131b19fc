//! The seam's unit tests: work lists, classifiers and surveys, the
//! checks of lists and options, and helpers for the families' tests.
use super::*;
use std::path::Path;

/// Servers as the families read them, from `host:port[:weight][ name]`
/// entries, unchecked (every entry on line 1).
pub(crate) fn servers(list: &[&str]) -> Vec<Server> {
    let s = ClusterSettings::parse(&format!("servers={}\n", list.join(",")), Path::new("cs")).unwrap();
    s.servers
        .iter()
        .zip(&s.weights)
        .zip(&s.labels)
        .map(|((name, w), label)| {
            let hp = crate::addr::HostPort::parse(name, crate::addr::Role::Server).unwrap();
            Server {
                name: name.clone(),
                host: hp.host,
                port: hp.port,
                weight: w.as_ref().and_then(Weight::whole).unwrap_or(1),
                fraction: w.as_ref().map_or(1.0, Weight::value),
                weighted: w.is_some(),
                label: label.clone(),
                line: 1,
            }
        })
        .collect()
}

/// The old owner `family` gives `key` (its MD5 computed from the bytes).
pub(crate) fn owner_in(family: &impl Family, key: &[u8]) -> usize {
    family.owners(&Key { bytes: key, digest: None }, &mut Vec::new()).expect("an owner").0
}

fn layout(text: &str, scheme: Scheme) -> Result<Layout, LayoutError> {
    Layout::new(&ClusterSettings::parse(text, Path::new("cs")).unwrap(), &Placement { scheme, ..Placement::default() })
}

const THREE_TO_FOUR: &str = "servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211\n\
    new_servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211,10.0.0.4:11211\n";

#[test]
fn a_joining_node_may_receive_from_every_old_server() {
    for scheme in [Scheme::Ketama, Scheme::Rendezvous, Scheme::Jump] {
        let w = layout(THREE_TO_FOUR, scheme).unwrap().work_list("10.0.0.4:11211", false).unwrap();
        let buckets: Vec<(u8, Vec<String>)> = w.vbuckets.into_iter().collect();
        let expect: Vec<(u8, Vec<String>)> = (0..3u8).map(|i| (i, vec![format!("10.0.0.{}:11211", i + 1)])).collect();
        assert_eq!(buckets, expect, "{scheme:?}");
        assert!(w.classifier.one_copy());
    }
}

#[test]
fn a_leaving_node_and_a_stable_cluster_pull_nothing_and_there_is_no_full_resync() {
    let shrink = "servers=10.0.0.1:11211,10.0.0.2:11211\nnew_servers=10.0.0.1:11211\n";
    let l = layout(shrink, Scheme::Jump).unwrap();
    assert!(l.work_list("10.0.0.2:11211", false).unwrap().is_empty());
    assert_eq!(l.work_list("10.0.0.1:11211", false).unwrap().vbuckets.len(), 1);
    let stable = layout("servers=10.0.0.1:11211,10.0.0.2:11211\n", Scheme::Ketama).unwrap();
    assert!(stable.work_list("10.0.0.1:11211", false).unwrap().is_empty());
    let e = stable.work_list("10.0.0.1:11211", true).unwrap_err();
    assert!(e.0.contains("one copy"), "{e}");
}

#[test]
fn weights_are_for_ketama_only() {
    let weighted = "servers=10.0.0.1:11211:2\nnew_servers=10.0.0.1:11211:2,10.0.0.2:11211\n";
    assert!(layout(weighted, Scheme::Ketama).is_ok());
    for scheme in [Scheme::Clearwater, Scheme::Rendezvous, Scheme::Jump] {
        let e = layout(weighted, scheme).unwrap_err();
        assert!(e.0.contains("line 1") && e.0.contains("ketama"), "{e}");
    }
}

#[test]
fn a_survey_puts_each_key_a_source_hands_over_in_its_new_owners_bucket() {
    let l = layout(THREE_TO_FOUR, Scheme::Jump).unwrap();
    let nodes: Vec<String> = (1..=4).map(|i| format!("10.0.0.{i}:11211")).collect();
    let works: Vec<WorkList> = nodes.iter().map(|n| l.work_list(n, false).unwrap()).collect();
    let survey = l.survey("10.0.0.1:11211", &works).unwrap();
    // Every other node of the new list may pull from it: its bucket is
    // its index there.
    assert_eq!(survey.buckets, [vec![], vec![1], vec![2], vec![3]]);
    let mut scratch = Vec::new();
    for i in 0..2000 {
        let key = format!("key:{i}");
        let h = jump::key_hash(key.as_bytes(), 0);
        let (old, new) = (jump::jump(h, 3).unwrap(), jump::jump(h, 4).unwrap());
        let bucket = survey.classifier.bucket(key.as_bytes(), &crate::view::key_digest(key.as_bytes()), &mut scratch);
        let expect = if old == 0 && new != 0 { new as u8 } else { NOT_WANTED };
        assert_eq!(bucket, expect, "{key}");
    }
    // Clearwater's survey is the vbuckets each node pulls from the source.
    let cw = layout(THREE_TO_FOUR, Scheme::Clearwater).unwrap();
    let works: Vec<WorkList> = nodes.iter().map(|n| cw.work_list(n, false).unwrap()).collect();
    let survey = cw.survey("10.0.0.2:11211", &works).unwrap();
    for (w, b) in works.iter().zip(&survey.buckets) {
        assert_eq!(*b, w.by_source().remove("10.0.0.2:11211").unwrap_or_default());
    }
}

#[test]
fn a_key_prefix_is_left_out_of_the_hash_of_the_keys_that_carry_it() {
    let settings = ClusterSettings::parse(THREE_TO_FOUR, Path::new("cs")).unwrap();
    let mut scratch = Vec::new();
    for scheme in [Scheme::Ketama, Scheme::Rendezvous, Scheme::Jump] {
        let plain = ListOwner::new(&settings, &Placement { scheme, ..Placement::default() }).unwrap();
        let prefixed = Placement { scheme, key_prefix: Some("app:".into()), ..Placement::default() };
        let prefixed = ListOwner::new(&settings, &prefixed).unwrap();
        let mut differ = 0;
        for i in 0..300 {
            let key = format!("user:{i}");
            let owner = plain.owner(key.as_bytes(), &mut scratch);
            assert_eq!(prefixed.owner(format!("app:{key}").as_bytes(), &mut scratch), owner, "{scheme:?} {key}");
            assert_eq!(prefixed.owner(key.as_bytes(), &mut scratch), owner, "{scheme:?}: {key} hashed whole");
            differ += usize::from(plain.owner(format!("app:{key}").as_bytes(), &mut scratch) != owner);
        }
        assert!(differ > 100, "{scheme:?}: the prefix changes owners when hashed ({differ} of 300)");
    }
    let clearwater = Placement { key_prefix: Some("app:".into()), ..Placement::default() };
    assert!(Layout::new(&settings, &clearwater).unwrap_err().0.contains("key prefix"));
}

#[test]
fn a_key_is_wanted_from_its_old_owner_when_this_node_is_its_new_one() {
    // Jump: every key an old server held and the new last position
    // takes is wanted from that server; nothing else.
    let w = layout(THREE_TO_FOUR, Scheme::Jump).unwrap().work_list("10.0.0.4:11211", false).unwrap();
    let mut scratch = Vec::new();
    let (mut wanted, mut all) = (0, 0);
    for i in 0..4000 {
        let key = format!("key:{i}");
        let h = jump::key_hash(key.as_bytes(), 0);
        let digest = crate::view::key_digest(key.as_bytes());
        let bucket = w.classifier.bucket(key.as_bytes(), &digest, &mut scratch);
        let (old, new) = (jump::jump(h, 3).unwrap(), jump::jump(h, 4).unwrap());
        assert_eq!(bucket, if new == 3 { old as u8 } else { NOT_WANTED }, "{key}");
        all += 1;
        wanted += usize::from(bucket != NOT_WANTED);
    }
    assert!((800..1200).contains(&wanted), "about a quarter moves: {wanted} of {all}");
}
