#!/usr/bin/env bash
# Builds the Debian package (target/debian/astaire_*.deb) with cargo-deb.
# With --install-check (CI, as root): installs it with dpkg -i, checks the
# installed files, the user and `astaire --version`, runs docs/snmp.md's SNMP
# set-up with the installed snippet (stock snmpd.conf, snmpd as Debian-snmp,
# the daemon as astaire, a private UDP port) and the seeds' procedure on a
# Clearwater node's files (scripts/clearwater-node-check.sh), the install
# over Clearwater's own packages (scripts/clearwater-upgrade-check.sh), then
# purges it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
# Release builds keep debug info for profiling; the package does not.
# The epoch puts this package above Clearwater's own astaire (1.0-YYMMDD…),
# which it replaces: apt upgrades that package to this one.
version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
# (The file name leaves the epoch out, as Debian's do.)
deb="target/debian/astaire_${version}-1_$(dpkg --print-architecture).deb"
rm -f target/debian/astaire_*.deb
cargo deb --quiet --strip --deb-version "1:$version-1" --output "$deb" >/dev/null
echo "package: $deb"
[ "${1:-}" = "--install-check" ] || exit 0

dpkg -i "$deb" >/dev/null
check=$(mktemp -d /tmp/astaire-package-check.XXXXXX)
snippet=/etc/snmp/snmpd.conf.d/astaire-package-check.conf
cleanup() {
    for pid in ${check_pids:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -f "$snippet"
    rm -rf "$check"
    if [ -n "${made_socket:-}" ]; then rm -f /var/agentx/master; rmdir /var/agentx 2>/dev/null || true; fi
    if [ -n "${made_group:-}" ]; then groupdel snmp 2>/dev/null || true; fi
    dpkg --purge astaire >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "package check FAILED: $*" >&2; exit 1; }
for f in /usr/bin/astaire /usr/share/snmp/mibs/PROJECT-CLEARWATER-MIB /lib/systemd/system/astaire.service \
         /usr/share/doc/astaire/examples/snmpd-astaire.conf /usr/share/doc/astaire/examples/config \
         /usr/share/doc/astaire/copyright /usr/share/doc/astaire/docs/operations.md; do
    [ -e "$f" ] || fail "$f missing"
done
# The licence (issue 33): Debian's copyright file names it, with the text
# Debian ships, and cargo-deb's generated one did not replace ours.
grep -q '^License: GPL-3+$' /usr/share/doc/astaire/copyright || fail "copyright does not name GPL-3+"
grep -q '/usr/share/common-licenses/GPL-3' /usr/share/doc/astaire/copyright || fail "copyright does not point at the GPL-3 text"
version=$(/usr/bin/astaire --version)
[ "$version" = "astaire $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)" ] || fail "astaire --version says '$version'"
getent passwd astaire >/dev/null || fail "no astaire user"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' /lib/systemd/system/astaire.service || fail "unit has no ExecReload"
grep -q '^Type=notify' /lib/systemd/system/astaire.service || fail "unit is not Type=notify"
# Issue 29: room for the copy beside the control clients, and a stop bound.
grep -q '^LimitNOFILE=65536' /lib/systemd/system/astaire.service || fail "unit has no LimitNOFILE=65536"
grep -q '^TimeoutStopSec=30' /lib/systemd/system/astaire.service || fail "unit has no TimeoutStopSec=30"
# The unit's hardening, scored by systemd itself (target: 2.0 or less) and
# checked for errors; printed so every CI run shows it.
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/astaire.service || fail "systemd-analyze verify: the unit has errors"
    exposure=$(systemd-analyze security --offline=true /lib/systemd/system/astaire.service 2>/dev/null |
        awk '/Overall exposure level/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }')
    echo "package check: systemd-analyze security astaire.service: exposure $exposure (UNSAFE is 9+, the target 2.0 or less)"
    awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }' || fail "unit exposure $exposure is over 2.0"
else
    echo "package check: systemd-analyze is not installed: the unit's hardening was not scored" >&2
fi
MIBS="" snmptranslate -M "+$PWD/../shared/mibs:/usr/share/snmp/mibs" -m PROJECT-CLEARWATER-MIB -On \
    PROJECT-CLEARWATER-MIB::astaireBucketsNeedingResync.0 2>/dev/null | grep -q '^.1.2.826.0.1.1578918.9.9.1.0$' \
    || fail "installed MIB does not resolve"

# docs/snmp.md's SNMP set-up, as on a node: the shipped snippet beside Debian's
# stock snmpd.conf, snmpd run as Debian runs it (user Debian-snmp; only the
# listening port is private), and the daemon as the astaire user. The
# stock `public` community must read the counters through
# /var/agentx/master with the snippet's permissions.
[ -e /var/agentx/master ] && fail "/var/agentx/master exists: is a system snmpd running?"
made_socket=1
port=21391
mkdir -p /etc/snmp/snmpd.conf.d
cp /usr/share/doc/astaire/examples/snmpd-astaire.conf "$snippet"
/usr/sbin/snmpd -Lf "$check/snmpd-snippet.log" -u Debian-snmp -g Debian-snmp -I -smux,mteTrigger,mteTriggerConf -f \
    -p "$check/snmpd.pid" "udp:127.0.0.1:$port" &
check_pids="$!"
chmod 0755 "$check"
echo "servers=127.0.0.1:21392" >"$check/cluster_settings"
mkdir "$check/run" && chown astaire:astaire "$check/run"
# Starts the daemon as the astaire user beside the running snmpd (NAME
# tells their logs apart) and reads astaireBucketsNeedingResync through
# snmpd with COMMUNITY; fails with both logs unless it reads 0.
serves_counters() { # COMMUNITY NAME
    runuser -u astaire -- /usr/bin/astaire daemon --local-name 127.0.0.1:21393 --config /dev/null --nice 0 \
        --cluster-settings "$check/cluster_settings" --control-socket "$check/run/control-$2" 2>"$check/daemon-$2.log" &
    check_pids="$! $check_pids"
    local served=""
    for _ in $(seq 100); do
        served=$(snmpget -v2c -c "$1" -On -t 1 -r 0 "127.0.0.1:$port" .1.2.826.0.1.1578918.9.9.1.0 2>&1 || true)
        case "$served" in *"Gauge32: 0"*) return 0 ;; esac
        sleep 0.1
    done
    fail "community $1 did not read astaireBucketsNeedingResync ($2): $served
snmpd: $(tail -5 "$check/snmpd-$2.log")
daemon: $(tail -5 "$check/daemon-$2.log")"
}
serves_counters public snippet
perms=$(stat -c '%U:%G %a' /var/agentx/master)
[ "$perms" = "Debian-snmp:astaire 660" ] || fail "/var/agentx/master is $perms"
# What docs/clearwater.md warns of (step 3 of the swap): with the snippet, other users' subagents (a
# Clearwater node's others) cannot connect.
connects_as_nobody() { runuser -u nobody -- /usr/bin/python3 -c \
    'import socket; socket.socket(socket.AF_UNIX).connect("/var/agentx/master")' 2>/dev/null; }
connects_as_nobody && fail "the snippet's socket lets every user's subagent in"

# A Clearwater node's snmpd instead (clearwater-snmpd's configuration, spec
# clearwater-node.md §6, its handler's library gone; no snippet added): the daemon's subagent serves the
# counters to community `clearwater`, and the master socket stays open to
# every local subagent, so Clearwater's others are not locked out.
for pid in $check_pids; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
check_pids=""
rm -f "$snippet"
getent group snmp >/dev/null || { groupadd --system snmp && made_group=1; }
cat >"$check/clearwater-snmpd.conf" <<'CONF'
master agentx
agentXSocket /var/agentx/master
agentXPerms 777 777 root snmp
# Left dangling once apt removed clearwater-snmp-handler-astaire: snmpd logs
# the failed load and goes on.
dlmod astaire_handler /usr/lib/clearwater/astaire_handler.so
view clearwater included .1.2.826.0.1.1578918
rocommunity clearwater default -V clearwater
CONF
/usr/sbin/snmpd -Lf "$check/snmpd-clearwater.log" -C -c "$check/clearwater-snmpd.conf" -I -smux,mteTrigger,mteTriggerConf \
    -f -p "$check/snmpd-clearwater.pid" "udp:127.0.0.1:$port" &
check_pids="$!"
serves_counters clearwater clearwater
cw_perms=$(stat -c '%U:%G %a' /var/agentx/master)
[ "$cw_perms" = "root:snmp 777" ] || fail "under Clearwater's snmpd configuration /var/agentx/master is $cw_perms"
connects_as_nobody ||
    fail "another user's subagent cannot connect to /var/agentx/master under Clearwater's configuration"

for f in /etc/init.d/astaire /usr/share/clearwater/infrastructure/scripts/reload/memcached/astaire_reload \
         /usr/share/clearwater/infrastructure/scripts/restart/astaire_restart; do
    [ -x "$f" ] || fail "$f missing or not executable"
done
# The seeds' procedure through `service astaire …` on Clearwater's files.
scripts/clearwater-node-check.sh
# Over Clearwater's own astaire and its neighbours: nothing old stays active.
scripts/clearwater-upgrade-check.sh "$deb"

echo "package check passed: $version, $(du -h "$deb" | cut -f1) package, files, user, unit and MIB in place;" \
    "the stock snmpd with the shipped snippet serves the counters to 'public' from a daemon run as astaire ($perms socket);" \
    "under Clearwater's snmpd configuration community clearwater reads them and any user's subagent may connect ($cw_perms);" \
    "the init script and hooks drive a 3→4 and a 4→3 on a Clearwater node's files"
