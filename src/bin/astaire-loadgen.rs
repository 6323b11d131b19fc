//! Writes Clearwater-style data into a cluster the way its clients would:
//! each key to its replicas per the view of a `cluster_settings` file, with
//! the write time (ms, low 32 bits) in the flags and a mix of TTLs. Used by
//! the demo and the benchmarks; not part of the product.

use astaire::memcached::proto::{self, SetMode, WireKey};
use astaire::memcached::{Connection, DEFAULT_TIMEOUT};
use astaire::testdata::{self, key, ttl, value};
use astaire::view::{vbucket, ClusterSettings, View};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Load Clearwater-style test data into a memcached cluster")]
struct Args {
    /// The cluster to load (its current `servers` view).
    #[arg(long)]
    cluster_settings: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Key numbers start here (to add keys to an already loaded cluster).
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Place keys as these clients do (one copy each under the one-copy
    /// schemes) instead of on Clearwater's two replicas.
    #[arg(long, value_enum, default_value_t = astaire::placement::Scheme::Clearwater)]
    placement: astaire::placement::Scheme,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match ClusterSettings::load(&args.cluster_settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("astaire-loadgen: {e}");
            return ExitCode::from(if e.is_invalid() { 3 } else { 2 });
        }
    };
    let view = View::new(&settings);
    let placement = astaire::placement::Placement { scheme: args.placement, ..Default::default() };
    let owner = match args.placement.one_copy().then(|| astaire::placement::ListOwner::new(&settings, &placement)) {
        Some(Err(e)) => {
            eprintln!("astaire-loadgen: {e}");
            return ExitCode::from(3);
        }
        Some(Ok(o)) => Some(o),
        None => None,
    };
    let mut scratch = Vec::new();
    let (now, stamp) = (testdata::now(), testdata::stamp());

    // Requests per server, built up front, sent in pipelined chunks of
    // (requests, how many).
    let mut per_server: BTreeMap<String, Vec<(Vec<u8>, usize)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in args.first..args.first + args.keys {
        let k = key(i);
        let v = value(i, args.value_size);
        let servers = match &owner {
            Some(o) => o.owner(&k, &mut scratch).map(|i| vec![settings.servers[i].clone()]).unwrap_or_default(),
            None => view.write_set(vbucket(&k)),
        };
        for server in servers {
            let chunks = per_server.entry(server.clone()).or_default();
            let n = counts.entry(server).or_default();
            if n.is_multiple_of(1000) {
                chunks.push((Vec::new(), 0));
            }
            *n += 1;
            let (buf, count) = chunks.last_mut().expect("pushed above");
            proto::ms(
                buf,
                WireKey { bytes: &k, base64: false },
                &v,
                stamp,
                ttl(i, now),
                SetMode::Set { cas: None },
                *count,
            );
            *count += 1;
        }
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (server, chunks) in per_server {
        tasks.spawn(async move {
            let mut conn = Connection::connect(&server, DEFAULT_TIMEOUT).await?;
            for (mut chunk, count) in chunks {
                proto::mn(&mut chunk);
                conn.pipeline(&chunk, count, |_, _, _| Ok(())).await?;
            }
            Ok::<_, astaire::memcached::McError>(server)
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        let error = match done {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!("astaire-loadgen: {error}");
        failed += 1;
    }
    if failed > 0 {
        eprintln!("astaire-loadgen: {failed} of {} servers could not be loaded", counts.len());
        return ExitCode::from(1);
    }
    let written: usize = counts.values().sum();
    println!(
        "loaded {} keys ({} copies, {} B values) into {} servers in {:.2} s",
        args.keys,
        written,
        args.value_size,
        counts.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
