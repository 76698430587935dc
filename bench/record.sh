#!/usr/bin/env bash
# Builds the release binary and runs the recorder benchmark (bench/record.py).
# BENCH_SECONDS and BENCH_KILL_TRIALS shorten it; BENCH_DIR picks the file
# system to record on (default: the system's temp directory).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bin blackbox
exec python3 bench/record.py target/release/blackbox
