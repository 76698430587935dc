"""A stand-in for the Raspberry Pi 5 boot firmware, for qemu.

qemu cannot run the Pi's firmware, so this plays the part of it that the
A/B updates rely on, as raspberrypi/documentation (config_txt/autoboot.adoc)
describes it, on a raw disk image with the appliance's GPT layout:

- read autoboot.txt (at most 512 bytes) from partition 1 (FAT): [all]
  applies to every boot, [tryboot] only when the one-shot tryboot flag is
  set, tryboot_a_b=1 makes boot_partition a whole-partition choice;
- honour and clear the one-shot flag: it is cleared before the boot starts,
  so any crash, hang, reset or power cut afterwards boots the default;
- the flag is set the way a Pi's kernel sets it: `reboot "0 tryboot"`
  makes the kernel pass the command to the firmware at restart; Linux
  prints it ("reboot: Restarting system with command '0 tryboot'") on the
  serial console, which is where this stand-in reads it;
- boot the chosen partition's kernel, initramfs and cmdline.txt, telling the
  OS which partition it booted and whether as a tryboot (a Pi puts these in
  the device tree, chosen/bootloader/{partition,tryboot}; here they go on the
  kernel command line: blackbox.boot_partition=N blackbox.tryboot=0|1).

An i6300esb watchdog resets a hung guest (qemu exits; -no-reboot), which
the stand-in treats as a reset. This file parses autoboot.txt on its own,
from the documentation, not with blackbox's code: it is the second reader
that checks blackbox's writer.
"""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid

SECTOR = 512

# EMULATION: how the stand-in's CPU is set up, for a guest that never
# stalls under TCG (issue 16; hil-tests/ota/soak.sh measures it).
# - One vCPU. The stall seen was a guest whose second vCPU stopped
#   receiving its timer interrupts ("rcu_preempt kthread timer wakeup
#   didn't happen ... on cpu=1") and never recovered; and multi-threaded
#   TCG with two vCPUs aborted in qemu 10.0 about once in 250 boots
#   ("iotlb_to_section: Assertion"). Nothing the appliance does needs a
#   second CPU to be right, and under TCG a second vCPU mostly competes
#   with the other guest the suite runs for the host's two cores.
# - The ACPI PM timer as the clocksource. Under TCG the guest's TSC is the
#   host's cycle counter, read while the vCPU thread may be descheduled, so
#   the kernel's clocksource watchdog sees skew, marks it unstable and
#   switches clocks mid-boot (others have met soft lockups from it); the
#   PM timer is emulated device time, the same clock as the guest's timer
#   interrupts.
SMP = "1"
CLOCK = "clocksource=acpi_pm"


def gpt(image):
    """GPT entries: {number: {offset, size, name, type, uuid}} (GUIDs as
    lower-case strings)."""
    with open(image, "rb") as f:
        f.seek(SECTOR)
        hdr = f.read(92)
        if hdr[:8] != b"EFI PART":
            raise ValueError(f"{image}: no GPT header")
        entries_lba, count, size = struct.unpack_from("<QII", hdr, 72)
        f.seek(entries_lba * SECTOR)
        table = f.read(count * size)
    parts = {}
    for i in range(count):
        e = table[i * size:(i + 1) * size]
        if e[:16] == b"\0" * 16:
            continue
        first, last = struct.unpack_from("<QQ", e, 32)
        parts[i + 1] = {
            "offset": first * SECTOR,
            "size": (last - first + 1) * SECTOR,
            "name": e[56:128].decode("utf-16-le").rstrip("\0"),
            "type": str(uuid.UUID(bytes_le=e[:16])),
            "uuid": str(uuid.UUID(bytes_le=e[16:32])),
        }
    return parts


def partitions(image):
    """GPT partitions: {number: (offset_bytes, size_bytes, name)}."""
    return {n: (p["offset"], p["size"], p["name"]) for n, p in gpt(image).items()}


def fat_read(image, part_offset, path):
    """A file from a FAT partition of the image (mtools), or None."""
    r = subprocess.run(
        ["mcopy", "-n", "-i", f"{image}@@{part_offset}", f"::{path}", "-"],
        capture_output=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )
    return r.stdout if r.returncode == 0 else None


def parse_autoboot(data):
    """(default partition, tryboot partition) as the firmware would boot
    them, or None when the file does not select an A/B partition."""
    if data is None or len(data) > 512:
        return None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    section = "all"
    values = {"all": {}, "tryboot": {}}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"(\w+)\s*=\s*(\d+)", line)
        if not m:
            return None
        if section in values:
            values[section][m.group(1)] = int(m.group(2))
    if values["all"].get("tryboot_a_b") != 1 or "boot_partition" not in values["all"]:
        return None
    default = values["all"]["boot_partition"]
    return default, values["tryboot"].get("boot_partition", default)


class Boot:
    """The outcome of one boot."""

    def __init__(self, partition, tryboot, how, console, seconds):
        self.partition = partition
        self.tryboot = tryboot
        # "reboot", "reboot-tryboot", "poweroff", "reset" (watchdog, crash),
        # "killed" (a power cut) or "no-boot".
        self.how = how
        self.console = console
        self.seconds = seconds

    def __repr__(self):
        return f"Boot(p{self.partition}{' tryboot' if self.tryboot else ''} -> {self.how}, {self.seconds:.0f} s)"


class Firmware:
    """The board: one disk image, the one-shot flag, qemu as the CPU."""

    def __init__(self, image, workdir, forwards=(), memory=1024, write_log=None):
        self.image = image
        # A file to log every write to the disk in (qemu's blklogwrites,
        # the dm-log-writes format), for crash-consistency tests.
        self.write_log = write_log
        self.workdir = workdir
        self.forwards = forwards  # [(host_port, guest_port)]
        self.memory = memory
        self.tryboot_flag = False
        self.proc = None
        self.boots = []

    def choose(self):
        """(partition, tryboot) for the next boot; clears the flag."""
        parts = partitions(self.image)
        ab = parse_autoboot(fat_read(self.image, parts[1][0], "autoboot.txt"))
        tryboot, self.tryboot_flag = self.tryboot_flag, False
        if ab is None:
            return 1, tryboot  # the firmware's fallback: the first partition
        return (ab[1] if tryboot else ab[0]), tryboot

    def start(self, console_path):
        """Starts one boot; returns (partition, tryboot) or None if the
        chosen partition holds nothing bootable."""
        partition, tryboot = self.choose()
        parts = partitions(self.image)
        if partition not in parts:
            return None
        off = parts[partition][0]
        files = {n: fat_read(self.image, off, n) for n in ("vmlinuz", "initrd.img", "cmdline.txt")}
        if any(v is None for v in files.values()):
            return None
        # qemu reads the kernel and initramfs when it starts: the last
        # boot's copies can go (a soak boots hundreds of times).
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)
        tmp = self.tmp = tempfile.mkdtemp(dir=self.workdir)
        for n, v in files.items():
            with open(os.path.join(tmp, n), "wb") as f:
                f.write(v)
        cmdline = files["cmdline.txt"].decode().strip()
        cmdline += f" blackbox.boot_partition={partition} blackbox.tryboot={int(tryboot)}"
        # The board's own kernel arguments, as a Pi's firmware adds some of
        # its own: the emulated PC's ACPI power-management timer as the
        # clock (see EMULATION), then any for debugging a guest, e.g.
        # BLACKBOX_FW_APPEND="systemd.log_level=debug".
        cmdline += " " + os.environ.get("BLACKBOX_FW_CLOCK", CLOCK)
        cmdline += " " + os.environ.get("BLACKBOX_FW_APPEND", "")
        fwd = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in self.forwards)
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64",
            "-m", str(self.memory), "-smp", os.environ.get("BLACKBOX_FW_SMP", SMP),
            "-nographic", "-no-reboot",
            "-kernel", os.path.join(tmp, "vmlinuz"), "-initrd", os.path.join(tmp, "initrd.img"),
            "-append", cmdline,
            *self.drive(),
            "-device", "i6300esb", "-watchdog-action", "reset",
            "-nic", f"user,model=virtio-net-pci{fwd}",
        ]
        self.console_path = console_path
        self.console = open(console_path, "wb")
        self.started = time.monotonic()
        self.current = (partition, tryboot)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.console,
                                     stderr=subprocess.STDOUT)
        return partition, tryboot

    def drive(self):
        if not self.write_log:
            return ["-drive", f"file={self.image},if=virtio,format=raw,cache=writeback"]
        open(self.write_log, "wb").close()
        return [
            "-blockdev", f"driver=file,filename={self.image},node-name=disk0,cache.direct=off",
            "-blockdev", f"driver=file,filename={self.write_log},node-name=log0",
            "-blockdev", "driver=blklogwrites,file=disk0,log=log0,node-name=logged,log-sector-size=512",
            "-device", "virtio-blk-pci,drive=logged",
        ]

    def console_text(self):
        with open(self.console_path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r", "")

    def restart_after_crash(self, console_path):
        """Starts the same boot again after qemu itself crashed: the board
        did not reset, so a tryboot stays a tryboot."""
        self.tryboot_flag = self.current[1]
        return self.start(console_path)

    def wait(self, timeout=None):
        """Waits for the guest to end by itself; records the outcome."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self._ended(killed=False)

    def stop(self):
        """Makes sure no qemu of this board is left (every way out of a test
        calls it); True once none runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                return False
            if not self.console.closed:
                self.console.close()
        return self.proc is None or self.proc.poll() is not None

    def power_cut(self):
        """Pulls the power: SIGKILL to qemu, nothing flushed by the guest."""
        self.proc.kill()
        self.proc.wait()
        return self._ended(killed=True)

    def _ended(self, killed):
        self.console.close()
        text = self.console_text()
        if killed:
            how = "killed"
        elif "qemu-system-x86_64: " in text and "Assertion" in text:
            # qemu itself aborted: the emulator failed, not the device.
            how = "emulator-crash"
        elif re.search(r"reboot: Restarting system with command '[^']*tryboot", text):
            how = "reboot-tryboot"
            self.tryboot_flag = True  # the kernel handed it to the firmware
        elif "reboot: Restarting system" in text:
            how = "reboot"
        elif "reboot: Power down" in text:
            how = "poweroff"
        else:
            how = "reset"
        b = Boot(self.current[0], self.current[1], how, text, time.monotonic() - self.started)
        self.boots.append(b)
        self.proc = None
        return b
