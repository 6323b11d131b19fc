#!/usr/bin/env bash
# The second demo: a memcached cluster sharded by libmemcached's weighted
# ketama (pylibmc, PHP's memcached with LIBKETAMA_COMPATIBLE, twemproxy with
# hash: md5), resized from 3 to 4 nodes. The real pylibmc writes the keys
# with the old list; Astaire shows, from one machine, what every node will
# receive, copies each moving key from its old owner on every node of the
# new list, and verifies; the old owners then drop what they handed over,
# and pylibmc with the new list reads every key back.
# Environment: DEMO_KEYS (default 100000), DEMO_PORT_BASE (21311).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

keys=${DEMO_KEYS:-100000}
base=${DEMO_PORT_BASE:-21311}
ports=($base $((base + 1)) $((base + 2)) $((base + 3)))
client=tests/clients/placement.py

source scripts/demo-common.sh
demo_start astaire-demo-ketama
demo_memcached 256 "${ports[@]}"

# Weights as ketama users write them: host:port:weight.
old="127.0.0.1:${ports[0]}:1,127.0.0.1:${ports[1]}:2,127.0.0.1:${ports[2]}:2"
new="$old,127.0.0.1:${ports[3]}:1"
printf 'servers=%s\nnew_servers=%s\n' "$old" "$new" > "$work/cluster_settings"

echo "== pylibmc (ketama_weighted) writes $keys keys with the old list"
/usr/bin/python3 "$client" write ketama "$old" "$keys" v1
echo
echo "== cluster_settings for the resize:"
sed 's/^/   /' "$work/cluster_settings"
echo
demo_resize ketama "unequal weights move keys between old nodes too" "${ports[@]}"

echo
echo "== the old owners drop what they handed over; pylibmc reads every key with the new list"
/usr/bin/python3 - "$client" "$old" "$new" "$keys" <<'PY'
import importlib.util, json, subprocess, sys
client, old, new, keys = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), int(sys.argv[4])
spec = importlib.util.spec_from_file_location("placement", client)
p = importlib.util.module_from_spec(spec); spec.loader.exec_module(p)
before, after = p.client("ketama", old), p.client("ketama", new)
names = list(p.keys(keys))
moved = [i for i, k in enumerate(names) if old[before.hash(k)].rsplit(":", 1)[0] != new[after.hash(k)].rsplit(":", 1)[0]]
import pylibmc
for i in moved:
    server = old[before.hash(names[i])].rsplit(":", 1)[0]
    pylibmc.Client([server]).delete(names[i])
hits = sum(1 for i, k in enumerate(names) if after.get(k) == f"v1:{i}".encode())
print(f"   {len(moved)} of {keys} keys moved; pylibmc with the new list reads {hits} of {keys}")
sys.exit(0 if hits == keys else 1)
PY
echo "demo done; stopping the demo memcached"
