"""Alerts: the sixteen breach types, the alert lifecycle and the queue's priority.

Two independent axes on every alert (ISA-18.2, and the tickets of commercial
centres): the condition (`active`: the device or rule still reports it) and the
handling (`state`: unacknowledged, claimed by one named operator, in work, closed
with an outcome and a note). A condition that clears before anyone handled it
stays open, latched: "cleared, not yet handled". Shelving is an overlay with a
reason and an expiry of at most 8 hours; it hides nothing from the record and
only stops the alert notifying.

Pure code: every function that needs the time takes `now` (epoch seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum

from console.domain.clock import DAY, format_clock

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
MAX_SHELVE = 8 * 3600.0  # longer than a shift is not shelving but forgetting
SHELVED = "shelved: "  # a shelving's history note: this, then the reason
UNSHELVED = "unshelved"  # an early unshelving's history note


class AlertState(StrEnum):
    """ISA-18.2 reduced to what the protocol carries: an alert is open until it is
    both acknowledged and no longer active."""

    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"  # the protocol's single step today; claim replaces it
    CLAIMED = "claimed"  # one named operator holds it; every workstation sees who
    IN_WORK = "in_work"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Outcome(StrEnum):
    """Why an alert was closed: a fixed list, so that breaches can be counted."""

    CONFIRMED_NON_COMPLIANCE = "confirmed_non_compliance"
    EQUIPMENT_FAULT = "equipment_fault"
    RESOLVED_BY_CONTACT = "resolved_by_contact"
    FALSE_ALARM = "false_alarm"
    DUPLICATE = "duplicate"

    @property
    def label(self) -> str:
        if self is Outcome.CONFIRMED_NON_COMPLIANCE:
            return "Confirmed non-compliance"
        return self.value.replace("_", " ").capitalize()


class Priority(int, Enum):
    URGENT = 1
    HIGH = 2
    NORMAL = 3

    @property
    def label(self) -> str:
        # A word and a symbol, so that priority never depends on colour alone.
        return {1: "▲ P1 urgent", 2: "◆ P2 high", 3: "● P3 normal"}[self.value]


class SuspensionReason(StrEnum):
    HOSPITAL = "hospital"
    CUSTODY = "custody"
    APPROVED_ABSENCE = "approved_absence"
    NOT_FITTED = "not_fitted"  # no device fitted yet

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    state: AlertState
    at: float
    by: str | None = None
    note: str | None = None
    outcome: Outcome | None = None

    @property
    def what(self) -> str:
        """What happened, in words: a shelving keeps the state it found, so its
        note says it was one."""
        if self.note and (self.note.startswith(SHELVED) or self.note == UNSHELVED):
            return self.note.partition(":")[0]
        return self.state.label


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the device last reported before an alert was raised: what may make the
    alert a fault rather than a breach (console/domain/workitems.py, `route`)."""

    at_home: bool | None = None  # at home (None: the device cannot tell)
    charging: bool = False  # on its charger


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
    holder: str | None = None  # who claimed it, while claimed or in work
    outcome: Outcome | None = None  # once closed
    shelved_until: float | None = None
    shelved_reason: str | None = None
    cleared_at: float | None = None  # when the condition cleared, once it has
    evidence: Evidence | None = None  # None: the backend did not say
    # The wearer's suspension in force when it was raised: recorded, never notified.
    suppressed: SuspensionReason | None = None

    @property
    def is_open(self) -> bool:
        return self.state is not AlertState.CLOSED

    @property
    def latched(self) -> bool:
        """Cleared, not yet handled: it stays on the list until someone closes it."""
        return self.is_open and not self.active

    def shelved(self, now: float) -> bool:
        return self.shelved_until is not None and now < self.shelved_until

    @property
    def type_label(self) -> str:
        return BREACH_TYPES.get(self.type, self.type)


def handling_text(alert: Alert, now: float) -> str:
    """The handling in words, as every list shows it: who holds it, and any
    shelving. The condition is the other axis (condition_text)."""
    words = {AlertState.CLAIMED: f"claimed by {alert.holder}",
             AlertState.IN_WORK: f"in work: {alert.holder}"}.get(alert.state, alert.state.label)
    if alert.shelved(now):  # first: a narrow column must not cut it off
        words = f"shelved until {format_clock(alert.shelved_until)} · {words}"
    return words


def condition_text(alert: Alert) -> str:
    """Whether what raised the alert is still there; a cleared one that nobody has
    handled stays on the list, latched."""
    if alert.active:
        return "still active: what raised it is still reported"
    if alert.latched:
        return "cleared, not yet handled: it stays until someone closes it"
    return "cleared"


class LifecycleError(ValueError):
    """The alert's handling does not allow this now (it is closed, someone else
    holds it): a request that was right a moment ago may meet this (409)."""


class OutOfBounds(ValueError):
    """A request the rules refuse whatever the alert's state: an empty reason,
    shelving for no time or past 8 hours (422)."""


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
            cleared_at=at,
            state=AlertState.CLOSED,
            history=alert.history + (HistoryEntry(AlertState.CLOSED, at),),
        )
    return replace(alert, active=False, cleared_at=at)


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


def _note(note: str, what: str) -> str:
    if not note.strip():
        raise OutOfBounds(f"{what} needs a note")
    return note


def claim(alert: Alert, at: float, by: str, take_over: bool = False) -> Alert:
    """`by` holds the alert. What someone else holds is taken only on purpose
    (`take_over`), and the history says from whom. Claiming what one holds
    already changes nothing, so a repeated request is harmless."""
    if not alert.is_open:
        raise LifecycleError(f"alert {alert.id} is closed")
    if alert.holder == by:
        return alert
    if alert.holder is not None and not take_over:
        raise LifecycleError(f"alert {alert.id} is held by {alert.holder}; take it over to claim it")
    note = f"taken over from {alert.holder}" if alert.holder is not None else None
    return replace(alert, state=AlertState.CLAIMED, holder=by,
                   history=alert.history + (HistoryEntry(AlertState.CLAIMED, at, by, note),))


def start_work(alert: Alert, at: float, by: str) -> Alert:
    if alert.state is not AlertState.CLAIMED or alert.holder != by:
        raise LifecycleError(f"alert {alert.id} is not claimed by {by}")
    return replace(alert, state=AlertState.IN_WORK,
                   history=alert.history + (HistoryEntry(AlertState.IN_WORK, at, by),))


def close(alert: Alert, at: float, by: str, outcome: Outcome, note: str) -> Alert:
    """Only its holder closes an alert, and only with an outcome and a note: an
    alert closed without a reason cannot be counted or reviewed."""
    if not alert.is_open:
        raise LifecycleError(f"alert {alert.id} is closed already")
    if alert.holder != by:
        holder = alert.holder or "nobody"
        raise LifecycleError(f"alert {alert.id} is held by {holder}; claim it to close it")
    entry = HistoryEntry(AlertState.CLOSED, at, by, _note(note, "closing"), outcome)
    return replace(alert, state=AlertState.CLOSED, outcome=outcome, holder=None,
                   shelved_until=None, shelved_reason=None, history=alert.history + (entry,))


def _not_held_by_another(alert: Alert, by: str) -> None:
    if alert.holder not in (None, by):
        raise LifecycleError(f"alert {alert.id} is held by {alert.holder}; take it over first")


def shelve(alert: Alert, at: float, by: str, reason: str, until: float) -> Alert:
    """Quiet for a while, with a reason; it lifts itself at `until` (at most 8 h).
    What another operator holds is theirs to quiet."""
    if not alert.is_open:
        raise LifecycleError(f"alert {alert.id} is closed")
    _not_held_by_another(alert, by)
    if not 0 < until - at <= MAX_SHELVE:
        raise OutOfBounds("shelving lasts more than 0 and at most 8 hours")
    entry = HistoryEntry(alert.state, at, by, SHELVED + _note(reason, "shelving"))
    return replace(alert, shelved_until=until, shelved_reason=reason,
                   history=alert.history + (entry,))


def unshelve(alert: Alert, at: float, by: str) -> Alert:
    if alert.shelved_until is None:
        return alert
    _not_held_by_another(alert, by)
    return replace(alert, shelved_until=None, shelved_reason=None,
                   history=alert.history + (HistoryEntry(alert.state, at, by, UNSHELVED),))


@dataclass(frozen=True, slots=True)
class Suspension:
    """Monitoring of a wearer suspended by design, from `start` to `end`, and again
    every `every` seconds after (a weekly hospital appointment) when given. Every
    event is still recorded; the wearer's alerts raise no notification meanwhile."""

    wearer_id: str
    reason: SuspensionReason
    start: float
    end: float
    every: float | None = None

    def problem(self) -> str | None:
        """Why this suspension cannot be recorded, or None."""
        if not self.end > self.start:
            return "it ends before it starts"
        if self.every is not None and self.every < self.end - self.start:
            return "it repeats before it ends"
        return None

    def holds(self, now: float) -> bool:
        if now < self.start:
            return False
        if self.every is None:
            return now < self.end
        return (now - self.start) % self.every < self.end - self.start


def suppression(suspensions: list[Suspension], at: float) -> SuspensionReason | None:
    """Why a wearer's alert raised at `at` is suppressed by design: the reason of
    the wearer's suspension in force then, or None."""
    return next((s.reason for s in suspensions if s.holds(at)), None)


def notifies(alert: Alert, now: float) -> bool:
    """An open alert notifies (sound, tray count, the flood summary) unless it is
    shelved, or was raised while its wearer's monitoring was suspended."""
    return alert.is_open and not alert.shelved(now) and alert.suppressed is None
