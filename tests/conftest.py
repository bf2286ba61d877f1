"""Shared fixtures: the real simulator as a child process on a loopback port."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import pytest
from backends import Backend, keyring_in, wait_until  # noqa: F401 - wait_until: the tests' one wait helper

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The caches' keys in a keyring of the tests' own, for every console they start; set
# before any test module is imported, as some read the environment then.
_keyring = tempfile.TemporaryDirectory(prefix="em-console-test-keyring-")
keyring_in(Path(_keyring.name))

# QtWebEngine must be imported before pytest-qt creates the QApplication.
from maps.web import sandbox_off_reason  # noqa: E402

sandbox_off_reason()


@pytest.fixture(autouse=True)
def collect_on_the_main_thread():
    """A Qt object a test leaves in a reference cycle is freed by whichever thread
    next runs the garbage collector. Freed on an engine's thread, a widget's timer
    stays registered with the GUI thread and fires on freed memory (Qt says "Timers
    cannot be stopped from another thread", then a segfault): the next test's engine
    start, waited for on the main thread, left its threads time to collect. So what
    each test leaves is collected here, on the main thread."""
    yield
    gc.collect()


@pytest.fixture
def start_backend(tmp_path):
    started: list[Backend] = []

    def start(wearers: int = 200, speed: float = 60, state: bool = False, extra=(),
              port: str | None = None) -> Backend:
        b = Backend(tmp_path / "backend.db" if state else None, wearers, list(extra), port)
        started.append(b)
        return b.start(speed)

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


@pytest.fixture
def start_window(start_backend, tmp_path, qtbot):
    """The real window on a real engine and backend: start_window(speed) returns
    (backend, engine, window), the engine started and the window shown."""
    from console.sync import SyncEngine
    from ui.alerts.model import AlertQueueModel
    from ui.board.model import StatusBoardModel
    from ui.bridge import GuiBridge
    from ui.main_window import MainWindow

    engines = []

    def start(speed: float, wearers: int = 200):
        backend = start_backend(wearers=wearers, speed=speed)
        bridge = GuiBridge()
        engine = SyncEngine(backend.url, "demo", "demo", str(tmp_path / "cache.db"),
                            bridge.publish)
        engines.append(engine)
        board, alerts = StatusBoardModel(engine.clock.now), AlertQueueModel(engine.clock.now)
        window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.act,
                            engine.wearer_record, training=True, version="test", trails=engine)
        qtbot.addWidget(window)
        engine.start()
        window.show()
        return backend, engine, window

    yield start
    for engine in engines:
        engine.stop()


def select_unacknowledged(window) -> str:
    """Focus the window's alert queue, showing every list, on its first
    unacknowledged alert; its id."""
    from console.domain import AlertState

    model = window.alert_model
    window.queue.show_list(None)
    target = next(p for p in range(model.rowCount())
                  if model.alert_at(p).state is AlertState.UNACKNOWLEDGED)
    window.activateWindow()
    window.queue.view.setFocus()
    window.queue.view.selectRow(target)
    return model.alert_at(target).id

