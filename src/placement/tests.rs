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

/// A server listed twice changes every placement's shares; each refuses
/// it naming the line, and a stable list without repeats is laid out.
#[test]
fn a_repeated_server_is_refused_by_every_placement() {
    let twice = settings("servers=10.0.0.1:1,10.0.0.2:1\nnew_servers=10.0.0.1:1,10.0.0.2:1,10.0.0.1:1\n");
    let once = settings("servers=10.0.0.1:1,10.0.0.2:1\nnew_servers=10.0.0.1:1,10.0.0.2:1,10.0.0.3:1\n");
    for scheme in Scheme::all().iter().copied().filter(|s| !s.allows_repeated_servers()) {
        let placement = Placement { scheme, ..Placement::default() };
        let e = Layout::new(&twice, &placement).unwrap_err();
        assert!(
            e.0.starts_with("line 2: server 10.0.0.1:1 is listed twice in new_servers (entries 1 and 3)"),
            "{scheme:?}: {e}"
        );
        // (mcrouter-weighted wants a weight on every entry.)
        if scheme != Scheme::McrouterWeighted {
            assert!(Layout::new(&once, &placement).is_ok(), "{scheme:?}");
        }
    }
    let e = Layout::of(Path::new("/etc/cs"), &twice, &Placement::default()).unwrap_err();
    assert!(e.is_invalid());
    assert!(e.to_string().starts_with("invalid cluster settings: /etc/cs: line 2: server 10.0.0.1:1"), "{e}");
}

fn settings(text: &str) -> ClusterSettings {
    ClusterSettings::parse(text, Path::new("cs")).unwrap()
}

fn placement(scheme: Scheme) -> Placement {
    Placement { scheme, ..Placement::default() }
}

fn refused(text: &str, p: &Placement) -> String {
    Layout::new(&settings(text), p).unwrap_err().0
}

/// A weight on a family without weights names the line, the entry and the
/// placements that have weights; libmemcached's says its modula ignores them.
#[test]
fn a_weight_on_a_family_without_weights_is_refused_naming_the_entry() {
    let text = "servers=10.0.0.1:11211,10.0.0.2:11211\nnew_servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211:3\n";
    for scheme in Scheme::all().iter().filter(|s| s.weights() == Weights::Refused) {
        let e = refused(text, &placement(*scheme));
        assert!(
            e.starts_with(&format!(
                "line 2: 10.0.0.3:11211:3 gives a weight, but {}'s clients have none",
                scheme.name()
            )),
            "{scheme:?}: {e}"
        );
        assert!(e.ends_with("weights are for --placement ketama, dalli, spymemcached-ketama, pecl-memcache, pecl-memcache-standard, twemproxy, node-memcached, mcrouter-weighted"), "{e}");
    }
    assert!(refused(text, &placement(Scheme::Libmemcached)).contains("modula ignores the weights"));
    for scheme in Scheme::all().iter().filter(|s| s.weights() == Weights::Whole) {
        match scheme {
            // Java needs a weight for every node, or none.
            Scheme::SpymemcachedKetama => {
                let e = refused(text, &placement(*scheme));
                assert!(e.contains("line 2: 10.0.0.1:11211 has no weight"), "{e}");
            }
            _ => assert!(Layout::new(&settings(text), &placement(*scheme)).is_ok(), "{scheme:?}"),
        }
        let e = refused("servers=10.0.0.1:11211:0.5\n", &placement(*scheme));
        assert!(e.contains("line 1: weight 0.5 of 10.0.0.1:11211 is not a whole number from 1"), "{scheme:?}: {e}");
        let e = refused("servers=10.0.0.1:11211:0\n", &placement(*scheme));
        assert!(e.contains("weight 0 of 10.0.0.1:11211 is not a whole number"), "{scheme:?}: {e}");
    }
}

/// mcrouter's WeightedCh3 weights are fractions in [0, 1] on every entry.
#[test]
fn mcrouter_weights_are_fractions_from_0_to_1_on_every_server() {
    let p = placement(Scheme::McrouterWeighted);
    assert!(Layout::new(&settings("servers=a:1:0,b:1:1,c:1:0.25,d:1:1.0\n"), &p).is_ok());
    for (text, expect) in [
        ("servers=a:1:0.5,b:1:1.5\n", "line 1: weight 1.5 of b:1 is outside [0, 1]"),
        ("servers=a:1:0.5\nnew_servers=a:1:0.5,b:1:2\n", "line 2: weight 2 of b:1 is outside [0, 1]"),
        ("servers=a:1:0.5,b:1\n", "line 1: b:1 has no weight: mcrouter-weighted needs one on every server, from 0 to 1 (mcrouter gives a server without one 0.5: write b:1:0.5)"),
    ] {
        let e = refused(text, &p);
        assert!(e.starts_with(expect), "{text}: {e}");
    }
}

/// Only twemproxy's entries have a name after the address.
#[test]
fn a_name_after_the_address_is_twemproxys_only() {
    let text = "servers=10.0.0.1:11211:1 one,10.0.0.2:11211:1 two\n";
    assert!(Layout::new(&settings(text), &placement(Scheme::Twemproxy)).is_ok());
    for scheme in [Scheme::Ketama, Scheme::Dalli, Scheme::Clearwater] {
        let e = refused(text, &placement(scheme));
        assert!(e.starts_with("line 1: 10.0.0.1:11211 one: only twemproxy's entries have a name"), "{scheme:?}: {e}");
    }
    let e = refused("servers=a:1:1 x\nnew_servers=a:1:1 x,b:1:1 x\n", &placement(Scheme::Twemproxy));
    assert!(e.contains("line 2: a:1 and line 2: b:1 share the name \"x\""), "{e}");
}

/// spymemcached's ketama names a node by the address Java resolved: a host
/// name is refused, naming it.
#[test]
fn spymemcached_ketama_needs_addresses() {
    let text = "servers=10.0.0.1:11211\nnew_servers=10.0.0.1:11211,cache-2:11211\n";
    for scheme in [Scheme::SpymemcachedKetama, Scheme::SpymemcachedConsistent] {
        let e = refused(text, &placement(scheme));
        assert!(e.starts_with("line 2: cache-2:11211: spymemcached's ketama names a node by the address"), "{e}");
    }
    assert!(Layout::new(&settings(text), &placement(Scheme::Spymemcached)).is_ok(), "array mod ignores names");
}

fn options(scheme: &str) -> PlacementOptions {
    PlacementOptions { placement: Some(scheme.into()), ..PlacementOptions::default() }
}

#[test]
fn unknown_names_list_the_choices() {
    let e = options("Dally").resolve().unwrap_err().to_string();
    let all = "clearwater, ketama, rendezvous, jump, dalli, spymemcached, spymemcached-ketama, \
               spymemcached-consistent, pecl-memcache, pecl-memcache-standard, libmemcached, twemproxy, gomemcache, \
               node-memcached, memjs, mcrouter, mcrouter-crc32, mcrouter-weighted";
    assert_eq!(e, format!("unknown placement \"Dally\" (--placement, astaire_placement): the placements are {all}"));
    for s in Scheme::all() {
        assert_eq!(Scheme::parse(&s.name().to_uppercase()), Some(*s), "names are case-blind");
        assert_eq!(options(s.name()).resolve().unwrap().scheme, *s);
    }
    let hash = |scheme: &str, hash: &str| PlacementOptions { hash: Some(hash.into()), ..options(scheme) }.resolve();
    assert_eq!(
        hash("twemproxy", "fnv").unwrap_err().to_string(),
        "\"fnv\" is not a twemproxy hash (--hash, astaire_hash): the hashes are one_at_a_time, md5, crc16, crc32, \
         crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins"
    );
    assert_eq!(
        hash("pecl-memcache", "fnv1a_32").unwrap_err().to_string(),
        "\"fnv1a_32\" is not a pecl-memcache hash (--hash, astaire_hash): the hashes are crc32, fnv"
    );
    assert_eq!(hash("twemproxy", "crc32").unwrap().hash, Some(hashes::KeyHash::Crc32High15));
    assert_eq!(hash("pecl-memcache-standard", "crc32").unwrap().hash, Some(hashes::KeyHash::Crc32));
    assert_eq!(hash("twemproxy", "MURMUR").unwrap().hash, Some(hashes::KeyHash::Murmur));
    let distribution = PlacementOptions { distribution: Some("random".into()), ..options("twemproxy") };
    assert_eq!(
        distribution.resolve().unwrap_err().to_string(),
        "\"random\" is not a twemproxy distribution (--distribution, astaire_distribution): ketama or modula"
    );
    for tag in ["{", "{}}", ""] {
        let e = PlacementOptions { hash_tag: Some(tag.into()), ..options("twemproxy") }.resolve().unwrap_err();
        assert!(e.to_string().contains("is not two characters"), "{tag:?}: {e}");
    }
}

#[test]
fn an_option_the_placements_clients_do_not_have_is_refused() {
    let cases = [
        (
            PlacementOptions { hash: Some("md5".into()), ..options("dalli") },
            "--hash (astaire_hash) is for --placement pecl-memcache, pecl-memcache-standard, twemproxy, not dalli",
        ),
        (
            PlacementOptions { distribution: Some("modula".into()), ..options("ketama") },
            "--distribution (astaire_distribution) is for --placement twemproxy, not ketama",
        ),
        (
            PlacementOptions { hash_tag: Some("{}".into()), ..options("mcrouter") },
            "--hash-tag (astaire_hash_tag) is for --placement twemproxy, not mcrouter",
        ),
        (
            PlacementOptions { salt: Some("s".into()), ..options("twemproxy") },
            "--salt (astaire_salt) is for --placement mcrouter, mcrouter-crc32, mcrouter-weighted, not twemproxy",
        ),
        (
            PlacementOptions { hash: Some("md5".into()), ..PlacementOptions::default() },
            "--hash (astaire_hash) is for --placement pecl-memcache, pecl-memcache-standard, twemproxy, not clearwater",
        ),
    ];
    for (o, expect) in cases {
        assert_eq!(o.resolve().unwrap_err().to_string(), expect);
    }
    // A prefix the clients hash cannot be left out of the hash.
    for s in Scheme::all().iter().filter(|s| s.one_copy()) {
        let o = PlacementOptions { key_prefix: Some("app:".into()), ..options(s.name()) };
        match s.hashes_without_prefix() {
            true => assert!(o.resolve().is_ok(), "{s:?}"),
            false => assert!(
                o.resolve().unwrap_err().to_string().starts_with(&format!(
                    "--key-prefix (astaire_key_prefix): {}'s clients hash the key as stored",
                    s.name()
                )),
                "{s:?}"
            ),
        }
    }
}

/// Every family's work lists on a 3→4: the joining node pulls from every
/// old server, every key lands on exactly one node of the new list, and
/// that node is the family's new owner.
#[test]
fn every_family_wants_each_moved_key_on_its_new_owner_only() {
    let weighted = "servers=10.0.0.1:11211:1,10.0.0.2:11211:2,10.0.0.3:11211:3\n\
        new_servers=10.0.0.1:11211:1,10.0.0.2:11211:2,10.0.0.3:11211:3,10.0.0.4:11211:1\n";
    let fractions = weighted
        .replace(":1,", ":1.0,")
        .replace(":2,", ":0.5,")
        .replace(":3,", ":0.75,")
        .replace(":3\n", ":0.75\n")
        .replace(":1\n", ":1.0\n");
    for scheme in Scheme::all().iter().filter(|s| s.one_copy()) {
        let text = match scheme.weights() {
            Weights::Whole => weighted.to_owned(),
            Weights::Fraction => fractions.clone(),
            Weights::Refused => THREE_TO_FOUR.to_owned(),
        };
        let s = settings(&text);
        let l = Layout::new(&s, &placement(*scheme)).unwrap();
        let list = ListOwner::new(&s, &placement(*scheme)).unwrap();
        let new_list = ClusterSettings {
            servers: s.new_servers.clone().unwrap(),
            weights: s.new_weights.clone().unwrap(),
            labels: s.new_labels.clone().unwrap(),
            ..s.clone()
        };
        let new_owner = ListOwner::new(&new_list, &placement(*scheme)).unwrap();
        let works: Vec<WorkList> = (1..=4).map(|i| l.work_list(&format!("10.0.0.{i}:11211"), false).unwrap()).collect();
        let mut scratch = Vec::new();
        let mut moved = 0;
        for i in 0..3000 {
            let key = format!("user:{i}@example.com");
            let k = key.as_bytes();
            let digest = crate::view::key_digest(k);
            let (old, new) = (list.owner(k, &mut scratch).unwrap(), new_owner.owner(k, &mut scratch).unwrap());
            let wanted: Vec<usize> = works
                .iter()
                .enumerate()
                .filter(|(_, w)| w.classifier.bucket(k, &digest, &mut scratch) != NOT_WANTED)
                .map(|(n, _)| n)
                .collect();
            if old == new {
                assert!(wanted.is_empty(), "{scheme:?} {key}: stays on {old}");
            } else {
                assert_eq!(wanted, [new], "{scheme:?} {key}: {old} → {new}");
                let bucket = works[new].classifier.bucket(k, &digest, &mut scratch);
                assert_eq!(bucket as usize, old, "{scheme:?} {key}: pulled from its old owner");
                moved += 1;
            }
        }
        assert!(moved > 300, "{scheme:?}: a resize moves keys ({moved} of 3000)");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The owner's name of each of `keys` under `entries` (`host:port[:w]`).
    fn owner_names(scheme: Scheme, entries: &[String], keys: &[String]) -> Vec<String> {
        let s = settings(&format!("servers={}\n", entries.join(",")));
        let list = ListOwner::new(&s, &placement(scheme)).unwrap();
        let mut scratch = Vec::new();
        keys.iter().map(|k| s.servers[list.owner(k.as_bytes(), &mut scratch).unwrap()].clone()).collect()
    }

    fn entries(weights: &[u32]) -> Vec<String> {
        weights.iter().enumerate().map(|(i, w)| format!("10.0.{i}.1:11211:{w}")).collect()
    }

    fn sample() -> Vec<String> {
        (0..300).map(|i| format!("k{i}")).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Rings and twemproxy's sorted pools: a server's keys follow its
        /// name, never its place in the list.
        #[test]
        fn list_order_never_matters_to_rings(weights in prop::collection::vec(1u32..5, 2..6), rotate in 1usize..5) {
            let list = entries(&weights);
            let mut turned = list.clone();
            turned.rotate_left(rotate % list.len());
            for scheme in [Scheme::Ketama, Scheme::Dalli, Scheme::SpymemcachedKetama, Scheme::PeclMemcache, Scheme::Twemproxy, Scheme::NodeMemcached] {
                prop_assert_eq!(owner_names(scheme, &list, &sample()), owner_names(scheme, &turned, &sample()), "{:?}", scheme);
            }
            let modula = Placement { distribution: Distribution::Modula, ..placement(Scheme::Twemproxy) };
            let names = |l: &[String]| {
                let s = settings(&format!("servers={}\n", l.join(",")));
                let o = ListOwner::new(&s, &modula).unwrap();
                sample().iter().map(|k| s.servers[o.owner(k.as_bytes(), &mut Vec::new()).unwrap()].clone()).collect::<Vec<_>>()
            };
            prop_assert_eq!(names(&list), names(&turned), "twemproxy modula sorts by name");
        }

        /// Where points per server do not change with the list (160, or
        /// 160 × weight), adding a server moves keys only to it.
        #[test]
        fn growing_a_ring_moves_keys_only_to_the_new_server(n in 2usize..6) {
            let list: Vec<String> = (0..=n).map(|i| format!("10.0.{i}.1:11211")).collect();
            for scheme in [Scheme::Dalli, Scheme::SpymemcachedKetama, Scheme::PeclMemcache, Scheme::Mcrouter] {
                let (before, after) = (owner_names(scheme, &list[..n], &sample()), owner_names(scheme, &list, &sample()));
                for (b, a) in before.iter().zip(&after) {
                    prop_assert!(a == b || *a == list[n], "{:?}: {} → {}", scheme, b, a);
                }
            }
        }

        /// A heavier server takes more keys, in every weighted family.
        #[test]
        fn weight_draws_keys(heavy in 0usize..3) {
            let mut weights = vec![1u32; 3];
            weights[heavy] = 4;
            let list = entries(&weights);
            let keys: Vec<String> = (0..2000).map(|i| format!("key:{i}")).collect();
            for scheme in Scheme::all().iter().filter(|s| s.weights() == Weights::Whole) {
                let owners = owner_names(*scheme, &list, &keys);
                let share = owners.iter().filter(|o| **o == list[heavy].trim_end_matches(":4")).count();
                prop_assert!(share > 800, "{:?}: {} of 2000 on the server of weight 4", scheme, share);
            }
        }
    }
}
