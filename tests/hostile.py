"""A backend that says whatever a test tells it to, over real loopback HTTP.

The simulator only ever speaks the protocol correctly; this one sends malformed
snapshots, bad event ids, oversized events and answers that are not what they
claim, so that tests can see what the console does with them.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

SESSION = json.dumps({"token": "t", "operator": {"id": "o", "name": "O", "roles": []}}).encode()


def snapshot(last_event_id: int = 0, **fields) -> bytes:
    """A small snapshot: W2 with GPS device D2, and W1 whose curfew is unusable
    and D3 of an unknown kind, which a client must leave out, not fail on."""
    body = {"stream_id": "hostile", "server_time": "2026-11-18T10:00:00Z",
            "last_event_id": last_event_id,
            "wearers": [{"id": "W1", "ref": "EM-1", "curfew": "25:00-99:00"},
                        {"id": "W2", "ref": "EM-2", "curfew": None}],
            "devices": [{"id": "D2", "wearer_id": "W2", "kind": "gps", "status": None},
                        {"id": "D3", "wearer_id": "W3", "kind": "toaster"}],
            "alerts": [{"id": "A1"}]}
    body.update(fields)
    return json.dumps(body).encode()


def status(device: str, battery: float, ts: str = "2026-11-18T10:00:01Z") -> bytes:
    return json.dumps({"device_id": device, "ts": ts, "battery": battery, "charging": False,
                       "strap": "ok", "gps_fix": True, "at_home": True}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):
        pass

    def _send(self, code, body, ctype="application/json", extra=(), length=True):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        hostile = self.server.hostile
        hostile.requests[urlparse(self.path).path.rsplit("/", 1)[-1]] += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # Every POST, acknowledgements too, is answered with a session.
        self._send(200, SESSION)

    def do_GET(self):
        hostile = self.server.hostile
        path = urlparse(self.path).path
        hostile.requests[path.rsplit("/", 1)[-1]] += 1
        if path.endswith("/snapshot"):
            # Without a length the body ends when the connection closes (HTTP/1.0):
            # a client cannot learn its size before reading it.
            self._send(200, hostile.snapshot, length=hostile.snapshot_length)
        elif path.endswith("/events"):
            # No length: the stream stays open until the handler returns.
            self._send(200, hostile.frames, "text/event-stream",
                       [("X-Stream-Id", "hostile"), ("Cache-Control", "no-cache")], length=False)
            self.wfile.flush()
            time.sleep(hostile.hold_stream)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: Hostile


class Hostile:
    def __init__(self, frames: bytes = b"", snapshot_body: bytes | None = None):
        self.frames = frames
        self.snapshot = snapshot() if snapshot_body is None else snapshot_body
        self.snapshot_length = True
        self.hold_stream = 0.5  # seconds a stream stays open after its frames
        self.requests: Counter[str] = Counter()  # by the path's last part
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hostile = self
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
