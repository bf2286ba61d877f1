"""Alerts: the sixteen breach types, the alert lifecycle and the queue's priority.

Pure code: every function that needs the time takes `now` (epoch seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum

from console.domain.clock import DAY

# The sixteen breach types of ICIBI §5.13, with the wire names used by the protocol.
BREACH_TYPES = {
    "battery": "Battery breach",
    "absence_15min": "15-minute absence",
    "curfew_missed": "Full curfew missed",
    "interference_pid": "Interference PID",
    "not_available_for_installation": "Not available for installation",
    "inability_to_monitor": "Inability to monitor",
    "strap_tamper": "Strap tamper",
    "hmu_interference": "Interference with HMU",
    "ac_power_loss": "AC power loss",
    "monitor_movement": "Monitor movement",
    "moved_without_variation": "Moved without variation",
    "abusive_behaviour": "Abusive behaviour",
    "negative_ram": "Negative RAM",
    "unsuccessful_induction_visit": "Unsuccessful visit for induction",
    "failed_enrolment": "Failed enrolment",
    "location_breach": "Location breach",
}

URGENT_TYPES = {"strap_tamper", "curfew_missed"}
URGENT_OUT_OF_CONTACT = 7 * DAY  # ICIBI §5.14


class AlertState(StrEnum):
    """ISA-18.2 reduced to what the protocol carries: an alert is open until it is
    both acknowledged and no longer active."""

    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Priority(int, Enum):
    URGENT = 1
    HIGH = 2
    NORMAL = 3

    @property
    def label(self) -> str:
        # A word and a symbol, so that priority never depends on colour alone.
        return {1: "▲ P1 urgent", 2: "◆ P2 high", 3: "● P3 normal"}[self.value]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    state: AlertState
    at: float
    by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    wearer_id: str
    device_id: str
    type: str
    raised_at: float
    state: AlertState
    active: bool  # the condition that raised it is still present
    history: tuple[HistoryEntry, ...] = field(default=())

    @property
    def is_open(self) -> bool:
        return self.state is not AlertState.CLOSED

    @property
    def type_label(self) -> str:
        return BREACH_TYPES.get(self.type, self.type)


class LifecycleError(ValueError):
    pass


def acknowledge(alert: Alert, at: float, by: str, note: str) -> Alert:
    """An acknowledged alert closes at once if its condition has already cleared."""
    if alert.state is not AlertState.UNACKNOWLEDGED:
        raise LifecycleError(f"alert {alert.id} is {alert.state.value}, not unacknowledged")
    history = alert.history + (HistoryEntry(AlertState.ACKNOWLEDGED, at, by, note),)
    state = AlertState.ACKNOWLEDGED
    if not alert.active:
        state = AlertState.CLOSED
        history += (HistoryEntry(AlertState.CLOSED, at, by),)
    return replace(alert, state=state, history=history)


def return_to_normal(alert: Alert, at: float) -> Alert:
    """The condition cleared. An unacknowledged alert stays open: someone must see it."""
    if not alert.active or not alert.is_open:
        return alert
    if alert.state is AlertState.ACKNOWLEDGED:
        return replace(
            alert,
            active=False,
            state=AlertState.CLOSED,
            history=alert.history + (HistoryEntry(AlertState.CLOSED, at),),
        )
    return replace(alert, active=False)


def priority(alert: Alert, last_contact: float | None, now: float) -> Priority:
    """ICIBI §5.14: strap tamper, full curfew missed and more than 7 days out of
    contact come first; battery breaches, most of them noise (§5.13), come last."""
    if alert.type in URGENT_TYPES:
        return Priority.URGENT
    if alert.type == "inability_to_monitor" and (
        last_contact is None or now - last_contact > URGENT_OUT_OF_CONTACT
    ):
        return Priority.URGENT
    if alert.type == "battery":
        return Priority.NORMAL
    return Priority.HIGH


def queue_key(alert: Alert, last_contact: float | None, now: float) -> tuple:
    """Alert queue order: priority, then oldest first."""
    return (priority(alert, last_contact, now), alert.raised_at, alert.id)
