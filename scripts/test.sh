#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests against real
# memcached processes (started by the tests on loopback high ports).
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --all-targets --quiet
cargo test --quiet "$@"

# In CI (root, throwaway machine): build the Debian package, install it,
# check it, purge it.
if [ "${CI:-}" = true ] && [ "$(id -u)" -eq 0 ]; then
    scripts/package.sh --install-check
fi
