"""The board tells the truth when the console itself loses the link."""

from conftest import wait_until
from PySide6.QtCore import Qt

from console.changes import Changes
from console.sync import SyncEngine
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel
from ui.bridge import GuiBridge
from ui.main_window import MainWindow


def offline_count(board: StatusBoardModel) -> int:
    board.set_filter(offline=True)
    try:
        return board.rowCount()
    finally:
        board.set_filter(offline=False)


def test_a_lost_link_does_not_turn_devices_offline_and_the_board_says_as_of_when(
        start_backend, tmp_path, qtbot):
    backend = start_backend(wearers=300, speed=600)  # a GPS tag is offline after 1 s of silence
    bridge = GuiBridge()
    engine = SyncEngine(backend.url, "demo", "demo", str(tmp_path / "c.db"), bridge.publish,
                        read_timeout=2)
    board = StatusBoardModel(engine.picture_time)
    alerts = AlertQueueModel(engine.clock.now, engine.picture_time)
    window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.act,
                        engine.wearer_record, training=True, version="test")
    qtbot.addWidget(window)
    engine.start()
    window.show()
    try:
        wait_until(lambda: board.total == 300 and engine.status.state == "live", qtbot=qtbot)
        window._refresh_status()
        assert "as of" not in board.headerData(2, Qt.Horizontal)
        backend.kill()
        wait_until(lambda: engine.status.state == "reconnecting", qtbot=qtbot)
        window._refresh_status()
        before = offline_count(board)
        qtbot.wait(3000)  # half an hour of simulated time with no word from the backend
        window._refresh_status()
        board.refresh_time()
        # The console's own silence is not the devices': the same wearers are offline.
        assert offline_count(board) == before < 150
        assert "Connection as of" in board.headerData(2, Qt.Horizontal)
        assert "unknown" in board.headerData(2, Qt.Horizontal, Qt.ToolTipRole)
        assert "Last contact as of" in board.headerData(6, Qt.Horizontal)
        assert window.stale.isVisible() and "unknown" in window.stale.text()
    finally:
        engine.stop()


def test_queue_and_board_stay_on_one_wearer_and_keep_it_through_a_new_picture(start_window, qtbot):
    backend, engine, window = start_window(speed=1)
    wait_until(lambda: window.alert_model.rowCount() > 0 and window.board_model.total == 200,
               qtbot=qtbot)
    board = window.board_model
    window.queue.view.selectRow(0)
    alert = window.queue.selected()
    shown = board.row_at(window.board.view.selectionModel().selectedRows()[0].row())
    assert shown.wearer.id == alert.wearer_id == window.wearer.wearer_id

    # A board row of a wearer without alerts: the queue lets go, so that its buttons
    # never act on another wearer than the one shown.
    quiet = next(p for p in range(board.rowCount()) if board.row_at(p).open_alerts == 0)
    window.board.view.selectRow(quiet)
    assert window.queue.selected() is None
    assert window.wearer.wearer_id == board.row_at(quiet).wearer.id
    # ...and one with alerts: the queue follows to that wearer's first.
    busy = next(p for p in range(board.rowCount()) if board.row_at(p).open_alerts
                and board.row_at(p).wearer.id != alert.wearer_id)
    window.board.view.selectRow(busy)
    assert window.queue.selected().wearer_id == board.row_at(busy).wearer.id

    # A whole new picture (a replaced sync process, a snapshot) keeps the selection.
    chosen = window.queue.selected().id
    picture = engine.query(lambda s: s.load()).result(10)
    window.apply(Changes(picture=picture))
    assert window.queue.selected().id == chosen
    assert window.wearer.wearer_id == board.row_at(busy).wearer.id


def test_names_a_backend_gives_are_shown_as_text_not_markup(start_window, qtbot):
    backend, engine, window = start_window(speed=1)
    for label in (window.counters, window.alarm_status, window.wearer.source):
        assert label.textFormat() == Qt.PlainText, label.accessibleName()
