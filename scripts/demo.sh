#!/usr/bin/env bash
# The demo: a local memcached cluster resized from 3 to 4 nodes.
# Starts four memcached on loopback, loads Clearwater-style data into the
# first three, shows the plan, resyncs the new node with a progress bar,
# verifies it, and stops everything it started.
# Environment: DEMO_KEYS (default 300000), DEMO_VALUE_SIZE (100),
# DEMO_PORT_BASE (21211).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

keys=${DEMO_KEYS:-300000}
value_size=${DEMO_VALUE_SIZE:-100}
base=${DEMO_PORT_BASE:-21211}
ports=($base $((base + 1)) $((base + 2)) $((base + 3)))

echo "== building (release)"
cargo build --release --quiet
bin=target/release

work=$(mktemp -d /tmp/astaire-demo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

user_args=()
[ "$(id -u)" -eq 0 ] && user_args=(-u root)
for port in "${ports[@]}"; do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
        echo "demo: port $port is in use; set DEMO_PORT_BASE to a free range" >&2
        exit 1
    fi
    memcached -l 127.0.0.1 -p "$port" -U 0 -m 512 -t 2 "${user_args[@]}" &
    pids+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
done

old="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
new="$old,127.0.0.1:${ports[3]}"
local="127.0.0.1:${ports[3]}"
printf 'servers=%s\n' "$old" > "$work/cluster_settings.before"
printf 'servers=%s\nnew_servers=%s\n' "$old" "$new" > "$work/cluster_settings"

echo "== four memcached on ports ${ports[*]}; loading $keys keys into the first three"
$bin/astaire-loadgen --cluster-settings "$work/cluster_settings.before" --keys "$keys" --value-size "$value_size"

echo
echo "== cluster_settings for the resize:"
sed 's/^/   /' "$work/cluster_settings"
echo
echo "== the plan for the new node $local"
$bin/astaire plan --local-name "$local" --cluster-settings "$work/cluster_settings" | cut -c1-110

echo
echo "== resync (what 'systemctl reload astaire' triggers on every node)"
$bin/astaire resync --local-name "$local" --cluster-settings "$work/cluster_settings"

echo
echo "== verify: every key of the new node's vbuckets, compared with its sources"
$bin/astaire verify --local-name "$local" --cluster-settings "$work/cluster_settings"

echo
echo "== the old nodes have nothing to pull (a minimal resync only moves what changed home)"
$bin/astaire plan --local-name "127.0.0.1:${ports[0]}" --cluster-settings "$work/cluster_settings"
echo
echo "demo done; stopping the demo memcached processes"
