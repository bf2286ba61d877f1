"""The board tells the truth when the console itself loses the link."""

from conftest import wait_until
from PySide6.QtCore import Qt

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
