"""The session lock, on the real window, engine and backend: idle, it hides every
wearer's data until the signed-in operator's password is given again (checked
against this workstation's verifier), while queued actions keep going."""

from __future__ import annotations

import pytest
from backends import wait_until
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog

from console.domain.actions import ActionState, Claim
from console.sync import SyncEngine
from ui.access.lock import MAX_TRIES
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel
from ui.bridge import GuiBridge
from ui.main_window import MainWindow


@pytest.fixture
def window_locking(start_backend, tmp_path, qtbot):
    """window_locking(seconds): a signed-in window that locks after `seconds` idle."""
    engines: list[SyncEngine] = []

    def start(seconds: float):
        backend = start_backend(wearers=50, speed=1)
        bridge = GuiBridge()
        engine = SyncEngine(backend.url, None, None, str(tmp_path / "cache.db"), bridge.publish)
        engines.append(engine)
        board, alerts = StatusBoardModel(engine.clock.now), AlertQueueModel(engine.clock.now)
        window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.act,
                            engine.wearer_record, training=False, version="test",
                            unlock=engine.unlock, lock_after=seconds, trails=engine)
        qtbot.addWidget(window)
        engine.start()
        engine.sign_in("demo", "demo").result(30)  # as typed: the verifier is kept
        wait_until(lambda: engine.query(lambda s: s.known_operator("demo")).result(5), qtbot=qtbot)
        wait_until(lambda: alerts.rowCount() > 0, qtbot=qtbot)
        window.show()
        return backend, engine, window

    yield start
    for engine in engines:
        engine.stop()


def hidden(window) -> bool:
    return (window.locked and not window.queue.isVisible() and not window.board.isVisible()
            and not window.wearer.isVisible())


def test_idle_locks_input_keeps_it_open_and_only_the_right_password_unlocks(window_locking, qtbot):
    _, engine, window = window_locking(1.5)
    window.queue.view.setFocus()
    for _ in range(8):  # 2.4 s of typing, through the window as keys arrive: never idle for 1.5 s
        QTest.keyClick(window.windowHandle(), Qt.Key_Down)
        qtbot.wait(300)
    assert not window.locked
    qtbot.waitUntil(lambda: window.locked, timeout=5000)
    assert hidden(window)
    assert "Signed in as Demo Operator" in window.lock_page.message.text()
    # The queue's and the board's keys wait for the unlock.
    QTest.keyClick(window, Qt.Key_1, Qt.AltModifier)
    assert hidden(window)

    window.lock_page.password.setText("wrong")
    QTest.keyClick(window.lock_page.password, Qt.Key_Return)
    qtbot.waitUntil(lambda: "Wrong password" in window.lock_page.message.text(), timeout=5000)
    assert f"{MAX_TRIES - 1} more tries" in window.lock_page.message.text() and hidden(window)
    window.lock_page.password.setText("demo")
    QTest.keyClick(window.lock_page.password, Qt.Key_Return)
    qtbot.waitUntil(lambda: not window.locked, timeout=5000)
    assert window.queue.isVisible() and window.board.isVisible()
    QTest.keyClick(window, Qt.Key_1, Qt.AltModifier)
    assert window.queue.view.hasFocus()


def test_queued_actions_are_sent_while_locked(window_locking, qtbot):
    _, engine, window = window_locking(600)
    window.lock()
    alert = window.alert_model.alert_at(0)
    engine.act(Claim(alert.id)).result(5)

    def delivered() -> bool:
        action = window.alert_model.actions.get(alert.id)
        return action is not None and action.state is ActionState.DELIVERED
    wait_until(delivered, qtbot=qtbot)
    assert hidden(window)


def test_locking_cancels_a_dialog_open_over_the_data_and_wrong_passwords_sign_out(
        window_locking, qtbot):
    _, engine, window = window_locking(600)
    dialog = QDialog(window)
    dialog.setWindowTitle("A wearer's details")
    dialog.open()
    window.lock()
    assert not dialog.isVisible() and dialog.result() == QDialog.Rejected
    with qtbot.waitSignal(window.locked_out, timeout=20_000):
        for _ in range(MAX_TRIES):
            window.lock_page.password.setText("wrong")
            window.lock_page.check()
            qtbot.waitUntil(lambda: window.lock_page.button.isEnabled(), timeout=5000)


def test_locking_takes_back_a_trail_map_shown_in_a_window_of_its_own(window_locking, qtbot):
    _, engine, window = window_locking(600)
    window.trail.pop_out()
    assert window.trail.window_of_map.isVisible()
    window.lock()
    assert window.trail.window_of_map is None and not window.trail.map_area.isVisible()
    assert hidden(window)


def test_a_trail_map_opens_in_a_window_that_locks_when_idle(window_locking, qtbot):
    """The idle watch once filtered the whole application's events, and PySide
    crashed wrapping the map's first emmap: request job as it was being built."""
    import uuid

    from console.domain.actions import RequestTrail
    from console.domain.trails import Purpose, ReferenceKind

    _, engine, window = window_locking(600)
    board = window.board_model
    wearer = next(board.row_at(p).wearer for p in range(board.rowCount())
                  if board.row_at(p).device.kind.value == "gps")
    end = engine.clock.now() - 60
    payload = RequestTrail(str(uuid.uuid4()), wearer.id, Purpose.BREACH, ReferenceKind.EXTERNAL,
                           "REF-1", "suspected breach", end - 3600, end)
    engine.act(payload).result(10)
    wait_until(lambda: engine.trail_request(payload.request_id).exception(5) is None, qtbot=qtbot)
    window.wearer.show_wearer(wearer.id)
    window.wearer.tabs.setCurrentWidget(window.trail)
    window.trail.open(engine.trail_request(payload.request_id).result(5))
    wait_until(lambda: window.trail.map is not None and window.trail.map.drawn["vertices"] > 0,
               qtbot=qtbot, what="the trail painted")
