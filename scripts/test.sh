#!/usr/bin/env bash
# Installs what the tests need and runs every test:
#  1. cargo: unit tests, integration tests against the real binary (built
#     with the test-only fault injection), and the benchmarks once each in
#     test mode (so they cannot rot); every test binary runs even when an
#     earlier one fails;
#  2. the page in a real browser (headless Chromium) at 360 and 1280 px;
#  3. the VM suites: a real V4L2 device (the kernel's vivid driver) in qemu,
#     for x86_64 and for the aarch64 (Raspberry Pi 5) build, and the Debian
#     package under real systemd (a Debian 12 system booted in qemu);
#  4. the appliance: the SD-card image under a stand-in for the Pi 5
#     firmware in qemu, through every update scenario, every cut of an
#     autoboot.txt commit and the Pi 5 rig's cases (hil-tests/ota), and the
#     pi5 image built from stand-ins for Raspberry Pi's packages, checked
#     as its firmware reads it (hil-tests/image);
#  5. every program the scripts call is in the base system or installed by
#     one of them (scripts/check-commands.py).
# Ends with one line "N passed, M failed" over everything, and fails if
# anything failed or did not report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
log=$(mktemp)
failures=$(mktemp)
times=$(mktemp)
image_log=$(mktemp)
trap 'rm -f "$log" "$failures" "$times" "$image_log"' EXIT

status=0
start=$SECONDS
cargo test --locked --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=1
echo "cargo test: $((SECONDS - start)) s" >>"$times"
count() { { grep -E '^test result: ' "$log" || true; } | grep -Eo "[0-9]+ $1" | awk '{s+=$1} END {print s+0}'; }
passed=$(count passed)
failed=$(count failed)
# Name every failing test again at the end, so a log cut short still says
# what failed.
{ grep -E '^test .* FAILED$|^error: test failed' "$log" || true; } >>"$failures"
# A test binary that crashed, or did not build, reports no result line:
# count each target cargo says failed, at least one if cargo failed at all.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  targets=$(grep -Eo '^error: [0-9]+ targets? failed' "$log" | grep -Eo '[0-9]+' || true)
  failed=${targets:-1}
fi

# Each suite ends with "N passed, M failed"; no such line counts as a failure.
tally() { # tally NAME LOG SECONDS: counts a finished suite from its output
  echo "$1: $3 s" >>"$times"
  line=$({ grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" || true; } | tail -n 1)
  { grep -E '^FAIL ' "$2" | sort -u || true; } | sed "s|^|$1: |" >>"$failures"
  # A suite that stopped without its line: its last lines say why (the
  # summary at the end is what survives a log cut short).
  [ -n "$line" ] || {
    echo "$1: no \"N passed, M failed\" line; its last lines:"
    tail -n 15 "$2" | cut -c1-300 | sed 's/^/    /'
  } >>"$failures"
  passed=$((passed + $(echo "${line:-0 passed}" | grep -Eo '^[0-9]+')))
  failed=$((failed + $(echo "${line:-0 passed, 1 failed}" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')))
}
suite() {
  local start=$SECONDS
  "$@" 2>&1 | tee "$log" || status=1
  tally "${*:2}" "$log" $((SECONDS - start))
}

# The page in headless Chromium, at 360 and 1280 px.
suite bash hil-tests/browser/run.sh
if [ "${SKIP_VM:-0}" != 1 ]; then
  suite bash hil-tests/vm/run.sh x86_64
  suite bash hil-tests/vm/run.sh aarch64
  # The package under real systemd, with a power cut.
  suite bash hil-tests/systemd/run.sh
  # The pi5 image's layout. Its build is one qemu-user process for most of
  # its time, so it runs beside the OTA suite, whose guests leave CPU idle
  # while they wait (health gates, reboots); its output follows.
  image_start=$SECONDS
  bash hil-tests/image/run.sh >"$image_log" 2>&1 &
  image_pid=$!
  # The SD-card image and its updates (build, tryboot, commit, rollback).
  suite bash hil-tests/ota/run.sh
  wait "$image_pid" || status=1
  cat "$image_log"
  tally hil-tests/image/run.sh "$image_log" $((SECONDS - image_start))
fi

# Every program the scripts call is in the base system or installed by one
# of them (last: by now every suite has installed what it needs).
suite python3 scripts/check-commands.py

echo
# How long each part took, and the whole (the budget: 50 minutes on an
# idle 2-core machine, 75 with one core busy; CI stops at 90).
sed 's/^/took: /' "$times"
echo "took: total $SECONDS s ($((SECONDS / 60)) min $((SECONDS % 60)) s)"
if [ -s "$failures" ]; then
  echo "what failed:"
  sed 's/^/  /' "$failures"
fi
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
