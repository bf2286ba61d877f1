"""Trail rules that an operator reads as facts (console/domain/trails.py): a wearer
indoors for hours is one stop, however much the fix wanders, and the wandering is
not counted as travel."""

import random

import pytest

from console.domain import trails

HOME = (53.4808, -2.2426)
M_LAT, M_LON = 1 / 111_195, 1 / (111_195 * 0.595)  # degrees per metre here


def jittery_stay(minutes: int, spread_m: float, seed: int = 7):
    """A wearer indoors: one Wi-Fi fix a minute, each up to spread_m from home."""
    rng = random.Random(seed)
    t = tuple(60.0 * k for k in range(minutes))
    lat = tuple(HOME[0] + rng.uniform(-spread_m, spread_m) * M_LAT for _ in t)
    lon = tuple(HOME[1] + rng.uniform(-spread_m, spread_m) * M_LON for _ in t)
    return t, lat, lon, (45.0,) * minutes


def test_three_hours_indoors_with_a_wandering_fix_is_one_stop_and_no_travel():
    t, lat, lon, acc = jittery_stay(180, spread_m=40)
    found = trails.stops(t, lat, lon, acc)
    assert [(s.first, s.last) for s in found] == [(0, 179)]
    total = trails.totals(t, lat, lon, found)
    assert total.distance_m == 0 and total.stopped_s == 179 * 60 and total.moving_s == 0
    # Without the accuracy allowance the same stay falls apart: what it guards against.
    assert len(trails.stops(t, lat, lon)) != 1


def test_leaving_a_stop_ends_it_and_the_journey_counts():
    t, lat, lon, acc = jittery_stay(30, spread_m=10)
    walk = tuple(HOME[0] + 80 * k * M_LAT for k in range(1, 11))  # 80 m a minute, north
    t += tuple(t[-1] + 60.0 * k for k in range(1, 11))
    lat, lon, acc = lat + walk, lon + (HOME[1],) * 10, acc + (8.0,) * 10
    (stop,) = trails.stops(t, lat, lon, acc)
    assert stop.last < 31
    assert trails.totals(t, lat, lon).distance_m == pytest.approx(800, abs=60)
