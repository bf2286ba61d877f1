"""Wearers' location trails, and the legal-purpose gate in front of them.

Continuous location is intrusive (it can reveal religion, health, relationships):
the ICO found in 2024 that the GPS pilot's access to it was neither necessary,
proportionate nor accountable. So a trail is seen only for one of the purposes
the ICIBI lists, with a reference to the matter in hand, a justification and a
time window; a window longer than an operator may open on their own waits for a
supervisor's approval. The backend enforces all of it and records every grant and
every fetch; the console's checks here are a convenience so that an operator is
told before asking, never the safeguard.

Points are columnar (one tuple per field), as they travel: 43,200 points a month
as objects would cost more than the trail itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from console.domain.clock import DAY
from console.domain.fleet import Curfew

MAX_OPERATOR_WINDOW = 7 * DAY  # longer windows need a supervisor's approval
MAX_WINDOW = 31 * DAY  # nobody opens more than this at once
GRANT_LIFETIME = DAY  # a grant may be used to fetch its window for this long
CACHE_LIFETIME = DAY  # a fetched trail is deleted from a console's cache after this
MAX_POINTS = 50_000  # one a minute for 31 days is 44,640


class Purpose(StrEnum):
    """Why a trail may be viewed (ICIBI §5.34-5.37). The values are the wire's."""

    BREACH = "breach"
    ABSCONDING = "absconding"
    ARTICLE_8 = "article_8"
    BAIL_BREACH_ALLEGATION = "bail_breach_allegation"
    SUBJECT_ACCESS_OR_LEGAL = "subject_access_or_legal"

    @property
    def label(self) -> str:
        return PURPOSE_LABELS[self]


PURPOSE_LABELS = {
    Purpose.BREACH: "Breach or suspected breach (including lost contact)",
    Purpose.ABSCONDING: "Absconding",
    Purpose.ARTICLE_8: "Article 8 representations or further submissions",
    Purpose.BAIL_BREACH_ALLEGATION: "Allegation or intelligence of a bail breach",
    Purpose.SUBJECT_ACCESS_OR_LEGAL: "Subject access request or legal challenge",
}


class ReferenceKind(StrEnum):
    """What the access is for: an alert, a case entry, or a matter outside the console."""

    ALERT = "alert"
    CASE_ENTRY = "case_entry"
    EXTERNAL = "external"


class RequestState(StrEnum):
    PENDING = "pending"  # waits for a supervisor (a window over MAX_OPERATOR_WINDOW)
    GRANTED = "granted"  # the requester may fetch its window until expires_at
    REFUSED = "refused"  # a supervisor said no, with a reason
    EXPIRED = "expired"  # granted, and GRANT_LIFETIME has passed


class Source(StrEnum):
    """How a point was located; accuracy follows from it."""

    GPS = "gps"
    CELL = "cell"
    WIFI = "wifi"

    @property
    def label(self) -> str:
        """As an operator says it."""
        return {"gps": "GPS", "cell": "cell tower", "wifi": "Wi-Fi"}[self.value]


class AccessEvent(StrEnum):
    """What the backend's access log records for a wearer's trail."""

    REQUESTED = "requested"
    GRANTED = "granted"  # within an operator's limit, at once
    APPROVED = "approved"  # by a supervisor
    REFUSED = "refused"  # by a supervisor
    FETCHED = "fetched"  # points sent: who saw which window
    DENIED = "denied"  # a fetch the backend refused (no grant, outside it, expired, not theirs)


def window_problem(start: float, end: float, now: float) -> str | None:
    """Why a trail window cannot be asked for at `now`, or None."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return "the window's start and end must be times"
    if end <= start:
        return "the window ends before it starts"
    if end > now + 60:  # a minute's grace for clocks
        return "the window reaches into the future"
    if end - start > MAX_WINDOW:
        return f"the window is longer than {MAX_WINDOW / DAY:.0f} days"
    return None


def needs_approval(start: float, end: float) -> bool:
    return end - start > MAX_OPERATOR_WINDOW


@dataclass(frozen=True)
class TrailRequest:
    """A request to see one wearer's trail for a purpose, and what became of it.
    `id` is chosen by the console (a UUID), so that it knows the request before the
    backend's answer arrives, and a retry is the same request."""

    id: str
    wearer_id: str
    purpose: Purpose
    reference_kind: ReferenceKind
    reference: str
    justification: str
    start: float
    end: float
    state: RequestState = RequestState.PENDING
    requested_by: str = ""
    requested_at: float = 0.0
    decided_by: str | None = None  # the supervisor, for a window that needed one
    decided_at: float | None = None
    decision_note: str = ""
    expires_at: float | None = None  # granted: fetches allowed until then

    def problem(self, now: float) -> str | None:
        """Why the backend will refuse this request as asked, or None."""
        if not self.reference.strip():
            return "a reference is required (an alert, a case entry or an external reference)"
        if not self.justification.strip():
            return "a justification is required"
        return window_problem(self.start, self.end, now)

    def refuses_fetch(self, start: float, end: float, now: float) -> str | None:
        """Why a fetch of [start, end] under this request is refused, or None."""
        if self.state is not RequestState.GRANTED or (
                self.expires_at is not None and now > self.expires_at):
            state = RequestState.EXPIRED if self.state is RequestState.GRANTED else self.state
            return f"the request is {state.value}, not granted"
        if start < self.start or end > self.end or end <= start:
            return "the window asked for is outside the one granted"
        return None


@dataclass(frozen=True)
class Zone:
    """An inclusion zone (must be there, e.g. home during curfew) or an exclusion
    zone (must not enter), as a circle."""

    name: str
    exclusion: bool
    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class Trail:
    """The points of one window, columnar and in time order, with what the map
    draws around them. Gaps in the signal are gaps in `t`."""

    request_id: str
    wearer_id: str
    start: float
    end: float
    t: tuple[float, ...]
    lat: tuple[float, ...]
    lon: tuple[float, ...]
    accuracy: tuple[float, ...]  # metres
    source: tuple[Source, ...]
    home: tuple[float, float] | None = None  # the curfew address
    curfew: Curfew | None = None
    zones: tuple[Zone, ...] = ()
    skipped: int = 0  # points the decoder refused (NaN, out of range, outside the window)
    purpose: Purpose | None = None  # of the grant it was fetched under, for banners and reports
    reference: str = ""

    def __len__(self) -> int:
        return len(self.t)


def usable_points(t, lat, lon, accuracy, source, start: float, end: float):
    """The points fit to draw, as five tuples in time order, and how many were not:
    NaN or infinite values, latitudes and longitudes out of range, negative
    accuracy, times outside [start, end] or not after the point before (the last
    one kept). Checked with numpy: a month of points in a few milliseconds, where a
    loop in Python took 80."""
    import numpy as np

    columns = (t, lat, lon, accuracy, source)
    n = len(t)
    if any(len(c) != n for c in columns):
        raise ValueError("the columns differ in length")
    ti, la, lo, acc = (_numbers(c) for c in columns[:4])
    with np.errstate(invalid="ignore"):  # NaN compares false: refused with the rest
        ok = (np.isfinite(ti) & np.isfinite(acc) & (np.abs(la) <= 90) & (np.abs(lo) <= 180)
              & (acc >= 0) & (ti >= start) & (ti <= end))
    candidates = np.flatnonzero(ok)
    # A candidate is after the last point kept exactly when it is after every
    # candidate before it (the kept times rise, and a dropped one was not above them).
    times = ti[candidates]
    after = np.ones(len(times), dtype=bool)
    after[1:] = times[1:] > np.maximum.accumulate(times)[:-1]
    keep = candidates[after].tolist()
    if len(keep) == n:  # the usual case: every point is kept as it came
        return tuple(tuple(c) for c in columns), 0
    return tuple(tuple(c[i] for i in keep) for c in columns), n - len(keep)


def _numbers(column):
    """A column as a float array; anything that is not a number becomes NaN (refused)."""
    import numpy as np

    values = np.asarray(column)
    if values.dtype.kind in "fiu":
        return values.astype(float)
    return np.array([v if isinstance(v, int | float) else math.nan for v in column], dtype=float)


@dataclass(frozen=True)
class AccessEntry:
    """One line of a wearer's trail-access log: who, in which role, when, for what."""

    at: float
    event: AccessEvent
    operator: str
    roles: tuple[str, ...]
    request_id: str
    purpose: Purpose
    reference_kind: ReferenceKind
    reference: str
    justification: str
    start: float
    end: float
    detail: str = ""  # a refusal's or denial's reason


@dataclass(frozen=True)
class AccessLog:
    """A wearer's trail-access log over a period: every access, or an explicit
    empty list that proves there was none."""

    wearer_id: str
    since: float
    until: float
    entries: tuple[AccessEntry, ...] = field(default_factory=tuple)


# The geometry of a trail, for the map and for the views around it. Functions take
# the Trail's columns (plain tuples, in time order) and return tuples; numpy is
# imported inside them, so that importing the domain stays cheap for start-up.

GAP = 5 * 60  # seconds: two points further apart than this have a gap between them
STOP_RADIUS_M = 50.0  # a stop: the wearer stays within this of where they arrived...
STOP_MIN_DWELL = 5 * 60  # ...for at least this long (seconds)
EARTH_RADIUS_M = 6_371_008.8


def segments(t, max_gap: float = GAP) -> tuple[tuple[int, int], ...]:
    """The runs of points with no gap between them, as (first, end) index ranges,
    end exclusive: a trail with one gap is two segments."""
    import numpy as np

    if not len(t):
        return ()
    cuts = (np.flatnonzero(np.diff(np.asarray(t, dtype=float)) > max_gap) + 1).tolist()
    bounds = [0, *cuts, len(t)]
    return tuple(zip(bounds[:-1], bounds[1:], strict=True))


def steps(t, lat, lon, max_gap: float = GAP):
    """For each point, the step from the point before: distance (metres, great
    circle), speed (metres a second) and compass bearing (degrees clockwise from
    north). Three tuples of floats, NaN for the first point and for a point after a
    gap (no step is known across one)."""
    import numpy as np

    t, la, lo = (np.asarray(c, dtype=float) for c in (t, lat, lon))
    n = len(t)
    distance, speed, bearing = (np.full(n, np.nan) for _ in range(3))
    if n > 1:
        p1, p2 = np.radians(la[:-1]), np.radians(la[1:])
        dl = np.radians(lo[1:] - lo[:-1])
        h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
        d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        b = np.degrees(np.arctan2(np.sin(dl) * np.cos(p2),
                                  np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl))) % 360
        dt = np.diff(t)
        ok = dt <= max_gap
        distance[1:] = np.where(ok, d, np.nan)
        speed[1:] = np.where(ok, d / np.maximum(dt, 1e-9), np.nan)
        bearing[1:] = np.where(ok, b, np.nan)
    return tuple(distance.tolist()), tuple(speed.tolist()), tuple(bearing.tolist())


COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def compass(bearing: float) -> str:
    """The 8-point compass direction of a bearing in degrees ("NE"); "" if unknown."""
    if not math.isfinite(bearing):
        return ""
    return COMPASS[round(bearing % 360 / 45) % 8]


@dataclass(frozen=True)
class Stop:
    """Points first..last (inclusive) within STOP_RADIUS_M of where the wearer
    arrived, for at least STOP_MIN_DWELL; lat, lon is their mean."""

    first: int
    last: int
    lat: float
    lon: float
    arrived: float
    left: float

    @property
    def dwell(self) -> float:
        return self.left - self.arrived


def local_xy(lat, lon):
    """Metres east and north of the trail's first point (equirectangular: exact
    enough within a city, and cheap), as two numpy arrays."""
    import numpy as np

    la, lo = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    if not len(la):
        return la, lo
    k = math.pi / 180 * EARTH_RADIUS_M
    return (lo - lo[0]) * k * math.cos(math.radians(la[0])), (la - la[0]) * k


# A fix indoors wanders by tens of metres a minute: a point counts as still at a
# stop within radius_m plus its accuracy, up to this (a cell fix says little).
MAX_ALLOWANCE_M = 100.0


def stops(t, lat, lon, accuracy=None, radius_m: float = STOP_RADIUS_M,
          min_dwell: float = STOP_MIN_DWELL, max_gap: float = GAP) -> tuple[Stop, ...]:
    """Where the wearer stayed: runs of points within radius_m (plus each point's
    accuracy, up to MAX_ALLOWANCE_M) of the run's centre so far, for at least
    min_dwell seconds, not across a gap (where the wearer was in one is not known).
    Runs that follow one another with their centres that close are one stop: the
    jitter of a fix indoors split it, the wearer did not leave."""
    import numpy as np

    n = len(t)
    xs, ys = local_xy(lat, lon)
    allow = np.minimum(np.asarray(accuracy if accuracy is not None else (0.0,) * n, dtype=float),
                       MAX_ALLOWANCE_M) + radius_m
    # A stop starts only where the next point is near and no gap follows: most points
    # on the move are ruled out at once, without the loop.
    near_next = ((np.diff(xs) ** 2 + np.diff(ys) ** 2 <= allow[1:] ** 2)
                 & (np.diff(np.asarray(t, dtype=float)) <= max_gap))
    x, y, a = xs.tolist(), ys.tolist(), allow.tolist()
    runs: list[list] = []  # [first, last, sum x, sum y]
    for i in np.flatnonzero(near_next).tolist():
        if runs and i <= runs[-1][1]:
            continue
        j, sx, sy = i + 1, x[i], y[i]
        while j < n and t[j] - t[j - 1] <= max_gap:
            k = j - i
            if (x[j] - sx / k) ** 2 + (y[j] - sy / k) ** 2 > a[j] ** 2:
                break
            sx, sy, j = sx + x[j], sy + y[j], j + 1
        if t[j - 1] - t[i] < min_dwell:
            continue
        if runs:
            f, last, px, py = runs[-1]
            m, k = last - f + 1, j - i
            if (t[i] - t[last] <= max_gap
                    and (px / m - sx / k) ** 2 + (py / m - sy / k) ** 2 <= radius_m ** 2):
                runs[-1] = [f, j - 1, px + sx + sum(x[last + 1:i]), py + sy + sum(y[last + 1:i])]
                continue
        runs.append([i, j - 1, sx, sy])
    return tuple(Stop(f, last, sum(lat[f:last + 1]) / (last - f + 1),
                      sum(lon[f:last + 1]) / (last - f + 1), t[f], t[last])
                 for f, last, _, _ in runs)


@dataclass(frozen=True)
class Totals:
    """A trail's totals: distance over the steps with no gap and not within a stop
    (where a fix's jitter is not travel), time moving (the steps' time less the
    stops'), time stopped, and how many stops and gaps."""

    points: int
    distance_m: float
    moving_s: float
    stopped_s: float
    stops: int
    gaps: int


def totals(t, lat, lon, found: tuple[Stop, ...] | None = None,
           distance: tuple[float, ...] | None = None) -> Totals:
    """The trail's totals; pass its stops() and steps() distances if already known."""
    found = stops(t, lat, lon) if found is None else found
    distance = list(steps(t, lat, lon)[0] if distance is None else distance)
    for s in found:
        distance[s.first + 1:s.last + 1] = [0.0] * (s.last - s.first)
    runs = segments(t)
    stepping = sum(t[end - 1] - t[first] for first, end in runs)
    stopped = sum(s.dwell for s in found)
    return Totals(len(t), math.fsum(d for d in distance if d == d), stepping - stopped, stopped,
                  len(found), max(0, len(runs) - 1))


def in_curfew(t, curfew: Curfew | None) -> tuple[bool, ...]:
    """For each time, whether it falls in the curfew (UK wall-clock hours)."""
    import numpy as np

    if curfew is None or not len(t):
        return (False,) * len(t)
    times = np.asarray(t, dtype=float)
    # The UK's offset changes on the hour: look it up once per hour, not per point.
    hours, where = np.unique(np.floor(times / 3600), return_inverse=True)
    offsets = np.array([_utc_offset(h * 3600) for h in hours.tolist()])
    seconds = (times + offsets[where]) % DAY
    start = curfew.start.hour * 3600 + curfew.start.minute * 60
    end = curfew.end.hour * 3600 + curfew.end.minute * 60
    inside = ((seconds >= start) & (seconds < end) if start <= end
              else (seconds >= start) | (seconds < end))
    return tuple(inside.tolist())


def _utc_offset(ts: float) -> float:
    from datetime import datetime

    from console.domain.clock import LOCAL_TZ

    return datetime.fromtimestamp(ts, LOCAL_TZ).utcoffset().total_seconds()
