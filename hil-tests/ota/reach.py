"""How the tests reach a dashcam, emulated or on the rig: SSH with the
rig's key, GET /healthz (plain HTTP, port 80), HTTPS that trusts the
device's own certificate and nothing else (port 443), and files written
onto a card's data partition before it boots (debugfs into the ext4, no
mount). Shared by boot.py, scenarios.py, fatcut.py and
hil-tests/pi5/boards.py.
"""

import hashlib
import http.client
import os
import re
import socket
import ssl
import subprocess
import urllib.request
from urllib.parse import urlsplit

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


def redirect(url):
    """(status, Location) of a GET that is not followed, or (repr, None)."""
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", u.path + (f"?{u.query}" if u.query else ""))
        r = c.getresponse()
        return r.status, r.getheader("Location")
    except OSError as e:
        return repr(e), None
    finally:
        c.close()


def tls_context(pem, check_hostname=True):
    """A client context that trusts `pem` (the device's self-signed
    certificate, read over SSH) and nothing else. Without the host name
    check it still refuses any other certificate: for a rig that reaches
    the board at an address the certificate cannot name."""
    ctx = ssl.create_default_context(cadata=pem)
    ctx.check_hostname = check_hostname
    return ctx


def fingerprint(der):
    """SHA-256 of a DER certificate as blackbox prints it (AB:CD:...)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def served_fingerprint(host, port):
    """The fingerprint of the certificate served at host:port, taken
    without trusting it (what an owner compares with the printed one)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return fingerprint(s.getpeercert(binary_form=True))


def provision(disk, key, carry=()):
    """The rig's SSH key on the data partition of `disk` (an image file or
    a card), where an owner puts theirs, and the files in `carry` (update
    bundles) beside it, as if copied to the card: through emulated SSH
    100 MB costs a minute of CPU each time, and moving files is not what
    the tests are about. An item of `carry` is a path (put at the top of
    /data) or (path, name under /data) whose directory is made."""
    off = [p for p in partitions(disk).values() if p[2] == "data"][0][0]
    cmds = ["mkdir ssh", f"write {key}.pub ssh/authorized_keys"]
    places = [(c, os.path.basename(c)) if isinstance(c, str) else c for c in carry]
    cmds += [f"mkdir {d}" for d in sorted({os.path.dirname(n) for _, n in places} - {""})]
    cmds += [f"write {path} {name}" for path, name in places]
    # debugfs says nothing when the partition fills up (the file keeps its
    # size, with holes): a card too small for what it must carry fails
    # here, by name.
    stats = subprocess.run(["debugfs", "-R", "stats", f"{disk}?offset={off}"],
                           capture_output=True, text=True).stdout
    free = re.search(r"Free blocks:\s+(\d+)", stats)
    block = re.search(r"Block size:\s+(\d+)", stats)
    if free and block:
        bs = int(block.group(1))
        need = sum(-(-os.path.getsize(p) // bs) for p, _ in places) * 102 // 100 + 64
        if need > int(free.group(1)):
            raise OSError(f"the card's data partition has {int(free.group(1)) * bs} bytes free, "
                          f"not enough for {', '.join(n for _, n in places)} ({need * bs} bytes)")
    for cmd in cmds:
        subprocess.run(["debugfs", "-w", "-R", cmd, f"{disk}?offset={off}"], check=True,
                       capture_output=True)

