#!/usr/bin/env bash
# The checks every commit must pass before it is made: formatting and lints
# (Rust and shell). The tests are scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -q -- -D warnings
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${scripts[@]}"
