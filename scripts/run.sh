#!/usr/bin/env bash
# Builds blackbox and runs it. With no arguments it uses the camera it finds
# (the Pi camera through rpicam-vid, else a V4L2 camera such as a USB webcam)
# or, when there is none, the built-in test pattern, serves it on
# http://127.0.0.1:8080/ and prints the address to open. Any arguments are
# passed to `blackbox run` instead (see `blackbox run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
if [ "$#" -eq 0 ]; then
  set -- --source auto
fi
exec ./target/release/blackbox run "$@"
