#!/usr/bin/env bash
# The soak (not in CI): five memcached and five `astaire daemon`s on
# loopback through repeated resizes (3→4→3→5→3 …) under a client load for
# SOAK_MINUTES (default 30). Samples RSS, fds, threads, tasks and counters
# after every resize into target/soak/samples.csv; exits 1 on any verify
# failure, failed wait-sync or counter left non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --quiet --bins
SOAK_MINUTES="${1:-${SOAK_MINUTES:-30}}" cargo bench --quiet --bench soak
