#!/usr/bin/env bash
# The resync benchmark: Astaire beside memcached-tool | nc and the servers'
# own ceilings, on the same data in the same run. Writes target/bench/
# results.txt, results.csv and resync.png. BENCH_SCALE=0.1 for a quick run.
#
# Usage: scripts/bench.sh [versions | large | dump_stall]
#   versions    the per-version rows instead: the same 3→4 at 100 B on the
#               memcached on PATH and on each that scripts/memcached-versions.sh
#               builds (MEMCACHED_SUITES, default "trixie sid"); writes
#               target/bench/versions.{txt,csv,png}
#   large       peak memory of a 3→4 with 200 KB and 1 MB values, per
#               version; writes target/bench/large.{txt,csv}
#   dump_stall  whether a dump left unread stalls the source's clients, per
#               version and dump command; writes target/bench/dump-stall.txt
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
ab)
    rev=${2:?usage: scripts/bench.sh ab REV}
    other=target/bench/astaire-$rev
    if [ ! -x "$other" ]; then
        tree=$(mktemp -d)
        git worktree add --detach --quiet "$tree" "$rev"
        (cd "$tree" && CARGO_TARGET_DIR="$tree/target" cargo build --release --quiet --bin astaire)
        mkdir -p target/bench
        cp "$tree/target/release/astaire" "$other"
        git worktree remove --force "$tree"
    fi
    BENCH_AB=$other BENCH_AB_LABEL=$rev BENCH_REPEATS=${BENCH_REPEATS:-5} cargo bench --quiet --bench resync
    ;;
*)
    echo "usage: scripts/bench.sh [versions | large | dump_stall | ab REV]" >&2
    exit 2
    ;;
esac
