#!/usr/bin/env bash
# The demo: a local memcached cluster resized from 3 to 4 nodes.
# Starts four memcached, a private snmpd (AgentX master) and snmptrapd on
# loopback, loads Clearwater-style data into the first three memcached,
# shows the plan, runs the new node's daemon, resizes as an operator does
# (rewrite cluster_settings, SIGHUP, wait-sync with progress) while the
# counters are read over SNMP and the alarm INFORMs arrive, verifies the
# node, and stops everything it started.
# Environment: DEMO_KEYS (default 300000), DEMO_VALUE_SIZE (100),
# DEMO_PORT_BASE (21211; snmpd uses DEMO_PORT_BASE+50).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

keys=${DEMO_KEYS:-300000}
value_size=${DEMO_VALUE_SIZE:-100}
base=${DEMO_PORT_BASE:-21211}
ports=($base $((base + 1)) $((base + 2)) $((base + 3)))

source scripts/demo-common.sh
demo_start astaire-demo
demo_memcached 512 "${ports[@]}"

# A private snmpd: SNMP on udp:127.0.0.1:$snmp_port, AgentX on a unix socket.
snmp_port=$((base + 50))
mkdir -p "$work/snmp/persistent"
cat > "$work/snmp/snmpd.conf" <<CONF
agentAddress udp:127.0.0.1:$snmp_port
master agentx
agentXSocket $work/snmp/agentx.sock
agentXPerms 777 777
agentXTimeout 1
agentXRetries 2
rocommunity public 127.0.0.1
CONF
SNMP_PERSISTENT_DIR="$work/snmp/persistent" MIBS="" \
    snmpd -f -Lo -C -I -smux -c "$work/snmp/snmpd.conf" -p "$work/snmp/snmpd.pid" >"$work/snmp/snmpd.log" 2>&1 &
pids+=($!)
# A private snmptrapd receiving the alarm INFORMs.
trap_port=$((base + 51))
printf 'authCommunity log,execute,net clearwater\n' > "$work/snmp/snmptrapd.conf"
SNMP_PERSISTENT_DIR="$work/snmp/persistent" MIBS="" \
    snmptrapd -f -Lo -C -c "$work/snmp/snmptrapd.conf" -On -F 'INFORM from %b:%V  %v\n' \
    "udp:127.0.0.1:$trap_port" >"$work/snmp/traps.log" 2>&1 &
pids+=($!)

snmp() {
    local tool=$1
    shift
    MIBS="" "$tool" -v2c -c public -t 1 -r 1 -M "+$PWD/../shared/mibs:$PWD/mibs" -m +PROJECT-CLEARWATER-MIB \
        "127.0.0.1:$snmp_port" "$@" 2>/dev/null
}

old="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
new="$old,127.0.0.1:${ports[3]}"
local="127.0.0.1:${ports[3]}"
printf 'servers=%s\n' "$old" > "$work/cluster_settings.before"
printf 'servers=%s\nnew_servers=%s\n' "$old" "$new" > "$work/cluster_settings"
cp "$work/cluster_settings.before" "$work/live_cluster_settings"

echo "== four memcached on ports ${ports[*]}; loading $keys keys into the first three"
$bin/astaire-loadgen --cluster-settings "$work/cluster_settings.before" --keys "$keys" --value-size "$value_size"

echo
echo "== cluster_settings for the resize:"
sed 's/^/   /' "$work/cluster_settings"
echo
echo "== the plan for the new node $local"
$bin/astaire plan --local-name "$local" --cluster-settings "$work/cluster_settings" | cut -c1-110

echo
echo "== the new node's daemon starts before it is listed: it stays idle"
ctl="$work/control"
$bin/astaire daemon --local-name "$local" --cluster-settings "$work/live_cluster_settings" \
    --control-socket "$ctl" --config /dev/null --agentx "$work/snmp/agentx.sock" \
    --snmp-ip "127.0.0.1:$trap_port" --bandwidth-limit 10000000 --nice 0 2>"$work/daemon.log" &
daemon=$!
pids+=($daemon)
for _ in $(seq 100); do $bin/astaire status --control-socket "$ctl" >/dev/null 2>&1 && break; sleep 0.05; done
$bin/astaire status --control-socket "$ctl" | sed 's/^/   /'

echo
echo "== the operator writes new_servers and reloads (systemctl reload astaire = SIGHUP), then waits"
echo "   (bandwidth limited to 10 MB/s so the counters can be watched; the daemon's default CPU limit is 5%)"
cp "$work/cluster_settings" "$work/live_cluster_settings"
kill -HUP "$daemon"
(sleep 2; snmp snmpwalk .1.2.826.0.1.1578918.9.9 > "$work/walk.txt") &
walker=$!
$bin/astaire wait-sync --control-socket "$ctl" --timeout 120 2>&1 | sed 's/^/   /'
echo "   wait-sync exit code: ${PIPESTATUS[0]}"
wait "$walker" 2>/dev/null || true
echo
echo "== the daemon's log"
grep -E "resync (started|completed|failed)|alarm|INFORM delivered|SIGHUP" "$work/daemon.log" | cut -c1-160 | sed 's/^/   /'
echo
echo "== what snmpwalk of the Astaire subtree showed 2 s into the resync (first rows of $(wc -l < "$work/walk.txt"))"
head -9 "$work/walk.txt" | sed 's/^/   /'
if ! grep -q 'astaireBucketsNeedingResync.0 = Gauge32' "$work/walk.txt"; then
    echo "demo: snmpd did not serve the Astaire counters (snmpd log: $(tail -3 "$work/snmp/snmpd.log" | tr '\n' ' '))" >&2
    exit 1
fi
echo
echo "== what snmptrapd logged: the raise (118.0.2, model state 5501.4 minor) and the clear (118.0.3, 5501.1)"
grep '^INFORM' "$work/snmp/traps.log" | sed 's/^/   /'
echo
echo "== verify: every key of the new node's vbuckets, compared with its sources"
$bin/astaire verify --local-name "$local" --cluster-settings "$work/cluster_settings"

echo
echo "== the old nodes have nothing to pull (a minimal resync only moves what changed home)"
$bin/astaire plan --local-name "127.0.0.1:${ports[0]}" --cluster-settings "$work/cluster_settings"
echo
kill -TERM "$daemon"; wait "$daemon" 2>/dev/null || true
echo "demo done; the daemon stopped on SIGTERM; stopping the demo memcached, snmpd and snmptrapd"
