#!/usr/bin/env bash
# The resync benchmark: Astaire beside memcached-tool | nc and the servers'
# own ceilings, on the same data in the same run. Writes target/bench/
# results.txt, results.csv and resync.png. BENCH_SCALE=0.1 for a quick run.
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
cargo bench --quiet --bench resync
