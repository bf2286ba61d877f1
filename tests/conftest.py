"""Shared fixtures: the real simulator as a child process on a loopback port."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from console.embedded import EmbeddedSimulator
from console.protocol.wire import API

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# QtWebEngine must be imported before pytest-qt creates the QApplication.
from maps.web import sandbox_off_reason  # noqa: E402

sandbox_off_reason()


class Backend(EmbeddedSimulator):
    """A simulator process plus the calls tests make on it directly over HTTP."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.token = httpx.post(f"{self.url}{API}/session",
                                json={"username": "demo", "password": "demo"}).json()["token"]

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}",
                                                       **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}",
                                                        **kw.pop("headers", {})}, **kw)

    def snapshot(self) -> dict:
        return self.get(f"{API}/snapshot").json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_backend(tmp_path):
    started: list[Backend] = []

    def start(wearers: int = 200, speed: float = 60, state: bool = False, extra=()) -> Backend:
        b = Backend(tmp_path / "backend.db" if state else None, wearers, speed, list(extra))
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def hostile():
    """Start backends that misbehave as told (tests/hostile.py); closed afterwards."""
    from hostile import Hostile

    made: list[Hostile] = []

    def make(*args, **kw) -> Hostile:
        made.append(Hostile(*args, **kw))
        return made[-1]

    yield make
    for h in made:
        h.close()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, qtbot=None) -> None:
    """Poll until predicate() is true; fail with the predicate's name otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__name__}")
        if qtbot is not None:
            qtbot.wait(int(interval * 1000))
        else:
            time.sleep(interval)
