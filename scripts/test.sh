#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests against real
# memcached processes (started by the tests on loopback high ports).
# Usage: scripts/test.sh [extra cargo test arguments]
#
# Every suite runs on the memcached on PATH (Debian 12's 1.6.18); then the
# suites that talk to memcached in depth (resync and its client races,
# faults, edges, daemon) run again on each memcached that
# scripts/memcached-versions.sh builds from Debian's source packages:
# MEMCACHED_SUITES (default "trixie sid", i.e. 1.6.38 and the newest; empty
# to skip).
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

# No import circles between the files of src/ (issue 33): prints each
# circle, file -> file with the path that ties them, and fails.
cargo test --quiet --test circles

# The alert rules (issue 31): promtool's own check, then its unit tests
# (a failed and a stuck resync fire, a healthy resize stays quiet).
(cd packaging/prometheus && promtool check rules astaire-rules.yml && promtool test rules astaire-rules.test.yml)

base_version=$(memcached -V | awk '{ print $2 }')
echo "test: every suite on memcached $base_version ($(command -v memcached))"
cargo test --quiet "$@"

tested=("$base_version (every suite)")
suites=${MEMCACHED_SUITES-trixie sid}
if [ -n "$suites" ]; then
    # shellcheck disable=SC2086 # the suites are words
    versions=$(scripts/memcached-versions.sh $suites)
    while read -r suite version path; do
        echo "test: resync, faults, edges and daemon suites on memcached $version ($suite, $path)"
        ASTAIRE_TEST_MEMCACHED=$path cargo test --quiet --test resync --test faults --test edges --test daemon "$@"
        tested+=("$version ($suite: resync, faults, edges, daemon)")
    done <<<"$versions"
fi
# The jump placement against a real memcached proxy: sid's memcached built
# with --enable-proxy (skipped where MEMCACHED_SUITES is empty).
if [ -n "$suites" ]; then
    read -r _suite proxy_version proxy_path < <(scripts/memcached-versions.sh sid-proxy) || true
    if [ ! -x "${proxy_path:-}" ]; then
        echo "test: could not build memcached with its proxy (scripts/memcached-versions.sh sid-proxy)" >&2
        exit 1
    fi
    echo "test: the jump placement through memcached $proxy_version's proxy ($proxy_path)"
    # The test is #[ignore]d (plain `cargo test` lists it as ignored, with
    # why); here it runs with --ignored, and must be the one test that ran
    # and passed: a rename or a filter that leaves it out fails this step.
    cargo_args=() harness_args=() seen_separator=
    for arg in "$@"; do
        if [ -z "$seen_separator" ] && [ "$arg" = -- ]; then
            seen_separator=1
        elif [ -n "$seen_separator" ]; then
            harness_args+=("$arg")
        else
            cargo_args+=("$arg")
        fi
    done
    mkdir -p target
    ASTAIRE_TEST_PROXY=$proxy_path cargo test --quiet --test placement "${cargo_args[@]}" -- \
        --ignored --exact jump_through_a_real_memcached_proxy "${harness_args[@]}" 2>&1 | tee target/proxy-test.log
    if ! grep -q 'test result: ok. 1 passed' target/proxy-test.log; then
        echo "test: the jump placement through the proxy did not run and pass (target/proxy-test.log)" >&2
        exit 1
    fi
    tested+=("$proxy_version (sid-proxy: the jump placement through its proxy)")
fi
printf 'test: memcached versions tested: %s\n' "$(IFS=';'; echo "${tested[*]}" | sed 's/;/; /g')"

# In CI (root, throwaway machine): run the README's demo (scripts/demo.sh)
# on fewer keys (it exits non-zero if the resync, wait-sync or the
# verification fails, or if it cannot clean up), then build the Debian
# package, install it, check it, purge it.
if [ "${CI:-}" = true ] && [ "$(id -u)" -eq 0 ]; then
    mkdir -p target
    if ! DEMO_KEYS=30000 scripts/demo.sh >target/demo.log 2>&1; then
        tail -n 40 target/demo.log >&2
        echo "test: scripts/demo.sh failed (log: target/demo.log)" >&2
        exit 1
    fi
    grep -E '^verify .* 0 differences$' target/demo.log
    # The second demo: a ketama cluster written and read back by pylibmc.
    if ! DEMO_KEYS=30000 scripts/demo-ketama.sh >target/demo-ketama.log 2>&1; then
        tail -n 40 target/demo-ketama.log >&2
        echo "test: scripts/demo-ketama.sh failed (log: target/demo-ketama.log)" >&2
        exit 1
    fi
    grep -E 'pylibmc with the new list reads' target/demo-ketama.log
    # The third: a non-Python family, Ruby Dalli, written and read back by
    # the real Dalli.
    if ! DEMO_KEYS=20000 scripts/demo-clients.sh >target/demo-clients.log 2>&1; then
        tail -n 40 target/demo-clients.log >&2
        echo "test: scripts/demo-clients.sh failed (log: target/demo-clients.log)" >&2
        exit 1
    fi
    grep -E 'Dalli with the new list reads' target/demo-clients.log
    scripts/package.sh --install-check
    # The container image (issue 31), from the release binary the package
    # step built: buildah (vfs, chroot isolation), then the binary inside
    # it against memcached on loopback (podman, or where the kernel
    # refuses podman, the image's root file system with chroot; it says
    # which). Then the manifests' paths against the image: an #[ignore]d
    # test that must be the one that ran and passed.
    scripts/image.sh --check 2>&1 | tee target/image.log
    cargo test --quiet --test kubernetes -- --ignored --exact the_image_holds_every_path_the_manifests_name 2>&1 |
        tee target/image-test.log
    if ! grep -q 'test result: ok. 1 passed' target/image-test.log; then
        echo "test: the image's paths were not checked (target/image-test.log)" >&2
        exit 1
    fi
fi
