"""The emulator soak (issue 16): boots the qemu-x86_64 appliance image under
the firmware stand-in again and again, each boot to /healthz and then a
power cut, and counts every way a boot can fail: a kernel stall or a soft
lockup (the emulator's), qemu's own abort, a product hang (panic, blocked
task, a silent console), or no /healthz within the limit. Nothing is
retried: every boot counts. For the second half of the boots a busy loop
holds one host core, as a loaded CI machine would.

    python3 hil-tests/ota/soak.py --image IMG [--boots 100] [--devices 2]

Ends with "N boots: H healthy, S stalls, A aborts, P product hangs, T
timeouts" and exits 1 unless every boot was healthy. Not part of the
default run (hil-tests/ota/soak.sh builds the image and runs it).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reach  # noqa: E402
from firmware import CLOCK, SMP, Firmware  # noqa: E402
from watch import Watch, scan  # noqa: E402

LIMIT = 900  # a hang detector, as in the suites
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "soak")

lock = threading.Lock()
outcomes = []  # (device, boot, busy, outcome, seconds, detail)
claimed = [0]  # boots handed out so far


def one_boot(fw, port, console):
    """Boots once to /healthz (or trouble); returns (outcome, seconds, detail)
    and leaves the guest running for the caller's power cut."""
    fw.start(console)
    watch = Watch(console)
    t0 = fw.started
    while time.monotonic() - t0 < LIMIT:
        if fw.proc.poll() is not None:
            end = fw.wait()
            t = scan(end.console)
            if end.how == "emulator-crash":
                return "abort", time.monotonic() - t0, repr(t)
            return ("stall" if t and t.kind == "emulator" else "product"), time.monotonic() - t0, \
                f"the guest ended by itself ({end.how}): {t!r}"
        t = watch.check()
        if t is not None:
            return ("stall" if t.kind == "emulator" else "product"), time.monotonic() - t0, repr(t)
        if reach.healthz(f"http://127.0.0.1:{port}") == 200:
            return "healthy", time.monotonic() - t0, ""
        time.sleep(1)
    return "timeout", time.monotonic() - t0, "no /healthz within the limit"


def device(name, image, boots, busy):
    work = os.path.join(OUT, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    disk = os.path.join(work, "disk.img")
    subprocess.run(["cp", "--sparse=always", image, disk], check=True)
    subprocess.run(["truncate", "-s", "+1G", disk], check=True)
    port = reach.free_port()
    fw = Firmware(disk, work, forwards=[(port, 80)])
    n = 0
    try:
        while True:
            with lock:
                if claimed[0] >= boots:
                    return
                claimed[0] += 1
                k = claimed[0]
                if k > boots // 2 and not busy.is_set():
                    busy.set()
                    time.sleep(2)  # the busy loop starts before this boot
            loaded = busy.is_set()
            n += 1
            console = os.path.join(work, f"boot{n}.log")
            outcome, secs, detail = one_boot(fw, port, console)
            if fw.proc is not None and fw.proc.poll() is None:
                fw.power_cut()
            with lock:
                outcomes.append((name, n, loaded, outcome, secs, detail))
                print(f"soak {k:3d}/{boots} {name} boot {n}{' (core busy)' if loaded else ''}: "
                      f"{outcome} {secs:.0f} s {detail}".rstrip(), flush=True)
            # An emulator's failure is kept for the record, and the card
            # keeps going: the next boot is the recovery a Pi would do.
            if outcome != "healthy":
                shutil.copyfile(console, os.path.join(work, f"failed-boot{n}.log"))
    finally:
        fw.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--boots", type=int, default=100)
    p.add_argument("--devices", type=int, default=2,
                   help="guests at once, each its own card (the suites run two)")
    a = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    print(f"soak: {a.boots} boots on {a.devices} devices; qemu -smp "
          f"{os.environ.get('BLACKBOX_FW_SMP', SMP)}, kernel {os.environ.get('BLACKBOX_FW_CLOCK', CLOCK)}; "
          "a busy loop on one core for the second half", flush=True)
    busy = threading.Event()
    hog = None
    threads = [threading.Thread(target=device, args=(f"dev{i + 1}", a.image, a.boots, busy))
               for i in range(a.devices)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            if busy.is_set() and hog is None:
                hog = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            time.sleep(0.5)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        for t in threads:
            t.join()
    count = {k: sum(1 for o in outcomes if o[3] == k)
             for k in ("healthy", "stall", "abort", "product", "timeout")}
    for loaded in (False, True):
        times = [o[4] for o in outcomes if o[2] == loaded and o[3] == "healthy"]
        if times:
            print(f"soak: {'with a core busy' if loaded else 'idle'}: {len(times)} healthy boots, "
                  f"power-on to /healthz min {min(times):.0f} s, median {statistics.median(times):.0f} s, "
                  f"max {max(times):.0f} s", flush=True)
    print(f"{len(outcomes)} boots: {count['healthy']} healthy, {count['stall']} stalls, "
          f"{count['abort']} aborts, {count['product']} product hangs, {count['timeout']} timeouts")
    return 0 if count["healthy"] == len(outcomes) == a.boots else 1


if __name__ == "__main__":
    sys.exit(main())
