#!/usr/bin/env bash
# The resync benchmark: Astaire beside memcached-tool | nc and the servers'
# own ceilings, on the same data in the same run. Writes target/bench/
# results.txt, results.csv and resync.png. BENCH_SCALE=0.1 for a quick run.
#
# Usage: scripts/bench.sh [versions | large | dump_stall | scale [REV] | placement | ab REV]
#   versions    the per-version rows instead: the same 3→4 at 100 B on the
#               memcached on PATH and on each that scripts/memcached-versions.sh
#               builds (MEMCACHED_SUITES, default "trixie sid"); writes
#               target/bench/versions.{txt,csv,png}
#   large       peak memory of a 3→4 with 200 KB and 1 MB values, per
#               version; writes target/bench/large.{txt,csv}
#   dump_stall  whether a dump left unread stalls the source's clients, per
#               version and dump command; writes target/bench/dump-stall.txt
#   scale [REV] issue 32's table: CPU per key dumped and landed, the sources'
#               memcached CPU and peak memory against the cluster's size: 3→4s
#               of 1 M, 4 M and 10 M keys at 100 B (BENCH_SCALE_KEYS),
#               unthrottled and at 5% CPU, at the largest the daemon's 3→4, a
#               full resync and a 4→3, and the smallest 3→4 on the newest
#               memcached (MEMCACHED_NEWEST_SUITE, default sid); with REV its
#               build runs every row beside this one, alternating
#               (BENCH_REPEATS, default 3; BENCH_AB_MAX_KEYS caps its rows),
#               with the ratios and each target met or not; writes
#               target/bench/scale.{txt,csv,png}
#   placement   the same 3→4 at 100 B under each placement (clearwater,
#               ketama, rendezvous, jump and every client family of
#               --placement; 1 M keys each): keys/s and CPU per key landed;
#               writes
#               target/bench/placement.{txt,csv,png}
#   ab REV      this tree's astaire against REV's (built in a worktree), on
#               the same 3→4 at 100 B, alternating (BENCH_REPEATS, default 5);
#               BENCH_MEMCACHED picks the memcached; writes target/bench/ab.txt
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
missing=()
command -v nc >/dev/null || missing+=(netcat-openbsd)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq "${missing[@]}" >/dev/null; else sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi
cargo build --release --quiet --bins
case "${1:-}" in
"")
    cargo bench --quiet --bench resync
    ;;
versions | large | dump_stall)
    versions="$(memcached -V | awk '{ print $2 }')=$(command -v memcached)"
    # shellcheck disable=SC2086 # the suites are words
    while read -r _suite version path; do
        versions="$versions,$version=$path"
    done < <(scripts/memcached-versions.sh ${MEMCACHED_SUITES-trixie sid})
    if [ "$1" = versions ]; then
        BENCH_VERSIONS=$versions cargo bench --quiet --bench resync
    elif [ "$1" = large ]; then
        BENCH_LARGE=1 BENCH_VERSIONS=$versions cargo bench --quiet --bench resync
    else
        BENCH_VERSIONS=$versions cargo bench --quiet --bench dump_stall
    fi
    ;;
placement)
    BENCH_PLACEMENT=1 cargo bench --quiet --bench resync
    ;;
ab | scale)
    rev=${2:-}
    [ "$1" = ab ] && [ -z "$rev" ] && { echo "usage: scripts/bench.sh ab REV" >&2; exit 2; }
    other=target/bench/astaire-$rev
    if [ -n "$rev" ] && [ ! -x "$other" ]; then
        tree=$(mktemp -d)
        git worktree add --detach --quiet "$tree" "$rev"
        (cd "$tree" && CARGO_TARGET_DIR="$tree/target" cargo build --release --quiet --bin astaire)
        mkdir -p target/bench
        cp "$tree/target/release/astaire" "$other"
        git worktree remove --force "$tree"
    fi
    if [ "$1" = scale ]; then
        export BENCH_SCALE_KEYS=${BENCH_SCALE_KEYS:-1000000,4000000,10000000}
        [ -n "$rev" ] && export BENCH_AB=$other BENCH_AB_LABEL=$rev
        # The newest memcached's binary, built from Debian's sources.
        BENCH_NEWEST=$(scripts/memcached-versions.sh "${MEMCACHED_NEWEST_SUITE:-sid}" | awk 'END { print $3 }') ||
            echo "bench: no newest memcached built; its row is left out" >&2
        export BENCH_NEWEST
        cargo bench --quiet --bench resync
        exit 0
    fi
    BENCH_AB=$other BENCH_AB_LABEL=$rev BENCH_REPEATS=${BENCH_REPEATS:-5} cargo bench --quiet --bench resync
    ;;
*)
    echo "usage: scripts/bench.sh [versions | large | dump_stall | scale [REV] | placement | ab REV]" >&2
    exit 2
    ;;
esac
