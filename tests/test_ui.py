"""The status board and alert queue, driven by real events through the real models."""

import sys
import time

import pytest
from conftest import select_unacknowledged, wait_until
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QLineEdit, QPushButton, QTableView

from console.changes import Changes, Picture
from console.domain import (
    LOW_BATTERY,
    Alert,
    AlertState,
    Connection,
    Device,
    DeviceKind,
    DeviceStatus,
    Wearer,
    queue_key,
)
from console.sync import SyncEngine
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel
from ui.bridge import GuiBridge
from ui.main_window import MainWindow

NOW = 1_795_000_000.0


def clock():
    return NOW


def picture(n=50) -> Picture:
    kinds = list(DeviceKind)
    return Picture(
        wearers=[Wearer(f"W{i:03d}", f"EM-{(i * 37) % 1000:03d}") for i in range(n)],
        devices=[Device(f"D{i:03d}", f"W{i:03d}", kinds[i % 4]) for i in range(n)],
        statuses={f"D{i:03d}": DeviceStatus(f"D{i:03d}", NOW - i * 120, (i * 7) % 101,
                                            i % 5 == 0, "ok", True, True) for i in range(n)},
        alerts={f"A{i}": Alert(f"A{i}", f"W{i:03d}", f"D{i:03d}",
                               ["battery", "strap_tamper", "absence_15min"][i % 3],
                               NOW - i * 1000, AlertState.UNACKNOWLEDGED, True)
                for i in range(0, n, 4)},
    )


def test_the_qt_binding_keeps_bool_references_balanced():
    """PySide6 6.12.0 drops a reference to True per emit() with default arguments;
    the console emits thousands an hour and would crash. The pin must hold."""

    class M(QAbstractTableModel):
        def rowCount(self, parent=QModelIndex()):  # noqa: B008
            return 1

        def columnCount(self, parent=QModelIndex()):  # noqa: B008
            return 1

        def data(self, index, role=Qt.DisplayRole):
            return None

    m = M()
    before = sys.getrefcount(True)
    for _ in range(200):
        m.dataChanged.emit(m.index(0, 0), m.index(0, 0))
        m.layoutChanged.emit()
    assert sys.getrefcount(True) >= before - 10


@pytest.mark.parametrize("make", [StatusBoardModel, AlertQueueModel])
def test_table_models_pass_qtmodeltester(qtmodeltester, make):
    model = make(clock)
    model.apply(Changes(picture=picture()))
    qtmodeltester.check(model, force_py=True)
    model.apply(Changes(statuses={"D001": DeviceStatus("D001", NOW, 5, False, "open", True, False)},
                        closed={"A0"}))
    qtmodeltester.check(model, force_py=True)


def test_one_data_changed_per_contiguous_range(qtbot):
    model = StatusBoardModel(clock)
    model.apply(Changes(picture=picture()))
    ranges = []
    model.dataChanged.connect(lambda a, b, roles=(): ranges.append((a.row(), b.row())))
    ids = [model.row_at(p).device.id for p in (0, 1, 2, 10)]
    model.apply(Changes(statuses={d: DeviceStatus(d, NOW, 50, False, "ok", True, True)
                                  for d in ids}))
    assert ranges == [(0, 2), (10, 10)]


def test_the_bridge_hands_big_batches_on_in_order_in_slices(qtbot):
    from ui.bridge import SLICE

    bridge = GuiBridge()
    board = StatusBoardModel(clock)
    big = picture(n=2 * SLICE + 10)
    bridge.changes.connect(board.apply)
    board.apply(Changes(picture=big))
    received = []
    bridge.changes.connect(received.append)
    newer = {d: DeviceStatus(d, NOW + 5, 1, False, "ok", True, True) for d in big.statuses}
    bridge.publish(Changes(statuses=dict(big.statuses), closed={"A0"}))
    bridge.publish(Changes(statuses=newer))  # must win over the first batch's slices
    wait_until(lambda: sum(len(c.statuses) for c in received) == 2 * len(newer), qtbot=qtbot)
    assert [len(c.statuses) for c in received] == [SLICE, SLICE, 10] * 2
    assert received[0].closed == {"A0"} and not received[1].closed
    assert all(board.row_at(p).status.battery == 1 for p in range(board.rowCount()))


def test_board_filters_and_sorts_inside_the_model():
    model = StatusBoardModel(clock)
    model.apply(Changes(picture=picture()))
    model.set_filter(low_battery=True)
    low = [model.row_at(p) for p in range(model.rowCount())]
    assert low and all(r.status.battery < LOW_BATTERY for r in low)
    model.set_filter(low_battery=False, offline=True)
    assert all(model.connection_of(model.row_at(p), NOW) is not Connection.ONLINE
               for p in range(model.rowCount()))
    model.set_filter(offline=False, alerts=True)
    assert model.rowCount() == len(picture().alerts)
    model.set_filter(alerts=False, search="em-074")
    assert [model.row_at(p).wearer.ref for p in range(model.rowCount())] == ["EM-074"]
    model.set_filter(search="")
    model.sort(3, Qt.DescendingOrder)
    batteries = [model.row_at(p).status.battery for p in range(model.rowCount())]
    assert batteries == sorted(batteries, reverse=True) and model.rowCount() == model.total


def test_severity_is_never_colour_alone():
    alerts = AlertQueueModel(clock)
    alerts.show(None)  # every list: this is not about which list an alert is in
    alerts.apply(Changes(picture=picture()))
    texts = [alerts.data(alerts.index(p, 0)) for p in range(alerts.rowCount())]
    assert texts[0].startswith("▲ P1") and texts[-1].startswith("● P3")
    board = StatusBoardModel(clock)
    board.apply(Changes(picture=picture()))
    board.set_filter(low_battery=True)
    assert all("%" in board.data(board.index(p, 3)) and
               ("low" in board.data(board.index(p, 3)) or "charging" in board.data(board.index(p, 3)))
               for p in range(board.rowCount()))


@pytest.fixture
def live(start_window):
    return start_window(speed=120)


def test_the_board_follows_the_live_stream(live, qtbot):
    backend, engine, window = live
    wait_until(lambda: window.board_model.total == 200 and engine.status.applied > 300,
               qtbot=qtbot)
    qtbot.wait(300)  # the last batch reaches the GUI thread within a publish interval
    shown = {window.board_model.row_at(p).device.id: window.board_model.row_at(p).status
             for p in range(window.board_model.rowCount())}
    stored = engine.query(lambda s: s.load().statuses).result(5)
    # The model is at most one publish interval behind the store: most rows agree.
    same = sum(shown[d] == s for d, s in stored.items())
    assert same >= 0.8 * len(stored)
    assert not window.stale.isVisible() and "Live" in window.connection.text()
    assert window.banner is not None and window.banner.isVisible()


def test_alert_queue_orders_by_priority_and_acknowledges_from_the_keyboard(live, qtbot):
    backend, engine, window = live
    model = window.alert_model
    wait_until(lambda: model.rowCount() > 0 and engine.status.state == "live", qtbot=qtbot)
    now = engine.clock.now()
    keys = [queue_key(model.alert_at(p), model._last_contact.get(model.alert_at(p).device_id), now)
            for p in range(model.rowCount())]
    assert keys == sorted(keys)

    alert_id = select_unacknowledged(window)
    assert window.queue.ack.isEnabled()

    def fill_dialog():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QDialog)
        qtbot.keyClicks(dialog.note, "Called the wearer; back on charge")
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()

    QTimer.singleShot(200, fill_dialog)
    qtbot.keyClick(window.queue, Qt.Key_A, Qt.AltModifier)

    def acknowledged_at_backend():
        history = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"]
        return [h["note"] for h in history if h["state"] == "acknowledged"] == [
            "Called the wearer; back on charge"]
    wait_until(acknowledged_at_backend, qtbot=qtbot)
    wait_until(lambda: model.actions.get(alert_id) is not None
               and model.actions[alert_id].state == "delivered", qtbot=qtbot)


def test_keyboard_reaches_everything_and_widgets_have_accessible_names(live, qtbot):
    _, _, window = live
    qtbot.keyClick(window, Qt.Key_2, Qt.AltModifier)
    assert window.board.view.hasFocus()
    qtbot.keyClick(window, Qt.Key_1, Qt.AltModifier)
    assert window.queue.view.hasFocus()
    qtbot.keyClick(window, Qt.Key_F, Qt.ControlModifier)
    assert window.board.search.hasFocus()
    for kind in (QPushButton, QLineEdit, QTableView):
        for widget in window.findChildren(kind):
            assert widget.accessibleName(), widget
    for label in window.findChildren(QLabel):
        if label.objectName() or label.parent() is window.statusBar():
            assert label.accessibleName(), label.text()


def test_the_cached_picture_shows_at_once_marked_stale(tmp_path, qtbot, start_backend):
    backend = start_backend(wearers=60, speed=60)
    cache = str(tmp_path / "cache.db")
    first = SyncEngine(backend.url, "demo", "demo", cache, lambda c: None)
    first.start()
    wait_until(lambda: first.status.applied > 0)
    first.stop()
    backend.kill()
    # Nothing is listening now: the window must still show the cached fleet.
    bridge = GuiBridge()
    engine = SyncEngine(backend.url, "demo", "demo", cache, bridge.publish)
    board, alerts = StatusBoardModel(engine.clock.now), AlertQueueModel(engine.clock.now)
    window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.act,
                        engine.wearer_record, training=False, version="test")
    qtbot.addWidget(window)
    started = time.monotonic()
    engine.start()
    window.show()
    try:
        wait_until(lambda: board.total == 60, qtbot=qtbot, timeout=5)
        assert time.monotonic() - started < 5
        window._refresh_status()
        assert window.stale.isVisible() and "STALE" in window.stale.text()
        assert window.banner is None
    finally:
        engine.stop()


def test_with_nothing_cached_and_no_backend_the_window_says_it_has_no_data(tmp_path, qtbot):
    """An empty queue must not read as "no alerts" when nothing was ever received."""
    from backends import free_port

    bridge = GuiBridge()
    engine = SyncEngine(f"http://127.0.0.1:{free_port()}", "demo", "demo",
                        str(tmp_path / "cache.db"), bridge.publish)
    board, alerts = StatusBoardModel(engine.clock.now), AlertQueueModel(engine.clock.now)
    window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.act,
                        engine.wearer_record, training=False, version="test")
    qtbot.addWidget(window)
    engine.start()
    window.show()
    try:
        wait_until(lambda: engine.status.state == "reconnecting", qtbot=qtbot)
        window._refresh_status()
        assert window.stale.isVisible() and window.stale.text().startswith("⚠ NO DATA")
        assert "urgent alerts unknown: no data yet" in window.alarm_status.text()
        assert "No urgent alert unhandled" not in window.alarm_status.text()
    finally:
        engine.stop()
