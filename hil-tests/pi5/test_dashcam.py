"""The dashcam on a board, in order, as an owner meets it: a new card boots
and is healthy, the camera's frames reach the page, recording grows, a
power cut loses nothing finished, a hung system is reset by the hardware
watchdog, and an update is kept once healthy. Times are printed, never
asserted (the limits are hang detectors).
"""

import base64
import json
import re
import time
import urllib.request

import pytest

from boards import BOOT_TIMEOUT


def get(board, path, password, limit=None):
    """GET over HTTPS, trusting the board's own certificate alone."""
    req = urllib.request.Request(f"{board.https_base}{path}")
    token = base64.b64encode(f"owner:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=30, context=board.tls()) as r:
        return r.read(limit) if limit else r.read()


def on_card(board):
    """Every recording file, open or finished: {name: bytes}."""
    text = board.out("find /data/blackbox \\( -name '*.mkv' -o -name '*.mkv.part' \\) -printf '%f %s\\n'")
    return dict((n, int(b)) for n, b in (l.split() for l in text.splitlines() if l.count(" ") == 1))


def finished(board):
    """Every finished recording: {name: bytes}."""
    return {n: b for n, b in on_card(board).items() if n.endswith(".mkv")}


def grew(before, after):
    """What shows the recording went on between two looks at the card: a
    finished segment that was not there, or an open one that is larger.
    (An open segment is reserved 4 MiB at a time, so at a low bit rate its
    size changes only when it is finished and the next one begins.)"""
    new = [n for n in after if n.endswith(".mkv") and n not in before]
    larger = [n for n in after if n.endswith(".part") and after[n] > before.get(n, after[n])]
    return new + larger


def test_a_new_card_boots_healthy(board):
    up = board.wait_healthy(board.power_on())
    assert up is not None, f"not healthy within {BOOT_TIMEOUT} s; {board.why()}"
    print(f"{board.name}: healthy {up:.0f} s after power-on")
    assert board.password(), "the first-boot password was not on the console"
    # On hardware the time is a requirement (the car has just started);
    # under emulation only the hang detector applies.
    if board.boot_budget is not None:
        assert up <= board.boot_budget, f"healthy after {up:.0f} s, over the stated {board.boot_budget} s"


def test_frames_from_the_camera(board):
    password = board.password()
    status = json.loads(get(board, "/api/status", password))
    assert status["source"]["kind"] == board.camera, status["source"]
    t0 = time.monotonic()
    while status["source"]["state"] != "streaming" and time.monotonic() - t0 < 300:
        time.sleep(2)
        status = json.loads(get(board, "/api/status", password))
    assert status["source"]["state"] == "streaming", status["source"]
    # One whole JPEG from the live stream.
    body = get(board, "/video_feed", password, limit=2_000_000)
    start = body.find(b"\xff\xd8")
    assert start >= 0 and body.find(b"\xff\xd9", start) > start, "no JPEG frame in /video_feed"
    print(f"{board.name}: {status['source']['width']}x{status['source']['height']} "
          f"from {status['source']['kind']}, {status['fps']['capture']:.1f} fps")


def cpu_seconds(board):
    """The recording service's user + system CPU seconds so far (its main
    process: `blackbox wifi run` is a blackbox too, in a unit of its own)."""
    text = board.out("pid=$(systemctl show -p MainPID --value blackbox.service); "
                     "cat /proc/$pid/stat; getconf CLK_TCK 2>/dev/null || echo 100")
    stat, _, hz = text.rpartition("\n")
    fields = stat.rsplit(")", 1)[-1].split()
    assert len(fields) > 12, f"no stat for blackbox.service's main process: {text!r}"
    return (int(fields[11]) + int(fields[12])) / int(hz)


def test_every_camera_streams_and_records(board):
    password = board.password()
    status = json.loads(get(board, "/api/status", password))
    ids = [c["id"] for c in status["cameras"]]
    assert ids == list(board.cameras), f"cameras {ids}, the rig has {board.cameras}"
    t0 = time.monotonic()
    while (any(c["source"]["state"] != "streaming" for c in status["cameras"])
           and time.monotonic() - t0 < 300):
        time.sleep(2)
        status = json.loads(get(board, "/api/status", password))
    for c in status["cameras"]:
        assert c["source"]["state"] == "streaming", c
        jpeg = get(board, f"/cameras/{c['id']}/snapshot.jpg", password)
        assert jpeg[:2] == b"\xff\xd8" and jpeg.rstrip(b"\0")[-2:] == b"\xff\xd9", c["id"]
    written = [c["frames_written"] for c in status["recorder"]["cameras"]]
    cpu0, t0 = cpu_seconds(board), time.monotonic()
    time.sleep(20)
    cpu1, t1 = cpu_seconds(board), time.monotonic()
    status = json.loads(get(board, "/api/status", password))
    after = [c["frames_written"] for c in status["recorder"]["cameras"]]
    grew = [a > b for a, b in zip(after, written)]
    assert all(grew) and len(after) == len(board.cameras), f"frames written {written} -> {after}"
    cores = int(board.out("nproc") or "1")
    share = 100 * (cpu1 - cpu0) / (t1 - t0) / cores
    print(f"{board.name}: {', '.join(ids)} recording; blackbox uses {share:.1f} % of "
          f"{cores} cores; " + "; ".join(
              f"{c['id']} {c['source']['width']}x{c['source']['height']} {c['fps']['capture']:.1f} fps"
              for c in status["cameras"]))


def test_recording_grows(board):
    first = on_card(board)
    t0 = time.monotonic()
    while not grew(first, on_card(board)) and time.monotonic() - t0 < 300:
        time.sleep(2)
    what = grew(first, on_card(board))
    assert what, f"nothing new or larger on the card in {time.monotonic() - t0:.0f} s: {first}"
    print(f"{board.name}: the recording went on: {', '.join(what)}")


def test_a_power_cut_loses_nothing_finished(board):
    # A restart of the service finishes the open segment.
    board.ssh("systemctl restart blackbox", timeout=120)
    t0 = time.monotonic()
    while board.healthz() != 200 and time.monotonic() - t0 < 300:
        time.sleep(1)
    before = finished(board)
    assert before, "no finished recording before the cut"
    board.power_cut()
    up = board.wait_healthy(board.power_on())
    assert up is not None, f"not healthy again after the power cut; {board.why()}"
    after = finished(board)
    lost = [n for n, b in before.items() if after.get(n) != b]
    assert not lost, f"lost or changed: {lost}"
    bad = [n for n in after
           if board.ssh(f"blackbox verify --quick $(find /data/blackbox -name {n} | head -n 1)").returncode]
    assert not bad, f"damaged after the cut: {bad}"
    print(f"{board.name}: healthy {up:.0f} s after the cut; {len(before)} recordings before, "
          f"{len(after)} after, all whole")


def test_a_hung_system_is_reset_by_the_watchdog(board):
    boot = board.boot_id()
    # systemd (PID 1) freezes on a crash signal and stops feeding the
    # hardware watchdog (RuntimeWatchdogSec), which resets the board.
    board.ssh("kill -SEGV 1", timeout=60)
    t0 = time.monotonic()
    how = board.wait_reset(boot)
    assert how is not None, "the board was not reset"
    up = board.wait_healthy(t0)
    assert up is not None, f"not healthy after the reset; {board.why()}"
    assert board.boot_id() != boot
    print(f"{board.name}: {how}; healthy again {up:.0f} s after the hang")


def slot_status(board):
    """(booted partition, tryboot?, default partition) from `blackbox ota
    status`, or None while the board does not answer."""
    text = board.out("blackbox ota status")
    booted = re.search(r"booted: partition (\d+)", text)
    default = re.search(r"default partition (\d+)", text)
    if not booted or not default:
        return None
    return int(booted.group(1)), "tryboot" in text.split("\n")[0], int(default.group(1))


def version(board):
    return board.out(". /etc/os-release; echo $IMAGE_VERSION")


def start_update(board, name):
    """Starts `blackbox update` on a bundle the card carries and waits for
    the reboot that follows the install; the version and slot status from
    before, and when it started."""
    old, before, boot = version(board), slot_status(board), board.boot_id()
    board.ssh(f"nohup blackbox update /data/{name} > /data/update.log 2>&1 &", timeout=60)
    t0 = time.monotonic()
    how = board.wait_reset(boot)
    assert how is not None, f"no reboot after the install: {board.out('cat /data/update.log')[-400:]}"
    return old, before, t0


def test_an_update_is_kept_once_healthy(board, bundle):
    if not bundle:
        pytest.skip("no --bundle given")
    # It installs, then reboots into the other slot on trial.
    old, before, t0 = start_update(board, bundle)
    assert board.wait_healthy(t0) is not None, f"the trial boot is not healthy; {board.why()}"
    trial = slot_status(board)
    assert trial and trial[0] != before[0] and trial[1], f"not a trial boot of the other slot: {trial}"
    # The health gate keeps it.
    t1 = time.monotonic()
    now = trial
    while now and now[2] != now[0] and time.monotonic() - t1 < 600:
        time.sleep(5)
        now = slot_status(board) or now
    assert now and now[2] == now[0], f"not committed: {now}"
    new = version(board)
    assert new != old, f"still {old}"
    print(f"{board.name}: {old} -> {new} on partition {now[0]}, committed "
          f"{time.monotonic() - t1:.0f} s after the trial boot answered")


def test_a_broken_update_is_rolled_back(board, broken_bundle):
    if not broken_bundle:
        pytest.skip("no --broken-bundle given")
    # It installs and reboots on trial; its blackbox never becomes healthy,
    # so the gate marks it bad and reboots: the old slot boots again.
    old, before, t0 = start_update(board, broken_bundle)
    back = None
    while time.monotonic() - t0 < 2 * BOOT_TIMEOUT:
        st = slot_status(board)
        if st and st[0] == before[0] and not st[1] and board.healthz() == 200:
            back = st
            break
        time.sleep(5)
    assert back, f"not back on partition {before[0]}: {slot_status(board)}"
    other = "B" if before[0] == 2 else "A"
    state = board.out(f"blackbox ota backend get-state {other}")
    assert version(board) == old and state == "bad", f"{version(board)}, slot {other}: {state}"
    print(f"{board.name}: the broken update rolled back to {old} on partition {back[0]} "
          f"{time.monotonic() - t0:.0f} s after the install began; slot {other} marked bad")
