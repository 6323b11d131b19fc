#!/usr/bin/env bash
# Installs what Astaire's demo and tests need on Debian 12, only what is
# missing: memcached, net-snmp (snmpd, snmp, snmptrapd), the reference client
# libraries the placement tests write through (pylibmc, pymemcache; and for
# tests/libraries.rs Ruby Dalli, Java spymemcached with a headless JDK, PHP's
# memcache and memcached, Go's gomemcache, nutcracker, Node and npm, which
# installs the Node clients under target/), Prometheus, buildah and podman
# (issue 31) and a Rust toolchain.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

export PATH="$HOME/.cargo/bin:$PATH"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v memcached >/dev/null || missing+=(memcached)
command -v snmpd >/dev/null || missing+=(snmpd)
command -v snmpget >/dev/null || missing+=(snmp)
command -v snmptrapd >/dev/null || missing+=(snmptrapd)
/usr/bin/python3 -c 'import pylibmc' 2>/dev/null || missing+=(python3-pylibmc)
/usr/bin/python3 -c 'import pymemcache' 2>/dev/null || missing+=(python3-pymemcache)
# The stand-in for Clearwater's alarm agent (libzmq) in tests/alarms.rs.
/usr/bin/python3 -c 'import zmq' 2>/dev/null || missing+=(python3-zmq)
# The client libraries of every family tests/libraries.rs resizes (issue 30).
command -v ruby >/dev/null || missing+=(ruby)
{ command -v ruby >/dev/null && ruby -e 'require "dalli"' 2>/dev/null; } || missing+=(ruby-dalli)
command -v javac >/dev/null || missing+=(default-jdk-headless)
[ -f /usr/share/java/spymemcached.jar ] || missing+=(libspymemcached-java)
command -v php >/dev/null || missing+=(php-cli)
{ command -v php >/dev/null && php -r 'exit(class_exists("Memcache") ? 0 : 1);'; } || missing+=(php-memcache)
{ command -v php >/dev/null && php -r 'exit(class_exists("Memcached") ? 0 : 1);'; } || missing+=(php-memcached)
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/bradfitz/gomemcache ] || missing+=(golang-github-bradfitz-gomemcache-dev)
command -v nutcracker >/dev/null || missing+=(nutcracker)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# Issue 31: the real Prometheus (and promtool) for tests/metrics.rs and the
# alert rules' tests; buildah and podman for the container image
# (scripts/image.sh), curl for its check.
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v buildah >/dev/null || missing+=(buildah)
command -v podman >/dev/null || missing+=(podman)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    if command -v curl >/dev/null; then
        echo "setup: installing Rust with rustup"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    else
        echo "setup: Rust is missing: install it with rustup (https://rustup.rs), then run this again" >&2
        exit 1
    fi
fi
