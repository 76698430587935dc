#!/usr/bin/env bash
# The VM benchmark: blackbox on the kernel's vivid driver in qemu (x86_64,
# software emulation), each case read by a viewer for a few seconds; prints
# the frame rate the driver delivered, the rate the viewer received, their
# ratio, the mean encode time and the frames the encoders were too busy for.
# The figures are the emulated guest's, on this host, in this run: compare
# rows with each other, not with a Pi. See hil-tests/vm/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash hil-tests/vm/run.sh x86_64 bench
