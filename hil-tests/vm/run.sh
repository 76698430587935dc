#!/usr/bin/env bash
# Runs a VM suite for ARCH (x86_64 or aarch64): a Debian kernel under qemu
# (TCG, no KVM needed) with the vivid V4L2 driver loaded as /dev/video0 and
# /dev/video1 (two cameras), a
# static blackbox, and the test runner (hil-tests/vm/runner) as the payload.
# SUITE is ARCH's own suite by default, or `bench` (frame rates, printed).
# Prints the runner's lines and its closing "N passed, M failed"; exits
# non-zero on any failure, a crash, or a timeout. HIL_FILTER=TEXT runs only
# the tests whose names contain TEXT.
set -euo pipefail
arch=${1:?usage: run.sh x86_64|aarch64 [SUITE]}
suite=${2:-$arch}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# A hang detector, not a speed claim (the console watch sees most hangs).
timeout_s=${HIL_TIMEOUT:-1200}

bash "$here/setup.sh" "$arch"
case "$arch" in
  x86_64) triple=x86_64-unknown-linux-gnu ;;
  aarch64) triple=aarch64-unknown-linux-gnu ;;
esac
bin_dir=$(bash "$root/scripts/build-static.sh" "$triple")

cache="$here/cache/$arch/root"
kdirs=("$cache"/lib/modules/*/)
kdir=${kdirs[0]}
kernels=("$cache"/boot/vmlinuz-*)
kernel=${kernels[0]}
out="$here/out/$arch"
rm -rf "$out"
mkdir -p "$out/initramfs"/{bin,sbin,lib/modules,proc,sys,dev,tmp}
ird="$out/initramfs"

if [ "$arch" = aarch64 ]; then
  cp "$cache/bin/busybox" "$ird/bin/busybox"
else
  cp /bin/busybox "$ird/bin/busybox"
fi
for applet in sh mount insmod rmmod ifconfig sleep poweroff sync cat echo ls head tr usleep; do
  ln -s busybox "$ird/bin/$applet"
done
cp "$bin_dir/blackbox" "$bin_dir/blackbox-hil" "$ird/bin/"
# rpicam-vid's stand-in (busybox sh), for the Pi camera cases.
cp "$here/fake-rpicam-vid.sh" "$ird/bin/fake-rpicam-vid"
chmod +x "$ird/bin/fake-rpicam-vid"

# vivid and what it needs, in load order (RECIPES.md section 1).
order="mc videodev videobuf2-common videobuf2-v4l2 rc-core cec v4l2-dv-timings v4l2-tpg videobuf2-memops videobuf2-dma-contig videobuf2-vmalloc"
for m in $order vivid; do
  ko=$(find "$kdir" -name "$m.ko" | head -n 1)
  [ -n "$ko" ] || { echo "run: module $m not found in $kdir" >&2; exit 1; }
  cp "$ko" "$ird/lib/modules/$m.ko"
done
# The input core's event interface and uinput: the virtual accelerometer.
for m in evdev uinput; do
  ko=$(find "$kdir" -name "$m.ko" | head -n 1)
  [ -n "$ko" ] || { echo "run: module $m not found in $kdir" >&2; exit 1; }
  cp "$ko" "$ird/lib/modules/$m.ko"
done
order="$order evdev uinput"
echo "$order" > "$ird/lib/modules/order"

cat > "$ird/init" <<INIT
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ifconfig lo 127.0.0.1 up
for m in \$(cat /lib/modules/order); do insmod /lib/modules/\$m.ko || echo "insmod \$m failed"; done
insmod /lib/modules/vivid.ko n_devs=2 node_types=0x1,0x1 || echo "insmod vivid failed"
i=0
while [ ! -e /dev/video1 ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i+1)); done
echo "hil: starting the $suite suite"
/bin/blackbox-hil $suite "${HIL_FILTER:-}"
echo "hil: runner exit \$?"
sync
poweroff -f
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initramfs.gz")

# x86_64: the baseline qemu64 CPU model, not "max": TCG emulates AVX2 far
# more slowly than SSE2, and with AVX2 offered libjpeg-turbo's dispatch and
# vivid's pattern generator cannot keep 720p at 60 fps on two host cores.
# One vCPU, and on x86 the ACPI PM timer as the clock: the settings under
# which TCG guests do not stall (hil-tests/ota/firmware.py, EMULATION);
# the cases check that every frame is accounted for, which needs no second
# CPU.
# shellcheck disable=SC2054 # commas belong to qemu's option values
case "$arch" in
  x86_64)
    qemu=(qemu-system-x86_64 -accel tcg -cpu "${HIL_CPU:-qemu64}" -m 1024 -smp 1
          -append "console=ttyS0 quiet panic=-1 clocksource=acpi_pm") ;;
  aarch64)
    qemu=(qemu-system-aarch64 -M virt -cpu cortex-a76 -accel tcg -m 1024 -smp 1
          -append "console=ttyAMA0 quiet panic=-1") ;;
esac
echo "run: booting $(basename "$kernel") under ${qemu[0]} (TCG)" >&2
start=$(date +%s)
# The guest in the background, its console shown as it comes and watched:
# a kernel stall, a panic or a blocked task (hil-tests/ota/watch.py) ends
# it at once, said as what it is; the time limit only catches the rest.
raw="$out/console.raw"
: >"$raw"
timeout "$timeout_s" "${qemu[@]}" -nographic -no-reboot -net none \
  -kernel "$kernel" -initrd "$out/initramfs.gz" </dev/null >"$raw" 2>&1 &
qemu_pid=$!
trap 'kill -KILL "$qemu_pid" 2>/dev/null || true' EXIT
tail --pid="$qemu_pid" -n +1 -f "$raw" | tr -d '\r' &
shown=$!
hang=""
while kill -0 "$qemu_pid" 2>/dev/null; do
  if hang=$(python3 "$root/hil-tests/ota/watch.py" "$raw"); then
    hang=""
  else
    kill -KILL "$qemu_pid" 2>/dev/null || true
    break
  fi
  sleep 2
done
wait "$qemu_pid" 2>/dev/null || true
wait "$shown" 2>/dev/null || true
tr -d '\r' <"$raw" >"$out/console.log"
echo "run: $arch VM finished in $(( $(date +%s) - start )) s" >&2
if [ -n "$hang" ]; then
  echo "FAIL vm-$arch: the guest hung, so it was stopped at once: ${hang#*: }"
  echo "0 passed, 1 failed"
  exit 1
fi

summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/console.log" | tail -n 1 || true)
if [ -z "$summary" ]; then
  echo "run: no summary from the $suite suite (crash or timeout); see $out/console.log" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
grep -q "^hil: runner exit 0$" "$out/console.log"
