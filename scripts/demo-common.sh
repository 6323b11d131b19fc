# Shared by the demos (sourced): a work directory removed at exit with
# every process the demo started, and memcached on loopback ports.
# Sets: bin, work, pids. Usage: demo_start NAME; demo_memcached MiB PORT...;
# demo_resize PLACEMENT WHY PORT... (after cluster_settings is written).

demo_start() {
    echo "== building (release)"
    cargo build --release --quiet
    bin=target/release
    work=$(mktemp -d "/tmp/$1.XXXXXX")
    pids=()
    trap demo_cleanup EXIT
}

demo_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # Wait for them to exit before removing their directory: snmpd writes
    # its persistent state on the way out.
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work" || echo "demo: could not remove $work" >&2
}

demo_memcached() {
    local memory=$1 port user_args=()
    shift
    [ "$(id -u)" -eq 0 ] && user_args=(-u root)
    for port in "$@"; do
        if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            echo "demo: port $port is in use; set DEMO_PORT_BASE to a free range" >&2
            exit 1
        fi
        memcached -l 127.0.0.1 -p "$port" -U 0 -m "$memory" -t 2 "${user_args[@]}" &
        pids+=($!)
    done
    for port in "$@"; do
        for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
    done
}

# The operator's part of a resize under PLACEMENT, on every node of the new
# list (PORT...): what each will receive, counted from the sources' key
# lists; each node pulls its keys; each node is verified. WHY says why old
# nodes pull too.
demo_resize() {
    local placement=$1 why=$2 port
    shift 2
    echo "== what every node will receive, counted from the sources' key lists (read-only)"
    $bin/astaire plan --count --every-node --placement "$placement" --cluster-settings "$work/cluster_settings" |
        sed 's/^/   /'
    echo
    echo "== every node of the new list pulls its keys from their old owners ($why)"
    for port in "$@"; do
        $bin/astaire resync --placement "$placement" --local-name "127.0.0.1:$port" \
            --cluster-settings "$work/cluster_settings" --quiet --json >"$work/report.json"
        /usr/bin/python3 -c "import json, sys; r = json.load(open(sys.argv[1])); c = r['counts']
print(f'   {sys.argv[2]}: landed {c[\"landed\"]}, kept {c[\"kept\"]}, in {r[\"seconds\"]:.2f} s')" \
            "$work/report.json" "127.0.0.1:$port"
    done
    echo
    echo "== verify, node by node: every moved key is on its new owner with its source's value"
    for port in "$@"; do
        $bin/astaire verify --placement "$placement" --local-name "127.0.0.1:$port" \
            --cluster-settings "$work/cluster_settings" | tail -n 1 | sed 's/^/   /'
    done
}
