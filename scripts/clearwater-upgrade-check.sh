#!/usr/bin/env bash
# Installs this package over packages shaped like Clearwater's own (spec
# clearwater-node.md §6), as root, and shows that nothing of the old
# daemon stays active:
#   astaire 1.0-…            the old daemon /usr/share/clearwater/bin/astaire,
#                            its conffiles (init script, upstart throttle job,
#                            hourly log cleanup, limits snippet) and the
#                            monit check generated from it; its process is
#                            left running, as monit would restart it
#   astaire-dbg              Depends astaire (= the old version)
#   clearwater-snmp-handler-astaire   the in-snmpd handler of the same subtree
#   clearwater-snmp-alarm-agent       a stand-in interested in the trigger
# Usage: scripts/clearwater-upgrade-check.sh PACKAGE.deb
set -euo pipefail
deb=$(realpath "$1")
work=$(mktemp -d /tmp/astaire-upgrade-check.XXXXXX)
old_version=1.0-180404.120000
fail() { echo "upgrade check FAILED: $*" >&2; exit 1; }
cleanup() {
    [ -n "${old_pid:-}" ] && kill "$old_pid" 2>/dev/null || true
    dpkg --purge astaire astaire-dbg clearwater-snmp-handler-astaire clearwater-snmp-alarm-agent >/dev/null 2>&1 || true
    rm -f /etc/monit/conf.d/astaire.monit /var/run/astaire/astaire.pid
    rm -rf "$work"
}
trap cleanup EXIT
dpkg --purge astaire >/dev/null 2>&1 || true

# A binary package from a directory tree: package name, version, extra
# control fields, then files as "path<TAB>mode<TAB>content" lines on stdin.
fake() {
    local name=$1 version=$2 fields=$3 root="$work/$1"
    mkdir -p "$root/DEBIAN"
    printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: test\nDescription: stand-in for Clearwater'"'"'s %s\n%b' \
        "$name" "$version" "$name" "$fields" >"$root/DEBIAN/control"
    while IFS=$'\t' read -r path mode content; do
        mkdir -p "$root$(dirname "$path")"
        printf '%b' "$content" >"$root$path"
        chmod "$mode" "$root$path"
        case "$path" in /etc/*) echo "$path" >>"$root/DEBIAN/conffiles" ;; esac
    done
    dpkg-deb --build --root-owner-group "$root" "$work/$name.deb" >/dev/null
}

# The old astaire: a real executable at the old path (a copy of sleep, so
# /proc/PID/exe names that path), and the old package's files.
mkdir -p "$work/astaire/usr/share/clearwater/bin"
cp /bin/sleep "$work/astaire/usr/share/clearwater/bin/astaire"
fake astaire "$old_version" "" <<'FILES'
/etc/init.d/astaire	755	#!/bin/sh\n# the old init script\nexit 0\n
/etc/init/astaire-throttle.conf	644	# upstart: cpulimit the astaire process\nexec /usr/bin/cpulimit -e astaire -l 5\n
/etc/cron.hourly/astaire-log-cleanup	755	#!/bin/sh\nexit 0\n
/etc/security/limits.conf.astaire	644	astaire soft nofile 100000\n
/usr/share/clearwater/infrastructure/scripts/astaire.monit	755	#!/bin/sh\n# writes /etc/monit/conf.d/astaire.monit\n
/usr/share/clearwater/infrastructure/alarms/astaire_alarms.json	644	{"alarms": []}\n
FILES
fake astaire-dbg "$old_version" "Depends: astaire (= $old_version)\n" <<'FILES'
/usr/lib/debug/astaire.debug	644	debug\n
FILES
fake clearwater-snmp-handler-astaire 1.0-180404.120000 "" <<'FILES'
/usr/lib/clearwater/astaire_handler.so	644	not really a library\n
FILES
mkdir -p "$work/clearwater-snmp-alarm-agent/DEBIAN"
echo "interest-noawait clearwater-snmp-alarm-agent" >"$work/clearwater-snmp-alarm-agent/DEBIAN/triggers"
printf '#!/bin/sh\n[ "$1" = triggered ] && echo "$2" >>/var/tmp/astaire-upgrade-check.triggered\nexit 0\n' \
    >"$work/clearwater-snmp-alarm-agent/DEBIAN/postinst"
chmod 755 "$work/clearwater-snmp-alarm-agent/DEBIAN/postinst"
fake clearwater-snmp-alarm-agent 1.0-180404.120000 "" <<'FILES'
/usr/share/clearwater/bin/alarm-agent-stand-in	644	\n
FILES
dpkg -i "$work/astaire.deb" "$work/astaire-dbg.deb" "$work/clearwater-snmp-handler-astaire.deb" \
    "$work/clearwater-snmp-alarm-agent.deb" >/dev/null
rm -f /var/tmp/astaire-upgrade-check.triggered

# The old node at work: the daemon running from the old path with its
# pidfile, and the monit check clearwater-infrastructure generated.
mkdir -p /var/run/astaire /etc/monit/conf.d
/usr/share/clearwater/bin/astaire 3600 &
old_pid=$!
echo "$old_pid" >/var/run/astaire/astaire.pid
printf 'check process astaire_process pidfile /var/run/astaire/astaire.pid\n' >/etc/monit/conf.d/astaire.monit

apt_log="$work/apt.log"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$apt_log" 2>&1 ||
    fail "apt-get install over the old packages: $(tail -5 "$apt_log")"

installed=$(dpkg-query -W -f '${Version}' astaire)
case "$installed" in 1:*) ;; *) fail "astaire is at $installed, not this package's version" ;; esac
sleep 0.2
if kill -0 "$old_pid" 2>/dev/null; then fail "the old daemon (pid $old_pid) still runs"; fi
for f in /etc/init/astaire-throttle.conf /etc/cron.hourly/astaire-log-cleanup /etc/security/limits.conf.astaire \
         /etc/monit/conf.d/astaire.monit /usr/share/clearwater/infrastructure/scripts/astaire.monit \
         /usr/lib/clearwater/astaire_handler.so; do
    [ -e "$f" ] && fail "$f is still there"
done
for p in astaire-dbg clearwater-snmp-handler-astaire; do
    status=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
    case "$status" in '' | not-installed | config-files) ;; *) fail "$p is still $status" ;; esac
done
[ "$(readlink -f /usr/share/clearwater/bin/astaire)" = /usr/bin/astaire ] ||
    fail "/usr/share/clearwater/bin/astaire does not lead to /usr/bin/astaire"
same=$(/usr/share/clearwater/bin/astaire --version)
[ "$same" = "$(/usr/bin/astaire --version)" ] || fail "the old path runs '$same'"
grep -q '"index": 5501' /usr/share/clearwater/infrastructure/alarms/astaire_alarms.json ||
    fail "the alarm definitions are not installed"
grep -qx clearwater-snmp-alarm-agent /var/tmp/astaire-upgrade-check.triggered 2>/dev/null ||
    fail "the alarm agent was not triggered to reload the definitions"
rm -f /var/tmp/astaire-upgrade-check.triggered
echo "upgrade check passed: astaire $old_version → $installed with apt; the old daemon stopped," \
    "its throttle job, log cleanup, limits and monit check gone, astaire-dbg and the snmpd handler removed," \
    "/usr/share/clearwater/bin/astaire runs the new binary, the alarm agent triggered"
