"""A FastAPI relay in front of blackbox: reads one camera's frame tap and
serves it as MJPEG at /video_feed, for a program that wants a Python web
service of its own beside the dashcam (the project's first notes put one
behind the capture process).

    BLACKBOX_TAP=127.0.0.1:9001 uvicorn app:app --port 8000

BLACKBOX_TAP is the camera's tap (`blackbox run --tap 127.0.0.1:9000`: the
first camera on that port, the second on the next; /api/status lists each
camera's `tap`). One thread reads the tap and keeps the newest frame; each
viewer gets the newest frame whenever it can take one, so a slow viewer
skips frames and never holds the tap back.
"""

import os
import socket
import struct
import threading

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

BOUNDARY = "frame"


class Tap:
    """The newest frame from a blackbox tap, read on a thread of its own."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.cond = threading.Condition()
        self.frame = None
        self.count = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                with socket.create_connection(self.address, timeout=10) as s:
                    stream = s.makefile("rb")
                    while True:
                        head = stream.read(4)
                        if len(head) < 4:
                            break
                        (length,) = struct.unpack(">I", head)
                        jpeg = stream.read(length)
                        if len(jpeg) < length:
                            break
                        with self.cond:
                            self.frame, self.count = jpeg, self.count + 1
                            self.cond.notify_all()
            except OSError:
                pass
            # blackbox restarting: try again shortly.
            threading.Event().wait(0.5)

    def after(self, seen, timeout=5.0):
        """The newest frame once there is one newer than number `seen`."""
        with self.cond:
            self.cond.wait_for(lambda: self.count > seen, timeout)
            return self.count, self.frame


tap = Tap(os.environ.get("BLACKBOX_TAP", "127.0.0.1:9000"))
app = FastAPI(title="blackbox relay")


@app.get("/video_feed")
def video_feed():
    def parts():
        seen = 0
        while True:
            n, jpeg = tap.after(seen)
            if n == seen or jpeg is None:
                continue
            seen = n
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                   f"Content-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")


@app.get("/snapshot.jpg")
def snapshot():
    _, jpeg = tap.after(0)
    if jpeg is None:
        return Response(status_code=503)
    return Response(jpeg, media_type="image/jpeg")
