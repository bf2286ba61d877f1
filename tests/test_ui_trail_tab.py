"""The Trail tab in the real window, on a real engine and simulator, with the real
QtWebEngine map (issue 12): asked for with the alert in hand, granted, fetched,
painted, replayed, exported as evidence, and gone from the screen when the operator
moves to another wearer; refused to a coordinator and for a device without GPS,
saying why."""

import csv
import uuid

import pytest
from conftest import wait_until
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from console.domain import DeviceKind
from console.domain.access import Identity, Role
from console.domain.actions import RequestTrail
from console.domain.trails import Purpose, ReferenceKind, RequestState
from console.sync import SyncEngine
from ui.trails.approvals import ApprovalsDialog
from ui.trails.reports import AccessReportDialog
from ui.trails.request import TrailRequestDialog
from ui.trails.tab import TrailTab


def gps_alert_row(window) -> int:
    model, board = window.alert_model, window.board_model
    return next(p for p in range(model.rowCount())
                if board.row_of(model.alert_at(p).wearer_id).device.kind is DeviceKind.GPS
                and model.alert_at(p).type != "inability_to_monitor")


def gps_wearers(window) -> list:
    board = window.board_model
    return [board.row_at(p).wearer for p in range(board.rowCount())
            if board.row_at(p).device.kind is DeviceKind.GPS]


@pytest.fixture
def console_of(tmp_path, qtbot):
    """console_of(backend, user): another console's engine, signed in and live."""
    engines = []

    def start(backend, user: str) -> SyncEngine:
        engine = SyncEngine(backend.url, user, user, str(tmp_path / f"{user}.db"), lambda c: None)
        engines.append(engine)
        engine.start()
        wait_until(lambda: engine.status.state == "live", qtbot=qtbot, what=f"{user} live")
        return engine

    yield start
    for engine in engines:
        engine.stop()


def asked(engine: SyncEngine, wearer_id: str, days: float, purpose=Purpose.ABSCONDING,
          reference: str = "POLICE-123") -> str:
    """A trail request queued by `engine`'s operator, once the backend has it; its id."""
    end = engine.clock.now() - 60
    payload = RequestTrail(str(uuid.uuid4()), wearer_id, purpose, ReferenceKind.EXTERNAL,
                           reference, "reported missing", end - days * 86400, end)
    engine.act(payload).result(10)
    wait_until(lambda: engine.trail_request(payload.request_id).exception(5) is None,
               what="the request at the backend")
    return payload.request_id


def ask_with_the_dialog(tab: TrailTab, justification: str) -> None:
    """Press "Ask for a trail…" and answer the dialog as an operator would."""
    def answer():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, TrailRequestDialog)
        dialog.justification.setPlainText(justification)
        dialog.ok.click()
    QTimer.singleShot(100, answer)
    tab.ask.click()


def test_a_trail_asked_for_an_alert_is_granted_painted_replayed_exported_and_closed_on_leaving(
        start_window, qtbot, tmp_path):
    backend, engine, window = start_window(speed=1)
    window.queue.show_list(None)
    wait_until(lambda: engine.status.state == "live" and window.alert_model.rowCount() > 3,
               qtbot=qtbot)
    window.queue.view.selectRow(gps_alert_row(window))
    alert = window.queue.selected()
    tab = window.trail
    window.wearer.tabs.setCurrentWidget(tab)
    wait_until(lambda: tab.ask.isEnabled(), qtbot=qtbot, what="the ask button")
    ask_with_the_dialog(tab, "Absent in curfew hours: where the wearer went decides the breach")
    wait_until(lambda: tab.map is not None and tab.map.drawn["vertices"] > 0, timeout=40,
               qtbot=qtbot, what="the trail painted")
    assert tab.shown.reference == alert.id and tab.shown.wearer_id == alert.wearer_id
    assert tab.banner.isVisible() and alert.id in tab.banner.text()
    assert tab.shown.purpose.label in tab.banner.text()
    assert tab.map.drawn["vertices"] == tab.map.vertex_counts[tab.map.drawn["zoom"]]
    wait_until(lambda: "stops" in tab.totals.text(), qtbot=qtbot, what="the totals")
    assert "Basemap" in tab.totals.text()

    # Replay: the slider moves the page's marker, and playing moves it on.
    # (The window may hold fewer points than it is long: none while a device is flat.)
    trail = tab.trail
    middle = (trail.t[0] + trail.t[-1]) / 2
    tab.replay.slider.setValue(round((middle - trail.start) / (trail.end - trail.start) * 1000))
    wait_until(lambda: tab.map.replay_position is not None
               and abs(tab.map.replay_position - middle) < 600, qtbot=qtbot, what="the seek")
    at = tab.replay.slider.value()
    before = tab.map.replay_position
    tab.replay.toggle()
    wait_until(lambda: tab.map.replay_position > before + 60, qtbot=qtbot, what="the replay moving")
    tab.replay.toggle()
    assert tab.replay.slider.value() > at

    # Evidence: a PDF, and the export in the console's own audit trail.
    path = tmp_path / "evidence.pdf"
    exported = tab.export(path, condensed=True)
    wait_until(exported.done, qtbot=qtbot, what="the report written")
    assert exported.exception() is None and "audit trail" in tab.status.text()
    assert path.read_bytes().startswith(b"%PDF") and path.stat().st_size > 10_000  # text, not a blank page
    assert any(e.event == "trail exported" and e.key == tab.shown.id
               for e in engine.query(lambda s: s.audit()).result(10))

    # A larger map in a window of its own, and back.
    tab.pop_out()
    assert tab.window_of_map is not None and tab.map_area.window() is tab.window_of_map
    tab.window_of_map.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is tab.window_of_map, timeout=3000)
    QTest.keyClick(tab.window_of_map, Qt.Key_Escape)  # as Ctrl+W: it closes, the map comes back
    assert tab.window_of_map is None and tab.map_area.parent() is tab.split

    # Another wearer: nothing of this trail stays on screen.
    board = window.board_model
    other = next(p for p in range(board.rowCount())
                 if board.row_at(p).wearer.id != alert.wearer_id)
    window.board.view.selectRow(other)
    wait_until(lambda: tab.wearer_id != alert.wearer_id, qtbot=qtbot)
    assert tab.trail is None and tab.shown is None and not tab.banner.isVisible()
    assert not tab.replay.isEnabled()


def test_a_coordinator_and_a_device_without_gps_are_told_why_there_is_no_trail(start_window, qtbot):
    backend, engine, window = start_window(speed=1)
    wait_until(lambda: window.board_model.total == 200, qtbot=qtbot)
    board = window.board_model
    gps = next(board.row_at(p).wearer.id for p in range(board.rowCount())
               if board.row_at(p).device.kind is DeviceKind.GPS)
    rf = next(board.row_at(p).wearer.id for p in range(board.rowCount())
              if board.row_at(p).device.kind is DeviceKind.RF)
    coordinator = TrailTab(board, engine, lambda p: None, engine.clock.now,
                           lambda: Identity("Demo Coordinator", frozenset({Role.COORDINATOR})),
                           lambda: None)
    qtbot.addWidget(coordinator)
    coordinator.show_wearer(gps, None)
    assert not coordinator.ask.isEnabled()
    assert "do not allow you to ask to see a wearer's location trail" in coordinator.status.text()
    tab = window.trail
    tab.show_wearer(rf, None)
    assert not tab.ask.isEnabled() and "records no locations" in tab.status.text()


def test_an_auditor_reports_every_access_to_a_trail_and_says_so_when_there_was_none(
        start_window, console_of, qtbot, tmp_path):
    backend, engine, window = start_window(speed=1)
    wait_until(lambda: engine.status.state == "live" and window.board_model.total == 200, qtbot=qtbot)
    gps = gps_wearers(window)
    engine.trail(engine.trail_request(asked(engine, gps[0].id, days=1 / 24)).result(10)).result(20)

    report = AccessReportDialog(console_of(backend, "audit"), window.board_model, engine.clock.now,
                                lambda: "Demo Auditor")
    qtbot.addWidget(report)
    report.wearer.setText(gps[0].ref)
    report.ask()
    wait_until(lambda: report.table.topLevelItemCount() == 3, qtbot=qtbot, what="the log")
    events = [report.table.topLevelItem(i).text(1) for i in range(3)]
    assert events == ["requested", "granted", "fetched"]
    assert report.table.topLevelItem(2).text(2) == "Demo Operator"
    report.export(tmp_path / "access.csv", "csv")
    rows = list(csv.reader(open(tmp_path / "access.csv", encoding="utf-8")))
    assert rows[0][0] == "When (UK time)" and [r[1] for r in rows[1:]] == events
    assert all(r[5] == "External reference POLICE-123" for r in rows[1:])
    report.export(tmp_path / "access.pdf", "pdf")
    assert (tmp_path / "access.pdf").stat().st_size > 10_000

    report.wearer.setText(gps[1].ref)  # never looked at
    report.ask()
    wait_until(lambda: "recorded no access" in report.status.text(), qtbot=qtbot)
    assert report.table.topLevelItemCount() == 0
    report.export(tmp_path / "none.csv", "csv")
    assert "recorded no access to the trail of " + gps[1].ref in (tmp_path / "none.csv").read_text()


def test_a_supervisor_approves_a_long_window_from_the_approvals_dialog_but_not_their_own(
        start_window, console_of, qtbot):
    backend, engine, window = start_window(speed=1)
    wait_until(lambda: engine.status.state == "live" and window.board_model.total == 200, qtbot=qtbot)
    gps = gps_wearers(window)
    supervisor = console_of(backend, "super")
    theirs = asked(engine, gps[0].id, days=10, purpose=Purpose.ARTICLE_8)
    own = asked(supervisor, gps[1].id, days=10, purpose=Purpose.ARTICLE_8)
    dialog = ApprovalsDialog(supervisor, supervisor.act, lambda: supervisor.status.identity,
                             window.alert_model.wearer_ref)
    qtbot.addWidget(dialog)
    wait_until(lambda: dialog.list.topLevelItemCount() == 1, qtbot=qtbot, what="the list")
    assert [r.id for r in dialog.requests] == [theirs]  # not their own
    assert dialog.list.topLevelItem(0).text(0) == gps[0].ref
    assert not dialog.approve.isEnabled()  # no reason given yet
    dialog.note.setText("Representations need the ten days")
    dialog.approve.click()
    wait_until(lambda: engine.trail_request(theirs).result(5).state is RequestState.GRANTED,
               qtbot=qtbot, what="the approval at the backend")
    assert engine.trail_request(theirs).result(5).decided_by == "Demo Supervisor"
    assert supervisor.trail_request(own).result(5).state is RequestState.PENDING


def test_another_operators_refused_trail_request_is_not_shown_to_whoever_signs_in_next(
        start_window, qtbot):
    from dataclasses import replace

    from console.changes import Changes
    from console.domain.actions import ActionState

    backend, engine, window = start_window(speed=1)
    wait_until(lambda: engine.status.state == "live" and window.board_model.total == 200, qtbot=qtbot)
    board = window.board_model
    rf = next(board.row_at(p).wearer for p in range(board.rowCount())
              if board.row_at(p).device.kind is DeviceKind.RF)
    end = engine.clock.now() - 60
    window._act_all([RequestTrail(str(uuid.uuid4()), rf.id, Purpose.BREACH, ReferenceKind.EXTERNAL,
                                  "REF", "why", end - 3600, end)])
    wait_until(lambda: window._my_problems(), qtbot=qtbot, what="the refusal")
    (mine,) = window._my_problems()
    assert mine.state is ActionState.REJECTED and "records no locations" in mine.detail
    assert window._about(mine) == f"Wearer {rf.ref}"
    # The same refusal as another operator's, queued here before: not theirs to read.
    window.apply(Changes(actions={mine.key: replace(mine, operator="Second Operator")}))
    assert window._my_problems() == [] and len(window.alert_model.problems) == 1
