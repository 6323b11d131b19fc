#!/usr/bin/env bash
# The client-families demo: a memcached cluster sharded by a Rails-style
# Ruby app through Dalli (Dalli::Client.new(servers, namespace: "app"),
# weights 1,2,2), resized from 3 to 4 nodes (the new one of weight 1). The
# real Dalli (Debian's ruby-dalli) writes typed values with the old list;
# Astaire shows what every node will receive, copies each moving key from
# its old owner on every node of the new list, and verifies; the old
# owners drop what they handed over (the keys Dalli's own ring now sends
# elsewhere), and Dalli with the new list reads every key back, type and
# all. See docs/placement.md for the other families.
# Environment: DEMO_KEYS (default 100000), DEMO_PORT_BASE (21411).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

keys=${DEMO_KEYS:-100000}
base=${DEMO_PORT_BASE:-21411}
ports=($base $((base + 1)) $((base + 2)) $((base + 3)))
driver=tests/clients/dalli.rb

source scripts/demo-common.sh
demo_start astaire-demo-clients
demo_memcached 256 "${ports[@]}"

# Dalli's servers as the app writes them: host:port:weight.
old="127.0.0.1:${ports[0]}:1,127.0.0.1:${ports[1]}:2,127.0.0.1:${ports[2]}:2"
new="$old,127.0.0.1:${ports[3]}:1"
# The same list in cluster_settings: Dalli hashes "host:port" as written,
# and the namespace is stored and hashed with the key, so nothing else to say.
printf 'servers=%s\nnew_servers=%s\n' "$old" "$new" > "$work/cluster_settings"

echo "== Dalli (ruby-dalli $(ruby -e 'require "dalli"; print Dalli::VERSION'), namespace \"app\") writes $keys typed values with the old list"
echo "write v1 $old" | ruby "$driver" "$keys" bytes app: | sed 's/^/   /'
echo
echo "== cluster_settings for the resize:"
sed 's/^/   /' "$work/cluster_settings"
echo
demo_resize dalli "weights move keys between old nodes too" "${ports[@]}"

echo
echo "== the old owners drop what Dalli's own ring now sends elsewhere"
ruby - "$driver" "$old" "$new" "$keys" <<'RUBY'
require "dalli"
require "logger"
Dalli.logger = Logger.new(nil)
driver, old, new, count = ARGV[0], ARGV[1].split(","), ARGV[2].split(","), Integer(ARGV[3])
# The driver's keys (tests/clients/keys.md), without running its loop.
eval(File.read(driver)[/^def key.*?^end\n/m])
ring = ->(list) { Dalli::Client.new(list, namespace: "app").send(:ring) }
before, after = ring.(old), ring.(new)
moved = 0
count.times do |i|
  stored = "app:" + key(i, "bytes")
  from, to = before.server_for_key(stored).name, after.server_for_key(stored).name
  next if from == to
  Dalli::Client.new(from, namespace: "app").delete(key(i, "bytes")) or abort("delete on #{from} failed")
  moved += 1
end
puts "   #{moved} of #{count} keys moved, and were dropped by their old owners"
RUBY

echo
echo "== Dalli with the new list reads every key back"
answer=$(echo "read v1 $new" | ruby "$driver" "$keys" bytes app:)
echo "   $answer"
/usr/bin/python3 -c "import json, sys; r = json.loads(sys.argv[1]); n = int(sys.argv[2])
print(f'   Dalli with the new list reads {r[\"hit\"]} of {n} keys, value and type ({r[\"missing\"]} missing, {r[\"wrong\"]} wrong)')
sys.exit(0 if (r['hit'], r['missing'], r['wrong']) == (n, 0, 0) else 1)" "$answer" "$keys"
echo "demo done; stopping the demo memcached"
