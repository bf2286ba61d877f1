"""Battery: the accumulated battery policy of ICIBI §5.16 (footnote 20).

A flat battery is not a breach by itself: most battery notifications are noise
(§5.13), and raising each one made the queue unworkable. Per device, the time out
of contact because of a flat battery is added up over a rolling 7-day window ending
at `now`; once it reaches 12 hours it becomes one breach work item, listing the
spans that made it up (console/domain/workitems.py, `work_items`). Below that, the
wearer's row shows the hours so far. Time already counted into a confirmed breach,
or closed as not the wearer's, stops counting (`counts`): the next breach needs 12
hours more.

Pure code: every function that needs the time takes `now` (epoch seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from console.domain.alerts import Alert, Outcome
from console.domain.clock import DAY

WINDOW = 7 * DAY
BREACH_AFTER = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Span:
    """One period out of contact because of a flat battery. `end=None`: still out of
    contact, so it counts up to `now`."""

    start: float
    end: float | None = None


@dataclass(frozen=True, slots=True)
class BatteryStanding:
    accumulated: float  # seconds out of contact within the window
    breached: bool
    spans: tuple[Span, ...]  # the contributing spans: clipped to the window, merged

    @property
    def hours(self) -> str:
        """The time out of contact, "11.9 h". Rounded down, so that 11 h 59 min never
        reads "12.0 h" on a row that is not a breach. 360 s is a tenth of an hour;
        whole seconds divide exactly, where hours * 10 in floats may land just below."""
        tenths = int(self.accumulated // 360)
        return f"{tenths // 10}.{tenths % 10} h"

    def describe(self) -> str:
        return f"{self.hours} of {BREACH_AFTER / 3600:.0f} h in {WINDOW / DAY:.0f} days"


# Closed as one of these, a battery alert's flat time no longer counts: it made a
# breach already (confirmed), was not the wearer's doing (equipment fault), did not
# happen (false alarm), or is counted through another alert (duplicate). Closed as
# resolved by contact (the wearer charged it), or cleared and closed without an
# outcome, it still counts.
NOT_COUNTED = frozenset({Outcome.CONFIRMED_NON_COMPLIANCE, Outcome.EQUIPMENT_FAULT,
                         Outcome.FALSE_ALARM, Outcome.DUPLICATE})


def counts(alert: Alert) -> bool:
    """Whether a battery alert's flat time counts towards the policy."""
    return alert.type == "battery" and alert.outcome not in NOT_COUNTED


def span_of(alert: Alert) -> Span:
    """The time a battery alert's device was out of contact: from when it was
    raised to when its condition cleared; an alert closed while still flat ends
    its span at the closing (no later event will end it); else still open."""
    end = alert.cleared_at
    if end is None and not alert.is_open:
        end = alert.history[-1].at if alert.history else alert.raised_at
    return Span(alert.raised_at, end)


def _clipped(span: Span, lo: float, now: float) -> tuple[float, float] | None:
    """The part of a span inside [lo, now], or None. Bad input (NaN, infinite, end
    before start) is dropped rather than raised: one corrupt notification must not
    stop the standing of every other device being worked out."""
    end = now if span.end is None else span.end
    if not (math.isfinite(span.start) and math.isfinite(end) and span.start <= end):
        return None
    start, end = max(span.start, lo), min(end, now)
    return (start, end) if start < end else None


def merged(spans: Iterable[Span], now: float) -> list[Span]:
    """The spans inside the window [now - WINDOW, now], merged where they overlap
    or touch, oldest first. Notifications for one outage often overlap (a low
    battery, then a lost signal); merging counts each second out of contact once.
    An open span is closed at `now`."""
    pieces = sorted(p for s in spans if (p := _clipped(s, now - WINDOW, now)) is not None)
    out: list[list[float]] = []
    for start, end in pieces:
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [Span(start, end) for start, end in out]


def accumulated(spans: Iterable[Span], now: float) -> float:
    """Seconds out of contact within the window, each second counted once."""
    return math.fsum(s.end - s.start for s in merged(spans, now))


def standing(spans: Iterable[Span], now: float) -> BatteryStanding:
    """One device's standing: a breach once 12 hours have accumulated in 7 days."""
    contributing = tuple(merged(spans, now))
    total = math.fsum(s.end - s.start for s in contributing)
    return BatteryStanding(total, total >= BREACH_AFTER, contributing)
