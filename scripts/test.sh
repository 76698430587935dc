#!/usr/bin/env bash
# Installs what the tests need and runs every test: unit tests, the
# integration tests against the real binary, and the benchmarks once each
# in test mode (so they cannot rot).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --locked --all-targets
