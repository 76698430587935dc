"""How the tests reach a dashcam, emulated or on the rig: SSH with the
rig's key, GET /healthz, and files written onto a card's data partition
before it boots (debugfs into the ext4, no mount). Shared by scenarios.py,
fatcut.py and hil-tests/pi5/boards.py.
"""

import os
import socket
import subprocess
import urllib.request

from firmware import partitions


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh(key, host, port, cmd, timeout=600, stdin=None):
    """Runs `cmd` as root on the dashcam; the CompletedProcess."""
    return subprocess.run(
        ["ssh", "-i", key, "-p", str(port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "-o", "ConnectTimeout=10", "-o", "BatchMode=yes", f"root@{host}", cmd],
        capture_output=True, text=True, timeout=timeout, stdin=stdin)


def healthz(base):
    """The status of GET {base}/healthz, or None without an answer."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            return r.status
    except Exception as e:
        return getattr(e, "code", None)


def provision(disk, key, carry=()):
    """The rig's SSH key on the data partition of `disk` (an image file or
    a card), where an owner puts theirs, and the files in `carry` (update
    bundles) beside it, as if copied to the card: through emulated SSH
    100 MB costs a minute of CPU each time, and moving files is not what
    the tests are about."""
    off = [p for p in partitions(disk).values() if p[2] == "data"][0][0]
    cmds = ["mkdir ssh", f"write {key}.pub ssh/authorized_keys"]
    cmds += [f"write {path} {os.path.basename(path)}" for path in carry]
    for cmd in cmds:
        subprocess.run(["debugfs", "-w", "-R", cmd, f"{disk}?offset={off}"], check=True,
                       capture_output=True)
