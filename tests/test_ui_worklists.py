"""The queue's lists and incidents in the window: breaches, device faults, battery,
shelved and suppressed; a wearer's alerts close together shown and handled as one
incident; and self-cleared battery alerts closed in one go against a real backend,
each alert's own history recording it."""

from dataclasses import replace

from conftest import wait_until
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from console.changes import Changes, Picture
from console.domain import (
    Alert,
    AlertState,
    Device,
    DeviceKind,
    Evidence,
    Outcome,
    SuspensionReason,
    Wearer,
)
from console.domain.access import Identity, Role
from console.domain.actions import ActionKind, ActionState, Claim, Close
from console.domain.workitems import GROUP_WINDOW, WorkList
from ui.alerts.model import AlertQueueModel
from ui.alerts.widget import LISTS, AlertQueue

NOW = 1_795_000_000.0
ME = "Ann Hale"


def alert(id_, type_="absence_15min", wearer="W1", at=NOW - 600, **kw) -> Alert:
    return replace(Alert(id_, wearer, "D" + wearer[1:], type_, at, AlertState.UNACKNOWLEDGED,
                         True), **kw)


def queue_with(*alerts):
    model = AlertQueueModel(lambda: NOW)
    wearers = sorted({a.wearer_id for a in alerts})
    model.apply(Changes(picture=Picture(
        wearers=[Wearer(w, "EM-" + w[1:]) for w in wearers],
        devices=[Device("D" + w[1:], w, DeviceKind.GPS) for w in wearers],
        statuses={}, alerts={a.id: a for a in alerts})))
    return model, AlertQueue(model, lambda: Identity(ME, frozenset({Role.OPERATOR})))


def shown(model) -> list[str]:
    return [model.alert_at(p).id for p in range(model.rowCount())]


def test_closing_a_lists_only_alert_recounts_its_tab_though_the_order_shown_stays(qtbot):
    """Seen in a new-user trial: the tab kept saying 1 over an empty list."""
    model, queue = queue_with(
        alert("B1", "strap_tamper"),
        alert("F1", "inability_to_monitor", wearer="W3", evidence=Evidence(at_home=True)))
    qtbot.addWidget(queue)
    queue.show_list(WorkList.DEVICE_FAULTS)
    assert queue.tabs.tabText(LISTS.index(WorkList.DEVICE_FAULTS)) == "Device faults (1)"
    model.apply(Changes(closed={"F1"}))
    qtbot.waitUntil(lambda: queue.tabs.tabText(LISTS.index(WorkList.DEVICE_FAULTS)) == "Device faults (0)",
                    timeout=3000)
    assert "0 work items" in queue.title.text() and model.rowCount() == 0


def test_each_list_shows_its_alerts_and_every_tab_counts_work_items_and_alerts(qtbot):
    model, queue = queue_with(
        alert("B1"), alert("B2", "curfew_missed", at=NOW - 300),  # one incident of W1
        alert("B3", "strap_tamper", wearer="W2"),
        alert("F1", "inability_to_monitor", wearer="W3", evidence=Evidence(at_home=True)),
        alert("F2", "ac_power_loss", wearer="W4"),
        alert("P1", "battery", wearer="W5"),
        alert("Q1", "strap_tamper", wearer="W6", suppressed=SuspensionReason.HOSPITAL),
        alert("Q2", wearer="W7", shelved_until=NOW + 600, shelved_reason="engineer booked"))
    qtbot.addWidget(queue)
    # Breaches first, the urgent strap tamper on top; W1's two alerts are one item.
    assert shown(model) == ["B3", "B1", "B2"]
    assert queue.tabs.tabText(0) == "Breaches (2)"
    assert queue.title.text().startswith("<b>2 work items</b> (3 alerts)")
    assert [queue.tabs.tabText(i) for i in range(1, 5)] == [
        "Device faults (2)", "Battery (1)", "Shelved and suppressed (2)", "All (7)"]
    queue.show_list(WorkList.DEVICE_FAULTS)
    assert sorted(shown(model)) == ["F1", "F2"]
    queue.show_list(WorkList.QUIET)
    assert sorted(shown(model)) == ["Q1", "Q2"]
    queue.show_list(None)
    assert len(shown(model)) == 8


def test_an_incidents_members_follow_each_other_and_say_which_of_how_many(qtbot):
    model, queue = queue_with(
        alert("A1", at=NOW - 3 * 3600), alert("A2", "curfew_missed", at=NOW - 3 * 3600 + 60),
        alert("A3", "strap_tamper", wearer="W2", at=NOW - 60),
        alert("A4", at=NOW - 3 * 3600 + 2 * GROUP_WINDOW))  # too late for A1's incident
    qtbot.addWidget(queue)
    # The incident with the urgent "full curfew missed" goes first, whole, in the order it came.
    assert shown(model) == ["A1", "A2", "A3", "A4"]
    incident = [model.data(model.index(p, model.COL_INCIDENT)) for p in range(4)]
    assert incident == ["1/2", "2/2", "", ""]
    tip = model.data(model.index(0, model.COL_INCIDENT), Qt.ToolTipRole)
    assert "15-minute absence" in tip and "Full curfew missed" in tip


def test_a_button_on_one_member_acts_on_the_whole_incident(qtbot):
    model, queue = queue_with(alert("A1"), alert("A2", "curfew_missed", at=NOW - 300),
                              alert("A3", wearer="W2"))
    qtbot.addWidget(queue)
    asked = []
    queue.transition_requested.connect(lambda alerts, kind: asked.append(
        ([a.id for a in alerts], kind)))
    queue.view.selectRow(shown(model).index("A1"))
    queue.buttons[ActionKind.CLAIM].click()
    assert asked == [(["A1", "A2"], ActionKind.CLAIM)]  # the selected one first


def test_the_bulk_close_is_offered_only_in_the_battery_list_for_self_cleared_alerts(qtbot):
    model, queue = queue_with(alert("P1", "battery", active=False),
                              alert("P2", "battery", wearer="W2"),  # still flat
                              alert("P3", "battery", wearer="W3", active=False,
                                    state=AlertState.CLAIMED, holder="Bob"))
    qtbot.addWidget(queue)
    queue.show()
    assert not queue.close_cleared.isVisible()
    queue.show_list(WorkList.BATTERY)
    assert queue.close_cleared.isVisible() and queue.close_cleared.isEnabled()
    assert [a.id for a in queue.cleared_battery()] == ["P1"]
    # Below the accumulated policy a flat battery is not a breach, and is not called one.
    assert {model.data(model.index(p, 1)) for p in range(model.rowCount())} == {"Flat battery"}
    assert "1 battery alerts" in queue.close_cleared.toolTip()


def test_self_cleared_battery_alerts_close_in_one_go_each_claimed_and_closed_on_the_backend(
        start_window, qtbot):
    backend, engine, window = start_window(speed=1, wearers=600)  # a few such alerts, surely
    model = window.alert_model
    wait_until(lambda: engine.status.state == "live" and engine.status.operator
               and model.rowCount() > 0, qtbot=qtbot)
    qtbot.keyClick(window, Qt.Key_3, Qt.ControlModifier)  # the Battery list
    assert model.list is WorkList.BATTERY
    cleared = [a.id for a in window.queue.cleared_battery()]
    assert cleared, "the seeded fleet has battery alerts that cleared by themselves"

    def fill(dialog):
        dialog.outcome_box.setCurrentIndex(dialog.outcome_box.findData(Outcome.RESOLVED_BY_CONTACT))
        qtbot.keyClicks(dialog.note, "back on charge; wearer reminded")
        qtbot.keyClick(dialog.note, Qt.Key_Return, Qt.ControlModifier)
    QTimer.singleShot(200, lambda: fill(QApplication.activeModalWidget()))
    qtbot.keyClick(window.queue, Qt.Key_B, Qt.AltModifier)
    wait_until(lambda: not set(cleared) & {model.alert_at(p).id for p in range(model.rowCount())},
               qtbot=qtbot, timeout=20)
    for alert_id in cleared:
        on_backend = backend.get(f"/api/v1/alerts/{alert_id}").json()
        assert on_backend["state"] == "closed" and on_backend["outcome"] == "resolved_by_contact"
        assert [h["state"] for h in on_backend["history"][-2:]] == ["claimed", "closed"]
        assert on_backend["history"][-1]["note"] == "back on charge; wearer reminded"
    # Two actions per alert, in order, each delivered once.
    sent = engine.query(lambda s: s.actions(tuple(ActionState))).result(5)
    assert [(type(a.payload), a.payload.alert_id) for a in sent] == [
        (kind, alert_id) for alert_id in cleared for kind in (Claim, Close)]
    assert all(a.state is ActionState.DELIVERED for a in sent)
