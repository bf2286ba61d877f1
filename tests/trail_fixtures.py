"""Synthetic trails for the map's tests and benchmark (tests/test_maps.py,
tests/bench_trails.py): a month of one point a minute in and around Manchester,
with a daily routine, stays, journeys, signal gaps and an evening out in curfew
hours once a week. Deterministic by seed; independent of the simulator."""

from __future__ import annotations

import math
import random
from datetime import datetime

import msgspec
import numpy as np

from console.domain.clock import LOCAL_TZ
from console.domain.fleet import Curfew
from console.domain.trails import Source, Trail, Zone
from console.protocol.trails import TrailPoints

HOME = (53.4631, -2.2913)  # a street in Salford
PLACES = {"work": (53.4808, -2.2426), "shop": (53.4775, -2.2380), "gym": (53.4509, -2.2580),
          "friend": (53.4930, -2.3290), "pub": (53.4480, -2.2450)}
START = datetime(2026, 10, 15, tzinfo=LOCAL_TZ).timestamp()  # spans the clocks going back
CURFEW = "19:00-07:00"


def _waypoints(days: int, rng) -> list[tuple[float, tuple[float, float]]]:
    """(time, place) pairs: the wearer is at each place from one pair to the next of
    the same place, and travels in between."""
    points = []
    for d in range(days):
        day = START + d * 86_400
        h = lambda hours, day=day: day + hours * 3600 + rng.uniform(-600, 600)  # noqa: E731
        points += [(day, HOME), (h(7.5), HOME), (h(8.3), PLACES["work"]), (h(12.4), PLACES["work"]),
                   (h(12.6), PLACES["shop"]), (h(13.0), PLACES["shop"]), (h(13.2), PLACES["work"]),
                   (h(17.3), PLACES["work"])]
        evening = PLACES["gym" if d % 2 else "friend"]
        points += [(h(17.8), evening), (h(18.4), evening), (h(18.9), HOME)]
        if d % 7 == 3:  # out in curfew hours: a breach
            points += [(h(21.0), HOME), (h(21.4), PLACES["pub"]), (h(22.6), PLACES["pub"]),
                       (h(23.0), HOME)]
    points.append((START + days * 86_400, HOME))
    return points


def month(points: int = 43_200, seed: int = 1) -> Trail:
    """`points` points, one a minute, with gaps (a few a day, 6 minutes to 2 hours)."""
    rng = np.random.default_rng(seed)
    gaps = np.zeros(points)
    at = rng.choice(points, size=points // 400, replace=False)
    gaps[at] = rng.uniform(360, 7200, size=len(at))
    t = START + np.arange(points) * 60.0 + np.cumsum(gaps)
    days = math.ceil((t[-1] - START) / 86_400) + 1
    way = _waypoints(days, random.Random(seed))
    wt = np.array([w[0] for w in way])
    order = np.argsort(wt, kind="stable")
    wt = wt[order]
    lat = np.interp(t, wt, np.array([w[1][0] for w in way])[order])
    lon = np.interp(t, wt, np.array([w[1][1] for w in way])[order])
    # Indoors (still) the fix is Wi-Fi or cell and worse; moving, GPS.
    moving = np.abs(np.gradient(lat)) + np.abs(np.gradient(lon)) > 1e-5
    source = np.where(moving, 0, rng.choice([0, 2, 1], size=points, p=[0.55, 0.42, 0.03]))
    accuracy = np.choose(source, [rng.uniform(4, 25, points), rng.uniform(300, 1200, points),
                                  rng.uniform(20, 60, points)])
    metres = accuracy / 4 / 111_000
    lat = lat + rng.normal(0, 1, points) * metres
    lon = lon + rng.normal(0, 1, points) * metres / math.cos(math.radians(HOME[0]))
    sources = (Source.GPS, Source.CELL, Source.WIFI)
    return Trail("req-1", "wearer-1", float(t[0]), float(t[-1]), tuple(t.tolist()),
                 tuple(lat.tolist()), tuple(lon.tolist()), tuple(accuracy.tolist()),
                 tuple(sources[s] for s in source.tolist()), HOME, Curfew.parse(CURFEW),
                 (Zone("Home", False, *HOME, 100.0), Zone("Old Trafford", True, 53.4568, -2.2620, 300.0)))


def wire(trail: Trail) -> bytes:
    """The trail as the backend sends it (GET /trail-requests/{id}/trail)."""
    return msgspec.json.encode(TrailPoints.from_domain(trail))


def line(points: int, gap_after: int | None = None, start: float = START) -> Trail:
    """A straight walk north-east from home, a point a minute; a 20-minute gap after
    point gap_after if given."""
    t = [start + 60.0 * i + (1200 if gap_after is not None and i > gap_after else 0)
         for i in range(points)]
    lat = [HOME[0] + 0.0008 * i + 0.0003 * math.sin(i) for i in range(points)]
    lon = [HOME[1] + 0.0008 * i for i in range(points)]
    return Trail("req-2", "wearer-2", start, t[-1] if t else start + 3600, tuple(t), tuple(lat),
                 tuple(lon), (10.0,) * points, (Source.GPS,) * points, HOME, Curfew.parse(CURFEW))
