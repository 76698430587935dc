#!/usr/bin/env bash
# The pi5 image's layout (issue 9): Raspberry Pi's archive cannot be reached
# from these machines, so this builds the pi5 profile from stand-ins for
# Raspberry Pi's packages (standin-firmware.sh: the real names and file
# layout, contents that are not a kernel) and checks what the Pi 5's
# firmware and the appliance read: partitions, autoboot.txt, config.txt,
# cmdline.txt, the boot files, the arm64 system. The qemu-x86_64 image gets
# the same checks in hil-tests/ota/run.sh, which boots it. Ends with
# "N passed, M failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
# Stopped early (a missing tool, a failed build): still a tally, the
# failure named. layout.py prints the tally when it runs.
stage="making the stand-in packages"
finish() {
  local rc=$?
  rm -rf "$work"
  if [ "$stage" != "checking the layout" ]; then
    echo "FAIL image: stopped early while $stage (exit $rc)"
    echo "0 passed, 1 failed"
  fi
}
trap finish EXIT
bash "$here/standin-firmware.sh" "$work/firmware" >/dev/null
start=$(date +%s)
stage="building the pi5 image"
image=$(bash "$root/image/build.sh" pi5 --version 1.0.0 --firmware "$work/firmware" | tail -n 1)
echo "image: $(basename "$image"): $(du -h --apparent-size "$image" | cut -f1) ($(du -h "$image" | cut -f1) on disk), built in $(( $(date +%s) - start )) s"
stage="checking the layout"
TMPDIR=$work python3 "$here/layout.py" --image "$image" --profile pi5 --version 1.0.0
