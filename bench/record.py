#!/usr/bin/env python3
"""Recorder benchmark (issue 4): 1080p30 test pattern recorded for
BENCH_SECONDS (default 60) with fdatasync every second, then with sync off,
measured in the same run:

  - CPU time per frame of the recorder thread (from /proc/PID/task/TID/stat),
  - bytes written per frame,
  - the longest fdatasync,

and the ratio sync-on / sync-off; then BENCH_KILL_TRIALS (default 20) runs
killed with SIGKILL at a random moment, recovered with `blackbox recover`,
counting the frames lost: the sequence number captured at the kill minus the
last one in the recovered file (read from the test pattern's strip in the
last frame, decoded by ffmpeg). Prints medians and maxima.

Usage: bench/record.sh  (builds the release binary, then runs this)
"""
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/blackbox"
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
TRIALS = int(os.environ.get("BENCH_KILL_TRIALS", "20"))
SIZE, FPS = "1920x1080", 30
TICK = os.sysconf("SC_CLK_TCK")


def start(data, sync, segment_seconds=60):
    cfg = os.path.join(data, "bench.toml")
    with open(cfg, "w") as f:
        f.write(f'[record]\nsync_interval = "{sync}"\nsegment_seconds = {segment_seconds}\n'
                'max_usage = "100%"\nmin_free = "0"\n')
    p = subprocess.Popen([BIN, "run", "--listen", "127.0.0.1:0", "--config", cfg,
                          "--data", os.path.join(data, "d"), "--size", SIZE, "--fps", str(FPS)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
    return p, port


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:
        return json.load(r)


def wait(port, check, secs=30):
    end = time.time() + secs
    while time.time() < end:
        st = status(port)
        if check(st):
            return st
        time.sleep(0.05)
    raise SystemExit("timed out")


def recorder_cpu(pid):
    """CPU seconds of the thread named 'recorder': schedstat's on-CPU
    nanoseconds (precise), or stat's clock ticks where schedstat is absent."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() != "recorder":
                continue
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                return int(f.read().split()[0]) / 1e9
        except OSError:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICK
    raise SystemExit("no recorder thread")


def phase(sync):
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as data:
        p, port = start(data, sync)
        wait(port, lambda st: st["recorder"]["frames_written"] > FPS)
        st0, cpu0 = status(port), recorder_cpu(p.pid)
        time.sleep(SECONDS)
        st1, cpu1 = status(port), recorder_cpu(p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        frames = st1["recorder"]["frames_written"] - st0["recorder"]["frames_written"]
        rec = os.path.join(data, "d", "recordings")
        total = sum(os.path.getsize(os.path.join(rec, n)) for n in os.listdir(rec))
        written = st1["recorder"]["frames_written"]
        return {
            "frames": frames,
            "cpu_ms_per_frame": (cpu1 - cpu0) * 1000 / frames,
            "bytes_per_frame": total / written,
            "max_sync_ms": st1["recorder"]["max_sync_ms"],
            "dropped": st1["recorder"]["dropped"],
        }


def last_sequence(path):
    """The sequence number drawn in the last frame of a recording."""
    w, h = map(int, SIZE.split("x"))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-sseof", "-0.5", "-i", path, "-vf", "format=gray",
                          "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    luma = raw[-w * h:]
    cw = (w // 34) // 8 * 8

    def mean(cell):
        x0 = cell * cw + cw // 4
        vals = [luma[r * w + x] for r in range(4, 12) for x in range(x0, x0 + cw // 2)]
        return sum(vals) / len(vals)

    white, black = mean(0), mean(1)
    threshold = (white + black) / 2
    return sum(1 << (31 - b) for b in range(32) if mean(2 + b) > threshold)


def kill_trial(rng):
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as data:
        p, port = start(data, "1s")
        wait(port, lambda st: st["recorder"]["frames_written"] > FPS)
        time.sleep(rng.uniform(0.5, 4.0))
        seq = status(port)["source"]["sequence"]
        p.kill()
        p.wait()
        out = subprocess.run([BIN, "recover", os.path.join(data, "d")], capture_output=True, text=True)
        rec = os.path.join(data, "d", "recordings")
        segs = sorted(n for n in os.listdir(rec) if n.endswith(".mkv"))
        if not segs:
            raise SystemExit(f"nothing recovered: {out.stdout} {out.stderr}")
        return max(0, seq - last_sequence(os.path.join(rec, segs[-1])))


def main():
    print(f"recorder benchmark: {SIZE} at {FPS} fps, {SECONDS} s per run, {TRIALS} kill trials")
    on = phase("1s")
    off = phase("off")
    for name, r in (("sync every 1 s", on), ("sync off", off)):
        print(f"  {name:15} frames {r['frames']:6}  recorder CPU {r['cpu_ms_per_frame']:.3f} ms/frame  "
              f"{r['bytes_per_frame'] / 1000:.1f} kB/frame  longest fdatasync {r['max_sync_ms']:.1f} ms  "
              f"dropped {r['dropped']}")
    print(f"  ratio sync/off: CPU per frame {on['cpu_ms_per_frame'] / max(off['cpu_ms_per_frame'], 1e-9):.2f}, "
          f"bytes per frame {on['bytes_per_frame'] / off['bytes_per_frame']:.3f}")
    rng = random.Random(4)
    lost = [kill_trial(rng) for _ in range(TRIALS)]
    print(f"  kill -9 at random moments ({TRIALS} trials, sync 1 s): frames lost median "
          f"{statistics.median(lost)}, max {max(lost)}  {lost}")


if __name__ == "__main__":
    main()
