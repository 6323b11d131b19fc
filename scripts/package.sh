#!/usr/bin/env bash
# Builds the Debian package (target/debian/astaire_*.deb) with cargo-deb.
# With --install-check (CI, as root): installs it with dpkg -i, checks the
# installed files, the user and `astaire --version`, then purges it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
# Release builds keep debug info for profiling; the package does not.
cargo deb --quiet --strip
deb=$(ls -t target/debian/astaire_*.deb | head -1)
echo "package: $deb"
[ "${1:-}" = "--install-check" ] || exit 0

dpkg -i "$deb" >/dev/null
trap 'dpkg --purge astaire >/dev/null 2>&1 || true' EXIT
fail() { echo "package check FAILED: $*" >&2; exit 1; }
for f in /usr/bin/astaire /usr/share/snmp/mibs/PROJECT-CLEARWATER-MIB /lib/systemd/system/astaire.service \
         /usr/share/doc/astaire/examples/snmpd-astaire.conf /usr/share/doc/astaire/examples/config; do
    [ -e "$f" ] || fail "$f missing"
done
version=$(/usr/bin/astaire --version)
[ "$version" = "astaire $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)" ] || fail "astaire --version says '$version'"
getent passwd astaire >/dev/null || fail "no astaire user"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' /lib/systemd/system/astaire.service || fail "unit has no ExecReload"
grep -q '^Type=notify' /lib/systemd/system/astaire.service || fail "unit is not Type=notify"
MIBS="" snmptranslate -M "+$PWD/../shared/mibs:/usr/share/snmp/mibs" -m PROJECT-CLEARWATER-MIB -On \
    PROJECT-CLEARWATER-MIB::astaireBucketsNeedingResync.0 2>/dev/null | grep -q '^.1.2.826.0.1.1578918.9.9.1.0$' \
    || fail "installed MIB does not resolve"
echo "package check passed: $version, $(du -h "$deb" | cut -f1) package, files, user, unit and MIB in place"
