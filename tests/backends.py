"""The one backend and the one wait helper of every test, the fault suite and the
benchmarks: the real simulator as a child process on a loopback port, and the HTTP
calls tests make on it directly. No pytest and no Qt here, so that the suites that
run as scripts import it too."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import sqlcipher3

from console.embedded import EmbeddedSimulator
from console.protocol.schema import API
from console.store import KEYRING
from console.store.database import open_file


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def keyring_in(folder: Path) -> None:
    """Keep the caches' keys of this process, and of every console it starts, in a
    keyring file in `folder` (keyrings.alt's plaintext keyring: a real backend), never
    in the keyring of whoever runs the tests. Before the first use of the keyring."""
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    os.environ["KEYRING_PROPERTY_FILE_PATH"] = str(folder / "keyring.cfg")


def read_cache(cache: Path) -> sqlcipher3.Connection:
    """A read-only connection, with its key, to a cache that a console is writing."""
    return open_file(cache, KEYRING.key(cache, create=False), read_only=True)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, qtbot=None,
               what: str | None = None) -> None:
    """Poll until predicate() is true; fail naming what was awaited otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or predicate.__name__}")
        if qtbot is not None:
            qtbot.wait(int(interval * 1000))
        else:
            time.sleep(interval)


class Backend:
    """The simulator on a fixed port: start() again after kill() and it continues
    on its state file (if it has one) at the same URL."""

    def __init__(self, state: Path | None, wearers: int, extra: list[str] = (),
                 port: str | None = None):
        self.state = state
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.wearers, self.extra = wearers, list(extra)
        self.sim: EmbeddedSimulator | None = None
        self._tokens: dict[str, str] = {}  # training username: token

    def start(self, speed: float) -> Backend:
        self.sim = EmbeddedSimulator(self.state, self.wearers, speed,
                                     ["--port", self.port, *self.extra])
        return self

    @property
    def process(self):
        return self.sim.process

    def kill(self) -> None:
        self.sim.process.send_signal(signal.SIGKILL)
        self.sim.process.wait()

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.process.send_signal(signal.SIGCONT)  # a frozen one could not stop
            self.sim.stop()

    def signal(self, sig: int) -> None:
        self.sim.process.send_signal(sig)

    @property
    def token(self) -> str:
        return self.token_of("demo")

    def token_of(self, user: str) -> str:
        """A session token of a training user (README: each password is its username)."""
        if user not in self._tokens:
            self._tokens[user] = httpx.post(f"{self.url}{API}/session", timeout=30,
                                            json={"username": user, "password": user}).json()["token"]
        return self._tokens[user]

    def request(self, method: str, path: str, user: str = "demo", **kw) -> httpx.Response:
        """As a training user (the demo operator unless told); a restarted backend
        that forgot the session is asked once more."""
        headers = kw.pop("headers", {})
        kw.setdefault("timeout", 30)
        for _ in range(2):
            resp = httpx.request(method, f"{self.url}{path}", headers={
                "Authorization": f"Bearer {self.token_of(user)}", **headers}, **kw)
            if resp.status_code != 401:
                return resp
            self._tokens.pop(user, None)
        return resp

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def snapshot(self) -> dict:
        return self.get(f"{API}/snapshot").json()

    def last_event_id(self) -> int:
        return self.snapshot()["last_event_id"]
