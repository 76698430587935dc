"""Boots the qemu-x86_64 appliance image under the firmware stand-in and
waits for blackbox to answer /healthz: the first step of the OTA proof, and
the qemu boot time to READY.

    python3 hil-tests/ota/boot.py IMAGE

Prints "N passed, M failed"."""

import os
import shutil
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from firmware import Firmware, fat_read, parse_autoboot, partitions  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status
    except Exception as e:  # connection refused while booting, 503, ...
        return getattr(e, "code", None)


results = []


def check(name, ok, info=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {info}", flush=True)


def main():
    image = sys.argv[1]
    work = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "boot")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    disk = os.path.join(work, "disk.img")
    shutil.copyfile(image, disk)
    # The image's own autoboot.txt, as the stand-in reads it off the card.
    parts = partitions(disk)
    ab = parse_autoboot(fat_read(disk, parts[1][0], "autoboot.txt") or b"")
    check("the image's autoboot.txt boots slot A, tries slot B", ab == (2, 3), str(ab))
    http = free_port()
    fw = Firmware(disk, work, forwards=[(http, 8080)])
    try:
        return boot(fw, http, work)
    finally:
        fw.stop()


def boot(fw, http, work):
    t0 = time.monotonic()
    started = fw.start(os.path.join(work, "boot1.log"))
    check("the firmware boots slot A", started == (2, False), str(started))
    up = None
    deadline = t0 + 900
    while time.monotonic() < deadline and fw.proc.poll() is None:
        if healthz(http) == 200:
            up = time.monotonic() - t0
            break
        time.sleep(2)
    check("blackbox answers /healthz after a cold boot", up is not None,
          f"{up:.0f} s after power-on (TCG)" if up else fw.console_text()[-2000:])
    if up is not None:
        time.sleep(20)  # the first boot's services settle; their lines reach the console
    b = fw.power_cut()
    print(f"ota: {b}", flush=True)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    print(f"ota: consoles in {work}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
