"""The window's sync engine runs in a process of its own (console/sync/process.py):
what crosses the pipe arrives whole and in order, errors keep their type, a
killed sync process is replaced without losing a queued action, and a dead
window's process does not leave its sync process holding the cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import wait_until

from console.changes import Changes
from console.domain import Span
from console.domain.actions import Acknowledge, ActionState
from console.protocol.client import AuthError
from console.store import CacheInUse, cache_in_use
from console.sync.process import EngineGone, EngineProcess
from console.sync.status import SyncState


class Published:
    """What the engine published, and on which threads."""

    def __init__(self):
        self.changes: list[Changes] = []
        self.threads: set[str] = set()

    def __call__(self, changes: Changes) -> None:
        self.threads.add(threading.current_thread().name)
        self.changes.append(changes)

    def actions(self, key: str) -> list:
        return [c.actions[key] for c in self.changes if key in c.actions]


def unacknowledged(backend) -> str:
    return next(a["id"] for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged")


def test_the_picture_statuses_and_an_action_cross_from_the_sync_process(start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=60)
    alert_id = unacknowledged(backend)
    published = Published()
    engine = EngineProcess(backend.url, "demo", "demo", str(tmp_path / "cache.db"), published)
    try:
        engine.launch().result(20)
        wait_until(lambda: engine.status.state is SyncState.LIVE
                   and any(c.statuses for c in published.changes))
        assert engine._child.pid != os.getpid()
        picture = next(c.picture for c in published.changes if c.picture is not None
                       and c.picture.wearers)
        assert len(picture.wearers) == 300 and picture.wearers[0].curfew is not None
        # The battery alerts' flat spans cross as spans (the accumulated battery policy).
        assert picture.battery and all(isinstance(span, Span) for spans in picture.battery.values()
                                       for span in spans)
        assert engine.status.operator == "Demo Operator"
        assert engine.picture_time() == pytest.approx(engine.clock.now(), abs=60)

        queued = engine.act(Acknowledge(alert_id, "called the wearer")).result(10)
        key = next(iter(queued.actions))
        # The Changes that show it queued arrived before the answer to `act`.
        assert published.actions(key)[0].state is ActionState.PENDING
        wait_until(lambda: published.actions(key)[-1].state is ActionState.DELIVERED)
        assert published.threads == {"sync-process-reader"}
    finally:
        engine.stop()
    assert engine.status.state is SyncState.STOPPED
    with pytest.raises(EngineGone):
        engine.act(Acknowledge(alert_id, "too late")).result(5)
    assert not engine._child.is_alive()
    assert cache_in_use(str(tmp_path / "cache.db")) is None
    history = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"]
    assert [h["state"] for h in history] == ["unacknowledged", "acknowledged"]


def test_errors_keep_their_type_across_the_pipe(start_backend, tmp_path):
    backend = start_backend(wearers=50)
    holder = EngineProcess(backend.url, "demo", "demo", str(tmp_path / "cache.db"), Published())
    second = EngineProcess(backend.url, None, None, str(tmp_path / "cache.db"), Published())
    nobody = EngineProcess("http://127.0.0.1:9", None, None, str(tmp_path / "other.db"),
                           Published())
    try:
        holder.launch().result(20)
        with pytest.raises(CacheInUse) as held:
            second.launch().result(20)
        assert held.value.pid == holder._child.pid

        nobody.launch().result(20)
        with pytest.raises(httpx.ConnectError):
            nobody.sign_in("demo", "demo").result(20)
        with pytest.raises(RuntimeError, match="nobody is signed in"):
            nobody.act(Acknowledge("A1", "note")).result(10)

        fresh = EngineProcess(backend.url, None, None, str(tmp_path / "third.db"), Published())
        try:
            fresh.launch().result(20)
            with pytest.raises(AuthError):
                fresh.sign_in("demo", "wrong").result(20)
            assert fresh.sign_in("demo", "demo").result(20)["name"] == "Demo Operator"
        finally:
            fresh.stop()
    finally:
        for engine in (holder, second, nobody):
            engine.stop()


def test_a_killed_sync_process_is_replaced_and_its_queued_action_sent_once(
        start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=0.0001, state=True)
    port = backend.url.rsplit(":", 1)[1]
    alert_id = unacknowledged(backend)
    published = Published()
    engine = EngineProcess(backend.url, None, None, str(tmp_path / "cache.db"), published)
    try:
        engine.launch().result(20)
        engine.sign_in("demo", "demo").result(20)  # the replacement signs in as demo too
        wait_until(lambda: engine.status.state is SyncState.LIVE)
        backend.kill()
        key = next(iter(engine.act(Acknowledge(alert_id, "queued, then killed")).result(10)
                        .actions))
        first, counted = engine._child, engine.status.applied
        os.kill(first.pid, signal.SIGKILL)
        wait_until(lambda: "ended unexpectedly" in engine.status.detail)
        backend = start_backend(wearers=300, speed=0.0001, state=True, port=port)
        wait_until(lambda: engine._child is not first and engine.status.state is SyncState.LIVE,
                   timeout=40)
        wait_until(lambda: published.actions(key)[-1].state is ActionState.DELIVERED, timeout=30)
        # The replacement published the cached picture again, whole, and the
        # window's counters go on from where the killed one left them.
        assert any(c.picture is not None for c in published.changes[1:])
        assert engine.status.applied >= counted and engine.status.reconnects >= 1
    finally:
        engine.stop()
    history = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"]
    assert [h["state"] for h in history] == ["unacknowledged", "acknowledged"]


def test_the_sync_process_stops_and_frees_the_cache_when_the_window_process_dies(
        start_backend, tmp_path):
    backend = start_backend(wearers=50)
    cache = str(tmp_path / "cache.db")
    script = ("import sys, time\n"
              "from console.sync.process import EngineProcess\n"
              "if __name__ == '__main__':\n"
              f"    e = EngineProcess({backend.url!r}, 'demo', 'demo', {cache!r}, lambda c: None)\n"
              "    e.launch().result(20)\n"
              "    print('open', flush=True)\n"
              "    time.sleep(60)\n")
    (tmp_path / "window.py").write_text(script)
    window = subprocess.Popen([sys.executable, str(tmp_path / "window.py")],
                              stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert window.stdout.readline().strip() == "open"
        assert cache_in_use(cache) is not None
        window.kill()
        window.wait(10)
        started = time.monotonic()
        wait_until(lambda: cache_in_use(cache) is None, timeout=15)
        assert time.monotonic() - started < 15
    finally:
        window.kill()
