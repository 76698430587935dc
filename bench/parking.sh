#!/usr/bin/env bash
# Builds blackbox with the test-only faults (the test pattern held still)
# into its own target directory and runs the parked-CPU benchmark
# (bench/parking.py). BENCH_SECONDS shortens it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --features fault-injection --bin blackbox --target-dir target/bench-faults
exec python3 bench/parking.py target/bench-faults/release/blackbox
