#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz.sh [TARGET] [SECONDS]   (default: every target, 60 s each)
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable
# toolchain provide them. Crashes land in fuzz/artifacts/TARGET/.
# For each target it prints the executions, the final coverage (cov = edges,
# ft = features) and when coverage last grew, so a plateau is visible; the
# full libFuzzer log is kept in target/fuzz-logs/TARGET.log.
# CI runs the same decoders on random input through property tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds=${2:-60}
known=$(cd fuzz && cargo fuzz list)
targets=${1:-$known}
for target in $targets; do
    if ! grep -qx "$target" <<<"$known"; then
        echo "fuzz: no target named '$target'; the targets are:" $known >&2
        exit 2
    fi
done
logs=$PWD/target/fuzz-logs
mkdir -p "$logs"
cd fuzz
status=0
for target in $targets; do
    echo "== $target, $seconds s"
    log=$logs/$target.log
    if ! RUSTC_BOOTSTRAP=1 cargo fuzz build "$target" >"$log" 2>&1; then
        grep -E '^error' "$log" | head -5 >&2
        echo "fuzz: $target did not build (log: $log)" >&2
        status=1
        continue
    fi
    start=$(date +%s)
    # Prefix every libFuzzer line with the seconds since start.
    # fuzz/seeds/TARGET (checked in: real lines of each memcached version)
    # seeds the working corpus in fuzz/corpus/TARGET.
    seeds=()
    [ -d "seeds/$target" ] && seeds=("corpus/$target" "seeds/$target") && mkdir -p "corpus/$target"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "${seeds[@]}" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 |
        while IFS= read -r line; do printf '%d %s\n' "$(($(date +%s) - start))" "$line"; done >"$log" || status=1
    grep -E 'panicked at|==[0-9]+== ?ERROR|deadly signal|Test unit written' "$log" | head -5 || true
    awk -v target="$target" '
        / cov: / { for (i = 1; i <= NF; i++) { if ($i == "cov:") cov = $(i + 1); if ($i == "ft:") ft = $(i + 1) }
                   if (cov != lastcov) { covgrew = $1; lastcov = cov }
                   if (ft != lastft) { ftgrew = $1; lastft = ft } }
        /stat::number_of_executed_units/ { execs = $NF }
        /stat::average_exec_per_sec/ { rate = $NF }
        END { printf "%s: %s execs (%s/s), cov %s (last grew at %s s), ft %s (last grew at %s s)\n",
                     target, execs, rate, lastcov, covgrew, lastft, ftgrew }' "$log"
done
exit $status
