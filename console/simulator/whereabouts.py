"""Where a simulated GPS wearer was: a trail made on request from the seed, never
stored (a month of one point a minute for 100,000 wearers would be 4 billion points).

A wearer lives at the curfew address and has two to four regular places (work, a
shop, family, a friend) 1-15 km away. They are away from home exactly when the
fleet's own draws say so (Fleet._move: out 09:00-17:00 on 70% of days; out from the
curfew's start on the nights it draws a late return or a night out), and through
every absence the fleet raised for them, so that a breach on the board is a journey
on the map. Away, they walk or take a bus to a place or two along slightly wiggly
paths, stay, and come home. Indoors the device locates itself by Wi-Fi (20-60 m),
outdoors by GPS (5-15 m), and now and then by the cell network alone (300-1500 m);
a few times a week the signal drops for 5 minutes to 2 hours, and a flat or silent
device (its battery and inability-to-monitor alerts) sends nothing: real gaps.

Everything is a function of absolute time, never of the window asked for, so two
windows agree where they overlap, and two backends with one seed give one trail.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time

import numpy as np

from console.domain import DAY, LOCAL_TZ
from console.domain.trails import Source, Zone
from console.simulator.draws import unit
from console.simulator.fleet import P_LATE_HOME, P_NIGHT_OUT, Fleet

METRES_PER_DEGREE = 111_320.0
WALK = 1.4  # m/s
WIGGLE = 1.15  # a path is this much longer than the straight line
PLACE_NAMES = ("work", "shop", "family", "friend")
# Accuracy (metres) of each source, lowest and highest; cell alone now and then.
ACCURACY = {Source.GPS: (5, 15), Source.WIFI: (20, 60), Source.CELL: (300, 1500)}
P_CELL = 0.03
GAPS_PER_DAY = 4 / 7
GAP_SHORTEST, GAP_LONGEST = 300.0, 7200.0
ABSENCES = ("absence_15min", "curfew_missed")  # away from home while these stand
SILENT = ("battery", "inability_to_monitor")  # no points while these stand
SOURCES = np.array([Source.GPS, Source.WIFI, Source.CELL], dtype=object)


def moved(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    north, east = metres * math.cos(bearing), metres * math.sin(bearing)
    return (lat + north / METRES_PER_DEGREE,
            lon + east / (METRES_PER_DEGREE * math.cos(math.radians(lat))))


def places(fleet: Fleet, i: int) -> list[tuple[float, float]]:
    """Wearer i's regular places, in PLACE_NAMES' order: most near, a few far."""
    seed, sim = fleet.seed, fleet.sims[i]
    return [moved(sim.home_lat, sim.home_lon, 1000 + 14_000 * unit(seed, i, 201, k) ** 2,
                  2 * math.pi * unit(seed, i, 202, k))
            for k in range(2 + int(3 * unit(seed, i, 200)))]


def zones(fleet: Fleet, i: int) -> list[Zone]:
    """An inclusion zone at home, for the curfew; for about one wearer in five, an
    exclusion zone too (a victim's address, say) a few kilometres away."""
    seed, sim = fleet.seed, fleet.sims[i]
    home = [Zone("home (during curfew)", False, sim.home_lat, sim.home_lon, 100.0)]
    if unit(seed, i, 300) >= 0.2:
        return home
    lat, lon = moved(sim.home_lat, sim.home_lon, 2000 + 6000 * unit(seed, i, 301),
                     2 * math.pi * unit(seed, i, 302))
    return home + [Zone("exclusion zone", True, lat, lon, 500.0)]


def _local(day: int, at: time) -> float:
    return datetime.combine(date.fromordinal(day), at, LOCAL_TZ).timestamp()


def away_spans(fleet: Fleet, i: int, start: float, end: float) -> list[tuple[float, float]]:
    """When wearer i is away from home around [start, end], merged, in order: the
    fleet's draws (the same keys as Fleet._move) and the absences it raised."""
    seed, curfew = fleet.seed, fleet.wearers[i].curfew
    first = datetime.fromtimestamp(start, LOCAL_TZ).toordinal() - 1  # a night out spans midnight
    last = datetime.fromtimestamp(end, LOCAL_TZ).toordinal()
    spans = []
    for day in range(first, last + 1):
        # Curfews never cover 09:00-17:00, so "not in curfew" adds nothing here.
        if unit(seed, i, day, 5) < 0.7:
            spans.append((_local(day, time(9)), _local(day, time(17))))
        if curfew is not None:
            at, r = _local(day, time(curfew.start.hour)), unit(seed, i, day, 3)
            if r < P_NIGHT_OUT:
                spans.append((at, at + 13 * 3600))
            elif r < P_NIGHT_OUT + P_LATE_HOME:
                spans.append((at, at + (20 + 70 * unit(seed, i, day, 4)) * 60))
    spans += _alert_spans(fleet, i, ABSENCES, before=900)  # raised after 15 minutes out
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if b > start - DAY and a < end + DAY]


def _alert_spans(fleet: Fleet, i: int, types: tuple[str, ...], before: float = 0.0):
    wearer = fleet.wearers[i].id
    return [(a.raised_at - before, fleet.now if a.cleared_at is None else a.cleared_at)
            for a in fleet.alerts.values() if a.wearer_id == wearer and a.type in types]


def _toward(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """From a to b in metres, (north, east)."""
    return ((b[0] - a[0]) * METRES_PER_DEGREE,
            (b[1] - a[1]) * METRES_PER_DEGREE * math.cos(math.radians(a[0])))


def _journey(knots: list, a: tuple[float, float], b: tuple[float, float], leave: float,
             speed: float, key: tuple[int, ...]) -> float:
    """Add the knots of a walk or a ride from a to b, leaving at `leave`, off the
    straight line by up to 80 m; when it arrives."""
    north, east = _toward(a, b)
    dist = max(math.hypot(north, east), 1.0)
    arrive = leave + dist * WIGGLE / speed
    steps = max(2, int(dist / 400))
    for s in range(1, steps):
        f, off = s / steps, (unit(*key, s) - 0.5) * 2 * min(80.0, 0.1 * dist)
        # Sideways: the way (north, east) turned a quarter, (-east, north), scaled to `off`.
        knots.append((leave + f * (arrive - leave),
                      *moved(a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), off,
                             math.atan2(north, -east))))
    knots.append((arrive, *b))
    return arrive


def _outing(fleet: Fleet, i: int, span: tuple[float, float], home: tuple[float, float],
            spots: list[tuple[float, float]], knots: list, journeys: list) -> None:
    """Leave home at the span's start for one place (two on a long day), stay, and
    be home again at its end; a span too short to reach a place is a walk nearby."""
    a, b = span
    key = (fleet.seed, i, int(a))
    stops = [spots[0] if unit(*key, 1) < 0.6 else spots[int(unit(*key, 2) * len(spots))]]
    if b - a > 4 * 3600 and unit(*key, 3) < 0.4:
        stops.append(spots[int(unit(*key, 4) * len(spots))])
    way = [home, *stops, home]
    # Walk under 1.5 km; else a bus, 6-12 m/s on average.
    speeds = [WALK if math.hypot(*_toward(p, q)) < 1500 else 6 + 6 * unit(*key, 5, k)
              for k, (p, q) in enumerate(zip(way, way[1:], strict=False))]
    travel = sum(math.hypot(*_toward(p, q)) * WIGGLE / v
                 for p, q, v in zip(way, way[1:], speeds, strict=False))
    if travel > 0.6 * (b - a):
        north, east = _toward(home, stops[0])
        spot = moved(*home, 0.2 * (b - a) * WALK / WIGGLE, math.atan2(east, north))
        way, speeds, travel = [home, spot, home], [WALK, WALK], 0.4 * (b - a)
    stay = (b - a - travel) / (len(way) - 2)
    knots.append((a, *home))
    at = a
    for k, (p, q) in enumerate(zip(way, way[1:], strict=False)):
        arrive = _journey(knots, p, q, at, speeds[k], (*key, 10 + k))
        journeys.append((at, arrive))
        at = arrive if q is home else arrive + stay
        if q is not home:
            knots.append((at, *q))


def trail(fleet: Fleet, i: int, start: float, end: float):
    """Wearer i's points in [start, end] (no later than the fleet's now): five
    columns, time (epoch seconds), latitude, longitude, accuracy (metres) and
    source, as lists."""
    sim = fleet.sims[i]
    home = (sim.home_lat, sim.home_lon)
    knots, journeys = [(0.0, *home)], [(-math.inf, -math.inf)]
    spots = places(fleet, i)
    for span in away_spans(fleet, i, start, end):
        _outing(fleet, i, span, home, spots, knots, journeys)
    kt, klat, klon = np.array(knots).T
    # Each UTC day's minutes and draws are its own, whatever the window.
    days = []
    for d in range(int(start // DAY), int(end // DAY) + 1):
        rng = np.random.default_rng([fleet.seed, i, d])
        t = d * DAY + 60 * np.arange(1440) + rng.uniform(0, 3, 1440)  # a report's own jitter
        kept = np.ones(1440, bool)
        for _ in range(rng.poisson(GAPS_PER_DAY)):
            gap = d * DAY + rng.uniform(0, DAY)
            kept &= (t < gap) | (t >= gap + math.exp(rng.uniform(math.log(GAP_SHORTEST),
                                                                   math.log(GAP_LONGEST))))
        days.append(np.vstack([t, rng.random(1440), rng.random(1440),
                               rng.standard_normal((2, 1440))])[:, kept])
    t, u_source, u_accuracy, north, east = np.hstack(days)
    kept = (t >= start) & (t <= min(end, fleet.now))
    for a, b in _alert_spans(fleet, i, SILENT):
        kept &= (t < a) | (t >= b)
    t, u_source, u_accuracy, north, east = (c[kept] for c in (t, u_source, u_accuracy, north, east))
    starts, ends = np.array(journeys).T
    outdoors = t < ends[np.searchsorted(starts, t, "right") - 1]
    source = np.where(u_source < P_CELL, 2, np.where(outdoors, 0, 1))
    low = np.array([ACCURACY[s][0] for s in SOURCES])
    high = np.array([ACCURACY[s][1] for s in SOURCES])
    accuracy = low[source] + (high - low)[source] * u_accuracy
    # The position found is off by about half its accuracy, each way.
    lat = np.interp(t, kt, klat) + north * accuracy / 2 / METRES_PER_DEGREE
    lon = np.interp(t, kt, klon) + east * accuracy / 2 / (
        METRES_PER_DEGREE * math.cos(math.radians(home[0])))
    return (np.round(t, 1).tolist(), np.round(lat, 6).tolist(), np.round(lon, 6).tolist(),
            np.round(accuracy, 1).tolist(), SOURCES[source].tolist())
