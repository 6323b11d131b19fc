//! The placement rows (issues 20 and 30): the same 3→4 at 100 B under each
//! placement (Clearwater's, ketama, rendezvous, jump and the client
//! families), each on its own load of the same number of keys: keys landed
//! per second and CPU per key landed. Clearwater keeps two replicas (each
//! key listed by two sources and checked on the second), the others one
//! copy. mcrouter-weighted gets a weight of 1 on every server (it needs
//! one on each), the others none.

use super::common::Memcached;
use super::measure::*;
use super::scenarios::*;

pub fn placement_rows(keys: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let schemes = astaire::placement::Scheme::all().iter().map(|s| s.name());
    for scheme in schemes {
        let mut nodes: Vec<Memcached> = (0..4).map(|_| Memcached::start_with(&["-m", "2048"])).collect();
        let names: Vec<String> = nodes.iter().map(Memcached::name).collect();
        let weight = if scheme == "mcrouter-weighted" { ":1" } else { "" };
        let entries: Vec<String> = names.iter().map(|n| format!("{n}{weight}")).collect();
        let dir = out_dir();
        let (stable, resize) = (dir.join(format!("cs-{scheme}-stable")), dir.join(format!("cs-{scheme}-resize")));
        write_settings(&stable, &entries[..3], None);
        write_settings(&resize, &entries[..3], Some(&entries));
        let scenario = format!("{keys} keys × 100 B (3→4), placement {scheme}");
        eprintln!("== {scenario}");
        load_with(&stable, keys, 100, &["--placement", scheme]);
        let pids: Vec<u32> = nodes.iter().map(Memcached::pid).collect();
        let runs = (0..repeats())
            .map(|_| {
                nodes[3].restart_empty();
                astaire(
                    &bin("astaire"),
                    &scenario,
                    "astaire",
                    &resize,
                    &names[3],
                    &["--placement", scheme],
                    None,
                    &pids,
                )
            })
            .collect();
        rows.push(median(runs));
    }
    rows
}
