"""The wearer view in the real window: an alert selects its wearer on the board and
opens their record, which the backend audits once the selection rests; offline it
shows what the console holds and says why the rest is missing.

The record is awaited by a coroutine on the GUI thread's asyncio loop (qasync), so
these tests run as coroutines on that loop, as tests/test_signin.py's do (and in
its process: see the Makefile)."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtCore import Qt
from test_signin import run, until

from console.domain import Outcome, SuspensionReason
from console.domain.actions import Claim, Close
from console.sync import SyncEngine, SyncState
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel
from ui.bridge import GuiBridge
from ui.cases.tab import CaseEntryDialog
from ui.main_window import MainWindow
from ui.wearers.suspend import SuspendDialog


@pytest.fixture
def window_on(tmp_path):
    """window_on(backend): the real window on a started engine, shown."""
    made = []

    def make(backend):
        bridge = GuiBridge()
        engine = SyncEngine(backend.url, "demo", "demo", str(tmp_path / "cache.db"),
                            bridge.publish)
        board, alerts = StatusBoardModel(engine.clock.now), AlertQueueModel(engine.clock.now)
        window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.act,
                            engine.wearer_record, training=True, version="test")
        made.append((engine, window))
        engine.start()
        window.show()
        return engine, window

    yield make
    for engine, window in made:
        engine.stop()
        window.close()


def audited(backend) -> list[str]:
    return [v["wearer_id"] for v in backend.get("/sim/audit", user="audit").json()]


def select_first_alert(window):
    """Select the queue's first alert, as a click would; the alert."""
    window.queue.view.setFocus()
    window.queue.view.selectRow(0)
    return window.alert_model.alert_at(0)


def test_selecting_an_alert_selects_its_wearer_and_opens_their_audited_record(
        qapp, start_backend, window_on):
    backend = start_backend(wearers=200, speed=1)
    engine, window = window_on(backend)

    async def main():
        await until(lambda: window.alert_model.rowCount() > 0, what="alerts")
        alert = select_first_alert(window)
        board_rows = window.board.view.selectionModel().selectedRows()
        assert [window.board_model.row_at(r.row()).wearer.id for r in board_rows] == [
            alert.wearer_id]
        assert window.alert_model.wearer_ref(alert.wearer_id) in window.wearer.header.text()

        await until(lambda: window.wearer.record is not None, what="the record")
        record = window.wearer.record
        assert record.wearer.id == alert.wearer_id
        summary = window.wearer.summary.toPlainText()
        assert record.language in summary
        assert (record.phone or "not recorded") in summary
        assert "audit" in window.wearer.source.text()
        shown = window.wearer.history.topLevelItemCount()
        assert shown == len(record.alerts) and alert.id in {a.id for a in record.alerts}
        assert audited(backend) == [alert.wearer_id]
    run(qapp, main())


def test_arrowing_through_the_board_audits_only_where_the_selection_rests(
        qapp, start_backend, window_on):
    backend = start_backend(wearers=200, speed=1)
    engine, window = window_on(backend)

    async def main():
        await until(lambda: window.board_model.rowCount() > 10, what="the board")
        view = window.board.view
        view.setFocus()
        for row in range(6):  # faster than the view waits before asking
            view.selectRow(row)
            await asyncio.sleep(0.05)
        rested_on = window.board_model.row_at(5).wearer.id
        await until(lambda: window.wearer.record is not None, what="the record")
        await asyncio.sleep(0.6)
        assert window.wearer.record.wearer.id == rested_on
        assert audited(backend) == [rested_on]
    run(qapp, main())


def test_offline_the_view_shows_what_the_console_holds_and_says_why(
        qapp, start_backend, window_on):
    backend = start_backend(wearers=200, speed=1)
    engine, window = window_on(backend)

    async def main():
        await until(lambda: window.alert_model.rowCount() > 0, what="alerts")
        backend.kill()
        await until(lambda: engine.status.state is not SyncState.LIVE, what="the link down")
        alert = select_first_alert(window)
        await until(lambda: "No record from the backend" in window.wearer.source.text(), timeout=30,
                    what="the view saying why")
        assert window.wearer.record is None
        assert window.alert_model.wearer_ref(alert.wearer_id) in window.wearer.header.text()
        assert window.wearer.history.topLevelItemCount() == len(
            window.alert_model.alerts_of(alert.wearer_id)) >= 1
        backend.start(speed=1)  # the link back: the view asks again by itself
        await until(lambda: window.wearer.record is not None, timeout=60, what="the record")
        assert window.wearer.record.wearer.id == alert.wearer_id
    run(qapp, main())


def test_closing_an_alert_as_confirmed_brings_the_case_tab_up_to_date(
        qapp, start_backend, window_on):
    backend = start_backend(wearers=200, speed=1)
    engine, window = window_on(backend)

    async def main():
        await until(lambda: window.alert_model.rowCount() > 0 and engine.status.operator,
                    what="alerts")
        window.queue.show_list(None)
        model = window.alert_model
        free = next(p for p in range(model.rowCount()) if model.alert_at(p).holder is None)
        window.queue.view.selectRow(free)
        alert = model.alert_at(free)
        await until(lambda: window.wearer.record is not None, what="the record")
        before = window.case.counts.text()
        engine.act(Claim(alert.id))
        engine.act(Close(alert.id, Outcome.CONFIRMED_NON_COMPLIANCE, "no excuse given"))
        await until(lambda: window.case.counts.text() != before, timeout=20,
                    what="the Case tab following the close")
        assert "Record the" in window.case.steps.text()
    run(qapp, main())


def test_a_case_entry_recorded_in_the_case_tab_reaches_the_backend_and_the_rule_moves_on(
        qapp, start_backend, window_on):
    """A confirmed breach: the Case tab says to record it; the entry, recorded from
    the dialog, goes through the outbox, reaches the backend once and, with the
    record fetched again, the rule's next step is to ask for mitigation."""
    backend = start_backend(wearers=200, speed=1)
    engine, window = window_on(backend)

    async def main():
        await until(lambda: window.alert_model.rowCount() > 0, what="alerts")
        window.queue.show_list(None)
        model = window.alert_model
        free = next(p for p in range(model.rowCount()) if model.alert_at(p).holder is None)
        window.queue.view.selectRow(free)
        alert = model.alert_at(free)
        for verb, body in (("claim", {}), ("close", {"outcome": "confirmed_non_compliance",
                                                      "note": "no excuse given"})):
            assert backend.post(f"/api/v1/alerts/{alert.id}/{verb}", json=body, headers={
                "Idempotency-Key": f"{verb}-{alert.id}"}).status_code == 200
        await until(lambda: window.wearer.record is not None, what="the record")
        window.wearer.reload()  # the record as it stands since the closing
        await until(lambda: "Record the" in window.case.steps.text(), what="the rule's first step")
        assert "Confirmed breaches:</b> 1" in window.case.counts.text()

        dialog = CaseEntryDialog(window.wearer.record, window.alert_model.clock())
        assert not dialog.ok.isEnabled() and "names the breaches" in dialog.reason.text()
        listed = [dialog.breaches.item(i) for i in range(dialog.breaches.count())]
        [confirmed] = [item for item in listed if item.data(Qt.UserRole) == alert.id]
        assert "confirmed breach" in confirmed.text() and listed[0] is confirmed  # listed first
        confirmed.setCheckState(Qt.Checked)
        dialog.note.setPlainText("seen on the device's report")
        assert dialog.ok.isEnabled()
        window.case._record(dialog.payload(alert.wearer_id))
        await until(lambda: "Ask for mitigation" in window.case.steps.text(), timeout=20,
                    what="the entry recorded and the rule moved on")
        case = backend.get(f"/api/v1/wearers/{alert.wearer_id}").json()["case"]
        assert [(e["kind"], e["alert_ids"], e["recorded_by"]) for e in case] == [
            ("breach_identified", [alert.id], "Demo Operator")]
        texts = [window.case.timeline.topLevelItem(i).text(1)
                 for i in range(window.case.timeline.topLevelItemCount())]
        assert texts == ["Breach identified"]  # once: the record's, not also the queued one
    run(qapp, main())


def test_a_suspension_made_in_the_wearer_view_reaches_the_backend_and_the_summary_lists_it(
        qapp, start_backend, window_on):
    backend = start_backend(wearers=200, speed=1)
    engine, window = window_on(backend)

    async def main():
        await until(lambda: window.alert_model.rowCount() > 0, what="alerts")
        alert = select_first_alert(window)
        await until(lambda: window.wearer.record is not None, what="the record")
        assert window.wearer.suspend.isEnabled()
        before = [s.reason for s in window.wearer.record.suspensions].count(SuspensionReason.CUSTODY)
        dialog = SuspendDialog(window.wearer.record.wearer, window.alert_model.clock())
        dialog.end.setDateTime(dialog.start.dateTime().addSecs(-60))
        assert not dialog.ok.isEnabled() and "ends before it starts" in dialog.why_not.text()
        dialog.end.setDateTime(dialog.start.dateTime().addSecs(3 * 3600))
        dialog.reason.setCurrentIndex(dialog.reason.findData(SuspensionReason.CUSTODY))
        assert dialog.ok.isEnabled()
        window.wearer.suspend_requested.emit(dialog.payload())
        await until(lambda: [s.reason for s in window.wearer.record.suspensions].count(
            SuspensionReason.CUSTODY) == before + 1, timeout=20,
                    what="the record listing the suspension")
        assert "in force now:" in window.wearer.summary.toHtml()
        listed = backend.get(f"/api/v1/wearers/{alert.wearer_id}").json()["suspensions"]
        assert [s["reason"] for s in listed].count("custody") == before + 1  # delivered once
    run(qapp, main())
