"""Time as the console shows it: UK wall-clock time, ISO 8601 on the wire, ages.

Pure code: functions take the time they judge (`now`, epoch seconds).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/London")
DAY = 86_400.0
# No timestamp of the service is older; an earlier one is a corrupt or made-up value.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()


def local_time(now: float) -> time:
    return datetime.fromtimestamp(now, LOCAL_TZ).time()


def format_clock(ts: float) -> str:
    """HH:MM, UK time."""
    return f"{datetime.fromtimestamp(ts, LOCAL_TZ):%H:%M}"


def format_day(ts: float) -> str:
    """The UK day: "21 Nov 2026"."""
    return f"{datetime.fromtimestamp(ts, LOCAL_TZ):%d %b %Y}"


def format_age(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / DAY:.0f} d"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
