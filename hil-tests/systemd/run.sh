#!/usr/bin/env bash
# The proof under real systemd: a Debian 12 root file system (mmdebstrap:
# systemd as PID 1, Debian's kernel and initramfs, vivid as /dev/video0)
# booted under qemu (TCG) with a second virtual disk as /data and a third
# carrying the package and the test script (guest.sh, run at boot by
# hil-test.service). Boot 1 installs the package and tests the service; the
# host then cuts the power (kills qemu) while it records; boot 2 checks fsck,
# recovery and that recording resumed. Prints the guest's lines and a closing
# "N passed, M failed"; exits non-zero on any failure, a crash or a timeout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

need=()
for p in mmdebstrap e2fsprogs qemu-system-x86 procps; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  # The VM rig's setup knows how to install qemu-system beside a newer qemu-utils.
  bash "$root/hil-tests/vm/setup.sh" x86_64 >/dev/null
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends mmdebstrap e2fsprogs procps >/dev/null
fi

cache="$here/cache"
out="$here/out"
mkdir -p "$cache"
rm -rf "$out"
mkdir -p "$out"

# The root file system, built once and kept (keyed by what goes into it).
packages="systemd,systemd-sysv,udev,kmod,linux-image-amd64,initramfs-tools,adduser,curl,util-linux,e2fsprogs,procps,dbus"
key=$(printf '%s\n' "$packages" | cat - "$here/hil-test.service" | sha256sum | cut -c1-12)
image="$cache/root-$key.img"
if [ ! -f "$image" ]; then
  echo "systemd-vm: building the root file system (mmdebstrap, a few minutes)" >&2
  tree="$cache/tree"
  "${sudo_cmd[@]}" rm -rf "$tree"
  "${sudo_cmd[@]}" mmdebstrap --mode=root --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tree" http://deb.debian.org/debian >"$cache/mmdebstrap.log" 2>&1
  "${sudo_cmd[@]}" sh -c "echo blackbox-vm > '$tree/etc/hostname'"
  "${sudo_cmd[@]}" sh -c "printf '%s\n' \
    '/dev/vda / ext4 rw,errors=remount-ro 0 1' \
    'LABEL=data /data ext4 defaults,noatime,errors=remount-ro 0 2' \
    'LABEL=payload /payload ext4 ro,nofail 0 0' > '$tree/etc/fstab'"
  "${sudo_cmd[@]}" mkdir -p "$tree/data" "$tree/payload" "$tree/boot/firmware"
  "${sudo_cmd[@]}" cp "$here/hil-test.service" "$tree/etc/systemd/system/"
  "${sudo_cmd[@]}" ln -sf /etc/systemd/system/hil-test.service \
    "$tree/etc/systemd/system/multi-user.target.wants/hil-test.service"
  "${sudo_cmd[@]}" sh -c "echo 'vivid' > '$tree/etc/modules-load.d/vivid.conf'"
  "${sudo_cmd[@]}" sh -c "echo 'options vivid n_devs=1 node_types=0x1' > '$tree/etc/modprobe.d/vivid.conf'"
  # No getty on the console: its output is the test's.
  "${sudo_cmd[@]}" ln -sf /dev/null "$tree/etc/systemd/system/serial-getty@ttyS0.service"
  "${sudo_cmd[@]}" cp "$tree"/boot/vmlinuz-* "$cache/vmlinuz-$key"
  "${sudo_cmd[@]}" cp "$tree"/boot/initrd.img-* "$cache/initrd-$key"
  rm -f "$image.tmp"
  "${sudo_cmd[@]}" mke2fs -q -t ext4 -d "$tree" -L root "$image.tmp" 1536M
  "${sudo_cmd[@]}" rm -rf "$tree"
  mv "$image.tmp" "$image"
fi

# The package, a build with test-only fault injection, the guest's script.
deb=$(bash "$root/scripts/package.sh" amd64 | tail -n 1)
(cd "$root" && cargo build --locked --quiet --features fault-injection --bin blackbox)
payload="$out/payload"
mkdir -p "$payload"
cp "$deb" "$payload/"
strip -o "$payload/blackbox-faults" "$root/target/debug/blackbox"
cp "$here/guest.sh" "$payload/"
mke2fs -q -t ext4 -d "$payload" -L payload "$out/payload.img" 128M
mke2fs -q -t ext4 -L data "$out/data.img" 512M
qemu-img create -q -f qcow2 -F raw -b "$image" "$out/root.qcow2"

# One guest at a time; it is stopped on every way out of this script.
qemu_pid=""
stop_guest() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -KILL "$qemu_pid" 2>/dev/null || true
  fi
  if [ -n "$qemu_pid" ]; then wait "$qemu_pid" 2>/dev/null || true; fi
}
trap stop_guest EXIT
boot() { # boot NAME [SECONDS]: starts the guest, with a time limit (a hang detector)
  # One vCPU and the ACPI PM timer as the clock: the settings under which
  # TCG guests do not stall (hil-tests/ota/firmware.py, EMULATION).
  qemu-system-x86_64 -accel tcg -cpu qemu64 -m 1536 -smp 1 \
    -nographic -no-reboot -net none \
    -kernel "$cache/vmlinuz-$key" -initrd "$cache/initrd-$key" \
    -append "root=/dev/vda rw console=ttyS0 quiet panic=-1 systemd.show_status=0 clocksource=acpi_pm" \
    -drive "file=$out/root.qcow2,if=virtio,format=qcow2" \
    -drive "file=$out/data.img,if=virtio,format=raw" \
    -drive "file=$out/payload.img,if=virtio,format=raw,readonly=on" \
    </dev/null >"$out/$1.log" 2>&1 &
  qemu_pid=$!
  deadline=$(( $(date +%s) + ${2:-900} ))
}
# hung NAME: whether the guest's console shows a hang (a kernel stall, a
# panic, a blocked task: hil-tests/ota/watch.py); says which, as a failure.
hung() {
  local what
  what=$(python3 "$root/hil-tests/ota/watch.py" "$out/$1.log") && return 1
  echo "FAIL systemd-vm: $1 hung, so it was stopped at once: ${what#*: }"
}
# Waits for the guest to end by itself, stopping it at its time limit or
# as soon as its console shows a hang.
wait_guest() {
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "systemd-vm: the guest ran past its time limit: stopped" >&2
      break
    fi
    hung "$1" && break
    sleep 1
  done
  stop_guest
}
# The guest's own lines (the console ends its lines with CR LF).
lines() { tr -d '\r' <"$out/$1.log" | grep -aE '^(ok|FAIL|hil:|[0-9]+ passed)' || true; }

start=$(date +%s)
echo "systemd-vm: boot 1 (install, service, watchdog, sandbox)" >&2
boot boot1
# Cut the power once the guest says it is recording; or it ends by itself.
while kill -0 "$qemu_pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
  if grep -aq '^hil: cut the power now' "$out/boot1.log"; then
    sleep 3
    break
  fi
  hung boot1 && break
  sleep 1
done
# The power cut (or the end of a guest that never asked for one).
stop_guest
lines boot1
echo "systemd-vm: power cut; boot 2 (fsck, recovery, recording again)" >&2
boot boot2
wait_guest boot2
lines boot2
echo "systemd-vm: both boots in $(( $(date +%s) - start )) s" >&2

# The guest's tally, and one check of the host's own: no qemu of this
# suite is left running.
summary=$(lines boot2 | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
passed=$(echo "${summary:-0 passed, 0 failed}" | grep -Eo '^[0-9]+')
failed=$(echo "${summary:-0 passed, 0 failed}" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
if [ -z "$summary" ]; then
  echo "FAIL the guest's tests ran to the end: no summary (crash or timeout); see $out/boot1.log and $out/boot2.log"
  failed=$((failed + 1))
fi
if pgrep -f "file=$out/root.qcow2" >/dev/null; then
  echo "FAIL no qemu of this suite is left: $(pgrep -af "file=$out/root.qcow2" | head -n 3)"
  failed=$((failed + 1))
else
  echo "ok   no qemu of this suite is left"
  passed=$((passed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
