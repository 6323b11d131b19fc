#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz.sh [TARGET] [SECONDS]   (default: every target, 60 s each)
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable
# toolchain provide them. Crashes land in fuzz/artifacts/TARGET/.
# CI runs the same decoders on random input through property tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds=${2:-60}
targets=${1:-$(cd fuzz && cargo fuzz list)}
cd fuzz
for target in $targets; do
    echo "== $target, $seconds s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | grep -E '^#[0-9]+ *DONE|ERROR|panicked' || true
done
