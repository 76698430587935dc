"""The boards the dashcam cases run on: the Raspberry Pi 5 in the rig
(labgrid: SD mux, power relay, serial console, SSH over Ethernet) and the
qemu-x86_64 image under the firmware stand-in (hil-tests/ota/firmware.py),
which CI runs so that the cases themselves are proven before a rig runs
them. Both offer the same few verbs: flash, power on and off, wait for
health, SSH, HTTP, the console, and wait for a reset the board does by
itself (the hardware watchdog).
"""

import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ota"))
import reach  # noqa: E402
from watch import Watch, retried  # noqa: E402

# Hang detectors for a board or an emulation, never speed claims.
BOOT_TIMEOUT = 900
RESET_TIMEOUT = 600


class Board:
    """What a case may do to a board. A board runs by itself once powered:
    a reboot or a watchdog reset boots it again, as a Pi does."""

    name = "board"
    camera = "testsrc"  # the source kind /api/status reports
    # The cameras the board has, by the ids blackbox gives them (auto:
    # front, rear, ...); the rig says how many are wired (PI5_CAMERAS).
    cameras = ("front",)
    # The stated time from power-on to /healthz answering, on hardware; None
    # under emulation, where only the hang detector applies.
    boot_budget = None

    def __init__(self, key):
        self.key = key  # the rig's SSH private key (KEY.pub beside it)

    # -- the parts each board implements
    def flash(self, image, carry=()):
        """Writes the image to the card, then the rig's key and the files
        in `carry` (update bundles) to its data partition."""
        raise NotImplementedError

    def power_on(self):
        raise NotImplementedError

    def power_cut(self):
        raise NotImplementedError

    def console(self):
        raise NotImplementedError

    def last_end(self):
        """How the last boot ended, if the board can tell (for messages)."""
        return "a new boot id"

    ssh_address = ("127.0.0.1", 22)
    http_base = "http://127.0.0.1"  # port 80: /healthz; the rest redirects
    https_base = "https://127.0.0.1"  # port 443: the page and the API
    # Whether the certificate can name the address the rig uses (it names
    # 127.0.0.1, the host name and .local, not a rig's DHCP address).
    check_hostname = True

    # -- shared
    def ssh(self, cmd, timeout=600, stdin=None):
        host, port = self.ssh_address
        return reach.ssh(self.key, host, port, cmd, timeout, stdin)

    def out(self, cmd):
        r = self.ssh(cmd)
        return (r.stdout + r.stderr).strip()

    def healthz(self):
        return reach.healthz(self.http_base)

    def tls(self):
        """A client context that trusts this board's own certificate (read
        over SSH, as an owner compares its fingerprint) and nothing else."""
        if getattr(self, "_tls", None) is None:
            pem = self.out("cat /data/blackbox/tls/cert.pem")
            self._tls = reach.tls_context(pem, self.check_hostname)
        return self._tls

    # Whether a hang the console proves to be the emulator's may be booted
    # again (never on hardware: there a kernel stall is the product's).
    emulated = False

    def boot_console(self):
        """The console of the current boot (for the hang watch)."""
        return self.console()

    def retry_boot(self):
        """Starts the current boot again (emulated boards only)."""
        raise NotImplementedError

    def wait_healthy(self, since):
        """Seconds from `since` until /healthz answers 200 and SSH works, or
        None after the hang detector's limit, or at once when the console
        shows a hang (what it said in self.trouble). A hang proven to be the
        emulator's before blackbox first answered boots again, at most
        twice, counted and printed."""
        watch = Watch(self.boot_console)
        answered = False
        self.trouble = None
        retries = 0
        while time.monotonic() - since < BOOT_TIMEOUT:
            t = watch.check()
            if t is not None:
                self.trouble = t
                if self.emulated and t.kind == "emulator" and not answered and retries < 2:
                    retries += 1
                    retried(self.name, t)
                    self.retry_boot()
                    since = time.monotonic()
                    watch = Watch(self.boot_console)
                    continue
                print(f"note {self.name}: boot ended: {t!r}", flush=True)
                return None
            code = self.healthz()
            answered |= code is not None
            if code == 200 and self.ssh("true", timeout=30).returncode == 0:
                return time.monotonic() - since
            time.sleep(2)
        return None

    def why(self):
        """For a failure's message: the hang the console showed, or its end."""
        return repr(self.trouble) if self.trouble else f"console ends: {self.console()[-800:]}"

    def boot_id(self):
        return self.out("cat /proc/sys/kernel/random/boot_id")

    def wait_reset(self, boot_id):
        """Waits until the board, last seen booted as `boot_id`, has
        restarted by itself (a reboot or a reset) and SSH answers again;
        returns how the old boot ended, or None after the hang detector's
        limit."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < RESET_TIMEOUT:
            time.sleep(3)
            r = self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=30)
            now = r.stdout.strip() if r.returncode == 0 else ""
            if now and now != boot_id:
                return self.last_end()
        return None

    def password(self):
        """The first-boot password, as the owner reads it on the console."""
        m = re.findall(r"the dashcam's password is (\S+)", self.console())
        return m[-1] if m else None

    def provision(self, disk, carry=()):
        """The rig's key and the bundles on the card's /data."""
        self._tls = None  # a new card makes a new certificate
        reach.provision(disk, self.key, carry)


class QemuBoard(Board):
    """The qemu-x86_64 image under the firmware stand-in. qemu ends at a
    reboot or a watchdog reset (-no-reboot, so that the stand-in chooses
    the next slot); a keeper thread powers it on again at once, as a Pi's
    own firmware would, until the power is cut."""

    name = "qemu"

    def __init__(self, key, workdir):
        super().__init__(key)
        from firmware import Firmware
        from reach import free_port
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.disk = os.path.join(workdir, "disk.img")
        ssh, plain, tls = free_port(), free_port(), free_port()
        self.ssh_address = ("127.0.0.1", ssh)
        self.http_base = f"http://127.0.0.1:{plain}"
        self.https_base = f"https://127.0.0.1:{tls}"
        self.fw = Firmware(self.disk, workdir, forwards=[(ssh, 22), (plain, 80), (tls, 443)])
        self.boots = 0
        self.consoles = []
        self.lock = threading.Lock()
        self.powered = False
        self.ends = []

    def flash(self, image, carry=()):
        subprocess.run(["cp", "--sparse=always", image, self.disk], check=True)
        subprocess.run(["truncate", "-s", "+1G", self.disk], check=True)  # a bigger card
        self.provision(self.disk, carry)

    def _start(self):
        self.boots += 1
        path = os.path.join(self.workdir, f"console{self.boots}.log")
        self.consoles.append(path)
        if self.fw.start(path) is None:
            raise RuntimeError("the firmware found nothing to boot")

    def _keep(self):
        while True:
            proc = self.fw.proc
            proc.wait()
            with self.lock:
                if not self.powered or self.fw.proc is not proc:
                    return
                end = self.fw._ended(killed=False)
                self.ends.append(end)
                # qemu's own abort is not a reset of the board: the same
                # boot again (a tryboot stays a tryboot).
                if end.how == "emulator-crash":
                    self.fw.tryboot_flag = end.tryboot
                self._start()

    def power_on(self):
        with self.lock:
            self.powered = True
            self._start()
            started = self.fw.started
        threading.Thread(target=self._keep, daemon=True).start()
        return started

    def power_cut(self):
        with self.lock:
            self.powered = False
            if self.fw.proc and self.fw.proc.poll() is None:
                self.fw.power_cut()

    emulated = True

    def boot_console(self):
        if not self.consoles:
            return ""
        with open(self.consoles[-1], "rb") as f:
            return f.read().decode("utf-8", "replace")

    def retry_boot(self):
        """Pulls the power and boots the same slot (a tryboot stays one):
        the emulator failed, not the board."""
        with self.lock:
            tryboot = self.fw.current[1]
            if self.fw.proc and self.fw.proc.poll() is None:
                self.fw.power_cut()
            self.fw.tryboot_flag = tryboot
            self._start()
        threading.Thread(target=self._keep, daemon=True).start()

    def console(self):
        text = ""
        for path in self.consoles:
            with open(path, "rb") as f:
                text += f.read().decode("utf-8", "replace")
        return text

    def last_end(self):
        return repr(self.ends[-1]) if self.ends else "a new boot id"


class Pi5Board(Board):
    """The Raspberry Pi 5 in the rig, through labgrid (env.yaml)."""

    name = "pi5"
    camera = "rpicam"
    # One or two Pi cameras on the rig's board (PI5_CAMERAS=2: both
    # connectors wired); auto names them front and rear.
    cameras = ("front", "rear")[:max(1, min(2, int(os.environ.get("PI5_CAMERAS", "2"))))]
    # Power to /healthz on a new card (growing /data, keys, the password
    # included): what an owner can expect after turning the car on.
    boot_budget = 90

    def __init__(self, key, target):
        super().__init__(key)
        from labgrid.resource import NetworkService
        self.target = target
        self.mux = target.get_driver("USBSDMuxDriver")
        self.power = target.get_driver("PowerProtocol")
        self.serial = target.get_driver("ConsoleProtocol")
        address = target.get_resource(NetworkService).address
        self.ssh_address = (address, 22)
        self.http_base = f"http://{address}"
        self.https_base = f"https://{address}"
        self.check_hostname = False  # pinned to the board's certificate instead
        self.log = bytearray()
        self.boot_mark = 0
        self.reading = threading.Event()

    def flash(self, image, carry=()):
        self.power.off()
        self.mux.set_mode("host")
        card = self.mux.mux.disk_path
        # Every block, zeros too: a block skipped on the card keeps what the
        # last run left there, and an erofs or FAT block of zeros is data.
        subprocess.run(["dd", f"if={image}", f"of={card}", "bs=4M", "conv=fsync",
                        "status=none"], check=True)
        self.provision(card, carry)
        subprocess.run(["sync"], check=True)
        self.mux.set_mode("dut")

    def _read_console(self):
        while self.reading.is_set():
            try:
                self.log += self.serial.read(size=4096, timeout=1.0)
            except Exception:  # a timeout with nothing to read
                pass

    def boot_console(self):
        return self.log[self.boot_mark:].decode("utf-8", "replace")

    def power_on(self):
        self.boot_mark = len(self.log)
        if not self.reading.is_set():
            self.reading.set()
            threading.Thread(target=self._read_console, daemon=True).start()
        self.power.on()
        return time.monotonic()

    def power_cut(self):
        self.power.off()
        time.sleep(3)  # let the supply's capacitors drain: a real cut

    def console(self):
        return self.log.decode("utf-8", "replace")
