"""Handling alerts in the window: the queue's new states, its buttons and the
reasons they give when off, the close and shelve dialogs, and a claim made with
the keyboard reaching a real backend and coming back on the stream."""

from dataclasses import replace

import pytest
from conftest import select_unacknowledged, wait_until
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog

from console.changes import Changes, Picture
from console.domain import SHELVED, Alert, AlertState, Device, DeviceKind, Outcome, Wearer
from console.domain.access import Identity, Role
from console.domain.actions import (
    Action,
    ActionKind,
    ActionState,
    Claim,
    StartWork,
    anticipated,
    offered,
    reflected,
)
from console.protocol.schema import MAX_NOTE
from ui.alerts.dialogs import CloseDialog, ShelveDialog
from ui.alerts.model import AlertQueueModel
from ui.alerts.widget import AlertQueue

NOW = 1_795_000_000.0
ME = "Ann Hale"


def operator(name: str) -> Identity:
    return Identity(name, frozenset({Role.OPERATOR}))


def alert(id_="A1", **kw) -> Alert:
    return replace(Alert(id_, "W1", "D1", "strap_tamper", NOW - 600,
                         AlertState.UNACKNOWLEDGED, True), **kw)


def queued(payload, seq=1, state=ActionState.PENDING) -> Action:
    return Action(f"k{seq}", {Claim: ActionKind.CLAIM, StartWork: ActionKind.START_WORK}[
        type(payload)], payload, NOW, state, seq=seq, operator=ME, username="ann")


def queue_with(*alerts, me=ME):
    model = AlertQueueModel(lambda: NOW)
    model.show(None)  # every list: this is not about which list an alert is in
    model.apply(Changes(picture=Picture(
        wearers=[Wearer("W1", "EM-001")], devices=[Device("D1", "W1", DeviceKind.GPS)],
        statuses={}, alerts={a.id: a for a in alerts})))
    return model, AlertQueue(model, lambda: operator(me) if me else None)


# -- the rules the buttons follow (console/domain/actions.py) ---------------------------

def test_what_an_operator_may_do_follows_who_holds_the_alert():
    free = offered(alert(), operator(ME), NOW)
    assert free[ActionKind.CLAIM] == "" and free[ActionKind.CLOSE] == "Claim it first"
    mine = offered(alert(state=AlertState.CLAIMED, holder=ME), operator(ME), NOW)
    assert mine[ActionKind.CLAIM] == "You hold it"
    assert mine[ActionKind.START_WORK] == mine[ActionKind.CLOSE] == ""
    theirs = offered(alert(state=AlertState.IN_WORK, holder="Bob"), operator(ME), NOW)
    assert theirs[ActionKind.CLAIM] == ""  # a take-over, asked for on purpose
    assert theirs[ActionKind.CLOSE] == theirs[ActionKind.START_WORK] == "Bob holds it"
    shelved = offered(alert(shelved_until=NOW + 60, shelved_reason="engineer"), operator(ME), NOW)
    assert shelved[ActionKind.SHELVE] == "Shelved already" and shelved[ActionKind.UNSHELVE] == ""
    assert set(offered(alert(), None, NOW).values()) == {"Not signed in"}


def test_queued_actions_count_as_done_so_an_operator_offline_can_go_on():
    a = alert()
    ahead = anticipated(a, [queued(Claim("A1"), 1), queued(StartWork("A1"), 2)], NOW)
    assert (ahead.state, ahead.holder) == (AlertState.IN_WORK, ME)
    assert offered(ahead, operator(ME), NOW)[ActionKind.CLOSE] == ""
    # An action the rules refuse changes nothing here; the backend will say why.
    assert anticipated(a, [queued(StartWork("A1"))], NOW) == a
    claimed = replace(a, state=AlertState.CLAIMED, holder=ME)
    assert reflected(claimed, queued(Claim("A1")), NOW)
    assert not reflected(a, queued(Claim("A1")), NOW)


# -- the queue ------------------------------------------------------------------------

def test_the_queue_says_who_holds_each_alert_and_what_is_latched_or_shelved(qtbot):
    model, widget = queue_with(
        alert("A1", state=AlertState.CLAIMED, holder="Bob"),
        alert("A2", active=False),
        alert("A3", shelved_until=NOW + 3600, shelved_reason="engineer booked"),
        alert("A4", state=AlertState.IN_WORK, holder=ME))
    qtbot.addWidget(widget)
    states = {model.alert_at(p).id: model.data(model.index(p, model.COL_STATE))
              for p in range(model.rowCount())}
    conditions = {model.alert_at(p).id: model.data(model.index(p, model.COL_CONDITION))
                  for p in range(model.rowCount())}
    assert states["A1"] == "claimed by Bob" and conditions["A1"] == "● active"
    assert (states["A2"], conditions["A2"]) == ("unacknowledged", "○ cleared")
    position = next(p for p in range(model.rowCount()) if model.alert_at(p).id == "A2")
    assert model.data(model.index(position, model.COL_CONDITION), Qt.ToolTipRole).startswith(
        "cleared, not yet handled")
    assert states["A3"].startswith("shelved until ") and states["A3"].endswith(" · unacknowledged")
    assert states["A4"] == f"in work: {ME}"


def test_each_button_says_why_it_is_off_and_claiming_from_another_says_so(qtbot):
    model, widget = queue_with(alert("A1", state=AlertState.CLAIMED, holder="Bob"))
    qtbot.addWidget(widget)
    widget.view.selectRow(0)
    close = widget.buttons[ActionKind.CLOSE]
    assert not close.isEnabled() and close.accessibleDescription() == "Bob holds it"
    assert "Bob holds it" in close.toolTip()
    claim = widget.buttons[ActionKind.CLAIM]
    assert claim.isEnabled() and "Bob holds it: claiming takes it over" in claim.toolTip()
    for button in widget.buttons.values():
        assert button.accessibleName()


def test_a_refused_action_shows_beside_the_alert_as_it_stands(qtbot):
    model, widget = queue_with(alert("A1", state=AlertState.CLAIMED, holder="Bob"))
    qtbot.addWidget(widget)
    refused = replace(queued(Claim("A1")), state=ActionState.CONFLICT,
                      detail="409 Alert moved on: alert A1 is held by Bob")
    model.apply(Changes(actions={refused.key: refused}))
    assert model.data(model.index(0, model.COL_STATE)) == "claimed by Bob · ⚠ conflict"
    assert model.data(model.index(0, model.COL_STATE), Qt.ToolTipRole).startswith(
        "Your claim of alert A1: ⚠ conflict: 409 Alert moved on: alert A1 is held by Bob")


def test_a_queued_claim_shows_as_queued_and_opens_the_next_step(qtbot):
    model, widget = queue_with(alert("A1"))
    qtbot.addWidget(widget)
    widget.view.selectRow(0)
    assert not widget.buttons[ActionKind.START_WORK].isEnabled()
    claim = queued(Claim("A1"))
    model.apply(Changes(actions={claim.key: claim}))
    assert model.data(model.index(0, model.COL_STATE)) == "◷ claiming (queued)"
    assert widget.buttons[ActionKind.START_WORK].isEnabled()
    assert widget.buttons[ActionKind.CLOSE].isEnabled()


# -- the dialogs ----------------------------------------------------------------------

def test_closing_needs_an_outcome_and_a_note_and_says_which_is_missing(qtbot):
    dialog = CloseDialog(alert(state=AlertState.CLAIMED, holder=ME), "EM-001", NOW)
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled() and dialog.reason.text() == "Choose an outcome"
    dialog.outcome_box.setCurrentIndex(dialog.outcome_box.findData(Outcome.FALSE_ALARM))
    assert not dialog.ok.isEnabled() and dialog.reason.text() == "Write a note"
    qtbot.keyClicks(dialog.note, "device knocked, no breach")
    assert dialog.ok.isEnabled() and dialog.outcome() is Outcome.FALSE_ALARM
    dialog.note.setPlainText("x" * 2001)
    assert not dialog.ok.isEnabled() and dialog.reason.text() == "Too long by 1 character"


def test_shelving_offers_15_minutes_to_8_hours_and_needs_a_reason(qtbot):
    dialog = ShelveDialog(alert(), "EM-001", NOW)
    qtbot.addWidget(dialog)
    choices = [dialog.duration.itemData(i) for i in range(dialog.duration.count())]
    assert min(choices) == 15 * 60 and max(choices) == 8 * 3600
    assert not dialog.ok.isEnabled() and dialog.reason.text() == "Write a reason"
    qtbot.keyClicks(dialog.note, "engineer booked for 14:00")
    assert dialog.ok.isEnabled()
    # The reason goes into the history after "shelved: ", which must fit a note.
    dialog.note.setPlainText("x" * (MAX_NOTE - len(SHELVED) + 1))
    assert not dialog.ok.isEnabled() and dialog.reason.text() == "Too long by 1 character"


# -- against a real backend -------------------------------------------------------------

@pytest.fixture
def live(start_window):
    return start_window(speed=1)


def test_a_claim_and_a_close_made_from_the_keyboard_reach_the_backend_and_come_back(
        live, qtbot):
    backend, engine, window = live
    model = window.alert_model
    wait_until(lambda: model.rowCount() > 0 and engine.status.state == "live"
               and engine.status.operator, qtbot=qtbot)
    alert_id = select_unacknowledged(window)
    qtbot.keyClick(window.queue, Qt.Key_C, Qt.AltModifier)

    def row_state():
        p = next(p for p in range(model.rowCount()) if model.alert_at(p).id == alert_id)
        return model.data(model.index(p, model.COL_STATE))
    wait_until(lambda: row_state() == "claimed by Demo Operator", qtbot=qtbot)
    assert backend.get(f"/api/v1/alerts/{alert_id}").json()["holder"] == "Demo Operator"
    window.queue.view.selectRow(next(p for p in range(model.rowCount())
                                     if model.alert_at(p).id == alert_id))
    qtbot.keyClick(window.queue, Qt.Key_W, Qt.AltModifier)
    wait_until(lambda: row_state() == "in work: Demo Operator", qtbot=qtbot)

    def fill_dialog():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QDialog)
        dialog.outcome_box.setCurrentIndex(dialog.outcome_box.findData(Outcome.EQUIPMENT_FAULT))
        qtbot.keyClicks(dialog.note, "strap sensor fault; visit booked")
        qtbot.keyClick(dialog.note, Qt.Key_Return, Qt.ControlModifier)

    window.queue.view.selectRow(next(p for p in range(model.rowCount())
                                     if model.alert_at(p).id == alert_id))
    QTimer.singleShot(200, fill_dialog)
    qtbot.keyClick(window.queue, Qt.Key_E, Qt.AltModifier)

    def closed_at_backend():
        body = backend.get(f"/api/v1/alerts/{alert_id}").json()
        return body["state"] == "closed" and body["outcome"] == "equipment_fault"
    wait_until(closed_at_backend, qtbot=qtbot)
    wait_until(lambda: all(model.alert_at(p).id != alert_id for p in range(model.rowCount())),
               qtbot=qtbot)
