#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests against real
# memcached processes (started by the tests on loopback high ports).
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --all-targets --quiet

# The lint: modules that read network or file input deny unwrap, expect,
# panic and indexing outside tests (their `#![cfg_attr(not(test), deny(…))]`).
# A toolchain without clippy (rustup's minimal profile) gets it added first.
if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
    rustup component add clippy >/dev/null 2>&1 || true
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --all-targets --quiet -- -D warnings
else
    echo "test: clippy is not available: the lint was skipped" >&2
fi

cargo test --quiet "$@"

# In CI (root, throwaway machine): run the README's demo on fewer keys (it
# exits non-zero if the resync, wait-sync or the verification fails, or if
# it cannot clean up), then build the Debian package, install it, check it,
# purge it.
if [ "${CI:-}" = true ] && [ "$(id -u)" -eq 0 ]; then
    mkdir -p target
    if ! DEMO_KEYS=30000 scripts/demo.sh >target/demo.log 2>&1; then
        tail -n 40 target/demo.log >&2
        echo "test: scripts/demo.sh failed (log: target/demo.log)" >&2
        exit 1
    fi
    grep -E '^verify .* 0 differences$' target/demo.log
    scripts/package.sh --install-check
fi
