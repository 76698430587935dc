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

# Hang detectors for a board or an emulation, never speed claims.
BOOT_TIMEOUT = 900
RESET_TIMEOUT = 600


class Board:
    """What a case may do to a board. A board runs by itself once powered:
    a reboot or a watchdog reset boots it again, as a Pi does."""

    name = "board"
    camera = "testsrc"  # the source kind /api/status reports
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
    http_base = "http://127.0.0.1:8080"

    # -- shared
    def ssh(self, cmd, timeout=600, stdin=None):
        host, port = self.ssh_address
        return reach.ssh(self.key, host, port, cmd, timeout, stdin)

    def out(self, cmd):
        r = self.ssh(cmd)
        return (r.stdout + r.stderr).strip()

    def healthz(self):
        return reach.healthz(self.http_base)

    def wait_healthy(self, since):
        """Seconds from `since` until /healthz answers 200 and SSH works, or
        None after the hang detector's limit."""
        while time.monotonic() - since < BOOT_TIMEOUT:
            if self.healthz() == 200 and self.ssh("true", timeout=30).returncode == 0:
                return time.monotonic() - since
            time.sleep(2)
        return None

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
        ssh, http = free_port(), free_port()
        self.ssh_address = ("127.0.0.1", ssh)
        self.http_base = f"http://127.0.0.1:{http}"
        self.fw = Firmware(self.disk, workdir, forwards=[(ssh, 22), (http, 8080)])
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
        self.http_base = f"http://{address}:8080"
        self.log = bytearray()
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

    def power_on(self):
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
