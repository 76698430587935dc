"""The emulated OTA proof: the qemu-x86_64 appliance image under the
firmware stand-in (firmware.py), driven over SSH and HTTP as the owner's
tools would, through each update scenario, and the owner's phone over
the dashcam's Wi-Fi (scenario wifi). Each scenario starts from a
fresh copy of the image. Prints one line per check, the time each scenario
took, and "N passed, M failed".

    python3 scenarios.py --image IMG --bundles DIR --key KEY [--phone DIR] [--only NAME]

DIR holds the bundles run.sh made: good.raucb (a newer version),
broken.raucb (newer, but its blackbox never becomes healthy),
old.raucb (an older version), forged.raucb (signed by a key the device
does not trust). The wifi scenario needs --phone DIR: wifi_phone,
busybox and phone.sh, carried to the card's /data/phone (run.sh makes it).
"""

import argparse
import base64
import concurrent.futures
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reach  # noqa: E402
from firmware import Firmware  # noqa: E402
from reach import free_port  # noqa: E402
from watch import Trouble, Watch, retried, retry_line, scan  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
BOOT_TIMEOUT = 900  # a hang detector for emulation, not a speed claim

results = []
failed_in = set()  # scenarios with a failed check
times = []


current = threading.local()  # the scenario this thread runs


def check(name, ok, info=""):
    results.append(bool(ok))
    if not ok:
        failed_in.add(getattr(current, "scenario", None))
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {info}", flush=True)
    return ok


class Device:
    """One emulated dashcam: a fresh copy of the image, the firmware
    stand-in, SSH and HTTP forwarded to the host."""

    def __init__(self, name, image, key, grow=True, carry=()):
        self.name = name
        self.dir = os.path.join(OUT, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.disk = os.path.join(self.dir, "disk.img")
        subprocess.run(["cp", "--sparse=always", image, self.disk], check=True)
        # A card is bigger than the image written to it: the first boot
        # grows the data partition into the rest.
        if grow:
            subprocess.run(["truncate", "-s", "+1G", self.disk], check=True)
        self.key = key
        self.provision(carry)
        self.ssh_port, self.http_port, self.https_port = free_port(), free_port(), free_port()
        self.fw = Firmware(self.disk, self.dir, forwards=[
            (self.ssh_port, 22), (self.http_port, 80), (self.https_port, 443)])
        self.boot_no = 0
        self.retries = []  # the emulator's failures this device was booted again after
        self.trouble = None  # what ended its last boot early, from the console
        # Stopped when the scenario ends, however it ends.
        current.devices.append(self)

    def provision(self, carry=()):
        """The rig's key and the scenario's bundles on the card's /data,
        before the first power-on."""
        reach.provision(self.disk, self.key, carry)

    def boot(self):
        self.boot_no += 1
        return self.fw.start(os.path.join(self.dir, f"boot{self.boot_no}.log"))

    def healthz(self):
        return reach.healthz(f"http://127.0.0.1:{self.http_port}")

    def wait_healthy(self):
        """Seconds from power-on until /healthz answers 200 and SSH works,
        or None if the guest ended or hung. The console is watched: a hang
        ends the boot at once (its lines in self.trouble); one proven to be
        the emulator's (qemu's abort, a kernel stall) before blackbox first
        answered boots the same slot again, at most twice, counted."""
        t0 = self.fw.started
        watch = Watch(self.fw.console_path)
        answered = False
        self.trouble = None
        while time.monotonic() - t0 < BOOT_TIMEOUT:
            if self.fw.proc.poll() is not None:
                end = self.fw.wait()
                self.trouble = scan(end.console)
                if end.how != "emulator-crash" or answered or len(self.retries) == 2:
                    return None
                t = self.trouble or Trouble("emulator", "emulator abort", [])
            else:
                t = watch.check()
                if t is None:
                    code = self.healthz()
                    answered |= code is not None
                    if code == 200 and self.ssh("true", timeout=30).returncode == 0:
                        return time.monotonic() - t0
                    time.sleep(2)
                    continue
                self.trouble = t
                if t.kind != "emulator" or answered or len(self.retries) == 2:
                    print(f"note {self.name}: boot ended: {t!r} (see {self.fw.console_path})", flush=True)
                    self.fw.power_cut()
                    return None
                self.fw.power_cut()
            self.retries.append(t)
            retried(self.name, t)
            self.boot_no += 1
            self.fw.restart_after_crash(os.path.join(self.dir, f"boot{self.boot_no}.log"))
            t0 = self.fw.started
            watch = Watch(self.fw.console_path)
        return None

    def ssh(self, cmd, timeout=600, stdin=None):
        return reach.ssh(self.key, "127.0.0.1", self.ssh_port, cmd, timeout, stdin)

    def out(self, cmd):
        r = self.ssh(cmd)
        return (r.stdout + r.stderr).strip()

    def version(self):
        return self.out(". /etc/os-release; echo $IMAGE_VERSION")

    def finished(self):
        """Every finished recording: {name: bytes}."""
        text = self.out("find /data/blackbox -name '*.mkv' -printf '%f %s\\n'")
        return dict((n, int(b)) for n, b in (l.split() for l in text.splitlines() if l.count(" ") == 1))

    def footage(self):
        """Makes sure there is a finished recording (a restart of the
        service finishes the open segment) and returns them all."""
        self.ssh("systemctl restart blackbox", timeout=120)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300 and self.healthz() != 200:
            time.sleep(1)
        return self.finished()

    def console_trouble(self):
        """What went wrong on the console, if systemd said: its FAILED,
        DEPEND and timeout lines (for a failure's message)."""
        try:
            with open(self.fw.console_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        lines = [l.strip() for l in text.splitlines()
                 if re.search(r"FAILED|DEPEND|Timed out|timed out|Kernel panic|watchdog", l)]
        return "".join(f"console: {l[-160:]}; " for l in lines[-6:])

    def journal(self, *units):
        """The last lines the units logged in this boot (for a failure's message)."""
        flags = " ".join(f"-u {u}" for u in units)
        return self.out(f"journalctl -b {flags} --no-pager -o cat | tail -n 12").replace("\n", "; ")

    def status(self):
        return self.out("blackbox ota status")

    def wait_end(self, timeout=BOOT_TIMEOUT):
        """Waits for the guest to end by itself (a reboot, a reset); None
        at the limit, or at once when the console shows a hang (never
        retried: blackbox has run in this boot)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            end = self.fw.wait(2)
            if end is not None:
                return end
            t = scan(self.fw.console_text())
            if t is not None:
                self.trouble = t
                print(f"note {self.name}: boot ended: {t!r} (see {self.fw.console_path})", flush=True)
                self.fw.power_cut()
                return None
        return None

    def cut(self):
        return self.fw.power_cut()

    def poweroff(self):
        self.ssh("systemctl poweroff", timeout=30)
        return self.wait_end()


def booted(dev, expect, what):
    """Boots and waits for health; checks the firmware's choice."""
    chosen = dev.boot()
    up = dev.wait_healthy() if chosen == expect else None
    slot = {2: "A", 3: "B"}.get(chosen[0] if chosen else 0, "?")
    return check(f"{dev.name}: {what}", chosen == expect and up is not None,
                 f"slot {slot}{' (tryboot)' if chosen and chosen[1] else ''}, healthy "
                 f"{up:.0f} s after power-on" if up else
                 f"firmware chose {chosen}; {dev.trouble or ''} {dev.console_trouble()}see {dev.fw.console_path}")


def fresh(a, name, what="boots slot A", carry=()):
    """A new device from the image, carrying the named bundles on /data,
    booted on slot A; None if it did not."""
    dev = Device(name, a.image, a.key, carry=[os.path.join(a.bundles, b) for b in carry])
    return dev if booted(dev, (2, False), what) else None


def survived(dev, name, before):
    """Every recording finished before the scenario is still there, whole."""
    after = dev.finished()
    lost = [n for n, b in before.items() if after.get(n) != b]
    check(f"{name}: every finished recording survived", before and not lost,
          f"{len(before)} before, {len(after)} after" + (f"; lost or changed: {lost}" if lost else ""))


def install(dev, bundle, *flags):
    """Runs `blackbox update` on a bundle the card carries; returns its
    output (the connection drops when it reboots)."""
    try:
        r = dev.ssh(" ".join(["blackbox", "update", *flags, f"/data/{bundle}"]), timeout=1800)
        return (r.stdout + r.stderr).strip()
    except subprocess.TimeoutExpired:
        return "timed out"


def scenario(fn):
    def run(args):
        t0 = time.monotonic()
        current.scenario = fn.__name__
        current.devices = []
        try:
            fn(args)
        except Exception as e:  # a harness error fails the scenario, not the run
            check(f"{fn.__name__}: ran to the end", False, repr(e))
        finally:
            stopped = [d.fw.stop() for d in current.devices]
            check(f"{fn.__name__}: no qemu of this scenario is left", all(stopped),
                  f"{len(stopped)} guest(s) stopped" if all(stopped) else "a qemu would not stop")
        secs = time.monotonic() - t0
        if fn.__name__ not in failed_in:
            # Passed: the disk is not needed to look into anything.
            disk = os.path.join(OUT, fn.__name__, "disk.img")
            if os.path.exists(disk):
                os.remove(disk)
        times.append((fn.__name__, secs))
        print(f"ota: scenario {fn.__name__} took {secs:.0f} s", flush=True)
    run.__name__ = fn.__name__
    return run


@scenario
def good_update(a):
    dev = fresh(a, "good_update", "the new card boots slot A", carry=["good.raucb"])
    if dev is None:
        return
    size = dev.out("df -B1 --output=size /data | tail -n 1").strip()
    check("good_update: the first boot grew the data partition to the card",
          size.isdigit() and int(size) > 1024**3, f"/data is {size} bytes (image: 384 MiB, card: +1 GiB)")
    before = dev.footage()
    out = install(dev, "good.raucb")
    end = dev.wait_end()
    check("good_update: the update installs and reboots into a tryboot",
          end is not None and end.how == "reboot-tryboot", f"{end}; {out[-300:]}")
    if not booted(dev, (3, True), "the firmware boots slot B once, on trial"):
        return
    committed = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:
        st = dev.status()
        if "default partition 3" in st:
            committed = time.monotonic() - t0
            break
        time.sleep(3)
    check("good_update: the health gate commits slot B", committed is not None,
          f"autoboot.txt names partition 3 {committed:.0f} s after READY" if committed
          else f"{st}; journal: {dev.journal('blackbox-health', 'rauc')}")
    check("good_update: the new version runs", dev.version() == "1.1.0", dev.version())
    end = dev.poweroff()
    if not booted(dev, (3, False), "a cold boot stays on slot B"):
        return
    check("good_update: still the new version after a cold boot", dev.version() == "1.1.0", dev.version())
    survived(dev, "good_update", before)
    dev.cut()


@scenario
def refused(a):
    dev = fresh(a, "refused", carry=["forged.raucb", "old.raucb"])
    if dev is None:
        return
    out = install(dev, "forged.raucb", "--no-reboot")
    check("refused: a bundle with a bad signature is refused",
          "not installed" in out and "signature" in out.lower(), out.splitlines()[-1] if out else "")
    out = install(dev, "old.raucb", "--no-reboot")
    check("refused: a downgrade is refused", "older than the running" in out,
          out.splitlines()[-1] if out else "")
    st = dev.status()
    check("refused: nothing armed; slot A stays the default",
          "default partition 2" in st and "armed" not in st and dev.healthz() == 200, st)
    # The first-boot password: on the console, never in the journal kept on
    # /data; once the owner replaces it, its copy on the card goes.
    console = ""
    for n in range(1, dev.boot_no + 1):
        with open(os.path.join(dev.dir, f"boot{n}.log"), errors="replace") as f:
            console += f.read()
    first = re.findall(r"the dashcam's password is (\S+)", console)
    journal = dev.out("journalctl --no-pager -o cat")
    check("refused: the first-boot password is on the console, not in the journal",
          bool(first) and first[-1] not in journal,
          "on the console only" if first and first[-1] not in journal
          else ("not on the console" if not first else "in the journal"))
    on_card = ("mkdir -p /run/t && flock /run/blackbox/bootcfg.lock sh -c "
               "'mount -o ro /dev/disk/by-partlabel/bootcfg /run/t && ls /run/t; umount /run/t'")
    before_change = dev.out(on_card)
    # HTTPS as the owner meets it: the certificate served on 443 is the one
    # whose fingerprint the console and the card's note show beside the
    # password, and port 80 sends the page there.
    note = dev.out("mkdir -p /run/t && flock /run/blackbox/bootcfg.lock sh -c "
                   "'mount -o ro /dev/disk/by-partlabel/bootcfg /run/t && "
                   "cat /run/t/blackbox-password.txt; umount /run/t'")
    try:
        served = reach.served_fingerprint("127.0.0.1", dev.https_port)
    except OSError as e:
        served = repr(e)
    shown = re.findall(r"SHA-256 fingerprint is ([0-9A-F:]{95})", console)
    check("refused: the certificate served is the one whose fingerprint the console and the card show",
          shown[-1:] == [served] and served in note and "dashcam password:" in note,
          f"served {served[:23]}...; console {shown[-1:]}; note {note[:200]!r}")
    moved = reach.redirect(f"http://127.0.0.1:{dev.http_port}/recordings?x=1")
    check("refused: port 80 sends the page to HTTPS", moved == (308, "https://127.0.0.1/recordings?x=1"),
          str(moved))
    changed = None
    if first:
        # Over HTTPS, trusting the device's own certificate and nothing else.
        ctx = reach.tls_context(dev.out("cat /data/blackbox/tls/cert.pem"))
        req = urllib.request.Request(
            f"https://127.0.0.1:{dev.https_port}/api/password", method="POST",
            data=json.dumps({"current": first[-1], "new": "the owner's own password"}).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(f"x:{first[-1]}".encode()).decode()})
        try:
            with urllib.request.urlopen(req, timeout=120, context=ctx) as r:
                changed = r.status
        except Exception as e:
            changed = getattr(e, "code", repr(e))
    t0 = time.monotonic()
    after = dev.out(on_card)
    while "blackbox-password.txt" in after and time.monotonic() - t0 < 120:
        time.sleep(3)
        after = dev.out(on_card)
    check("refused: once replaced, the first-boot password leaves the card",
          "blackbox-password.txt" in before_change and changed == 204 and "blackbox-password.txt" not in after,
          f"before: {before_change!r}; change: {changed}; after: {after!r}")
    # RAUC answers root alone; the service cannot even reach the bus.
    prop = "busctl get-property de.pengutronix.rauc / de.pengutronix.rauc.Installer Operation"
    as_root = dev.ssh(prop, timeout=120)
    as_user = dev.ssh(f"runuser -u blackbox -- {prop}", timeout=120)
    check("refused: RAUC's D-Bus methods answer root and refuse the blackbox user",
          as_root.returncode == 0 and as_user.returncode != 0
          and "denied" in (as_user.stdout + as_user.stderr).lower(),
          f"root: {as_root.returncode} {as_root.stdout.strip()}; blackbox: {as_user.returncode} "
          f"{(as_user.stdout + as_user.stderr).strip()[-200:]}")
    sock = dev.ssh("pid=$(systemctl show -p MainPID --value blackbox); "
                   "nsenter -t \"$pid\" -m -- stat -c %a /run/dbus/system_bus_socket; "
                   "nsenter -t \"$pid\" -m -- runuser -u blackbox -- busctl --system list", timeout=120)
    check("refused: the service's view of the system bus socket is inaccessible",
          sock.stdout.strip().splitlines()[:1] == ["0"] and sock.returncode != 0,
          (sock.stdout + sock.stderr).strip()[-200:])
    if changed == 204:
        gps_sets_the_clock(dev, "the owner's own password")
    dev.cut()


def nmea_receiver(lat, lon, knots):
    """A GPS receiver on the host's loopback, for the guest's gpsd to read
    over the emulated network (10.0.2.2): RMC and GGA sentences with the
    host's UTC time, once a second, to every connection, until the
    scenario's guests stop. Returns its port."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def sentence(body):
        sum_ = 0
        for ch in body.encode():
            sum_ ^= ch
        return "$%s*%02X\r\n" % (body, sum_)

    def angle(v, digits, pos, neg):
        a = abs(v)
        deg = int(a)
        return "%0*d%09.6f" % (digits, deg, (a - deg) * 60), pos if v >= 0 else neg

    def serve(conn):
        try:
            while True:
                now = time.time()
                t = time.gmtime(now)
                hms = time.strftime("%H%M%S", t) + ".000"
                (la, ns), (lo, ew) = angle(lat, 2, "N", "S"), angle(lon, 3, "E", "W")
                rmc = sentence(f"GPRMC,{hms},A,{la},{ns},{lo},{ew},{knots:.3f},90.0,"
                               f"{time.strftime('%d%m%y', t)},,,A")
                gga = sentence(f"GPGGA,{hms},{la},{ns},{lo},{ew},1,08,0.9,34.5,M,46.9,M,,")
                conn.sendall((rmc + gga).encode())
                time.sleep(1 - (time.time() % 1))
        except OSError:
            pass

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def gps_sets_the_clock(dev, password):
    """The card's clock set back a year, a GPS receiver added to gpsd: chrony
    steps the clock to the GPS's time and blackbox says its source is the
    GPS, with the fix in its status."""
    ctx = reach.tls_context(dev.out("cat /data/blackbox/tls/cert.pem"))
    port = nmea_receiver(52.5, 13.4, 20.0)
    back = dev.out("date -s @$(( $(date +%s) - 31536000 )) >/dev/null && date +%s")
    off = time.time() - float(back) if back.isdigit() else 0
    check("refused: the card's clock is set back a year", 31_535_000 < off < 31_537_000,
          f"{off:.0f} s behind")
    added = dev.out(f"gpsdctl add tcp://10.0.2.2:{port}; echo $?")
    t0, st = time.monotonic(), None
    while time.monotonic() - t0 < 600:
        code, st = owner_api(dev, ctx, password, "GET", "/api/status")
        clock = (st or {}).get("clock", {})
        if code == 200 and clock.get("synchronized") and clock.get("source") == "gps":
            break
        time.sleep(5)
    took = time.monotonic() - t0
    guest = dev.out("date +%s")
    skew = abs(time.time() - float(guest)) if guest.isdigit() else None
    clock = (st or {}).get("clock", {})
    check("refused: chrony steps the clock to the GPS's time and blackbox says its source is gps",
          clock.get("source") == "gps" and clock.get("synchronized") is True
          and skew is not None and skew < 5,
          f"after {took:.0f} s: clock {clock}, guest {skew if skew is None else round(skew, 1)} s off; "
          f"gpsdctl: {added!r}; chronyc: {dev.out('chronyc -n -c tracking; chronyc -n sources')[:300]!r}")
    gps = (st or {}).get("gps", {})
    check("refused: and the fix is in the status",
          gps.get("state") == "fix" and abs(gps.get("lat", 0) - 52.5) < 1e-6
          and abs(gps.get("speed", 0) - 20 * 0.514444) < 0.1, str(gps)[:300])


def rolled_back(a, name, bundle, said, why):
    """Installs `bundle`, whose new version must never be committed: the
    trial boot reboots without a tryboot, slot A runs the old version
    again, slot B is marked bad, the gate's journal (kept on /data across
    the reboot) holds every text in `said`, and the footage survives."""
    dev = fresh(a, name, carry=[bundle])
    if dev is None:
        return
    before = dev.footage()
    out = install(dev, bundle)
    end = dev.wait_end()
    check(f"{name}: installs and reboots into a tryboot",
          end is not None and end.how == "reboot-tryboot", f"{end}; {out[-300:]}")
    chosen = dev.boot()
    check(f"{name}: the firmware boots slot B on trial", chosen == (3, True), str(chosen))
    end = dev.wait_end()
    check(f"{name}: slot B reboots without a tryboot", end is not None and end.how == "reboot",
          f"{end}")
    if not booted(dev, (2, False), "the old slot A boots again"):
        return
    check(f"{name}: the old version runs", dev.version() == "1.0.0", dev.version())
    state = dev.out("blackbox ota backend get-state B")
    check(f"{name}: slot B is marked bad", state == "bad", f"get-state B: {state}")
    log = dev.out("journalctl -b -1 -u blackbox-health --no-pager -o cat")
    check(f"{name}: {why}", all(s in log for s in said),
          next((line for line in log.splitlines() if "rolling back" in line),
               log[-300:] or "no journal of the trial boot"))
    survived(dev, name, before)
    dev.cut()


@scenario
def unhealthy_update(a):
    """An update whose blackbox never starts (its config does not parse)."""
    rolled_back(a, "unhealthy_update", "broken.raucb", ["rolling back"],
                "the gate said why, in the journal kept on /data")


@scenario
def unwritable_update(a):
    """An update whose blackbox runs and answers /healthz but cannot write a
    frame (it records onto the read-only system): never committed."""
    rolled_back(a, "unwritable_update", "unwritable.raucb",
                ["recording has failed", "recording-failing"],
                "the gate saw recording fail, not a crash")


@scenario
def power_cut_during_install(a):
    dev = fresh(a, "power_cut_during_install", carry=["good.raucb"])
    if dev is None:
        return
    before = dev.footage()
    dev.ssh("nohup blackbox update /data/good.raucb > /data/update.log 2>&1 &", timeout=60)
    # A random point of the install, chosen by its progress (RAUC's
    # percentages), not by time, so that a fast or a slow host cuts inside
    # it all the same.
    target = random.randint(0, 95)
    seen = -1
    t0 = time.monotonic()
    while time.monotonic() - t0 < 900:
        log = dev.out("cat /data/update.log")
        percents = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)%", log, re.M)]
        seen = max(percents, default=-1)
        if seen >= target or "succeeded" in log or "not installed" in log:
            break
        time.sleep(0.2)
    dev.cut()
    check("power_cut_during_install: the cut came during the install",
          0 <= seen < 100, f"at {seen} % (aimed at {target} %)")
    if not booted(dev, (2, False), "after the cut, slot A boots"):
        return
    check("power_cut_during_install: the old version runs intact",
          dev.version() == "1.0.0" and "default partition 2" in dev.status(), dev.status())
    survived(dev, "power_cut_during_install", before)
    dev.cut()


@scenario
def power_cut_before_commit(a):
    dev = fresh(a, "power_cut_before_commit", carry=["good.raucb"])
    if dev is None:
        return
    install(dev, "good.raucb")
    end = dev.wait_end()
    check("power_cut_before_commit: reboots into a tryboot", end is not None and end.how == "reboot-tryboot", str(end))
    if not booted(dev, (3, True), "slot B boots on trial"):
        return
    # Hold the health gate so that the cut surely comes before the commit,
    # however slow this host is.
    dev.ssh("systemctl stop blackbox-health.service", timeout=60)
    st = dev.status()
    check("power_cut_before_commit: not yet committed at the cut", "default partition 2" in st,
          st.replace("\n", "; "))
    dev.cut()
    if not booted(dev, (2, False), "after the cut, the old slot A boots"):
        return
    check("power_cut_before_commit: the old version runs", dev.version() == "1.0.0", dev.version())
    dev.cut()


def card_note(dev):
    """The note the first boot left on the card's boot partition."""
    return dev.out("mkdir -p /run/t && flock /run/blackbox/bootcfg.lock sh -c "
                   "'mount -o ro /dev/disk/by-partlabel/bootcfg /run/t && "
                   "cat /run/t/blackbox-password.txt; umount /run/t'")


def through_phone(dev, ip, port, request, server_hostname, ctx, ns="phone"):
    """One HTTPS request sent from the phone's namespace inside the guest
    (wifi_phone pipe carries the TCP connection over SSH's stdin/stdout),
    with this host's TLS client at the end of it, trusting `ctx`: what a
    phone's browser sees, certificate check included. The response's
    bytes, or the exception's repr."""
    proc = subprocess.Popen(
        ["ssh", "-i", dev.key, "-p", str(dev.ssh_port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
         "root@127.0.0.1", f"/data/phone/phone.sh in {ns} /data/phone/wifi_phone pipe {ip} {port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    near, far = socket.socketpair()

    def up():  # from the TLS client to the phone
        try:
            while data := far.recv(65536):
                proc.stdin.write(data)
                proc.stdin.flush()
        except OSError:
            pass
        try:
            proc.stdin.close()
        except OSError:
            pass

    def down():  # from the phone to the TLS client
        try:
            while data := proc.stdout.read1(65536):
                far.sendall(data)
            far.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):  # the client is done and closed its end
            pass

    threads = [threading.Thread(target=f, daemon=True) for f in (up, down)]
    for t in threads:
        t.start()
    try:
        near.settimeout(300)
        with ctx.wrap_socket(near, server_hostname=server_hostname) as tls:
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return answer
    except Exception as e:
        return repr(e).encode()
    finally:
        far.close()
        proc.kill()
        proc.wait()


@scenario
def wifi(a):
    """The owner's phone on the dashcam's own access point (issue 17): a
    station on the second simulated radio, in its own namespace, joins
    with the passphrase the card shows, gets an address by DHCP, finds
    blackbox.local over mDNS and loads the page over HTTPS, verifying the
    certificate; a wrong passphrase is refused; only the web, SSH, DHCP
    and mDNS answer from the Wi-Fi side, and nothing past the dashcam is
    reachable from it."""
    if not a.phone:
        check("wifi: the phone's tools are here", False, "scenarios.py --phone DIR is missing")
        return
    tools = [(os.path.join(a.phone, f), f"phone/{f}") for f in ("wifi_phone", "busybox", "phone.sh")]
    dev = Device("wifi", a.image, a.key, carry=tools)
    if not booted(dev, (2, False), "boots slot A"):
        return
    phone = "/data/phone/phone.sh"
    note = card_note(dev)
    ssid = re.findall(r"Wi-Fi network: (\S+)", note)
    passphrase = re.findall(r"Wi-Fi passphrase: (\S+)", note)
    machine = dev.out("cat /etc/machine-id")
    check("wifi: the card shows the access point's name (from the machine id) and passphrase",
          ssid and passphrase and ssid[0] == f"blackbox-{machine[-4:].upper()}" and len(passphrase[0]) >= 12,
          f"{ssid} for machine id ...{machine[-8:]}, passphrase of {len(passphrase[0]) if passphrase else 0} characters")
    if not (ssid and passphrase):
        return
    wait_journal(dev, "AP-ENABLED", limit=600)
    enabled = dev.out("journalctl -b -u blackbox-wifi -o short-monotonic --no-pager | grep -m1 AP-ENABLED")
    at = re.match(r"\[\s*([0-9.]+)\]", enabled)
    # Power-on to AP-ENABLED on the host's clock: now, less how long ago
    # (on the guest's clock) hostapd said so.
    host_now = time.monotonic()
    uptime = dev.out("cut -d' ' -f1 /proc/uptime")
    after_power_on = None
    if at and re.fullmatch(r"[0-9.]+", uptime):
        after_power_on = (host_now - dev.fw.started) - (float(uptime) - float(at.group(1)))
    if not check("wifi: the access point opened", at is not None,
                 f"AP-ENABLED {float(at.group(1)):.1f} s after the kernel started, "
                 f"{after_power_on:.1f} s after power-on" if at and after_power_on is not None
                 else dev.journal("blackbox-wifi")):
        return
    if after_power_on is not None:
        print(f"ota: wifi: the access point answered {after_power_on:.1f} s after power-on", flush=True)
    dev.ssh(f"{phone} up", timeout=120)
    wrong = dev.ssh(f"{phone} join {ssid[0]} not-the-passphrase WPA-PSK", timeout=600)
    check("wifi: a wrong passphrase is refused", wrong.returncode == 1 and "refused" in wrong.stdout,
          (wrong.stdout + wrong.stderr).strip()[-200:])
    sae = dev.ssh(f"{phone} join {ssid[0]} {passphrase[0]} SAE", timeout=600)
    check("wifi: the phone joins with the card's passphrase over WPA3-SAE",
          sae.returncode == 0, (sae.stdout + sae.stderr).strip()[-200:])
    psk = dev.ssh(f"{phone} join {ssid[0]} {passphrase[0]} WPA-PSK", timeout=600)
    check("wifi: and over WPA2-PSK (transition mode, for older phones)",
          psk.returncode == 0, (psk.stdout + psk.stderr).strip()[-200:])
    lease = dev.out(f"{phone} dhcp")
    check("wifi: the phone gets an address by DHCP from the dashcam",
          re.fullmatch(r"192\.168\.73\.(\d+)", lease) is not None
          and 10 <= int(lease.rsplit(".", 1)[1]) < 50, lease)
    found = dev.out(f"{phone} run /data/phone/wifi_phone mdns blackbox.local 120")
    check("wifi: the phone finds blackbox.local over mDNS", found.startswith("192.168.73.1 "), found)
    ctx = reach.tls_context(dev.out("cat /data/blackbox/tls/cert.pem"))
    for name in ("blackbox.local", "192.168.73.1"):
        got = through_phone(dev, "192.168.73.1", 443,
                            f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode(),
                            name, ctx)
        check(f"wifi: the phone loads /healthz over HTTPS as {name}, the certificate verified",
              got.startswith(b"HTTP/1.1 200"), got.decode(errors="replace").splitlines()[0] if got else "")
    other = through_phone(dev, "192.168.73.1", 443,
                          b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n", "evil.example", ctx)
    check("wifi: (the check is real: a name the certificate does not carry is refused)",
          b"CERTIFICATE_VERIFY_FAILED" in other, other[:100].decode(errors="replace"))
    page = through_phone(dev, "192.168.73.1", 443,
                         b"GET /login HTTP/1.1\r\nHost: blackbox.local\r\nConnection: close\r\n\r\n",
                         "blackbox.local", ctx)
    check("wifi: and the login page", page.startswith(b"HTTP/1.1 200") and b"<form" in page,
          page.decode(errors="replace").splitlines()[0] if page else "")
    # The firewall, not only what happens to listen: a listener on every
    # address of the dashcam, reachable on loopback, stays closed to the
    # phone.
    dev.ssh("setsid -f /data/phone/wifi_phone listen 9999 </dev/null >/dev/null 2>&1", timeout=60)
    local = dev.out("/data/phone/wifi_phone tcp-scan 127.0.0.1 9999 9999")
    scan_out = dev.out(f"{phone} run /data/phone/wifi_phone tcp-scan 192.168.73.1 1 65535")
    open_ports = [int(p) for p in re.findall(r"^open (\d+)$", scan_out, re.M)]
    check("wifi: from the phone only SSH and the web answer on TCP (all 65535 ports scanned)",
          open_ports == [22, 80, 443] and "open 9999" in local,
          f"{scan_out.splitlines()[-1] if scan_out else ''}: open {open_ports}; 9999 on loopback: {local.splitlines()[:1]}")
    listening = sorted({int(m) for m in re.findall(r":(\d+)\s", dev.out("ss -ulnH | awk '{print $4\" \"}'"))})
    probe = sorted(set(listening) | {67, 5353, 5355, 53, 9999})
    local_udp = dev.out("/data/phone/wifi_phone udp 127.0.0.1 9999")
    udp = dev.out(f"{phone} run /data/phone/wifi_phone udp 192.168.73.1 {' '.join(map(str, probe))}")
    said = dict(l.split() for l in udp.splitlines() if len(l.split()) == 2)
    check("wifi: on UDP only DHCP and mDNS: every other port the dashcam listens on is refused",
          said.get("67") != "refused" and said.get("5353") != "refused"
          and all(v == "refused" for p, v in said.items() if p not in ("67", "5353"))
          and len(said) == len(probe) and local_udp == "9999 replied",
          f"listening {listening}; from the phone: {udp.replace(chr(10), ', ')}; on loopback: {local_udp}")
    # Past the dashcam: a host on another link of the dashcam, reachable
    # from the dashcam itself; the phone, routed through the dashcam, even
    # with forwarding switched on, does not get there.
    dev.ssh(f"{phone} beyond && sysctl -q -w net.ipv4.ip_forward=1", timeout=120)
    dev.ssh(f"{phone} run ip route add default via 192.168.73.1", timeout=60)
    mine = dev.out("/data/phone/wifi_phone tcp-scan 10.73.0.2 7000 7000")
    theirs = dev.out(f"{phone} run /data/phone/wifi_phone tcp-scan 10.73.0.2 7000 7000")
    check("wifi: nothing past the dashcam is reachable from the phone",
          "open 7000" in mine and "0 open" in theirs,
          f"from the dashcam: {mine.splitlines()[-1:]}; from the phone: {theirs.splitlines()[-1:]}")
    dev.ssh("sysctl -q -w net.ipv4.ip_forward=0", timeout=60)
    wifi_changes(dev, ssid[0], passphrase[0], ctx)
    # /healthz answers 200 only while every frame is being written.
    healthy = dev.healthz()
    check("wifi: blackbox is healthy (recording) after all of it", healthy == 200,
          "/healthz 200" if healthy == 200 else dev.journal("blackbox"))
    dev.cut()


def owner_api(dev, ctx, password, method, path, body=None):
    """(status, parsed JSON or None) of a request to the dashcam's API
    over HTTPS (the forwarded port), as the owner with the password."""
    req = urllib.request.Request(
        f"https://127.0.0.1:{dev.https_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"x:{password}".encode()).decode()})
    try:
        with urllib.request.urlopen(req, timeout=120, context=ctx) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except Exception as e:
        return getattr(e, "code", repr(e)), None


def wait_journal(dev, text, unit="blackbox-wifi", limit=900):
    """Seconds until `text` is in the unit's journal of this boot; None at
    the limit (a hang detector, not a speed claim)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if text in dev.out(f"journalctl -b -u {unit} --no-pager -o cat"):
            return time.monotonic() - t0
        time.sleep(2)
    return None


def wifi_changes(dev, ssid, passphrase, ctx):
    """The rest of the wifi scenario: a new passphrase from the API, the
    home network joined in auto mode and lost again, the recorder's
    counters before and after."""
    phone = "/data/phone/phone.sh"
    console = open(dev.fw.console_path, errors="replace").read()
    password = (re.findall(r"the dashcam's password is (\S+)", console) or ["?"])[-1]

    def counters():
        code, st = owner_api(dev, ctx, password, "GET", "/api/status")
        if code != 200:
            return None
        rec = st["recorder"]
        return {"captured": st["frames"]["captured"], "written": rec["frames_written"],
                "dropped": rec["dropped"], "lost": rec["frames_lost"]}

    def journal_has(text):
        return wait_journal(dev, text)

    before = counters()
    # A new passphrase from the page's API: hostapd restarts with it.
    new = "new-passphrase-2026"
    code, _ = owner_api(dev, ctx, password, "POST", "/api/wifi/access-point", {"passphrase": new})
    took = journal_has("opened (its name or passphrase changed)")
    check("wifi: a new passphrase from the API restarts the access point, no reboot",
          code == 204 and took is not None, f"POST {code}; restarted {took and round(took)} s later")
    old = dev.ssh(f"{phone} join {ssid} {passphrase} WPA-PSK", timeout=600)
    check("wifi: the old passphrase is refused", old.returncode == 1 and "refused" in old.stdout,
          (old.stdout + old.stderr).strip()[-200:])
    joined = dev.ssh(f"{phone} join {ssid} {new} SAE", timeout=600)
    check("wifi: the new one joins", joined.returncode == 0, (joined.stdout + joined.stderr).strip()[-200:])

    # The owner's home network, added in the page: in auto mode the
    # dashcam joins it and is found there.
    dev.ssh(f"{phone} home home-net home-passphrase-1", timeout=120)
    t0 = time.monotonic()
    code, _ = owner_api(dev, ctx, password, "POST", "/api/wifi/networks",
                        {"ssid": "home-net", "passphrase": "home-passphrase-1"})
    home_ip = ""
    while time.monotonic() - t0 < 900 and not home_ip.startswith("192.168.50."):
        time.sleep(2)
        home_ip = dev.out("ip -4 -o addr show wlan0 | awk '{print $4}' | cut -d/ -f1")
    check("wifi: auto mode joins a known network in range (added from the API) and leases an address there",
          code == 204 and home_ip.startswith("192.168.50."),
          f"POST {code}; wlan0 {home_ip or 'no address'} {time.monotonic() - t0:.0f} s later; "
          f"{dev.journal('blackbox-wifi')[-300:]}")
    code, w = owner_api(dev, ctx, password, "GET", "/api/wifi")
    st = (w or {}).get("status") or {}
    check("wifi: the API says which network it joined, and its signal",
          st.get("state") == "client" and st.get("ssid") == "home-net" and st.get("connected")
          and isinstance(st.get("signal_dbm"), int), str(st))
    found = dev.out(f"{phone} in home /data/phone/wifi_phone mdns blackbox.local 120")
    check("wifi: on the home network blackbox.local is found over mDNS",
          found.startswith(f"{home_ip} "), f"{found} (its address there: {home_ip})")
    got = through_phone(dev, home_ip, 443,
                        b"GET /healthz HTTP/1.1\r\nHost: blackbox.local\r\nConnection: close\r\n\r\n",
                        "blackbox.local", ctx, ns="home")
    check("wifi: and answers HTTPS there, the certificate verified",
          got.startswith(b"HTTP/1.1 200"), got.decode(errors="replace").splitlines()[0] if got else "")

    # The home network goes away: the access point comes back after
    # wifi.fallback_seconds (60 on the appliance), and the phone joins it.
    dev.ssh(f"{phone} home-stop", timeout=60)
    back = journal_has("opened (no known network for 60 s)")
    check("wifi: when the known network goes away, the access point opens again",
          back is not None, f"{back:.0f} s after the home network went (fallback_seconds 60)"
          if back is not None else dev.journal("blackbox-wifi")[-300:])
    again = dev.ssh(f"{phone} join {ssid} {new} WPA-PSK", timeout=600)
    check("wifi: and the phone joins it again", again.returncode == 0,
          (again.stdout + again.stderr).strip()[-200:])
    after = counters()
    check("wifi: recording counted every frame throughout (none dropped or lost)",
          before and after and after["written"] > before["written"] and after["captured"] > before["captured"]
          # Written kept up with captured, but for the frames in flight
          # (at most record.queue_frames, 90, at either reading).
          and (after["written"] - before["written"]) >= (after["captured"] - before["captured"]) - 90
          and after["dropped"] == before["dropped"] and after["lost"] == before["lost"],
          f"before {before}; after {after}")


ALL = [wifi, good_update, refused, unhealthy_update, unwritable_update, power_cut_during_install,
       power_cut_before_commit]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--bundles", required=True)
    p.add_argument("--key", required=True, help="the rig's SSH private key (KEY.pub beside it)")
    p.add_argument("--only", action="append")
    p.add_argument("--phone", help="wifi_phone, busybox and phone.sh for the wifi scenario")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("OTA_JOBS", "2")),
                   help="scenarios run at once (each its own guest; default 2)")
    a = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    chosen = [s for s in ALL if not a.only or s.__name__ in a.only]
    # Scenarios share nothing but the read-only image and bundles: each has
    # its own copy of the card, ports and directory. Running two at once
    # keeps both of a 2-core machine busy while a guest waits on itself.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for f in [pool.submit(s, a) for s in chosen]:
            f.result()
    print("ota: scenario times: " + ", ".join(f"{n} {t:.0f} s" for n, t in times))
    print(f"ota: {retry_line()}")
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
