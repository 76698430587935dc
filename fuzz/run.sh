#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each, starting from
# the committed seeds in fuzz/corpus/TARGET; what the fuzzer finds new goes
# to a scratch corpus, so the committed one stays as it is. Any panic, or an
# input that takes more than 10 s (a hang), fails the run; the input is kept
# in fuzz/artifacts/TARGET/. Needs cargo-fuzz (installed here if missing) and
# runs on the stable toolchain (RUSTC_BOOTSTRAP=1 allows the sanitizer
# flags). FUZZ_TARGETS="a b" runs only those.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build -O
failed=0
for t in $targets; do
  mkdir -p "$scratch/$t"
  echo "fuzz: $t for $seconds s"
  if cargo fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>"$scratch/$t.log"; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$scratch/$t.log" | tr '\n' ' '
    echo
  else
    echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
    tail -n 40 "$scratch/$t.log" >&2
    failed=1
  fi
done
exit "$failed"
