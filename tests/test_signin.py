"""Signing in through the sync engine, on the GUI thread's asyncio loop (qasync):
the dialog's check is the engine's session, a slow or dead backend never freezes
the dialog, Cancel ends the attempt, and signing out asks again on the same cache.

Each test runs as a coroutine on the same loop the console runs on
(ui.app.run_on_qt_loop), and never spins a nested Qt event loop inside it (no
qtbot.wait, no exec()): a modal dialog is opened from a Qt timer instead."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Callable
from pathlib import Path

import keyring
import pytest
from backends import wait_until
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from console.domain.access import MAX_OFFLINE_TRIES
from console.domain.actions import Acknowledge, Action, ActionKind, ActionState
from console.protocol.client import AuthError, Client
from console.store import Store
from console.store.keys import SERVICE
from console.sync import SyncEngine, SyncState
from ui.access.signin import SignInDialog
from ui.app import KEEP, REBUILD, Console, run_on_qt_loop
from ui.bridge import finished


def run(qapp, coro, timeout: float = 60.0):
    """Run a test coroutine on the console's own loop, bounded in time."""
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro
    try:
        return run_on_qt_loop(qapp, bounded(), lambda: None)
    finally:
        # The test's dialog, in a reference cycle, is freed here, on the GUI thread:
        # freed by a collection on an engine thread, it crashed Qt later.
        gc.collect()


async def until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
def silent_backend():
    """Accepts connections (the kernel completes them) and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def engine_for(tmp_path):
    """A started engine with nobody signed in yet, as the window makes it."""
    made: list[SyncEngine] = []

    def make(url: str, cache: str | None = None) -> SyncEngine:
        engine = SyncEngine(url, None, None, str(tmp_path / (cache or f"cache{len(made)}.db")),
                            lambda c: None)
        made.append(engine)
        engine.start()
        return engine

    yield make
    for engine in made:
        engine.stop()


def dialog_for(engine: SyncEngine, url: str, **kw) -> tuple[SignInDialog, list]:
    """The dialog, asking this engine; the futures it was given, to look at."""
    asked = []

    def sign_in(username, password):
        asked.append(engine.sign_in(username, password))
        return asked[-1]
    return SignInDialog(sign_in, engine.sign_in_later, url, training=False, **kw), asked


def signed_in_here_before(engine_for, start_backend, cache: str = "here.db") -> str:
    """A cache on which the demo operator once signed in online, as on a workstation
    they used yesterday; its name, for engine_for."""
    engine = engine_for(start_backend(wearers=20).url, cache)
    engine.sign_in("demo", "demo").result(30)
    wait_until(lambda: engine.query(lambda s: s.known_operator("demo")).result(5) is not None)
    engine.stop()
    return cache


async def shown(dialog: QDialog) -> asyncio.Future:
    """Open the dialog as the console does; the future of its result."""
    result = asyncio.ensure_future(finished(dialog))
    await until(dialog.isVisible, what="the dialog")
    return result


def fill(dialog: SignInDialog, username: str, password: str) -> None:
    dialog.username.setText(username)
    dialog.password.setText(password)


def test_the_dialogs_sign_in_is_the_engines_session_and_it_does_not_sign_in_again(
        qapp, start_backend, engine_for, monkeypatch):
    backend = start_backend(wearers=50, speed=60)
    calls = []
    real_sign_in = Client.sign_in

    async def counted(self, *args):
        calls.append(args)
        return await real_sign_in(self, *args)
    monkeypatch.setattr(Client, "sign_in", counted)
    engine = engine_for(backend.url)
    dialog, _ = dialog_for(engine, backend.url)

    async def main():
        await asyncio.sleep(0.5)
        assert engine.status.state is SyncState.CACHED  # nobody to connect as yet
        result = await shown(dialog)
        fill(dialog, "demo", "demo")
        QTest.keyClick(dialog.password, Qt.Key_Return)
        assert await result == QDialog.Accepted
        assert dialog.operator["name"] == "Demo Operator" and not dialog.offline
        await until(lambda: engine.status.state is SyncState.LIVE and engine.status.applied > 0,
                    what="the engine live on the dialog's session")
        assert engine.status.operator == "Demo Operator"

    run(qapp, main())
    assert calls == [("demo", "demo")]  # one sign-in: the dialog's


def test_a_wrong_password_says_so_and_keeps_the_dialog_open(qapp, start_backend, engine_for):
    backend = start_backend(wearers=20, speed=60)
    engine = engine_for(backend.url)
    dialog, asked = dialog_for(engine, backend.url)

    async def main():
        result = await shown(dialog)
        fill(dialog, "demo", "wrong")
        dialog.sign_in_button.click()
        await until(lambda: asked and asked[0].done() and not dialog.busy)
        assert "wrong username or password" in dialog.message.text()
        assert dialog.isVisible() and not result.done() and dialog.password.isEnabled()
        assert dialog.offline_button.isHidden()
        assert engine.status.operator is None and engine.status.state is SyncState.CACHED
        fill(dialog, "demo", "demo")
        dialog.sign_in_button.click()
        assert await result == QDialog.Accepted

    run(qapp, main())


def test_an_empty_name_is_asked_for_and_a_refused_request_offers_no_offline_way_round(
        qapp, start_backend, engine_for):
    backend = start_backend(wearers=20, speed=60)
    engine = engine_for(backend.url)
    dialog, asked = dialog_for(engine, backend.url)

    async def main():
        result = await shown(dialog)
        fill(dialog, "  ", "demo")
        dialog.sign_in_button.click()
        assert dialog.message.text() == "Enter your username and password." and not asked
        fill(dialog, "x" * 300, "demo")  # longer than the protocol's names: a 422
        dialog.sign_in_button.click()
        await until(lambda: asked and asked[0].done() and not dialog.busy)
        assert dialog.message.text().startswith("The backend refused the sign-in (422")
        assert dialog.offline_button.isHidden() and not result.done()
        dialog.reject()
        assert await result == QDialog.Rejected

    run(qapp, main())


def test_a_backend_that_never_answers_leaves_the_dialog_responsive_and_cancel_ends_it(
        qapp, silent_backend, engine_for):
    url = f"http://127.0.0.1:{silent_backend.getsockname()[1]}"
    engine = engine_for(url)
    dialog, asked = dialog_for(engine, url, timeout=120)

    async def main():
        result = await shown(dialog)
        ticks = []
        timer = QTimer(interval=20)
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        timer.start()
        fill(dialog, "demo", "demo")
        dialog.sign_in_button.click()
        await asyncio.sleep(2.0)
        timer.stop()
        # The request went out and nothing came back; the GUI thread kept turning.
        silent_backend.settimeout(5)
        connection = silent_backend.accept()[0]  # held open: no answer, no close
        assert dialog.busy and dialog.progress.isVisible()
        assert dialog.message.text().startswith("Signing in…") and " s; Cancel" in dialog.message.text()
        assert not dialog.username.isEnabled() and dialog.cancel_button.isEnabled()
        assert len(ticks) >= 50, len(ticks)  # 2 s of a 20 ms timer: ~100 when idle
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert max(gaps) < 0.5, max(gaps)
        cancelled_at = time.monotonic()
        dialog.cancel_button.click()
        await until(lambda: not dialog.busy, timeout=2)
        assert time.monotonic() - cancelled_at < 1.0
        await until(lambda: asked[0].done(), timeout=2, what="the engine's attempt to end")
        assert asked[0].cancelled()  # the attempt on the network thread, not just the wait
        assert "cancelled" in dialog.message.text() and dialog.isVisible() and not result.done()
        assert dialog.username.isEnabled() and not dialog.progress.isVisible()
        assert engine.status.operator is None and engine.status.state is SyncState.CACHED
        dialog.cancel_button.click()  # now nothing is in progress: Cancel closes
        assert await result == QDialog.Rejected
        connection.close()

    run(qapp, main())


def test_an_unanswered_sign_in_is_given_up_and_offers_the_cached_picture_offline(
        qapp, silent_backend, engine_for, start_backend):
    url = f"http://127.0.0.1:{silent_backend.getsockname()[1]}"
    engine = engine_for(url, signed_in_here_before(engine_for, start_backend))
    dialog, asked = dialog_for(engine, url, timeout=1.0)

    async def main():
        result = await shown(dialog)
        fill(dialog, "demo", "demo")
        dialog.sign_in_button.click()
        await until(lambda: not dialog.busy, timeout=5)
        assert "did not answer within 1 s" in dialog.message.text()
        assert dialog.offline_button.isVisible() and asked[0].cancelled()
        dialog.offline_button.click()
        assert await result == QDialog.Accepted and dialog.offline and dialog.operator is None

    run(qapp, main())


def test_offline_only_an_operator_who_signed_in_here_before_gets_in_with_that_password(
        qapp, engine_for, start_backend):
    url = f"http://127.0.0.1:{closed_port()}"
    engine = engine_for(url, signed_in_here_before(engine_for, start_backend))
    dialog, _ = dialog_for(engine, url)

    async def main():
        result = await shown(dialog)
        fill(dialog, "demo2", "demo2")  # a real operator, but never on this workstation
        dialog.sign_in_button.click()
        await until(lambda: dialog.offline_button.isVisible(), timeout=15)
        text = dialog.message.text()
        assert "cannot be reached (ConnectError)" in text
        assert "signed in online on this workstation before" in text
        dialog.offline_button.click()
        await until(lambda: "Offline sign-in refused" in dialog.message.text())
        refused = dialog.message.text()
        fill(dialog, "demo", "not the password")
        dialog.offline_button.click()
        assert dialog.busy  # checking
        await until(lambda: not dialog.busy)
        # The same answer whether the name is unknown here or the password wrong.
        assert dialog.message.text() == refused and not result.done()
        assert engine.status.operator is None
        fill(dialog, "demo", "demo")
        dialog.offline_button.click()
        assert await result == QDialog.Accepted and dialog.offline
        # Offline they act as the backend named them here, with its roles, and the
        # engine keeps trying to sign in with what they typed.
        assert engine.status.operator == "Demo Operator" and engine.status.roles == {"operator"}
        await until(lambda: engine.status.state is SyncState.RECONNECTING, timeout=15)
        assert "ConnectError" in engine.status.detail

    run(qapp, main())


def test_offline_a_workstation_stops_checking_passwords_after_five_wrong_ones(engine_for,
                                                                              start_backend):
    engine = engine_for(f"http://127.0.0.1:{closed_port()}",
                        signed_in_here_before(engine_for, start_backend))
    for _ in range(MAX_OFFLINE_TRIES):
        with pytest.raises(AuthError, match="only an operator who signed in online"):
            engine.sign_in_later("demo", "guess").result(10)
    with pytest.raises(AuthError, match="checks no more for 5 min"):
        engine.sign_in_later("demo", "demo").result(10)  # even the right one, for a while
    assert engine.status.operator is None


def test_an_operation_cancelled_or_left_running_at_stop_ends_on_the_network_thread(tmp_path):
    engine = SyncEngine("http://127.0.0.1:9", None, None, str(tmp_path / "c.db"), lambda c: None)
    engine.start()
    ended = []

    async def forever(client):
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(True)

    first = engine.operation(forever)
    time.sleep(0.2)
    first.cancel()
    deadline = time.monotonic() + 2
    while not ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended == [True]
    second = engine.operation(forever)
    time.sleep(0.2)
    started = time.monotonic()
    engine.stop()
    assert time.monotonic() - started < 2 and second.cancelled() and ended == [True, True]
    assert engine.operation(forever).exception() is not None  # refused once stopped


# -- the console: sign in, sign out, sign in as someone else, quit -----------------


def answer_next_question(button) -> list:
    """Click `button` on the next modal question, from a Qt timer (outside any task)."""
    told = []

    def click():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        told.append(box.text())
        box.button(button).click()
    QTimer.singleShot(100, click)
    return told


async def sign_in_with(console: Console, username: str, password: str):
    await until(lambda: console.dialog is not None and console.dialog.isVisible(),
                what="the sign-in dialog")
    dialog = console.dialog
    fill(dialog, username, password)
    dialog.sign_in_button.click()
    session = console.session
    await until(lambda: session.window.isVisible(), what="the window")
    await until(lambda: session.engine.status.state is SyncState.LIVE, what="live")
    return session


def test_sign_out_stops_the_engine_and_asks_again_and_ctrl_q_quits(qapp, start_backend,
                                                                   tmp_path):
    backend = start_backend(wearers=50, speed=60)
    console = Console(backend.url, str(tmp_path / "cache.db"), False, "test",
                      {"read_timeout": 30.0})

    async def main():
        running = asyncio.ensure_future(console.run())
        first = await sign_in_with(console, "demo", "demo")
        assert first.engine.status.operator == "Demo Operator"
        await until(lambda: first.board.total == 50, what="the board")
        menu = first.window.menuBar().actions()[0].menu()
        sign_out = next(a for a in menu.actions() if a.text() == "Sign &out…")
        closed = []
        first.window.closed.connect(lambda: closed.append(True))
        told = answer_next_question(QMessageBox.Yes)
        QTimer.singleShot(0, sign_out.trigger)  # its question runs a modal loop: not in a task
        await until(lambda: console.session is not first, what="a new session")
        assert "stay in this console's offline cache" in told[0]
        assert closed == [True] and first.engine.status.state is SyncState.STOPPED
        await until(lambda: console.dialog is not None and console.dialog.isVisible())
        assert not console.session.window.isVisible()  # nothing shows before signing in

        second = await sign_in_with(console, "demo2", "demo2")
        assert second.engine.status.operator == "Second Operator"
        await until(lambda: second.board.total == 50, what="the cached and live picture")
        await until(lambda: "signed in as Second Operator" in second.window.counters.text())
        QTest.keyClick(second.window, Qt.Key_Q, Qt.ControlModifier)
        assert await running == 0
        assert second.engine.status.state is SyncState.STOPPED

    run(qapp, main(), timeout=90)


def test_cancel_at_the_first_sign_in_quits_with_1_and_stops_the_engine(qapp, start_backend,
                                                                       tmp_path):
    backend = start_backend(wearers=20, speed=60)
    console = Console(backend.url, str(tmp_path / "cache.db"), False, "test", {})

    async def main():
        running = asyncio.ensure_future(console.run())
        await until(lambda: console.dialog is not None and console.dialog.isVisible())
        session = console.session
        console.dialog.cancel_button.click()
        assert await running == 1
        assert session.engine.status.state is SyncState.STOPPED

    run(qapp, main())


def test_quit_while_the_sign_in_dialog_waits_on_a_silent_backend(qapp, silent_backend, tmp_path):
    """SIGTERM (console.quit) during a hanging attempt: the dialog closes, the attempt
    is cancelled and the engine stops, promptly."""
    url = f"http://127.0.0.1:{silent_backend.getsockname()[1]}"
    console = Console(url, str(tmp_path / "cache.db"), False, "test", {})

    async def main():
        running = asyncio.ensure_future(console.run())
        await until(lambda: console.dialog is not None and console.dialog.isVisible())
        dialog, session = console.dialog, console.session
        fill(dialog, "demo", "demo")
        dialog.sign_in_button.click()
        await asyncio.sleep(0.5)
        assert dialog.busy
        started = time.monotonic()
        console.quit()
        assert await running == 1
        assert time.monotonic() - started < 3
        assert session.engine.status.state is SyncState.STOPPED

    run(qapp, main())


def test_the_cached_picture_loads_while_the_dialog_asks(qapp, start_backend, tmp_path):
    """The engine opens the cache while the dialog asks: the cached picture is in
    the models before the window shows."""
    backend = start_backend(wearers=30, speed=60)
    cache = str(tmp_path / "cache.db")
    seed = SyncEngine(backend.url, "demo", "demo", cache, lambda c: None)
    seed.start()
    deadline = time.monotonic() + 20
    while seed.status.applied == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    seed.stop()
    console = Console(backend.url, cache, False, "test", {})

    async def main():
        running = asyncio.ensure_future(console.run())
        await until(lambda: console.dialog is not None and console.dialog.isVisible())
        await until(lambda: console.session.board.total == 30, what="the cached picture")
        # The picture is published as the cache opens, a moment before the state says so.
        await until(lambda: console.session.engine.status.state is SyncState.CACHED,
                    what="the cached state")
        console.dialog.cancel_button.click()
        await running

    run(qapp, main())


def choose_on_next_box(button_text: str) -> list:
    """Click the button of that text on the next message box the console opens (with
    open(), from a coroutine); what the box said, and its buttons."""
    seen = []

    def click():
        boxes = [w for w in QApplication.topLevelWidgets()
                 if isinstance(w, QMessageBox) and w.isVisible()]
        if not boxes:
            QTimer.singleShot(50, click)
            return
        seen.extend([boxes[0].text(), [b.text() for b in boxes[0].buttons()]])
        next(b for b in boxes[0].buttons() if b.text() == button_text).click()
    QTimer.singleShot(100, click)
    return seen


def test_a_cache_whose_key_is_missing_is_kept_or_rebuilt_as_the_operator_chooses(
        qapp, start_backend, tmp_path):
    backend = start_backend(wearers=20, speed=60)
    cache = tmp_path / "cache.db"
    store = Store(cache)
    store.enqueue(Action("queued-before-the-key-was-lost", ActionKind.ACKNOWLEDGE,
                         Acknowledge("A1", "called"), time.time(), ActionState.PENDING))
    store.close()
    keyring.delete_password(SERVICE, str(cache.resolve()))
    before = cache.read_bytes()

    def set_aside() -> list[Path]:
        return [p for p in tmp_path.iterdir() if p.name.startswith("cache.db.unusable-")]

    async def main():
        # Keep the file for an administrator: the console quits and leaves it as it is.
        told = choose_on_next_box(KEEP)
        assert await Console(backend.url, str(cache), False, "test", {}).run() == 1
        text, buttons = told
        assert "its key is not in the keyring" in text
        assert "It holds 1 operator action not yet sent" in text
        assert sorted(buttons) == sorted([REBUILD, KEEP])
        assert cache.read_bytes() == before and set_aside() == []

        # Rebuild from the backend: moved aside, kept, and a fresh cache signs in.
        console = Console(backend.url, str(cache), False, "test", {})
        running = asyncio.ensure_future(console.run())
        told = choose_on_next_box(REBUILD)
        await until(lambda: told, what="the question")
        await sign_in_with(console, "demo", "demo")
        await until(lambda: console.session.board.total == 20, what="a fresh picture")
        console.quit()
        assert await running == 0
        [aside] = [p for p in set_aside() if p.suffix != ".json"]
        assert aside.read_bytes() == before

    run(qapp, main(), timeout=90)
