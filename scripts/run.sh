#!/usr/bin/env bash
# Builds blackbox and runs it. With no arguments it uses the camera it finds
# (the Pi camera through rpicam-vid, else a V4L2 camera such as a USB webcam)
# or, when there is none, the built-in test pattern, serves it on
# http://127.0.0.1:8080/ and prints the address to open. Arguments are passed
# to `blackbox run` (see `blackbox run --help`); the camera is still found
# automatically unless they name --source or a --config file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
case " $* " in
  *" --source"*|*" --config"*) ;;
  *) set -- --source auto "$@" ;;
esac
exec ./target/release/blackbox run "$@"
