#!/usr/bin/env python3
"""Parked CPU benchmark (issue 15): the whole process's CPU while it
records a 1280x720 30 fps test pattern normally, against the same process
parked by hand in `motion` mode with the view held still (the fault file's
`scene = still`), so that it looks for motion in every frame and writes
none; BENCH_SECONDS (default 30) each, measured in the same run from
/proc/PID/stat. The test pattern's own rendering (the stand-in for the
camera's driver) is in both. Prints CPU as a share of one core and the
ratio parked / recording.

Usage: bench/parking.sh  (builds the binary, then runs this)
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/bench-faults/release/blackbox"
SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def status(url):
    with urllib.request.urlopen(url + "/api/status", timeout=10) as r:
        return json.load(r)


def measure(parked):
    with tempfile.TemporaryDirectory(prefix="blackbox-bench-parking-") as data:
        faults = os.path.join(data, "faults")
        with open(faults, "w") as f:
            f.write("scene = still\n")
        cfg = os.path.join(data, "bench.toml")
        with open(cfg, "w") as f:
            f.write('[camera]\nsource = "testsrc"\nsize = "1280x720"\nfps = 30\n'
                    '[record]\nmin_free = "0"\nmax_usage = "100%"\n'
                    '[impact]\nsensor = "off"\n[gps]\nenabled = false\n')
        p = subprocess.Popen([BIN, "run", "--config", cfg, "--data", data, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=dict(os.environ, BLACKBOX_FAULTS=faults))
        try:
            line = p.stdout.readline()
            url = line.strip().split("live view at ", 1)[1].rstrip("/")
            time.sleep(3)
            if parked:
                post(url + "/api/parking", {"parked": True})
                time.sleep(2)
            w0, c0, t0 = status(url)["recorder"]["frames_written"], cpu_seconds(p.pid), time.monotonic()
            time.sleep(SECONDS)
            w1, c1, t1 = status(url)["recorder"]["frames_written"], cpu_seconds(p.pid), time.monotonic()
            return (c1 - c0) / (t1 - t0), w1 - w0
        finally:
            p.terminate()
            p.wait(timeout=10)


def main():
    rec, rec_frames = measure(False)
    parked, parked_frames = measure(True)
    print(f"recording, 1280x720 30 fps: {rec * 100:.1f} % of a core, {rec_frames} frames written")
    print(f"parked (motion, still view): {parked * 100:.1f} % of a core, {parked_frames} frames written")
    print(f"ratio parked / recording: {parked / rec:.3f}")


if __name__ == "__main__":
    main()
