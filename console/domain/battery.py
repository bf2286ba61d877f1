"""Battery: the accumulated battery policy of ICIBI §5.16 (footnote 20).

A flat battery is not a breach by itself: most battery notifications are noise
(§5.13), and raising each one made the queue unworkable. Per device, the time out
of contact because of a flat battery is added up over a rolling 7-day window ending
at `now`; once it reaches 12 hours it becomes one breach work item, listing the
spans that made it up. Below that, the wearer's row shows the hours so far.

Pure code: every function that needs the time takes `now` (epoch seconds).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

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

    def describe(self) -> str:
        # Rounded down, so that 11 h 59 min reads 11.9 h and never "12.0 h of 12 h"
        # on a row that is not a breach. 360 s is a tenth of an hour; whole seconds
        # divide exactly, where hours * 10 in floats may land just below a tenth.
        tenths = int(self.accumulated // 360)
        return f"{tenths // 10}.{tenths % 10} h of {BREACH_AFTER / 3600:.0f} h in {WINDOW / DAY:.0f} days"


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


class Accumulator:
    """The policy over a fleet, as notifications come: per device, the spans out of
    contact and the breach items made. A device makes one breach item in any 7
    days: what accumulates after it joins that item; 12 more hours after its window
    ends make the next."""

    def __init__(self) -> None:
        self.spans: dict[str, list[Span]] = defaultdict(list)
        self.items: dict[str, list[float]] = defaultdict(list)  # device -> when its items came

    def out(self, device: str, at: float) -> None:
        """The device went out of contact (a flat battery) at `at`."""
        spans = self.spans[device]
        if not (spans and spans[-1].end is None):
            spans.append(Span(at))

    def back(self, device: str, at: float) -> None:
        spans = self.spans.get(device)
        if spans and spans[-1].end is None:
            spans[-1] = Span(spans[-1].start, at)

    def judge(self, now: float) -> list[str]:
        """The devices whose accumulation became a new breach item at `now`."""
        new = []
        for device, spans in self.spans.items():
            if not spans or not standing(spans, now).breached:
                continue
            made = self.items[device]
            if not made or now - made[-1] >= WINDOW:
                made.append(now)
                new.append(device)
            # Counted into an item: the next needs 12 hours more. An outage still
            # going on counts on from now.
            spans[:] = [Span(now)] if spans[-1].end is None else []
        return new
