#!/usr/bin/env bash
# Installs what the tests need and runs every test:
#  1. cargo: unit tests, integration tests against the real binary, and the
#     benchmarks once each in test mode (so they cannot rot);
#  2. the VM suites: a real V4L2 device (the kernel's vivid driver) in qemu,
#     for x86_64 and for the aarch64 (Raspberry Pi 5) build.
# Ends with one line "N passed, M failed" over everything.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
cargo test --locked --workspace --all-targets 2>&1 | tee "$log" || status=1
passed=$(grep -Eo '^test result: .*' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .*' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')

for arch in x86_64 aarch64; do
  if [ "${SKIP_VM:-0}" = 1 ]; then break; fi
  bash hil-tests/vm/run.sh "$arch" 2>&1 | tee "$log" || status=1
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  passed=$((passed + $(echo "${line:-0 passed}" | grep -Eo '^[0-9]+')))
  failed=$((failed + $(echo "${line:-0 passed, 1 failed}" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')))
done

echo
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
