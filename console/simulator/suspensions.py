"""The simulated wearers' suspensions: monitoring suspended by design (a stay in
hospital, custody, a weekly approved absence, a device not yet fitted).

Drawn from the seed, the wearer's index and the calendar, not from the backend's
start, so that a wearer's suspensions are the same on every request and after a
restart, and alerts raised under one are marked `suppressed` when they are raised
(console/simulator/fleet.py).
"""

from __future__ import annotations

import math

from console.domain import DAY, Suspension, SuspensionReason
from console.simulator.draws import unit

PERIOD = 30 * DAY  # a wearer has at most one episode (hospital, custody) in each
EPISODE_SHARE = 0.03  # of wearers, in each period
WEEKLY_SHARE = 0.01  # of wearers: a weekly approved absence, an afternoon
MONDAY = 4 * DAY  # the epoch was a Thursday
EPISODE_REASONS = (SuspensionReason.HOSPITAL, SuspensionReason.CUSTODY, SuspensionReason.NOT_FITTED)


def suspensions_of(seed: int, i: int, wearer_id: str, now: float) -> list[Suspension]:
    """The wearer's suspensions that have begun by `now`: a weekly one, and any
    episode of this period or the last (an episode lasts at most 10 days)."""
    out = []
    if unit(seed, i, 11) < WEEKLY_SHARE:
        # From a fixed Monday in 2026, on a weekday of the wearer's own, 13:00-17:00 UTC.
        start = MONDAY + 2922 * 7 * DAY + math.floor(unit(seed, i, 12) * 5) * DAY + 13 * 3600
        out.append(Suspension(wearer_id, SuspensionReason.APPROVED_ABSENCE, start,
                              start + 4 * 3600, 7 * DAY))
    period = math.floor(now / PERIOD)
    for p in (period - 1, period):
        if unit(seed, i, p, 13) < EPISODE_SHARE:
            start = p * PERIOD + unit(seed, i, p, 14) * (PERIOD - 10 * DAY)
            reason = EPISODE_REASONS[math.floor(unit(seed, i, p, 15) * len(EPISODE_REASONS))]
            out.append(Suspension(wearer_id, reason, start,
                                  start + (2 + 8 * unit(seed, i, p, 16)) * DAY))
    return [s for s in out if s.start <= now]
