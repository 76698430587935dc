#!/usr/bin/env python3
"""The page in a real browser: headless Chromium (Debian's, driven by
chromedriver through Selenium) against the real blackbox binary, at a phone's
360 px and a laptop's 1280 px. At each width: the login page, the live view
and the recordings fit the width (nothing scrolls sideways), logging in works,
the live image shows frames (the test pattern moves, so two captures of it
differ); a dashcam still on its first-boot password shows nothing but the
form that replaces it, and the owner's new password then logs in; the Wi-Fi
panel shows the access point's name, passphrase and phones, and a known
network added in its form is listed by name as text (markup in a name stays
text) and forgotten again; the page runs under its Content-Security-Policy
without a single violation in the browser's log, and a page from another
origin cannot frame it. A wait that runs out is a failed check, named.
Prints a line per check and "N passed, M failed".

Usage: page.py BLACKBOX_BINARY
"""
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

os.environ["SE_AVOID_STATS"] = "true"  # Selenium must not phone home
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BIN = sys.argv[1]
results = []


def check(name, ok, info=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {info}", flush=True)
    return ok


def waited(d, name, condition, timeout=60):
    """Waits for `condition`; a timeout is a failed check named `name`."""
    try:
        WebDriverWait(d, timeout).until(condition)
        return True
    except TimeoutException:
        check(name, False, f"not within {timeout} s")
        return False


def csp_violations(d):
    """Messages the browser logged about the Content-Security-Policy."""
    return [e["message"] for e in d.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


def framing_page(url):
    """Serves, from another origin, a page that tries to frame `url`;
    returns its address."""
    html = f"<!doctype html><iframe id=f src='{url}' width=600 height=400></iframe>".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://localhost:{srv.server_address[1]}/"


def spki_hash(cert):
    """base64 SHA-256 of the certificate's public key, as Chromium's
    --ignore-certificate-errors-spki-list wants it: Chromium then trusts
    that one key (a verifying client pinned to the device's certificate)."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def browser(extra=()):
    o = webdriver.ChromeOptions()
    for a in extra:
        o.add_argument(a)
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"]:
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(60)
    return d


def sideways(d):
    """(page width, viewport width): the page must not be wider."""
    return d.execute_script(
        "return [document.scrollingElement.scrollWidth, window.innerWidth]")


def wifi_panel(d, width, ssid, passphrase):
    """The Wi-Fi panel: the access point's name and passphrase, what the
    radio does; a known network added from its form is listed by name,
    as text (a name is anybody's choice: markup in it stays text), and
    forgotten again."""
    d.find_element(By.ID, "tab-live").click()
    d.execute_script("document.getElementById('wifi').scrollIntoView()")
    if not waited(d, f"{width} px: the Wi-Fi panel shows the access point",
                  lambda d: d.find_element(By.ID, "w-ap").text == ssid):
        return
    shown = (d.find_element(By.ID, "w-pass").text, d.find_element(By.ID, "w-state").text)
    check(f"{width} px: the Wi-Fi panel shows the passphrase and the phones on it",
          shown == (passphrase, "access point, 1 phone"), str(shown))
    name = f"<b>home</b> {width}"
    d.find_element(By.ID, "w-net-ssid").send_keys(name)
    d.find_element(By.ID, "w-net-pass").send_keys("home passphrase")
    d.find_element(By.CSS_SELECTOR, "#wifi-net-form button").click()
    if waited(d, f"{width} px: a known network added in the page is listed",
              lambda d: name in d.find_element(By.ID, "w-known").text):
        items = d.find_elements(By.CSS_SELECTOR, "#w-known li")
        check(f"{width} px: its name shows as text, never as markup",
              not d.find_elements(By.CSS_SELECTOR, "#w-known b") and "home passphrase" not in
              d.find_element(By.ID, "wifi").text, f"{len(items)} listed")
        items[-1].find_element(By.TAG_NAME, "button").click()
        waited(d, f"{width} px: and forgotten again",
               lambda d: name not in d.find_element(By.ID, "w-known").text)
    w, v = sideways(d)
    check(f"{width} px: the page with the Wi-Fi panel fits", w <= v, f"{w} px in a {v} px view")


def start(tmp, name, args):
    """Starts `blackbox run ARGS` with its log in TMP/NAME.log; returns the
    process and the URL it says it serves. One that does not start raises,
    with the end of its log."""
    log = os.path.join(tmp, f"{name}.log")
    with open(log, "w") as err:
        proc = subprocess.Popen([BIN, "run", *args], stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    m = re.search(r"https?://[0-9.:]+/", line)
    if m is None:
        proc.kill()
        proc.wait()
        with open(log) as f:
            raise RuntimeError(f"blackbox ({name}) did not start: {line!r}; its log: {f.read()[-800:]}")
    return proc, m.group(0)


def fake_gpsd():
    """A stand-in for gpsd's JSON socket: its greeting, then a TPV report
    of a 3D fix at 54 km/h every half second, to whoever asks to WATCH.
    Returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve(conn):
        try:
            conn.sendall(b'{"class":"VERSION","release":"3.22","proto_major":3,"proto_minor":14}\n')
            conn.recv(1024)
            while True:
                now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
                conn.sendall(('{"class":"TPV","mode":3,"time":"%s","lat":52.5,"lon":13.4,'
                              '"altMSL":34.5,"speed":15.0,"track":90.0}\n' % now).encode())
                time.sleep(0.5)
        except OSError:
            pass

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


class Accelerometer:
    """An IIO accelerometer as the kernel's sysfs ABI lays it out
    (in_accel_{x,y,z}_raw, in_accel_scale in m/s² per unit, name), each
    value replaced whole; 1 g straight down to begin with."""
    SCALE = 0.038245935

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "iio:device0")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "in_accel_scale"), "w") as f:
            f.write(f"{self.SCALE}\n")
        with open(os.path.join(self.dir, "name"), "w") as f:
            f.write("adxl345\n")
        self.set((0.0, 0.0, 1.0))

    def set(self, g):
        for axis, v in zip("xyz", g):
            tmp = os.path.join(self.dir, f".{axis}")
            with open(tmp, "w") as f:
                f.write(f"{round(v * 9.80665 / self.SCALE)}\n")
            os.replace(tmp, os.path.join(self.dir, f"in_accel_{axis}_raw"))


def impact_panel(d, width, accel):
    """The status panel names the sensor; at the first width a 2.5 g jolt
    is shown as the last impact, and the recordings list marks it."""
    if not waited(d, f"{width} px: the panel names the accelerometer", lambda d: d.execute_script(
            "return document.getElementById('i-sensor').textContent.startsWith('adxl345 (iio)')"), timeout=30):
        return
    if accel is not None:
        accel.set((0.0, 2.5, 1.0))
        time.sleep(0.3)
        accel.set((0.0, 0.0, 1.0))
    waited(d, f"{width} px: the panel shows the impact and its peak", lambda d: d.execute_script(
        "return document.getElementById('i-last').textContent.endsWith('2.50 g')"), timeout=30)


def parking_panel(d, width):
    """Park now parks the car by hand (same-origin POST behind the login);
    Drive drives again; the panel says which."""
    if not waited(d, f"{width} px: the parking panel says driving", lambda d: d.execute_script(
            "return document.getElementById('p-phase').textContent.startsWith('driving')"
            " && document.getElementById('park').textContent === 'Park now'"), timeout=30):
        return
    d.find_element(By.ID, "park").click()
    if waited(d, f"{width} px: Park now parks", lambda d: d.execute_script(
            "return document.getElementById('p-phase').textContent.startsWith('PARKED')"
            " && document.getElementById('park').textContent === 'Drive'"), timeout=30):
        d.find_element(By.ID, "park").click()
        waited(d, f"{width} px: Drive drives again", lambda d: d.execute_script(
            "return document.getElementById('p-phase').textContent.startsWith('driving')"), timeout=30)


def gps_panel(d, width):
    """The status panel shows the fix, and the clock's state."""
    waited(d, f"{width} px: the GPS panel shows the 3D fix, its speed and position", lambda d: d.execute_script(
        "return document.getElementById('g-fix').textContent.startsWith('3D')"
        " && document.getElementById('g-speed').textContent === '54 km/h'"
        " && document.getElementById('g-pos').textContent === 'N52.50000 E13.40000';"), timeout=30)
    clock = d.find_element(By.ID, "g-clock").text
    check(f"{width} px: the panel says whether the clock is synchronised",
          "synchronised (" in clock, clock)


def main():
    tmp = tempfile.mkdtemp(prefix="blackbox-page-")
    pw_file = os.path.join(tmp, "password")
    wifi_ap = os.path.join(tmp, "wifi-ap")
    out = subprocess.run([BIN, "firstboot", "--password-file", pw_file, "--wifi-ap", wifi_ap],
                         capture_output=True, text=True, check=True)
    first_password = password = re.search(r"password is (\S+)", out.stdout).group(1)
    ap_ssid, ap_pass = re.search(r"Wi-Fi is (\S+), passphrase (\S+)", out.stdout).groups()
    new_password = "the owner's own password"
    cfg = os.path.join(tmp, "blackbox.toml")
    accel = Accelerometer(tmp)
    status = os.path.join(tmp, "wifi-status.json")
    with open(status, "w") as f:
        f.write('{"state": "access-point", "ssid": "%s", "clients": 1, "since": 1}' % ap_ssid)
    with open(cfg, "w") as f:
        # A fixed reserve: 5 % of this host's disk may be more than is free.
        # Two cameras: the front at the flags' 640x480, the rear smaller.
        f.write('[[cameras]]\nid = "front"\nsource = "testsrc"\n'
                '[[cameras]]\nid = "rear"\nsource = "testsrc"\nsize = "320x240"\nfps = 10\n'
                '[record]\nsegment_seconds = 2\nmin_free = "1MiB"\n'
                f'[wifi]\nmode = "auto"\nap_file = "{wifi_ap}"\n'
                f'networks_file = "{os.path.join(tmp, "wifi-networks")}"\nstatus_file = "{status}"\n'
                f'[gps]\nserver = "127.0.0.1:{fake_gpsd()}"\n'
                f'[impact]\nsensor = "{accel.dir}"\n')
    server, url = start(tmp, "page", [
        "--listen", "127.0.0.1:0", "--config", cfg, "--data", os.path.join(tmp, "data"),
        "--password-file", pw_file, "--size", "640x480", "--fps", "15"])
    try:
        d = browser()
        try:
            for width in (360, 1280):
                d.delete_all_cookies()
                d.set_window_size(width, 900)
                d.get(url + "login")
                w, v = sideways(d)
                check(f"{width} px: the login page fits", w <= v, f"{w} px in a {v} px view")
                d.find_element(By.NAME, "password").send_keys(password)
                d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                if not waited(d, f"{width} px: logging in leads to the page",
                              lambda d: d.current_url.rstrip("/") == url.rstrip("/")):
                    continue
                if password == first_password:
                    # First boot: nothing but choosing a password.
                    if waited(d, f"{width} px: the first-boot password must be replaced first",
                              lambda d: d.find_element(By.ID, "first-boot-form").is_displayed()):
                        hidden = not d.find_element(By.ID, "live-view").is_displayed() and \
                            not d.find_element(By.ID, "tab-recordings").is_displayed()
                        check(f"{width} px: the first-boot password must be replaced first", hidden,
                              "only the form shows" if hidden else "the live view shows beside it")
                        w, v = sideways(d)
                        check(f"{width} px: the first-boot form fits", w <= v, f"{w} px in a {v} px view")
                    d.find_element(By.ID, "fb-current").send_keys(first_password)
                    d.find_element(By.ID, "fb-new").send_keys(new_password)
                    d.find_element(By.ID, "fb-again").send_keys(new_password)
                    d.find_element(By.ID, "fb-go").click()
                    if not waited(d, f"{width} px: after the change, back to the login page",
                                  lambda d: d.current_url.endswith("/login")):
                        continue
                    password = new_password
                    d.find_element(By.NAME, "password").send_keys(password)
                    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                    if not waited(d, f"{width} px: the new password logs in",
                                  lambda d: d.current_url.rstrip("/") == url.rstrip("/")):
                        continue
                # The live image: loaded at its size, and moving.
                if waited(d, f"{width} px: the live image loads at 640 px", lambda d: d.execute_script(
                        "const i = document.getElementById('live');"
                        "return i && i.complete && i.naturalWidth === 640;")):
                    live = d.find_element(By.ID, "live")
                    first = live.screenshot_as_png
                    time.sleep(1.0)
                    second = live.screenshot_as_png
                    check(f"{width} px: the live image shows frames", first != second,
                          "two captures a second apart differ" if first != second
                          else "the image did not change")
                both_cameras(d, width)
                gps_panel(d, width)
                impact_panel(d, width, accel if width == 360 else None)
                w, v = sideways(d)
                check(f"{width} px: the live view fits", w <= v, f"{w} px in a {v} px view")
                banner = d.find_element(By.ID, "first-boot")
                check(f"{width} px: with the owner's password, no first-boot banner",
                      not banner.is_displayed() and d.find_element(By.ID, "live-view").is_displayed())
                # The recordings, once there are some.
                if waited(d, f"{width} px: two recordings are listed", lambda d: d.execute_script(
                        "return fetch('/api/recordings', {headers: {'X-Requested-With': 'blackbox'}})"
                        ".then(r => r.json()).then(j => j.moments.length >= 2)")):
                    d.find_element(By.ID, "tab-recordings").click()
                    if waited(d, f"{width} px: the recordings tab shows them",
                              lambda d: len(d.find_elements(By.CSS_SELECTOR, ".seg")) >= 2, timeout=30):
                        w, v = sideways(d)
                        check(f"{width} px: the recordings fit", w <= v, f"{w} px in a {v} px view")
                        badges = d.execute_script(
                            "return [...document.querySelectorAll('.badge.impact')].map((b) => b.textContent)")
                        check(f"{width} px: the moments around the impact say so", "IMPACT 2.5 g" in badges,
                              f"{len(badges)} marked: {sorted(set(badges))}")
                        replay_together(d, width)
                wifi_panel(d, width, ap_ssid, ap_pass)
                # Last: parking and driving again end the segments being
                # written, which the replay above must not meet half-made.
                if width == 1280:
                    parking_panel(d, width)
                d.save_screenshot(os.path.join(tempfile.gettempdir(), f"blackbox-page-{width}.png"))
                bad = csp_violations(d)
                check(f"{width} px: the page runs under its Content-Security-Policy", not bad,
                      "no violation logged" if not bad else "; ".join(bad)[:500])
            # Another site's page cannot frame the dashcam's.
            d.get(framing_page(url))
            time.sleep(2)
            framed = d.execute_script(
                "const f = document.getElementById('f');"
                "try { return f.contentDocument && f.contentDocument.body"
                " && f.contentDocument.body.innerText.length > 0; } catch (e) { return false; }")
            refused = [m for m in (e["message"] for e in d.get_log("browser"))
                       if "frame" in m.lower() and ("refused" in m.lower() or "ancestor" in m.lower()
                                                     or "x-frame-options" in m.lower())]
            check("another origin cannot frame the page", not framed and bool(refused),
                  refused[0][:200] if refused else "the browser logged no refusal")
        finally:
            d.quit()
    finally:
        server.terminate()
        server.wait(timeout=10)
    https_check(tmp)
    relay_check(tmp)


def both_cameras(d, width):
    """The rear camera's own view beside (wide) or inside (phone) the front
    one, moving; tapping it swaps the two."""
    rear = "document.querySelector('.view.other[data-camera=rear] img')"
    if not waited(d, f"{width} px: the rear camera's view loads at 320 px", lambda d: d.execute_script(
            f"const i = {rear}; return !!i && i.complete && i.naturalWidth === 320;")):
        return
    img = d.find_element(By.CSS_SELECTOR, ".view.other[data-camera=rear] img")
    first = img.screenshot_as_png
    time.sleep(1.0)
    second = img.screenshot_as_png
    check(f"{width} px: the rear camera's view shows frames", first != second,
          "two captures a second apart differ" if first != second else "the image did not change")
    main = d.find_element(By.ID, "view").rect
    other = d.find_element(By.CSS_SELECTOR, ".view.other[data-camera=rear]").rect
    inside = (other["x"] >= main["x"] and other["y"] >= main["y"]
              and other["x"] + other["width"] <= main["x"] + main["width"] + 1
              and other["y"] + other["height"] <= main["y"] + main["height"] + 1)
    if width < 900:
        check(f"{width} px: the rear view is inset in the front one", inside, f"{other} in {main}")
    else:
        beside = other["x"] >= main["x"] + main["width"] - 1
        check(f"{width} px: the rear view is beside the front one", beside, f"{other} beside {main}")
    d.find_element(By.CSS_SELECTOR, ".view.other[data-camera=rear]").click()
    swapped = waited(d, f"{width} px: a tap on the rear view makes it the main one", lambda d: d.execute_script(
        "const i = document.getElementById('live');"
        "const o = document.querySelector('.view.other[data-camera=front] img');"
        "return i.complete && i.naturalWidth === 320 && !!o && o.complete && o.naturalWidth === 640;"))
    if swapped:
        check(f"{width} px: a tap on the rear view makes it the main one", True,
              "the main view shows the rear camera, the inset the front")
        d.find_element(By.CSS_SELECTOR, ".view.other[data-camera=front]").click()
        if waited(d, f"{width} px: a tap on the front one swaps them back", lambda d: d.execute_script(
                "const i = document.getElementById('live'); return i.complete && i.naturalWidth === 640;")):
            check(f"{width} px: a tap on the front one swaps them back", True, "the front is main again")


def replay_together(d, width):
    """Play on a moment with both cameras: both replayed views move, and
    the frames shown together were captured within one frame interval of
    each other (the rear's, at 10 fps, is the longer)."""
    clicked = d.execute_script(
        "for (const row of document.querySelectorAll('.seg[data-cameras=\"2\"]')) {"
        "  const b = [...row.querySelectorAll('button')].find((b) => b.textContent === 'Play');"
        "  if (b) { b.click(); return true; } }"
        "return false;")
    if not check(f"{width} px: a moment with both cameras can be played", clicked,
                 "clicked Play" if clicked else "no finished moment with both cameras listed"):
        return
    pair = ("const m = document.getElementById('playback');"
            "const o = document.querySelector('.player .view.other img');"
            "return [m && parseFloat(m.dataset.ts), o && parseFloat(o.dataset.ts)];")
    if not waited(d, f"{width} px: both cameras of the moment replay",
                  lambda d: all(isinstance(x, (int, float)) and x > 0 for x in d.execute_script(pair)),
                  timeout=30):
        return
    samples = []
    for _ in range(4):
        samples.append(d.execute_script(pair))
        time.sleep(0.25)
    moved = len({s[0] for s in samples}) > 1 and len({s[1] for s in samples}) > 1
    check(f"{width} px: the replayed cameras both move", moved, str(samples))
    worst = max(abs(a - b) for a, b in samples)
    check(f"{width} px: replayed together within one frame interval", worst <= 0.101,
          f"at most {worst * 1000:.0f} ms apart (the rear's interval: 100 ms)")
    waited(d, f"{width} px: the replay shows the recorded speed and position", lambda d: d.execute_script(
        "return document.getElementById('play-gps').textContent === '54 km/h · N52.50000 E13.40000';"),
        timeout=30)
    waited(d, f"{width} px: the replay shows the recorded acceleration", lambda d: d.execute_script(
        "return / g · peak \\d+\\.\\d\\d g$/.test(document.getElementById('play-g').textContent);"),
        timeout=30)


def jpeg_size(jpeg):
    """(width, height) from a JPEG's start-of-frame marker, or None."""
    i = 2
    while i + 9 < len(jpeg):
        if jpeg[i] != 0xFF:
            return None
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(jpeg[i + 7:i + 9], "big"), int.from_bytes(jpeg[i + 5:i + 7], "big")
        i += 2 + length
    return None


def relay_check(tmp):
    """examples/relay, the FastAPI app, in front of the rear camera's tap:
    a real HTTP client reads its /video_feed and gets the rear camera's
    frames, moving."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = os.path.join(tmp, "relay.toml")
    with open(cfg, "w") as f:
        f.write('[[cameras]]\nid = "front"\nsource = "testsrc"\nsize = "640x480"\nfps = 10\n'
                '[[cameras]]\nid = "rear"\nsource = "testsrc"\nsize = "320x240"\nfps = 10\n'
                '[record]\nenabled = false\n')
    server, url = start(tmp, "relay", [
        "--listen", "127.0.0.1:0", "--config", cfg, "--data", os.path.join(tmp, "data-relay"),
        "--tap", "127.0.0.1:0"])
    relay = feed = None
    try:
        status = json.loads(urllib.request.urlopen(url + "api/status", timeout=30).read())
        rear_tap = status["cameras"][1]["tap"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        relay = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--app-dir",
             os.path.join(root, "examples", "relay"), "--host", "127.0.0.1", "--port", str(port),
             "--timeout-graceful-shutdown", "2"],
            env=dict(os.environ, BLACKBOX_TAP=rear_tap),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while feed is None and time.monotonic() < deadline:
            try:
                feed = urllib.request.urlopen(f"http://127.0.0.1:{port}/video_feed", timeout=30)
            except OSError:
                time.sleep(0.3)
        if not check("relay: examples/relay serves /video_feed", feed is not None,
                     f"uvicorn on port {port}, reading {rear_tap}"):
            return
        kind = feed.headers.get("Content-Type", "")
        frames = []
        while len(frames) < 4:
            line = feed.readline()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                feed.readline()  # the blank line
                frames.append(feed.read(length))
        sizes = {jpeg_size(j) for j in frames}
        check("relay: the rear camera's frames, moving, through FastAPI",
              kind.startswith("multipart/x-mixed-replace") and len(frames) == 4
              and sizes == {(320, 240)} and len(set(frames)) == 4,
              f"{len(frames)} parts of {sizes}, {len(set(frames))} different; {kind}")
    finally:
        if feed is not None:
            feed.close()
        if relay:
            relay.terminate()
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
        server.terminate()
        server.wait(timeout=10)


def https_check(tmp):
    """The page over HTTPS with the device's own certificate, in Chromium
    trusting that certificate's key alone: it loads as a secure context,
    and logging in works with the Secure cookie."""
    tls = os.path.join(tmp, "tls")
    pw_file = os.path.join(tmp, "password-tls")
    out = subprocess.run([BIN, "firstboot", "--password-file", pw_file, "--tls-dir", tls],
                         capture_output=True, text=True, check=True)
    password = re.search(r"password is (\S+)", out.stdout).group(1)
    cfg = os.path.join(tmp, "tls.toml")
    with open(cfg, "w") as f:
        f.write(f'[http]\ntls_cert = "{tls}/cert.pem"\ntls_key = "{tls}/key.pem"\n')
    server, served = start(tmp, "tls", [
        "--listen", "127.0.0.1:0", "--config", cfg, "--data", os.path.join(tmp, "data-tls"),
        "--password-file", pw_file, "--size", "320x240", "--fps", "10"])
    d = None
    try:
        port = served.rstrip("/").rsplit(":", 1)[1]
        url = f"https://localhost:{port}/"
        d = browser([f"--ignore-certificate-errors-spki-list={spki_hash(os.path.join(tls, 'cert.pem'))}"])
        d.set_window_size(1280, 900)
        d.get(url + "login")
        # The login form itself, not a certificate warning in its place.
        secure = d.execute_script("return window.isSecureContext && location.protocol === 'https:'"
                                  " && document.querySelector('input[name=password]') !== null")
        check("HTTPS: the login page loads over TLS with the device's certificate", bool(secure),
              d.title if secure else d.page_source[:200])
        if secure:
            d.find_element(By.NAME, "password").send_keys(password)
            d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            if waited(d, "HTTPS: logging in leads to the page (the Secure cookie works)",
                      lambda d: d.current_url.rstrip("/") == url.rstrip("/")):
                check("HTTPS: logging in leads to the page (the Secure cookie works)", True,
                      d.current_url)
    finally:
        if d is not None:
            d.quit()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the suite still reports, and says why it stopped
        traceback.print_exc()
        why = f"{type(e).__name__}: {e}"
        if isinstance(e, subprocess.CalledProcessError):
            why += f"; its stderr: {(e.stderr or '')[-500:]}"
        check("the page suite ran to its end", False, why)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if results and all(results) else 1)
