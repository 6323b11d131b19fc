#!/usr/bin/env bash
# The floor under issue 32's targets: what a client that does nothing but
# move the copy's bytes spends, against Astaire in the same run.
#
# On a 3→4 of FLOOR_KEYS keys at 100 B (1,000,000 by default; memcached
# 1.6.18, Debian 12's), each round runs `astaire resync` into the fourth
# node, then scripts/floor/client.c (1 MiB writes, reads woken at
# SO_RCVLOWAT 256 KiB, no parsing) over the same traffic: the three
# sources' metadumps, and for as many keys as Astaire landed the four
# operations a landed key costs (the primary's `mg v`, the local `ms`, the
# local `mg f` and the second replica's `mg f`). Prints each round and
# the medians, in µs of CPU (user + system) per key landed.
#
# Usage: scripts/floor.sh   (FLOOR_KEYS, FLOOR_ROUNDS=3, DEMO_PORT_BASE=31411)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/demo-common.sh
. scripts/demo-common.sh
keys=${FLOOR_KEYS:-1000000}
rounds=${FLOOR_ROUNDS:-3}
base=${DEMO_PORT_BASE:-31411}
ports=("$base" $((base + 1)) $((base + 2)) $((base + 3)))
demo_start floor
gcc -O2 -Wall -o "$work/client" scripts/floor/client.c
demo_memcached 2048 "${ports[@]}"
node() { echo "127.0.0.1:$1"; }
printf 'servers=%s,%s,%s\n' "$(node "${ports[0]}")" "$(node "${ports[1]}")" "$(node "${ports[2]}")" >"$work/cs3"
printf 'servers=%s,%s,%s\nnew_servers=%s,%s,%s,%s\n' "$(node "${ports[0]}")" "$(node "${ports[1]}")" \
    "$(node "${ports[2]}")" "$(node "${ports[0]}")" "$(node "${ports[1]}")" "$(node "${ports[2]}")" \
    "$(node "${ports[3]}")" >"$work/cs4"
"$bin/astaire-loadgen" --cluster-settings "$work/cs3" --keys "$keys" >/dev/null
flush() { printf 'flush_all\r\nquit\r\n' | nc -q1 127.0.0.1 "$1" >/dev/null; }
printf 'lru_crawler metadump all\r\n' >"$work/dump.req"
# Requests for the first N keys of the first source's dump (all held there).
requests() {
    printf 'lru_crawler metadump all\r\nquit\r\n' | nc -q5 127.0.0.1 "${ports[0]}" |
        python3 -c '
import sys
from urllib.parse import unquote_to_bytes
n, work = int(sys.argv[1]), sys.argv[2]
keys = []
for line in sys.stdin.buffer:
    if line.startswith(b"key=") and len(keys) < n:
        keys.append(unquote_to_bytes(line.split(b" ", 1)[0][4:]))
value = b"v" * 100
forms = {
    "primary": lambda i, k: b"mg %s f t v u O%d\r\n" % (k, i),
    "store": lambda i, k: b"ms %s 100 T0 F%d ME O%d\r\n%s\r\n" % (k, i, i, value),
    "check": lambda i, k: b"mg %s f O%d\r\n" % (k, i),
}
for name, form in forms.items():
    with open(f"{work}/{name}.req", "wb") as out:
        out.write(b"".join(form(i, k) for i, k in enumerate(keys)) + b"mn\r\n")
' "$1" "$work"
}
client() { "$work/client" "$1" "$work/$2.req" "$3"; }
cpu() { awk '{ printf "%.3f", $1 + $2 }'; }
echo "round  astaire µs/landed (user+sys)   floor: dumps  4 ops  total µs/landed   astaire/floor"
results=()
for round in $(seq "$rounds"); do
    flush "${ports[3]}"
    out=$(/usr/bin/time -f 'TIME %U %S' "$bin/astaire" resync --json --local-name "$(node "${ports[3]}")" \
        --cluster-settings "$work/cs4" 2>&1)
    landed=$(grep -o '"landed":[0-9]*' <<<"$out" | head -1 | cut -d: -f2)
    astaire=$(grep '^TIME' <<<"$out" | awk '{ print $2 + $3 }')
    [ "$round" = 1 ] && requests "$landed"
    flush "${ports[3]}"
    dumps=0
    for p in "${ports[@]:0:3}"; do
        dumps=$(echo "$dumps + $(client "$p" dump END$'\r\n' | cpu)" | bc)
    done
    ops=0
    for run in "${ports[0]} primary" "${ports[3]} store" "${ports[3]} check" "${ports[0]} check"; do
        read -r p form <<<"$run"
        ops=$(echo "$ops + $(client "$p" "$form" MN$'\r\n' | cpu)" | bc)
    done
    line=$(awk -v a="$astaire" -v d="$dumps" -v o="$ops" -v n="$landed" -v r="$round" 'BEGIN {
        f = (d + o) * 1e6 / n
        printf "%5d  %28.2f   %12.2f %6.2f %16.2f   %13.2f", r, a * 1e6 / n, d * 1e6 / n, o * 1e6 / n, f, a * 1e6 / n / f }')
    echo "$line"
    results+=("$line")
done
printf '%s\n' "${results[@]}" | awk '{ a[NR] = $2; d[NR] = $3; o[NR] = $4; f[NR] = $5 }
    function median(x, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }; return x[int((n + 1) / 2)] }
    END { printf "median %28.2f   %12.2f %6.2f %16.2f   %13.2f\n", median(a, NR), median(d, NR), median(o, NR), median(f, NR), median(a, NR) / median(f, NR) }'
echo "keys landed per round: $landed of $keys; memcached $(memcached -V | awk '{ print $2 }')"
