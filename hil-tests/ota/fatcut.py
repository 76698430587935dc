"""A power cut at every write of an autoboot.txt commit.

blackbox rewrites autoboot.txt on the FAT bootcfg partition through a
temporary file, fsync, rename and a directory fsync (src/ota/bootcfg.rs
says what a cut leaves at each step). This test makes the guest do real
commits on the real partition while qemu's blklogwrites driver logs every
write the disk receives (the dm-log-writes format), then rebuilds the
partition as it stood after each prefix of those writes, which is what a
power cut at that moment leaves on a card that writes in order, and asks:

- does the firmware (firmware.py's own reader of autoboot.txt) find a
  whole autoboot.txt that boots slot A or slot B, never anything else;
- is the file either the old text or the new, never a mix;
- and how many of those states fsck.fat would want to repair (a lost
  cluster or a cross-link is expected between the rename's two directory
  writes; see bootcfg.rs).

    python3 fatcut.py --image IMG --key KEY
Prints "N passed, M failed".
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from firmware import parse_autoboot, partitions  # noqa: E402
import scenarios as S  # noqa: E402

MAGIC = 0x6a736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8

# One tally with scenarios.py's helpers (S.booted checks the boot), so this
# suite's line counts every check it made.
results = S.results
check = S.check


def entries(log_path):
    """The logged writes in order: (sector, data, flags)."""
    with open(log_path, "rb") as f:
        magic, version, count, sector_size = struct.unpack("<QQQI", f.read(28))
        if magic != MAGIC:
            raise ValueError(f"{log_path}: not a write log")
        pos = sector_size  # entry 0 follows the super block's sector
        for _ in range(count):
            f.seek(pos)
            sector, nr, flags, data_len = struct.unpack("<QQQQ", f.read(32))
            pos += sector_size  # the entry's own sector
            data = b""
            if flags & MARK:
                pos += (data_len + sector_size - 1) // sector_size * sector_size
            elif not flags & DISCARD and nr:
                f.seek(pos)
                data = f.read(nr * sector_size)
                pos += nr * sector_size
            yield sector * sector_size, data, flags


def autoboot_of(fat_image):
    r = subprocess.run(["mcopy", "-n", "-i", fat_image, "::autoboot.txt", "-"],
                       capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return r.stdout if r.returncode == 0 else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args()
    work = os.path.join(S.OUT, "fatcut")
    # The card is the image's size: the first boot's growing of /data is
    # not what this test is about.
    S.current.devices = []
    try:
        return run(a, work)
    finally:
        stopped = [d.fw.stop() for d in S.current.devices]
        check("no qemu of this suite is left", all(stopped), f"{len(stopped)} guest(s) stopped")
        print(f"fatcut: {S.retry_line()}")
        failed = results.count(False)
        print(f"{len(results) - failed} passed, {failed} failed")


def run(a, work):
    dev = S.Device("fatcut", a.image, a.key, grow=False)
    parts = partitions(dev.disk)
    p1_off, p1_size, _ = parts[1]
    with open(dev.disk, "rb") as f:
        f.seek(p1_off)
        p1_before = f.read(p1_size)
    log = os.path.join(work, "writes.log")
    dev.fw.write_log = log
    if not S.booted(dev, (2, False), "boots slot A with every write logged"):
        return 1
    # Two commits: A bad -> B is the default; A good again -> A (the backend
    # rewrites autoboot.txt for each), then a clean stop.
    texts = [dev.out("cat /proc/cmdline >/dev/null; blackbox ota backend set-state A bad; blackbox ota status"),
             dev.out("blackbox ota backend set-state A good; blackbox ota status")]
    check("the commits ran", "default partition 3" in texts[0] and "default partition 2" in texts[1],
          " / ".join(t.splitlines()[-1] for t in texts if t))
    dev.poweroff()

    states = {parse_autoboot(b"[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"),
              parse_autoboot(b"[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n")}
    p1 = bytearray(p1_before)
    writes = [(off - p1_off, data) for off, data, _ in entries(log)
              if data and p1_off <= off < p1_off + p1_size]
    tmp = tempfile.mkdtemp(dir=work)
    img = os.path.join(tmp, "p1.img")
    bad, texts_seen, fsck_dirty = [], set(), 0
    for i, (off, data) in enumerate(writes):
        p1[off:off + len(data)] = data
        with open(img, "wb") as f:
            f.write(p1)
        text = autoboot_of(img)
        ab = parse_autoboot(text)
        texts_seen.add(text)
        if ab not in states:
            bad.append((i, text))
        r = subprocess.run(["fsck.fat", "-n", img], capture_output=True, text=True)
        fsck_dirty += r.returncode != 0
    check("a cut at any of the partition's writes leaves an autoboot.txt the firmware boots",
          not bad and writes, f"{len(writes)} writes replayed; {len(texts_seen)} distinct files; "
          f"fsck.fat -n unhappy after {fsck_dirty} of them" + (f"; bad at {bad[:3]}" if bad else ""))
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if results.count(False) else 0


if __name__ == "__main__":
    sys.exit(main())
