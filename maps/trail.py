"""A trail made ready for the map page, off the GUI thread: simplified per zoom
level, with each point's speed, bearing, curfew and source, the stops and totals,
as one JSON document that resources/web/trail.js draws. Qt-free.

Simplification: each gap-free segment is thinned with Ramer-Douglas-Peucker in Web
Mercator metres, at a tolerance of PIXEL_TOLERANCE screen pixels for each zoom. RDP
splits where the line is furthest from the chord whatever the tolerance, and only
stops sooner for a larger one, so its results at two tolerances are nested: one
number per point says it all, `minz[i]`, the lowest zoom that draws point i. The
page draws, at zoom z, every point with minz <= z, and each drawn vertex keeps its
index, hence its time, accuracy and number.

In two parts, so that the first frame waits for no more than it shows: prepare()
simplifies only at the zoom the map will open at (fitted to the trail) and leaves
out speeds and totals; refine() adds the other zooms and the rest, pushed when ready.
"""

from __future__ import annotations

import base64
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
FIT_PADDING = 20  # pixels each side of a trail fitted to the map (trail.js's zoomToTrail)
FIT_MAX_ZOOM = 16  # a short trail is not fitted closer than this
PACKED = {"Int8Array": "<i1", "Uint8Array": "u1", "Int32Array": "<i4"}  # JS typed arrays, numpy's
NOT_YET = 127  # minz of a point no zoom draws until refine() says where it belongs
NEVER = 126  # minz of a coarse fix: no zoom joins it into the line
# A fix this coarse (a cell tower's) is not joined into the line, where it would draw
# a spike hundreds of metres long from wherever the wearer was; the page draws it as
# a point of its own, with its accuracy.
COARSE_M = 250.0
SOURCES = tuple(domain.Source)  # the page gets each point's source as an index into this


def metres_per_pixel(zoom: int) -> float:
    """Web Mercator metres per 256-pixel-tile pixel at a zoom level."""
    return 2 * math.pi * EARTH_RADIUS / 256 / 2 ** zoom


def mercator(lat, lon) -> np.ndarray:
    la = np.radians(np.clip(np.asarray(lat, dtype=float), -85.0511, 85.0511))
    return np.column_stack((EARTH_RADIUS * np.radians(np.asarray(lon, dtype=float)),
                            EARTH_RADIUS * np.log(np.tan(np.pi / 4 + la / 2))))


def fit_zoom(lat, lon, width: int, height: int) -> int:
    """The zoom Leaflet's fitBounds(bounds, {padding: [FIT_PADDING] * 2, maxZoom:
    FIT_MAX_ZOOM}) picks for the points' bounds on a map of width x height pixels
    (trail.js's zoomToTrail; Leaflet's getBoundsZoom, zoomSnap 1)."""
    xy = mercator(lat, lon)
    span = np.ptp(xy, axis=0) / metres_per_pixel(0)  # pixels at zoom 0
    room = np.array([width, height], dtype=float) - 2 * FIT_PADDING
    with np.errstate(divide="ignore"):
        scale = float(np.min(np.maximum(room, 1) / span))
    if not math.isfinite(scale):  # all the points in one place
        return FIT_MAX_ZOOM
    zoom = math.floor(round(math.log2(scale) * 100) / 100)  # Leaflet's: within 1% of a level is on it
    return max(MIN_ZOOM, min(FIT_MAX_ZOOM, zoom))


def level(xy: np.ndarray, runs, zoom: int, within=None) -> np.ndarray:
    """The indices RDP keeps at `zoom`, segment by segment, from all the points (or
    from `within`'s, indices kept at a finer zoom: cheaper, and nested all the same)."""
    tolerance = metres_per_pixel(zoom) * PIXEL_TOLERANCE
    kept = []
    for first, end in runs:
        if within is None:
            part = np.arange(first, end)
        else:
            part = within[slice(*np.searchsorted(within, (first, end)))]
        kept.append(part[np.asarray(simplify_coords_idx(np.ascontiguousarray(xy[part]), tolerance),
                                    dtype=np.int64)])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def fine_points(trail: Trail) -> np.ndarray:
    """The indices of the points the line joins: all but the coarse fixes."""
    return np.flatnonzero(np.asarray(trail.accuracy, dtype=float) <= COARSE_M)


def min_zooms(xy: np.ndarray, runs, opening: int, fine: np.ndarray) -> np.ndarray:
    """For each point, the lowest zoom level (MIN_ZOOM..MAX_ZOOM) that draws it.
    The finer levels are simplified from all the points, the coarser from the
    opening zoom's, each from the next finer's (three times less work, and a drawn
    line within 2 * PIXEL_TOLERANCE of every point); all contain the opening level
    as prepare() drew it."""
    minz = np.full(len(xy), NEVER, dtype=np.int8)
    minz[fine] = MAX_ZOOM
    for z in range(MAX_ZOOM - 1, opening, -1):
        minz[level(xy, runs, z, fine)] = z
    kept = level(xy, runs, opening, fine)
    for z in range(opening, MIN_ZOOM - 1, -1):
        if z < opening:
            kept = level(xy, runs, z, kept)
        minz[kept] = z
    return minz


def drawn_counts(minz: np.ndarray) -> dict[int, int]:
    """How many vertices the page draws at each zoom."""
    return {z: int(np.count_nonzero(minz <= z)) for z in range(MIN_ZOOM, MAX_ZOOM + 1)}


def packed(values, typed: str, scale: float = 1) -> dict:
    """A column as trail.js's unpack() reads it: values * scale, rounded, as a JS
    typed array's bytes in base64. The page decodes a month's columns so in about
    20 ms less than from JSON arrays, to the same doubles (k / 1e6 is the double
    nearest to the decimal k * 1e-6, as parsing it would be)."""
    ints = np.round(np.asarray(values, dtype=float) * scale).astype(PACKED[typed])
    return {"type": typed, "scale": scale, "data": base64.b64encode(ints.tobytes()).decode()}


def runs_of(flags) -> list[list[int]]:
    """The [first, end) index ranges where flags is true."""
    f = np.concatenate(([False], np.asarray(flags, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(f.astype(np.int8)))
    return edges.reshape(-1, 2).tolist()


@dataclass(frozen=True)
class PreparedTrail:
    """What the page is sent (`json`), and what Python keeps to answer for it:
    prepare()'s first part (`zoom` is its one level, `totals` not known yet), then
    refine()'s, whose `json` holds only what it adds."""

    json: bytes
    counts: dict[int, int]  # vertices drawn per zoom, as the page has them now
    stops: tuple[domain.Stop, ...]
    totals: domain.Totals | None
    first: float  # the first point's time (the window's start if none)
    last: float
    zoom: int | None  # the level prepare() simplified at; None once refined


def prepare(trail: Trail, width: int, height: int) -> PreparedTrail:
    """What the first frame of a map of width x height shows: every point, drawn at
    any zoom as simplified for the zoom that fits the trail, the stops, curfew
    hours, gaps and zones; a month of points takes a few tens of milliseconds, so
    call it off the GUI thread. refine() does the rest."""
    t, lat, lon = trail.t, trail.lat, trail.lon
    runs = domain.segments(t)
    zoom = fit_zoom(lat, lon, width, height) if t else MIN_ZOOM
    minz = np.full(len(t), NOT_YET, dtype=np.int8)
    fine = fine_points(trail)
    minz[level(mercator(lat, lon), runs, zoom, fine)] = MIN_ZOOM
    found = domain.stops(t, lat, lon, trail.accuracy)
    source_index = {s: i for i, s in enumerate(SOURCES)}
    t0 = t[0] if t else trail.start
    la, lo = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    document = {
        "start": trail.start, "end": trail.end, "t0": t0,
        "t": packed(np.asarray(t, dtype=float) - t0, "Int32Array", 10),  # to a tenth of a second
        "lat": packed(la, "Int32Array", 1e6), "lon": packed(lo, "Int32Array", 1e6),
        "bounds": [[la.min(), lo.min()], [la.max(), lo.max()]] if t else None,
        "acc": packed(trail.accuracy, "Int32Array"),  # metres
        "src": packed([source_index[s] for s in trail.source], "Uint8Array"),
        "sources": [s.label for s in SOURCES],
        "minz": packed(minz, "Int8Array"), "zoom": zoom,
        "coarse": packed(np.setdiff1d(np.arange(len(t)), fine), "Int32Array"),
        "maxZoom": MAX_ZOOM, "minZoom": MIN_ZOOM,
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
    drawn = int(np.count_nonzero(minz == MIN_ZOOM))
    return PreparedTrail(encoded, dict.fromkeys(range(MIN_ZOOM, MAX_ZOOM + 1), drawn), found, None,
                         t[0] if t else trail.start, t[-1] if t else trail.start, zoom)


def refine(trail: Trail, first: PreparedTrail) -> PreparedTrail:
    """The rest, after prepare(): every zoom level (the first one unchanged), each
    point's speed and bearing, and the totals."""
    t, lat, lon = trail.t, trail.lat, trail.lon
    minz = min_zooms(mercator(lat, lon), domain.segments(t), first.zoom, fine_points(trail))
    distance, speed, bearing = domain.steps(t, lat, lon)
    encoded = orjson.dumps({"minz": minz, "speed": np.round(np.asarray(speed), 2),
                            "bearing": np.round(np.asarray(bearing))},
                           option=orjson.OPT_SERIALIZE_NUMPY)
    return PreparedTrail(encoded, drawn_counts(minz), first.stops,
                         domain.totals(t, lat, lon, first.stops, distance), first.first, first.last, None)
