"""Which alerts an operator must hear of, and what the console says about them.

Phoebus and EEMUA 191: an alarm is heard once, when it comes; a flood is summed up
("and 11 more urgent alerts") rather than read out item by item; muting has an
expiry and says until when. What is heard is also shown: severity never rests on
sound alone."""

from __future__ import annotations

from dataclasses import dataclass

from console.domain.alerts import Alert, AlertState, Priority, notifies
from console.domain.clock import format_clock

FLOOD = 3  # more alerts than this arriving together are summed up, not read one by one
MUTE_CHOICES = (5 * 60, 15 * 60, 30 * 60, 60 * 60)  # seconds; a mute never lasts a shift


def sounding(alert: Alert, priority: Priority, now: float) -> bool:
    """Urgent, nobody has taken it up, and it notifies (not shelved): the items the
    tray counts and the console sounds for."""
    return (priority is Priority.URGENT and alert.state is AlertState.UNACKNOWLEDGED
            and notifies(alert, now))


def announcement(new: list[tuple[Alert, str | None]]) -> str:
    """What is said of urgent alerts that came together, each with its wearer's
    reference (None: not to be said, the session is locked): each one read, or the
    first and how many more."""
    if not new:
        return ""
    said = [f"Urgent: {alert.type_label}{f', {ref}' if ref else ''}." for alert, ref in new[:FLOOD]]
    if len(new) <= FLOOD:
        return " ".join(said)
    more = len(new) - 1
    return f"{said[0]} And {more} more urgent alert{'s' if more != 1 else ''}."


@dataclass(frozen=True, slots=True)
class Mute:
    """Sound and speech off until `until` (server time), by whom; the tray count and
    the queue go on showing every alert."""

    until: float
    by: str | None = None

    def holds(self, now: float) -> bool:
        return now < self.until

    def text(self) -> str:
        by = f" by {self.by}" if self.by else ""
        return f"⊘ Alarms muted{by} until {format_clock(self.until)} (UK time)"
