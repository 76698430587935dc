"""Boots the qemu-x86_64 appliance image under the firmware stand-in and
waits for blackbox to answer /healthz: the first step of the OTA proof, and
the qemu boot time to READY. Then the device's HTTPS as an owner meets it:
port 80 sends the page to HTTPS, and the certificate served on 443 is the
one whose fingerprint the console and the card's password note show.

    python3 hil-tests/ota/boot.py IMAGE

Prints "N passed, M failed"."""

import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reach  # noqa: E402
from firmware import Firmware, fat_read, parse_autoboot, partitions  # noqa: E402


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
    plain, tls = reach.free_port(), reach.free_port()
    fw = Firmware(disk, work, forwards=[(plain, 80), (tls, 443)])
    try:
        return boot(fw, plain, tls, work, disk, parts[1][0])
    finally:
        fw.stop()


def boot(fw, plain, tls, work, disk, bootcfg):
    t0 = time.monotonic()
    started = fw.start(os.path.join(work, "boot1.log"))
    check("the firmware boots slot A", started == (2, False), str(started))
    up = None
    deadline = t0 + 900
    while time.monotonic() < deadline and fw.proc.poll() is None:
        if reach.healthz(f"http://127.0.0.1:{plain}") == 200:
            up = time.monotonic() - t0
            break
        time.sleep(2)
    check("blackbox answers /healthz after a cold boot", up is not None,
          f"{up:.0f} s after power-on (TCG)" if up else fw.console_text()[-2000:])
    served = None
    if up is not None:
        time.sleep(20)  # the first boot's services settle; their lines reach the console
        st, loc = reach.redirect(f"http://127.0.0.1:{plain}/recordings?x=1")
        check("port 80 sends everything but /healthz to HTTPS", st == 308
              and loc == "https://127.0.0.1/recordings?x=1", f"{st} {loc}")
        try:
            served = reach.served_fingerprint("127.0.0.1", tls)
        except OSError as e:
            served = None
            print(f"ota: HTTPS on 443: {e!r}", flush=True)
    shown = re.findall(r"SHA-256 fingerprint is ([0-9A-F:]{95})", fw.console_text())
    check("the certificate served on 443 is the one the console shows",
          served is not None and shown[-1:] == [served], f"served {served}; console {shown[-1:]}")
    b = fw.power_cut()
    print(f"ota: {b}", flush=True)
    note = (fat_read(disk, bootcfg, "blackbox-password.txt") or b"").decode("utf-8", "replace")
    check("the card's password note shows the same fingerprint",
          served is not None and served in note and "dashcam password:" in note,
          "beside the password" if served and served in note else repr(note[:300]))
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    print(f"ota: consoles in {work}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
