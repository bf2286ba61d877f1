"""A trail made ready for the map page, off the GUI thread: simplified per zoom
level, with each point's speed, bearing, curfew and source, the stops and totals,
as one JSON document that resources/web/trail.js draws. Qt-free.

Simplification: each gap-free segment is thinned with Ramer-Douglas-Peucker in Web
Mercator metres, at a tolerance of PIXEL_TOLERANCE screen pixels for each zoom, each
level from the next finer one's points. The levels are nested, so one number per
point says it all: `minz[i]`, the lowest zoom that draws point i. The page
draws, at zoom z, every point with minz <= z, and each drawn vertex keeps its index,
hence its time, accuracy and number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson
from simplification.cutil import simplify_coords_idx

from console.domain import trails as domain
from console.domain.trails import Trail

MIN_ZOOM = 3  # below this the UK is a few pixels: the coarsest level is used
MAX_ZOOM = 18  # from this zoom on, every point is drawn
PIXEL_TOLERANCE = 1.0  # what simplification may move a line by, in screen pixels
EARTH_RADIUS = 6_378_137.0  # Web Mercator's sphere
SOURCES = tuple(domain.Source)  # the page gets each point's source as an index into this
SOURCE_LABELS = {domain.Source.GPS: "GPS", domain.Source.CELL: "cell tower",
                 domain.Source.WIFI: "Wi-Fi"}


def metres_per_pixel(zoom: int) -> float:
    """Web Mercator metres per 256-pixel-tile pixel at a zoom level."""
    return 2 * math.pi * EARTH_RADIUS / 256 / 2 ** zoom


def mercator(lat, lon) -> np.ndarray:
    la = np.radians(np.clip(np.asarray(lat, dtype=float), -85.0511, 85.0511))
    return np.column_stack((EARTH_RADIUS * np.radians(np.asarray(lon, dtype=float)),
                            EARTH_RADIUS * np.log(np.tan(np.pi / 4 + la / 2))))


def min_zooms(lat, lon, runs) -> np.ndarray:
    """For each point, the lowest zoom level (MIN_ZOOM..MAX_ZOOM) that draws it.
    Each level simplifies the next finer level's points, not all of them: three
    times less work than simplifying every level from scratch, the levels nested by
    construction, and a drawn line within 2 * PIXEL_TOLERANCE of every point."""
    xy = mercator(lat, lon)
    minz = np.full(len(xy), MAX_ZOOM, dtype=np.int8)
    for first, end in runs:
        kept = np.arange(first, end)
        for z in range(MAX_ZOOM - 1, MIN_ZOOM - 1, -1):
            part = np.ascontiguousarray(xy[kept])
            kept = kept[np.asarray(simplify_coords_idx(part, metres_per_pixel(z) * PIXEL_TOLERANCE),
                                   dtype=np.int64)]
            minz[kept] = z
    return minz


def drawn_counts(minz: np.ndarray) -> dict[int, int]:
    """How many vertices the page draws at each zoom."""
    return {z: int(np.count_nonzero(minz <= z)) for z in range(MIN_ZOOM, MAX_ZOOM + 1)}


def runs_of(flags) -> list[list[int]]:
    """The [first, end) index ranges where flags is true."""
    f = np.concatenate(([False], np.asarray(flags, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(f.astype(np.int8)))
    return edges.reshape(-1, 2).tolist()


@dataclass(frozen=True)
class PreparedTrail:
    """What the page is sent (`json`), and what Python keeps to answer for it."""

    json: bytes
    counts: dict[int, int]  # vertices drawn per zoom
    stops: tuple[domain.Stop, ...]
    totals: domain.Totals
    first: float  # the first point's time (the window's start if none)
    last: float


def prepare(trail: Trail) -> PreparedTrail:
    """The trail as the page draws it. Takes tens of milliseconds for a month of
    points: call it off the GUI thread."""
    t, lat, lon = trail.t, trail.lat, trail.lon
    runs = domain.segments(t)
    minz = min_zooms(lat, lon, runs)
    distance, speed, bearing = domain.steps(t, lat, lon)
    found = domain.stops(t, lat, lon, trail.accuracy)
    source_index = {s: i for i, s in enumerate(SOURCES)}
    t0 = t[0] if t else trail.start
    document = {
        "start": trail.start, "end": trail.end, "t0": t0,
        "t": np.round(np.asarray(t, dtype=float) - t0, 1),
        "lat": np.round(np.asarray(lat, dtype=float), 6),
        "lon": np.round(np.asarray(lon, dtype=float), 6),
        "acc": np.round(np.asarray(trail.accuracy, dtype=float)).astype(np.int32),
        "src": [source_index[s] for s in trail.source],
        "sources": [SOURCE_LABELS[s] for s in SOURCES],
        "speed": np.round(np.asarray(speed), 2),
        "bearing": np.round(np.asarray(bearing)),
        "minz": minz, "maxZoom": MAX_ZOOM, "minZoom": MIN_ZOOM,
        "segments": [list(r) for r in runs],
        "curfew": runs_of(domain.in_curfew(t, trail.curfew)),
        "curfewHours": str(trail.curfew) if trail.curfew else None,
        "stops": [[s.lat, s.lon, s.arrived, s.left, s.first, s.last] for s in found],
        "home": trail.home,
        "zones": [{"name": z.name, "exclusion": z.exclusion, "lat": z.lat, "lon": z.lon,
                   "radius": z.radius_m} for z in trail.zones],
        "skipped": trail.skipped,
    }
    encoded = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return PreparedTrail(encoded, drawn_counts(minz), found,
                         domain.totals(t, lat, lon, found, distance),
                         t[0] if t else trail.start, t[-1] if t else trail.start)
