#!/usr/bin/env bash
# The emulated OTA proof (issue 9): builds the qemu-x86_64 appliance image
# (version 1.0.0) and, from the same root file system, four update bundles:
# good (1.1.0), broken (1.2.0, whose blackbox config does not parse, so it
# never becomes healthy), old (0.9.0) and forged (1.1.0 signed by a key the
# device does not trust). Then: the image's layout (hil-tests/image/layout.py);
# scenarios.py, which boots fresh copies of the image under the firmware
# stand-in through each update scenario and the Wi-Fi one (a phone and a
# home network on simulated radios); fatcut.py, a power cut at every
# write of an autoboot.txt commit; and the Pi 5 rig's cases on this image
# (hil-tests/pi5, --board qemu). Ends with one "N passed, M failed" over
# all of them; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=qemu-x86_64
out="$root/image/out/$profile"
bundles="$here/out/bundles"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

layout_log=$(mktemp)
scenario_log=$(mktemp)
fatcut_log=$(mktemp)
cases_log=$(mktemp)
watch_log=$(mktemp)
# A suite that stops early (an install step, the image build) still ends
# with its tally, the failure named.
stage="installing what it needs"
tallied=0
finish() {
  local rc=$?
  rm -f "$layout_log" "$scenario_log" "$fatcut_log" "$cases_log" "$watch_log"
  if [ "$tallied" != 1 ]; then
    echo "FAIL ota: stopped early while $stage (exit $rc)"
    echo "0 passed, 1 failed"
  fi
}
trap finish EXIT

need=()
for p in qemu-system-x86 openssh-client e2fsprogs mtools python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  bash "$root/hil-tests/vm/setup.sh" x86_64 >/dev/null
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    openssh-client e2fsprogs mtools python3 >/dev/null
fi

# The image and the bundles. OTA_REUSE=1 (while working on the tests) keeps
# the last ones.
image="$out/blackbox-1.0.0-$profile.img"
build() {
  start=$(date +%s)
  stage="building the image"
  image=$(bash "$root/image/build.sh" "$profile" --version 1.0.0 --keep-tree | tail -n 1)
  echo "ota: image $(basename "$image"): $(du -h --apparent-size "$image" | cut -f1) ($(du -h "$image" | cut -f1) on disk), built in $(( $(date +%s) - start )) s" >&2

  stage="making the bundles"
  bash "$here/bundles.sh" "$profile" "$bundles" >/dev/null

  # The rig's SSH key (the owner's, on a real card).
  ssh-keygen -q -t ed25519 -N '' -C blackbox-hil -f "$bundles/rig-key"
}
if [ "${OTA_REUSE:-0}" = 1 ] && [ -f "$bundles/rig-key" ] && [ -f "$image" ]; then
  echo "ota: reusing $image and $bundles" >&2
else
  build
fi
# The phone of the wifi scenario: examples/wifi_phone.rs, phone.sh, and
# busybox for its DHCP client (Debian's static build, unpacked here, not
# installed).
stage="making the phone's tools"
phone="$here/out/phone"
mkdir -p "$phone"
(cd "$root" && cargo build --quiet --example wifi_phone)
cp "${CARGO_TARGET_DIR:-$root/target}/debug/examples/wifi_phone" "$here/phone.sh" "$phone/"
if [ ! -x "$phone/busybox" ]; then
  unpack=$(mktemp -d)
  chmod 755 "$unpack"
  (cd "$unpack" && { apt-get download -qq busybox-static 2>/dev/null ||
    { "${sudo_cmd[@]}" apt-get update -qq && apt-get download -qq busybox-static; }; })
  dpkg-deb -x "$unpack"/busybox-static_*.deb "$unpack/tree"
  cp "$unpack/tree/bin/busybox" "$phone/busybox"
  rm -rf "$unpack"
fi
stage="running the suites"
# What the firmware stand-in and the appliance read, before anything boots.
python3 "$root/hil-tests/image/layout.py" --image "$image" --profile "$profile" --version 1.0.0 \
  | tee "$layout_log" || true

status=0
logs=("$layout_log")
run() { # run LOG COMMAND...: one more part of the suite, its output kept
  local log=$1
  shift
  logs+=("$log")
  "$@" | tee "$log" || status=1
}
# The console watch that ends a hung boot knows a hang when it sees one.
run "$watch_log" python3 "$here/watch.py" --self-test
run "$scenario_log" python3 "$here/scenarios.py" --image "$image" --bundles "$bundles" --key "$bundles/rig-key" \
  --phone "$phone" "$@"
# Every power cut of an autoboot.txt commit (qemu's write log, replayed).
run "$fatcut_log" python3 "$here/fatcut.py" --image "$image" --key "$bundles/rig-key"
# The Pi 5 rig's cases, on this image under the firmware stand-in.
run "$cases_log" bash "$root/hil-tests/pi5/run.sh" --board qemu --image "$image" --key "$bundles/rig-key" \
  --bundle "$bundles/good.raucb" --broken-bundle "$bundles/broken.raucb" --workdir "$here/out/pi5-cases"
# One line over all of them.
passed=0
failed=0
for log in "${logs[@]}"; do
  line=$({ grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" || echo "0 passed, 1 failed"; } | tail -n 1)
  read -r p _ f _ <<< "$line"
  passed=$((passed + p))
  failed=$((failed + f))
done
# Boots started again because the emulator failed (never the product):
# counted, named, and printed beside the tally.
retries=$(cat "${logs[@]}" | grep -c '^retried: ' || true)
echo "ota: $retries retried: emulator failures$(cat "${logs[@]}" | grep '^retried: ' | sed -E 's/^retried: ([^:]*): ([^(]*) \(.*/; \1: \2/' | tr -d '\n')"
tallied=1
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
