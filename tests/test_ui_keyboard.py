"""Keyboard and text: reaching the selection, the note dialog, search, glyphs, times,
last-known values and the File menu (issue 8, item 12)."""

from pathlib import Path

import pytest
import test_ui
from conftest import wait_until
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QRawFont
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox
from test_ui import NOW, clock, picture

from console.changes import Changes, Picture
from console.domain import (
    BREACH_TYPES,
    Alert,
    AlertState,
    Connection,
    Curfew,
    CurfewState,
    Device,
    DeviceKind,
    DeviceStatus,
    Priority,
    Wearer,
)
from ui.alerts.dialogs import MAX_NOTE, AcknowledgeDialog
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel
from ui.board.widget import StatusBoard

UI = Path(__file__).resolve().parent.parent / "ui"
DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def test_every_glyph_the_ui_shows_is_in_dejavu_sans(qapp):
    """A stock Debian desktop has DejaVu and no emoji font: a glyph DejaVu Sans
    lacks (such as ⏳) renders as an empty box."""
    if not DEJAVU_SANS.exists():
        pytest.skip("DejaVu Sans is not installed (apt-get install fonts-dejavu-core)")
    font = QRawFont(str(DEJAVU_SANS), 12)
    texts = [p.read_text() for p in UI.rglob("*.py")]
    texts += [p.label for p in Priority] + [k.label for k in DeviceKind]
    texts += list(BREACH_TYPES.values()) + [c.value for c in CurfewState]
    glyphs = {ch for text in texts for ch in text if ord(ch) > 127}
    assert "●" in glyphs  # the scan sees the UI's texts
    assert sorted(ch for ch in glyphs if not font.supportsCharacter(ord(ch))) == []


def test_search_matches_what_the_board_shows_and_not_hidden_ids(qtbot):
    model = StatusBoardModel(clock)
    model.apply(Changes(picture=picture()))
    board = StatusBoard(model)
    qtbot.addWidget(board)
    assert "device type" in board.search.placeholderText()
    qtbot.keyClicks(board.search, "gps TAG")
    shown = [model.data(model.index(p, 1)) for p in range(model.rowCount())]
    assert shown == ["GPS tag"] * sum(d.kind is DeviceKind.GPS for d in picture().devices)
    board.search.setText("em-074")
    assert [model.data(model.index(p, 0)) for p in range(model.rowCount())] == ["EM-074"]
    for hidden in ("W002", "D002"):  # the wearer and device ids are not on screen
        board.search.setText(hidden)
        assert model.rowCount() == 0, hidden


def test_raised_times_say_the_day_when_not_today_and_the_zone(qtbot):
    model = AlertQueueModel(clock)
    model.show(None)  # every list: this is not about which list an alert is in
    model.apply(Changes(picture=picture()))  # alerts raised up to 13 hours before NOW
    by_id = {model.alert_at(p).id: p for p in range(model.rowCount())}
    column = model.COL_RAISED
    raised = {a: model.data(model.index(by_id[a], column)) for a in ("A0", "A48")}
    assert raised == {"A0": "11:06", "A48": "Tue 17 Nov 21:46"}
    assert "UK time" in model.headerData(column, Qt.Horizontal)
    assert model.data(model.index(by_id["A48"], column), Qt.ToolTipRole) == \
        "Raised Tue 17 Nov 2026 21:46 GMT"
    d = AcknowledgeDialog(model.alert_at(by_id["A48"]), "EM-776", NOW)
    qtbot.addWidget(d)
    assert "raised Tue 17 Nov 2026 21:46 GMT (13 h ago)" in d.summary.text()


def test_an_unreachable_devices_battery_strap_and_curfew_are_last_known():
    evening = Curfew.parse("08:00-20:00")  # covers NOW, 11:06 UK time
    pic = Picture(
        wearers=[Wearer("W0", "EM-000", evening), Wearer("W1", "EM-001", evening),
                 Wearer("W2", "EM-002")],
        devices=[Device(f"D{i}", f"W{i}", DeviceKind.RF) for i in range(3)],
        statuses={"D0": DeviceStatus("D0", NOW - 60, 45, False, "ok", None, True),
                  "D1": DeviceStatus("D1", NOW - 86_400, 45, False, "ok", None, True),
                  "D2": DeviceStatus("D2", NOW - 86_400, 10, True, "open", None, None)},
        alerts={})
    model = StatusBoardModel(clock)
    model.apply(Changes(picture=pic))
    rows = [[model.data(model.index(p, c)) for c in (3, 4, 5)] for p in range(3)]
    assert [model.connection_of(model.row_at(p), NOW) for p in range(3)] == [
        Connection.ONLINE, Connection.OFFLINE, Connection.OFFLINE]
    assert rows == [["45%", "ok", "⌂ inside"],
                    ["45% (last known)", "ok (last known)", "⌂ inside (last known)"],
                    ["10% ⚡ charging (last known)", "✕ open (last known)", "– no curfew now"]]
    assert "Last known" in model.data(model.index(1, 3), Qt.ToolTipRole)
    assert model.data(model.index(0, 3), Qt.ToolTipRole) is None
    assert model.data(model.index(2, 5), Qt.ToolTipRole) is None  # the schedule, not the device


def alert() -> Alert:
    return Alert("A1", "W001", "D001", "strap_tamper", NOW, AlertState.UNACKNOWLEDGED, True)


@pytest.fixture
def dialog(qtbot):
    d = AcknowledgeDialog(alert(), "EM-037", NOW)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitActive(d)
    d.note.setFocus()
    return d


def test_the_note_shows_its_length_and_why_acknowledge_is_unavailable(dialog, qtbot):
    assert dialog.count.accessibleName() and dialog.reason.accessibleName()
    assert (dialog.count.text(), dialog.reason.text()) == ("0 / 2000", "Write a note")
    assert not dialog.ok.isEnabled() and dialog.ok.accessibleDescription() == "Write a note"
    qtbot.keyClicks(dialog.note, "Called the wearer")
    assert (dialog.count.text(), dialog.reason.text()) == ("17 / 2000", "")
    assert dialog.ok.isEnabled()
    dialog.note.setPlainText("x" * (MAX_NOTE + 3))
    assert (dialog.count.text(), dialog.reason.text()) == ("2003 / 2000", "Too long by 3 characters")
    assert not dialog.ok.isEnabled()


def test_ctrl_return_acknowledges_only_a_valid_note(dialog, qtbot):
    qtbot.keyClick(dialog.note, Qt.Key_Return, Qt.ControlModifier)
    assert dialog.isVisible() and dialog.result() == 0  # no note yet
    qtbot.keyClicks(dialog.note, "Seen on camera")
    qtbot.keyClick(dialog.note, Qt.Key_Return, Qt.ControlModifier)
    assert not dialog.isVisible() and dialog.result() == QDialog.Accepted
    assert dialog.text() == "Seen on camera"


live = test_ui.live  # the fixture: a window on a live training simulator


def on_next_modal(qtbot, act) -> list:
    """Run act(dialog) on the next modal dialog to open; returns what act returned."""
    seen = []
    QTimer.singleShot(200, lambda: seen.append(act(QApplication.activeModalWidget())))
    return seen


def test_alt_1_selects_the_first_alert_so_alt_a_opens_the_acknowledge_dialog(live, qtbot):
    _, _, window = live
    wait_until(lambda: window.alert_model.rowCount() > 0 and window.board_model.total > 0,
               qtbot=qtbot)
    assert not window.board.view.selectionModel().hasSelection()
    qtbot.keyClick(window, Qt.Key_2, Qt.AltModifier)
    assert window.board.view.hasFocus()
    assert [i.row() for i in window.board.view.selectionModel().selectedRows()] == [0]

    assert not window.queue.view.selectionModel().hasSelection()
    # Ctrl+1 to Ctrl+5 show the queue's lists: one whose top alert is unacknowledged.
    for n, key in enumerate((Qt.Key_1, Qt.Key_2, Qt.Key_3, Qt.Key_4, Qt.Key_5)):
        qtbot.keyClick(window, key, Qt.ControlModifier)
        assert window.queue.tabs.currentIndex() == n
        top = window.alert_model.alert_at(0) if window.alert_model.rowCount() else None
        if top is not None and top.state is AlertState.UNACKNOWLEDGED:
            break
    qtbot.keyClick(window, Qt.Key_1, Qt.AltModifier)
    assert window.queue.view.hasFocus()
    assert window.queue.selected() == top

    def cancel(dialog):
        dialog.reject()
        return type(dialog)
    opened = on_next_modal(qtbot, cancel)
    qtbot.keyClick(window.queue, Qt.Key_A, Qt.AltModifier)
    wait_until(lambda: opened, qtbot=qtbot, timeout=5)
    assert opened == [AcknowledgeDialog]


def test_ctrl_q_quits_and_file_sign_out_asks_first(live, qtbot):
    _, _, window = live
    qtbot.keyClick(window, Qt.Key_Q, Qt.ControlModifier)
    assert not window.isVisible()  # app.exec() returns when the last window closes

    window.show()
    signed_out = []
    window.sign_out_requested.connect(lambda: signed_out.append(True))
    menu = window.menuBar().actions()[0]
    assert menu.text() == "&File"
    sign_out = next(a for a in menu.menu().actions() if a.text() == "Sign &out…")

    def answer(button):
        def act(box):
            text = box.text()
            box.button(button).click()
            return text
        return act

    told = on_next_modal(qtbot, answer(QMessageBox.No))
    sign_out.trigger()
    assert "stay in this console's offline cache" in told[0]
    assert window.isVisible() and not signed_out

    on_next_modal(qtbot, answer(QMessageBox.Yes))
    sign_out.trigger()
    assert signed_out == [True] and not window.isVisible()
