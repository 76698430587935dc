#!/usr/bin/env bash
# Builds blackbox and runs it. With no arguments it serves the built-in test
# pattern on http://127.0.0.1:8080/ and prints the address to open; any
# arguments are passed to `blackbox run` (see `blackbox run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
if [ "$#" -eq 0 ]; then
  set -- --source testsrc
fi
exec ./target/release/blackbox run "$@"
