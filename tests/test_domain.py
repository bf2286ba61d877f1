"""The domain rules, without Qt, HTTP or SQLite."""

from dataclasses import replace
from datetime import datetime

import pytest

from console.domain import (
    DAY,
    LOCAL_TZ,
    Alert,
    AlertState,
    Connection,
    Curfew,
    CurfewState,
    DeviceKind,
    HistoryEntry,
    LifecycleError,
    Priority,
    acknowledge,
    connection,
    curfew_state,
    format_age,
    local_time,
    priority,
    queue_key,
    return_to_normal,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=LOCAL_TZ).timestamp()


def alert(type_="battery", active=True, state=AlertState.UNACKNOWLEDGED, raised=T0, id_="A1"):
    return Alert(id_, "W1", "D1", type_, raised, state, active,
                 (HistoryEntry(AlertState.UNACKNOWLEDGED, raised),))


def test_acknowledging_an_active_alert_keeps_it_open_until_the_condition_clears():
    acked = acknowledge(alert(active=True), T0 + 60, "op", "called wearer")
    assert acked.state is AlertState.ACKNOWLEDGED and acked.is_open
    closed = return_to_normal(acked, T0 + 120)
    assert closed.state is AlertState.CLOSED and not closed.is_open
    assert [h.state for h in closed.history] == [
        AlertState.UNACKNOWLEDGED, AlertState.ACKNOWLEDGED, AlertState.CLOSED]
    assert closed.history[1].note == "called wearer"


def test_an_alert_whose_condition_cleared_stays_open_until_someone_acknowledges_it():
    cleared = return_to_normal(alert(active=True), T0 + 60)
    assert cleared.is_open and not cleared.active
    assert acknowledge(cleared, T0 + 120, "op", "seen").state is AlertState.CLOSED


def test_an_alert_cannot_be_acknowledged_twice():
    acked = acknowledge(alert(), T0, "op", "n")
    with pytest.raises(LifecycleError):
        acknowledge(acked, T0, "op", "again")


@pytest.mark.parametrize("type_, last_contact, expected", [
    ("strap_tamper", T0, Priority.URGENT),
    ("curfew_missed", T0, Priority.URGENT),
    ("inability_to_monitor", T0 - 8 * DAY, Priority.URGENT),
    ("inability_to_monitor", T0 - 6 * DAY, Priority.HIGH),
    ("inability_to_monitor", None, Priority.URGENT),
    ("absence_15min", T0, Priority.HIGH),
    ("battery", T0, Priority.NORMAL),
])
def test_priority_follows_icibi_5_14(type_, last_contact, expected):
    assert priority(alert(type_), last_contact, T0) is expected


def test_queue_orders_by_priority_then_oldest_first():
    alerts = [alert("battery", raised=T0 - 9000, id_="old battery"),
              alert("strap_tamper", raised=T0 - 10, id_="new tamper"),
              alert("absence_15min", raised=T0 - 50, id_="newer absence"),
              alert("absence_15min", raised=T0 - 500, id_="older absence")]
    ordered = sorted(alerts, key=lambda a: queue_key(a, T0, T0))
    assert [a.id for a in ordered] == ["new tamper", "older absence", "newer absence",
                                       "old battery"]


@pytest.mark.parametrize("kind, silent_for, expected", [
    (DeviceKind.GPS, 30, Connection.ONLINE),
    (DeviceKind.GPS, 300, Connection.STALE),
    (DeviceKind.GPS, 3600, Connection.OFFLINE),
    (DeviceKind.WRISTBAND, 3600, Connection.ONLINE),  # scanned twice a day: not late yet
    (DeviceKind.RF, 3600, Connection.STALE),
])
def test_connection_is_judged_against_each_kinds_reporting_interval(kind, silent_for, expected):
    assert connection(kind, T0 - silent_for, T0) is expected


def test_a_device_never_heard_from_is_offline():
    assert connection(DeviceKind.GPS, None, T0) is Connection.OFFLINE


def test_curfew_spanning_midnight_uses_uk_local_time_in_summer_and_winter():
    curfew = Curfew.parse("19:00-07:00")
    for month in (1, 7):  # GMT and BST
        at = lambda h, m=month: datetime(2026, m, 10, h, 30, tzinfo=LOCAL_TZ).timestamp()  # noqa: E731
        assert curfew.applies(at(23)) and curfew.applies(at(3))
        assert not curfew.applies(at(12)) and not curfew.applies(at(7))
    assert curfew.length == 12 * 3600
    assert str(curfew) == "19:00-07:00"


def test_curfew_state():
    night = local_time(datetime(2026, 11, 21, 23, 0, tzinfo=LOCAL_TZ).timestamp())
    noon = local_time(T0)
    curfew = Curfew.parse("19:00-07:00")
    assert curfew_state(curfew, True, night) is CurfewState.INSIDE
    assert curfew_state(curfew, False, night) is CurfewState.OUTSIDE
    assert curfew_state(curfew, None, night) is CurfewState.UNKNOWN
    assert curfew_state(curfew, False, noon) is CurfewState.NONE
    assert curfew_state(None, False, night) is CurfewState.NONE


def test_format_age():
    assert [format_age(s) for s in (5, 600, 7200, 5 * DAY, float("inf"))] == [
        "5 s", "10 min", "2 h", "5 d", "never"]


def test_low_battery_and_may_acknowledge_are_the_domain_rules_the_ui_asks():
    from console.domain import DeviceStatus, low_battery
    from console.domain.actions import Acknowledge, Action, ActionKind, ActionState, may_acknowledge

    assert low_battery(DeviceStatus("D", 0.0, 19.9, False, None, None, None))
    assert not low_battery(DeviceStatus("D", 0.0, 20.0, False, None, None, None))
    assert not low_battery(None)
    alert = Alert("A", "W", "D", "battery", 0.0, AlertState.UNACKNOWLEDGED, True)

    def action(state):
        return Action("k", ActionKind.ACKNOWLEDGE, Acknowledge("A", "n"), 0.0, state)

    assert may_acknowledge(alert, None)
    for state in (ActionState.REJECTED, ActionState.CONFLICT, ActionState.DAMAGED):
        assert may_acknowledge(alert, action(state)), state  # refused or set aside: again
    for state in (ActionState.PENDING, ActionState.DELIVERED):
        assert not may_acknowledge(alert, action(state)), state
    assert not may_acknowledge(replace(alert, state=AlertState.ACKNOWLEDGED), None)
