//! Where data lives: `cluster_settings` → rings → the view (replicas of each
//! vbucket now and after the resize) → the vbuckets one node pulls
//! ([`View::pulls`]), which `placement::work` makes its work list.
//!
//! Everything here is pure and deterministic, and needs nothing of
//! `placement`.

pub mod md5_lanes;
mod ring;
mod settings;

use std::collections::BTreeMap;

pub use ring::{key_digest, vbucket, vbucket_of, Ring, VBUCKETS};
pub use settings::{validate_server, ClusterSettings, LoadError, Repeated, SettingsError, Weight};

/// Replicas per vbucket.
pub const REPLICAS: usize = 2;

/// The replicas of every vbucket, named by their `cluster_settings` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `current[vb]`: where the data is now, primary first.
    pub current: Vec<Vec<String>>,
    /// `new[vb]`: where it must be after a resize; `None` when stable.
    pub new: Option<Vec<Vec<String>>>,
}

fn replicas(list: &[String], r: usize) -> Vec<Vec<String>> {
    let ring = Ring::new(list.len());
    (0..VBUCKETS).map(|vb| ring.get_nodes(vb, r).into_iter().map(|i| list[i].clone()).collect()).collect()
}

impl View {
    pub fn new(settings: &ClusterSettings) -> View {
        let servers = &settings.servers;
        match &settings.new_servers {
            Some(new) if !new.is_empty() && !servers.is_empty() => {
                View { current: replicas(servers, REPLICAS), new: Some(replicas(new, REPLICAS)) }
            }
            other => {
                let list = match other {
                    Some(new) if servers.is_empty() => new,
                    _ => servers,
                };
                View { current: replicas(list, REPLICAS.min(list.len())), new: None }
            }
        }
    }

    pub fn is_resizing(&self) -> bool {
        self.new.is_some()
    }

    /// Where the data must be once the resync is done.
    pub fn target(&self) -> &[Vec<String>] {
        self.new.as_deref().unwrap_or(&self.current)
    }

    /// Where a client reads and writes `vb` during a resize: the current
    /// primary, each new replica, then the other current replicas, once each.
    pub fn write_set(&self, vb: u8) -> Vec<String> {
        let current = &self.current[vb as usize];
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: &String| {
            if !out.contains(s) {
                out.push(s.clone());
            }
        };
        current.iter().take(1).for_each(&mut push);
        if let Some(new) = &self.new {
            new[vb as usize].iter().for_each(&mut push);
        }
        current.iter().skip(1).for_each(&mut push);
        out
    }

    /// Whether `name` is a member of either list.
    pub fn knows(&self, name: &str) -> bool {
        let member = |lists: &[Vec<String>]| lists.iter().flatten().any(|s| s == name);
        member(&self.current) || self.new.as_deref().is_some_and(member)
    }

    /// The vbuckets `local` must pull, and from where (sources primary
    /// first): the buckets of its work list, `View::work_list` in
    /// [`crate::placement::work`].
    pub fn pulls(&self, local: &str, full: bool) -> BTreeMap<u8, Vec<String>> {
        let mut vbuckets = BTreeMap::new();
        for (vb, target) in self.target().iter().enumerate() {
            if !target.iter().any(|s| s == local) {
                continue;
            }
            let mut sources: Vec<String> = Vec::new();
            for s in &self.current[vb] {
                if !sources.contains(s) && (!full || s != local) {
                    sources.push(s.clone());
                }
            }
            if !sources.is_empty() && !sources.iter().any(|s| s == local) {
                vbuckets.insert(vb as u8, sources);
            }
        }
        vbuckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn view(text: &str) -> View {
        View::new(&ClusterSettings::parse(text, Path::new("t")).unwrap())
    }

    fn names(n: usize, base: usize) -> String {
        (base..base + n).map(|i| format!("10.0.0.{i}:11211")).collect::<Vec<_>>().join(",")
    }

    const THREE_TO_FOUR: &str = "servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211\n\
        new_servers=10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211,10.0.0.4:11211\n";

    #[test]
    fn the_spec_example_of_a_three_to_four_resize() {
        let v = view(THREE_TO_FOUR);
        let short = |l: &Vec<String>| -> Vec<String> {
            l.iter().map(|s| s.trim_end_matches(":11211").replace("10.0.0", "")).collect()
        };
        let expect = [
            (["3", "1"], ["3", "1"]),
            (["1", "2"], ["1", "4"]),
            (["2", "3"], ["4", "3"]),
            (["3", "2"], ["3", "2"]),
            (["2", "1"], ["2", "4"]),
            (["1", "3"], ["4", "1"]),
            (["3", "1"], ["4", "1"]),
            (["1", "2"], ["1", "2"]),
        ];
        for (vb, (cur, new)) in expect.iter().enumerate() {
            let dot = |a: &[&str; 2]| a.iter().map(|x| format!(".{x}")).collect::<Vec<_>>();
            assert_eq!(short(&v.current[vb]), dot(cur), "current vb {vb}");
            assert_eq!(short(&v.new.as_ref().unwrap()[vb]), dot(new), "new vb {vb}");
        }
    }

    #[test]
    fn new_node_pulls_54_vbuckets_and_old_node_none() {
        let v = view(THREE_TO_FOUR);
        let w = v.pulls("10.0.0.4:11211", false);
        assert_eq!(w.len(), 54);
        assert_eq!(w[&2], ["10.0.0.2:11211", "10.0.0.3:11211"]);
        assert!(v.pulls("10.0.0.1:11211", false).is_empty());
    }

    #[test]
    fn full_resync_pulls_everything_held_from_the_other_replica() {
        let v = view(&format!("servers={}\n", names(3, 1)));
        let w = v.pulls("10.0.0.1:11211", true);
        let held = v.current.iter().filter(|r| r.contains(&"10.0.0.1:11211".to_owned())).count();
        assert_eq!(w.len(), held);
        assert!(w.values().all(|s| s.len() == 1 && s[0] != "10.0.0.1:11211"));
    }

    #[test]
    fn stable_views_clamp_and_resize_views_pad() {
        let one = view("servers=10.0.0.1:11211\n");
        assert_eq!(one.current[0], ["10.0.0.1:11211"]);
        let grow = view("servers=10.0.0.1:11211\nnew_servers=10.0.0.1:11211,10.0.0.2:11211\n");
        assert_eq!(grow.current[0], ["10.0.0.1:11211", "10.0.0.1:11211"]);
        let only_new = view("servers=\nnew_servers=10.0.0.1:11211\n");
        assert!(!only_new.is_resizing());
        assert_eq!(only_new.current[3], ["10.0.0.1:11211"]);
    }

    #[test]
    fn write_set_is_current_primary_new_replicas_then_other_current() {
        let v = view(THREE_TO_FOUR);
        assert_eq!(v.write_set(2), ["10.0.0.2:11211", "10.0.0.4:11211", "10.0.0.3:11211"]);
        assert_eq!(v.write_set(0), ["10.0.0.3:11211", "10.0.0.1:11211"]);
    }

    #[test]
    fn scale_down_gives_remaining_nodes_what_they_newly_own() {
        let v = view(&format!("servers={}\nnew_servers={}\n", names(4, 1), names(3, 1)));
        // From the spec's rings (cluster.md): n=4 gives current[vb], n=3
        // new[vb]; a node newly owns vb when new[vb] has it and current[vb]
        // does not. Written out here, not derived from the code under test.
        let newly_owned: [(usize, &[u8]); 3] = [
            (1, &[4, 16, 28, 40, 52, 64, 76, 88, 100, 112, 124, 125]),
            (2, &[1, 2, 13, 14, 25, 26, 37, 38, 49, 50, 61, 62, 73, 74, 85, 86, 97, 98, 109, 110, 121, 122]),
            (3, &[5, 6, 17, 18, 29, 30, 41, 42, 53, 54, 65, 66, 77, 78, 89, 90, 101, 102, 113, 114]),
        ];
        for (local, vbuckets) in newly_owned {
            let name = format!("10.0.0.{local}:11211");
            let w = v.pulls(&name, false);
            assert_eq!(w.keys().copied().collect::<Vec<u8>>(), vbuckets, "{name}");
            for (vb, sources) in &w {
                // From the vbucket's current replicas, primary first.
                assert_eq!(sources, &v.current[*vb as usize], "{name} vbucket {vb}");
            }
        }
        // Ring n=4, slots 4 and 5 are nodes 1, 3 and 3, 0: vbucket 4 comes
        // from .2 then .4, vbucket 5 from .4 then .1.
        let to = |n: usize| v.pulls(&format!("10.0.0.{n}:11211"), false);
        assert_eq!(to(1)[&4], ["10.0.0.2:11211", "10.0.0.4:11211"]);
        assert_eq!(to(3)[&5], ["10.0.0.4:11211", "10.0.0.1:11211"]);
        // The leaving node pulls nothing.
        assert!(to(4).is_empty());
    }

    /// A node list drawn from twelve names: any subset, in any order, so
    /// two draws may overlap, replace a node, reorder or be disjoint.
    fn node_list() -> impl Strategy<Value = Vec<String>> {
        let pool: Vec<String> = (1..=12).map(|i| format!("10.0.0.{i}:11211")).collect();
        prop::sample::subsequence(pool, 1..=8).prop_shuffle()
    }

    proptest! {
        #[test]
        fn any_resize_has_every_target_replica_hold_or_pull_from_the_current_replicas(
            old in node_list(),
            new in node_list(),
        ) {
            let v = view(&format!("servers={}\nnew_servers={}\n", old.join(","), new.join(",")));
            let everyone: BTreeSet<&String> = old.iter().chain(&new).collect();
            for node in everyone {
                let w = v.pulls(node, false);
                for vb in 0..VBUCKETS {
                    let (target, current) = (&v.target()[vb], &v.current[vb]);
                    let pulls = w.get(&(vb as u8));
                    let wanted = target.contains(node) && !current.contains(node);
                    prop_assert_eq!(pulls.is_some(), wanted, "{} vbucket {}", node, vb);
                    if let Some(sources) = pulls {
                        // The current replicas, primary first, each once.
                        let mut expected: Vec<&String> = Vec::new();
                        for s in current {
                            if !expected.contains(&s) {
                                expected.push(s);
                            }
                        }
                        prop_assert_eq!(sources.iter().collect::<Vec<_>>(), expected);
                    }
                }
            }
        }

        #[test]
        fn a_stable_cluster_gives_every_node_an_empty_work_list(n in 1usize..12, local in 0usize..12) {
            let v = view(&format!("servers={}\n", names(n, 1)));
            let name = format!("10.0.0.{}:11211", local % n + 1);
            prop_assert!(v.pulls(&name, false).is_empty());
        }

        #[test]
        fn after_a_resize_every_target_replica_holds_or_pulls_each_vbucket(old in 1usize..8, new in 1usize..8) {
            let v = view(&format!("servers={}\nnew_servers={}\n", names(old, 1), names(new, 1)));
            for vb in 0..VBUCKETS {
                for node in &v.target()[vb] {
                    let pulls = v.pulls(node, false).contains_key(&(vb as u8));
                    prop_assert!(pulls || v.current[vb].contains(node));
                }
            }
        }
    }
}
