"""From notifications to work items: faults before breaches, one incident per
wearer, and service deadlines (console/domain/workitems.py)."""

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt

from console.domain import DAY, Alert, AlertState, Evidence, Priority, Span
from console.domain.workitems import (
    FAILURE,
    GROUP_WINDOW,
    Failure,
    Route,
    WorkList,
    grouped,
    overdue,
    route,
    work_items,
    work_list,
)

NOW = 1_795_000_000.0


def alert(id_="A1", type_="absence_15min", wearer="W1", at=NOW, **kw) -> Alert:
    return replace(Alert(id_, wearer, "D1", type_, at, AlertState.UNACKNOWLEDGED, True), **kw)


@pytest.mark.parametrize("type_, evidence, expected", [
    ("absence_15min", Evidence(), Route.BREACH),
    ("strap_tamper", Evidence(at_home=True), Route.BREACH),  # conduct, wherever they are
    ("battery", Evidence(), Route.BATTERY),
    ("battery", Evidence(charging=True), Route.DEVICE_FAULT),  # flat on the charger
    ("inability_to_monitor", Evidence(at_home=False), Route.BREACH),
    ("inability_to_monitor", Evidence(at_home=True), Route.DEVICE_FAULT),
    ("inability_to_monitor", Evidence(at_home=None), Route.BREACH),  # unknown: not excused
    ("location_breach", Evidence(at_home=True), Route.BREACH),  # heard, so not silence
    ("ac_power_loss", Evidence(), Route.DEVICE_FAULT),
    ("inability_to_monitor", None, Route.BREACH),  # the backend did not say: not excused
])
def test_notifications_that_look_like_equipment_go_to_the_fault_list(type_, evidence, expected):
    assert route(alert(type_=type_, evidence=evidence)) is expected


def test_a_device_in_a_faulty_batch_goes_to_the_fault_list_whatever_it_raised():
    assert route(alert(type_="curfew_missed"), faulty_batch=True) is Route.DEVICE_FAULT


def test_communication_location_and_battery_failures_are_told_apart():
    assert FAILURE["inability_to_monitor"] is Failure.COMMUNICATION
    assert FAILURE["location_breach"] is Failure.LOCATION
    assert FAILURE["battery"] is Failure.FLAT_BATTERY
    assert "strap_tamper" not in FAILURE


def test_a_wearers_alerts_close_together_are_one_incident_with_its_members():
    alerts = [alert("A1", at=NOW), alert("A2", "curfew_missed", at=NOW + 3600),
              # Chained: each within the window of the last member, though not of the first.
              alert("A3", at=NOW + 3600 + GROUP_WINDOW),
              alert("A4", at=NOW + 3600 + 2 * GROUP_WINDOW + 1),
              alert("A5", wearer="W2", at=NOW + 60)]
    first, later, other = sorted(grouped(alerts), key=lambda i: (i.wearer_id, i.first_at))
    assert first.members == ["A1", "A2", "A3"] and first.id == "A1"
    assert later.members == ["A4"] and other.members == ["A5"] and other.wearer_id == "W2"


def test_deadlines_to_claim_and_to_close_follow_priority():
    assert overdue(alert(at=NOW - 299), Priority.URGENT, NOW) is None
    assert overdue(alert(at=NOW - 360), Priority.URGENT, NOW) == "claim overdue by 60 s"
    assert overdue(alert(at=NOW - 360), Priority.HIGH, NOW) is None
    held = alert(at=NOW - 2 * 3600, state=AlertState.CLAIMED, holder="Ann")
    assert overdue(held, Priority.URGENT, NOW) == "close overdue by 60 min"
    assert overdue(held, Priority.HIGH, NOW) is None
    closed = alert(at=NOW - 9 * 86400, state=AlertState.CLOSED)
    assert overdue(closed, Priority.NORMAL, NOW) is None


def test_the_queue_marks_an_alert_past_its_deadline_with_a_symbol_and_says_which(qtbot):
    from console.changes import Changes, Picture
    from console.domain import Device, DeviceKind, Wearer
    from ui.alerts.model import AlertQueueModel

    model = AlertQueueModel(lambda: NOW)
    late = alert("A1", "strap_tamper", at=NOW - 600)  # urgent: 5 minutes to claim
    fresh = alert("A2", "strap_tamper", wearer="W2", at=NOW - 60)
    model.apply(Changes(picture=Picture(
        [Wearer("W1", "EM-001"), Wearer("W2", "EM-002")],
        [Device("D1", "W1", DeviceKind.GPS), Device("D2", "W2", DeviceKind.GPS)], {},
        {"A1": late, "A2": fresh})))
    rows = {model.alert_at(p).id: p for p in range(model.rowCount())}
    age = model.index(rows["A1"], model.COL_AGE)
    assert model.data(age) == "⚑ 10 min"
    assert model.data(age, Qt.ToolTipRole) == "⚑ Claim overdue by 5 min"
    assert model.data(model.index(rows["A2"], model.COL_AGE)) == "60 s"
    assert model.data(model.index(rows["A2"], model.COL_AGE), Qt.ToolTipRole) is None


def test_each_open_alert_is_in_one_list_and_quiet_ones_leave_the_working_lists():
    from console.domain import SuspensionReason
    assert work_list(alert(), NOW) is WorkList.BREACHES
    assert work_list(alert(type_="battery"), NOW) is WorkList.BATTERY
    assert work_list(alert(type_="ac_power_loss"), NOW) is WorkList.DEVICE_FAULTS
    shelved = alert(shelved_until=NOW + 60, shelved_reason="engineer booked")
    assert work_list(shelved, NOW) is WorkList.QUIET
    assert work_list(shelved, NOW + 60) is WorkList.BREACHES  # the shelving lifted itself
    suppressed = alert(type_="strap_tamper", suppressed=SuspensionReason.HOSPITAL)
    assert work_list(suppressed, NOW + 100 * DAY) is WorkList.QUIET  # for good: raised under it


def test_grouping_takes_alerts_in_any_order_and_makes_the_same_incidents():
    alerts = [alert("A3", at=NOW + 2 * 3600), alert("A1", at=NOW), alert("A2", "curfew_missed",
              wearer="W2", at=NOW + 60)]
    assert sorted(i.members for i in grouped(alerts)) == [["A1", "A3"], ["A2"]]
    assert sorted(i.members for i in grouped(alerts[::-1])) == [["A1", "A3"], ["A2"]]


@pytest.mark.parametrize("flat_hours, breach", [(11 + 59 / 60, False), (12, True)])
def test_a_device_flat_12_hours_in_7_days_is_one_breach_item_of_its_battery_alerts(
        flat_hours, breach):
    first = alert("P1", "battery", at=NOW - 3 * DAY, active=False)
    second = alert("P2", "battery", at=NOW - 3600)  # days apart: no 2-hour incident joins them
    spans = {"D1": (Span(NOW - 3 * DAY, NOW - 3 * DAY + (flat_hours - 1) * 3600),
                    Span(NOW - 3600))}  # still flat: counts up to now
    items = work_items([first, second, alert("B1", wearer="W2")], NOW, spans)
    if breach:
        [item] = [i for i in items[WorkList.BREACHES] if i.battery]
        assert item.members == ["P1", "P2"] and item.battery.hours == "12.0 h"
        assert items[WorkList.BATTERY] == []
    else:
        assert [i.members for i in items[WorkList.BATTERY]] == [["P1"], ["P2"]]
        assert all(i.battery.hours == "11.9 h" for i in items[WorkList.BATTERY])
        assert [i.members for i in items[WorkList.BREACHES]] == [["B1"]]


def test_the_board_row_shows_its_devices_flat_time_and_marks_a_breach(qtbot):
    from console.changes import Changes, Picture
    from console.domain import Device, DeviceKind, DeviceStatus, Wearer
    from ui.board.model import StatusBoardModel

    board = StatusBoardModel(lambda: NOW)
    board.apply(Changes(picture=Picture(
        [Wearer("W1", "EM-001")], [Device("D1", "W1", DeviceKind.GPS)],
        {"D1": DeviceStatus("D1", NOW - 60, 80.0, False, "ok", True, True)}, {},
        {"D1": (Span(NOW - DAY, NOW - DAY + 5 * 3600),)})))
    assert board.data(board.index(0, 3)) == "80% · 5.0 h flat"
    assert "5.0 h of 12 h in 7 days" in board.data(board.index(0, 3), Qt.ToolTipRole)
    board.apply(Changes(battery={"D1": (Span(NOW - DAY, NOW - DAY + 13 * 3600),)}))
    assert board.data(board.index(0, 3)) == "80% · ⚑ 13.0 h flat"
