"""The trail map: its page and assets, the emmap: scheme, the offline tiles and
their download, the trail's geometry, and the painted trail and replay in a real
QtWebEngine (offscreen)."""

from __future__ import annotations

import base64
import http.server
import math
import re
import shutil
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
import trail_fixtures as fixtures
from conftest import wait_until
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtCore import QBuffer, QIODevice
from PySide6.QtGui import QColor, QImage

import maps.web
from console.domain import trails
from console.domain.clock import LOCAL_TZ
from console.domain.fleet import Curfew
from console.domain.trails import Source, Trail
from maps import tiles
from maps.page import trail_page
from maps.trail import COARSE_M, MAX_ZOOM, MIN_ZOOM, prepare, refine
from maps.trail_map import TrailMap, format_time

ROOT = Path(__file__).resolve().parent.parent


def png(colour: str = "#3a7d44") -> bytes:
    image = QImage(256, 256, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())


def evaluate(view: TrailMap, qtbot, script: str):
    answers = []
    view.call(script, answers.append)
    wait_until(lambda: answers, qtbot=qtbot, what=script)
    return answers[0]


@pytest.fixture
def trail_map(qtbot):
    """make(tiles=None) -> a shown TrailMap, its events recorded in .events."""

    def make(tiles_path: Path | None = None) -> TrailMap:
        view = TrailMap(tiles_path)
        qtbot.addWidget(view)
        view.resize(800, 600)
        view.show()
        # The slots hold `events`, not the view: a Qt connection that held the view
        # would keep it past the profile's release at exit.
        events = {"painted": [], "replay": [], "failed": [], "basemap": [], "chosen": [], "refined": []}
        view.painted.connect(lambda v, z: events["painted"].append((v, z)))
        view.replay_moved.connect(events["replay"].append)
        view.failed.connect(events["failed"].append)
        view.basemap_described.connect(events["basemap"].append)
        view.point_chosen.connect(events["chosen"].append)
        view.refined.connect(lambda: events["refined"].append(True))
        view.events = events
        return view

    return make


def painted_after(view: TrailMap, qtbot, action) -> tuple[int, int]:
    before = len(view.events["painted"])
    action()
    wait_until(lambda: len(view.events["painted"]) > before, qtbot=qtbot, what="painted")
    return view.events["painted"][-1]


def show_all(view: TrailMap, qtbot, trail: Trail) -> tuple[int, int]:
    """Shows a trail: its first painted frame, returned once every level is in too."""
    before = len(view.events["refined"])
    painted = painted_after(view, qtbot, lambda: view.show_trail(trail))
    wait_until(lambda: len(view.events["refined"]) > before, qtbot=qtbot, what="refined")
    return painted


# The page and its assets.

def test_the_built_page_references_only_our_vendored_files():
    html = trail_page().decode()
    assert not re.search(r"https?://", html), "a remote URL is left in the page"
    linked = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"leaflet/leaflet.js", "leaflet/leaflet.css", "trail.js", "trail.css"} <= set(linked)
    assert all((maps.web.WEB_ROOT / name).is_file() for name in linked)
    assert (maps.web.WEB_ROOT / "leaflet" / "LICENSE").is_file()
    outline = maps.web.WEB_ROOT / "basemap" / "uk-outline.geojson"
    assert outline.stat().st_size < 300_000


def test_a_missing_asset_is_reported(trail_map, qtbot, tmp_path, monkeypatch):
    web = tmp_path / "web"
    shutil.copytree(maps.web.WEB_ROOT, web)
    (web / "leaflet" / "leaflet.js").unlink()
    monkeypatch.setattr(maps.web, "WEB_ROOT", web)
    view = trail_map()
    wait_until(lambda: view.events["failed"], qtbot=qtbot, what="failed")
    assert "leaflet/leaflet.js" in view.events["failed"][0]
    assert view.failure == view.events["failed"][0]


# Tiles and the basemap.

def test_without_tiles_the_map_draws_the_outline_and_says_so(trail_map, qtbot, tmp_path):
    view = trail_map(tmp_path / "none.mbtiles")
    wait_until(lambda: view.events["basemap"], qtbot=qtbot, what="basemap")
    assert view.events["basemap"] == [tiles.OUTLINE_ONLY]
    label = evaluate(view, qtbot, "document.querySelector('.em-basemap').textContent")
    assert label == "Basemap: UK outline only — no tiles downloaded"
    assert view.accessibleName() == "Trail map"


def test_tiles_are_served_from_an_mbtiles_file(trail_map, qtbot, tmp_path):
    path = tmp_path / "tiles.mbtiles"
    store = tiles.MBTiles(path, writable=True)
    for z, x, y in tiles.tiles_in((-11, 49, 3, 61), range(5, 7)):
        store.put(z, x, y, png())
    store.conn.commit()
    store.close()
    assert tiles.MBTiles.open(path).tile(5, 15, 10) == png()  # the TMS row flipped back
    view = trail_map(path)
    wait_until(lambda: view.events["basemap"], qtbot=qtbot, what="basemap")
    assert view.events["basemap"] == ["Basemap: offline tiles, zoom 5-6"]
    wait_until(lambda: evaluate(view, qtbot, "document.querySelectorAll('.leaflet-tile-loaded').length") > 0,
               qtbot=qtbot, what="a tile drawn")
    # The tiles cover the outline: the map's middle shows the tile's colour.
    wait_until(lambda: view.grab().toImage().pixelColor(400, 300).name() == "#3a7d44", qtbot=qtbot,
               what="the tile's colour")


def test_a_download_is_sized_and_confirmed_before_any_tile_is_fetched(tmp_path):
    requests = []

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            body = png()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
        bbox, zooms, path = (-3.0, 53.3, -2.0, 53.7), range(8, 10), tmp_path / "t.mbtiles"
        asked = []

        def decline(job):
            asked.append((job.tiles, len(requests)))
            return False

        assert tiles.download(bbox, zooms, url, path, decline) == 0
        expected = len(list(tiles.tiles_in(bbox, zooms)))
        assert asked == [(expected, 0)] and requests == [] and not path.exists()
        assert tiles.plan(bbox, zooms, url).estimated_mb == pytest.approx(expected * 0.02)
        assert tiles.download(bbox, zooms, url, path, lambda job: True) == expected
        assert len(requests) == expected
        store = tiles.MBTiles.open(path)
        assert store.count() == expected and tiles.describe(store) == "Basemap: offline tiles, zoom 8-9"
        assert tiles.download(bbox, zooms, url, path, lambda job: True) == 0  # all there already
    finally:
        server.shutdown()


@pytest.mark.parametrize("url", ["https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                                 "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
                                 "http://B.TILE.OPENSTREETMAP.ORG/{z}/{x}/{y}.png",
                                 "https://tile.openstreetmap.org./{z}/{x}/{y}.png",  # a trailing dot
                                 "https://a.tile.openstreetmap.fr/osmfr/{z}/{x}/{y}.png"])
def test_openstreetmaps_public_servers_are_refused(url, tmp_path):
    with pytest.raises(tiles.Refused, match="forbid bulk downloading"):
        tiles.download((-3, 53, -2, 54), range(5, 8), url, tmp_path / "t.mbtiles", lambda job: True)
    assert not (tmp_path / "t.mbtiles").exists()


def test_the_tiles_command_refuses_osm_and_describes_a_file(tmp_path, capsys):
    from ui.cli import main

    assert main(["tiles", "download", "--url", "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                 "--bbox", "-3,53,-2,54", "--zoom", "5-8", "--mbtiles", str(tmp_path / "t.mbtiles"),
                 "--yes"]) == 2
    assert "forbid bulk downloading" in capsys.readouterr().err
    assert main(["tiles", "info", "--mbtiles", str(tmp_path / "t.mbtiles")]) == 0
    assert tiles.OUTLINE_ONLY in capsys.readouterr().out
    (tmp_path / "notes.txt").write_text("not tiles")
    assert main(["tiles", "info", "--tiles", str(tmp_path / "notes.txt")]) == 1
    assert "not a tiles file" in capsys.readouterr().err
    assert main(["tiles", "download", "--url", "https://tiles.example.internal/{z}/{x}/{y}.png",
                 "--bbox", "-3,53,-2,54", "--zoom", "12-5", "--mbtiles", str(tmp_path / "t.mbtiles"),
                 "--yes"]) == 2
    assert "LOW at most HIGH" in capsys.readouterr().err


# The trail's geometry (console/domain/trails.py).

def test_segments_steps_stops_and_totals():
    t = (0, 60, 120, 1000, 1060)
    assert trails.segments(t) == ((0, 3), (3, 5))
    lat, lon = (51.5, 51.501, 51.502, 51.6, 51.6), (0.0,) * 5
    distance, speed, bearing = trails.steps(t, lat, lon)
    assert distance[1] == pytest.approx(111.2, abs=0.5) and speed[1] == pytest.approx(111.2 / 60, abs=0.01)
    assert trails.compass(bearing[1]) == "N" and trails.compass(100) == "E"
    assert distance[3] != distance[3] and speed[0] != speed[0]  # NaN: after a gap, and first
    # 20 minutes within 50 m, then away.
    t = tuple(range(0, 1260, 60)) + (1300, 1360)
    lat = (51.5,) * 21 + (51.51, 51.52)
    found = trails.stops(t, lat, (0.0,) * 23)
    assert [(s.first, s.last, s.dwell) for s in found] == [(0, 20, 1200)]
    total = trails.totals(t, lat, (0.0,) * 23, found)
    assert (total.stops, total.gaps, total.stopped_s, total.moving_s) == (1, 0, 1200, 160)
    assert total.distance_m == pytest.approx(2224, abs=5)


def reference_usable_points(t, lat, lon, accuracy, source, start, end):
    """usable_points as a plain loop, point by point: what the numpy version must equal."""
    kept, last = ([], [], [], [], []), -math.inf
    for row in zip(t, lat, lon, accuracy, source, strict=True):
        ti, la, lo, acc = row[:4]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in row[:4]):
            continue
        if -90 <= la <= 90 and -180 <= lo <= 180 and acc >= 0 and start <= ti <= end and ti > last:
            last = ti
            for column, value in zip(kept, row, strict=True):
                column.append(value)
    return tuple(tuple(c) for c in kept), len(t) - len(kept[0])


BAD = st.sampled_from([math.nan, math.inf, -math.inf, None, "1.0", -1.0, 91.0, -181.0, 1e9])
POINT = st.tuples(st.one_of(st.floats(0, 100), BAD), st.one_of(st.floats(-90, 90), BAD),
                  st.one_of(st.floats(-180, 180), BAD), st.one_of(st.floats(0, 50), BAD),
                  st.sampled_from(list(Source)))


@given(st.lists(POINT, max_size=60), st.floats(0, 50), st.floats(50, 100))
def test_usable_points_skips_what_a_point_by_point_check_skips(points, start, end):
    columns = tuple(zip(*points, strict=True)) if points else ((),) * 5
    assert trails.usable_points(*columns, start, end) == reference_usable_points(*columns, start, end)


def test_curfew_hours_are_uk_wall_clock_across_the_clocks_changing():
    curfew = Curfew.parse("19:00-07:00")
    summer = fixtures.START  # midnight BST on 15 October 2026
    winter = datetime(2026, 11, 4, tzinfo=LOCAL_TZ).timestamp()
    assert trails.in_curfew((summer, summer + 12 * 3600, winter + 6.5 * 3600, winter + 7.5 * 3600),
                            curfew) == (True, False, True, False)
    assert format_time(summer) == "2026-10-15 00:00:00 BST"
    assert format_time(winter) == "2026-11-04 00:00:00 GMT"


def test_simplification_keeps_fewer_points_at_lower_zooms_the_first_level_unchanged():
    trail = fixtures.month(5000)
    first = prepare(trail, 800, 600)
    rest = refine(trail, first)
    counts = rest.counts
    coarse = sum(a > COARSE_M for a in trail.accuracy)  # not joined into the line at any zoom
    assert 0 < coarse < 500 and counts[MAX_ZOOM] == 5000 - coarse
    assert all(counts[z] <= counts[z + 1] for z in range(3, MAX_ZOOM))
    assert counts[8] < counts[14] < counts[MAX_ZOOM]
    # What the first frame drew, at every zoom until refine(), is refine()'s level.
    minz = orjson.loads(first.json)["minz"]  # packed: see maps.trail.packed
    drawn_first = np.flatnonzero(np.frombuffer(base64.b64decode(minz["data"]), np.int8) == MIN_ZOOM)
    drawn_then = np.flatnonzero(np.array(orjson.loads(rest.json)["minz"]) <= first.zoom)
    assert drawn_first.tolist() == drawn_then.tolist()
    assert set(first.counts.values()) == {len(drawn_first)} and first.totals is None


# The painted trail and the replay.

def test_the_trail_paints_what_python_simplified_fewer_at_lower_zooms(trail_map, qtbot):
    view = trail_map()
    vertices, zoom = show_all(view, qtbot, fixtures.month(5000))
    # The first frame, drawn before refine(), was the final level: the map opened at
    # the zoom prepare() fitted the trail to.
    assert vertices == view.vertex_counts[zoom] > 0
    assert evaluate(view, qtbot, "EM.drawn().vertices") == vertices
    low, low_zoom = painted_after(view, qtbot, lambda: view.zoom_to(zoom - 3))
    high, high_zoom = painted_after(view, qtbot, lambda: view.zoom_to(zoom + 2))
    assert (low_zoom, high_zoom) == (zoom - 3, zoom + 2)
    assert low == view.vertex_counts[low_zoom] < vertices < high == view.vertex_counts[high_zoom]
    assert view.totals.points == 5000 and view.totals.stops == len(view.stops) > 0


def test_zooming_before_the_other_levels_are_in_draws_the_first_then_its_own(trail_map, qtbot,
                                                                          monkeypatch):
    release = threading.Event()

    def late_refine(trail, first):
        release.wait(30)
        return refine(trail, first)

    monkeypatch.setattr("maps.trail_map.refine", late_refine)
    view = trail_map()
    try:
        vertices, zoom = painted_after(view, qtbot, lambda: view.show_trail(fixtures.month(5000)))
        assert view.totals is None
        closer = painted_after(view, qtbot, lambda: view.zoom_to(zoom + 2))
        assert closer == (vertices, zoom + 2)  # the one level there is yet
        refined = painted_after(view, qtbot, release.set)
    finally:
        release.set()
    assert refined == (view.vertex_counts[zoom + 2], zoom + 2) and refined[0] > vertices
    assert view.totals.points == 5000


def test_a_gap_is_drawn_as_separate_lines(trail_map, qtbot):
    view = trail_map()
    show_all(view, qtbot, fixtures.line(60, gap_after=29))
    assert evaluate(view, qtbot, "EM.drawn().lines") == 2
    assert view.totals.gaps == 1
    show_all(view, qtbot, fixtures.line(60))
    assert evaluate(view, qtbot, "EM.drawn().lines") == 1


def test_a_coarse_fix_is_not_joined_into_the_line_but_drawn_and_described_as_a_point(trail_map, qtbot):
    from dataclasses import replace

    walk = fixtures.line(60)
    # Point 30 came from a cell tower 1.2 km off: joined in, it would draw a spike.
    lat = walk.lat[:30] + (walk.lat[30] + 0.011,) + walk.lat[31:]
    accuracy = walk.accuracy[:30] + (1200.0,) + walk.accuracy[31:]
    source = walk.source[:30] + (Source.CELL,) + walk.source[31:]
    view = trail_map()
    show_all(view, qtbot, replace(walk, lat=lat, accuracy=accuracy, source=source))
    assert view.vertex_counts[MAX_ZOOM] == 59
    painted_after(view, qtbot, lambda: view.zoom_to(14))
    assert evaluate(view, qtbot, "EM.drawn().coarse") == 1
    assert evaluate(view, qtbot, "EM.drawn().lines") == 1  # the line does not break at it


def test_an_empty_trail_says_there_are_no_points(trail_map, qtbot):
    view = trail_map()
    empty = Trail("r", "w", fixtures.START, fixtures.START + 3600, (), (), (), (), ())
    vertices, _ = show_all(view, qtbot, empty)
    assert vertices == 0
    shown = evaluate(view, qtbot, "document.querySelector('.em-message').textContent")
    assert shown == "No points in this window"
    assert evaluate(view, qtbot, "getComputedStyle(document.querySelector('.em-message')).display") == "block"
    vertices, _ = show_all(view, qtbot, fixtures.line(1))
    assert vertices == 1 and view.failure is None
    assert evaluate(view, qtbot, "getComputedStyle(document.querySelector('.em-message')).display") == "none"


def test_replay_seeks_plays_forward_and_pauses(trail_map, qtbot):
    view = trail_map()
    trail = fixtures.line(120)  # two hours, starting at midnight: in curfew
    show_all(view, qtbot, trail)
    middle = trail.t[60] + 30
    view.seek(middle)
    wait_until(lambda: view.replay_position == middle, qtbot=qtbot, what="the seek reported")
    assert view.in_curfew
    moved = len(view.events["replay"])
    view.play(60)
    wait_until(lambda: len(view.events["replay"]) >= moved + 4, qtbot=qtbot, what="replay moves")
    times = view.events["replay"][moved:]
    assert times == sorted(times) and times[-1] > middle
    view.pause()
    qtbot.wait(300)
    paused_at = view.replay_position
    qtbot.wait(600)
    assert view.replay_position == paused_at
    label = evaluate(view, qtbot, "document.querySelector('.em-replay').textContent")
    assert "paused" in label and "in curfew" in label
    # "fit" plays the whole trail in a minute.
    assert view.fit_speed == pytest.approx((trail.t[-1] - trail.t[0]) / 60)


def test_a_clicked_point_is_described_and_chosen(trail_map, qtbot):
    view = trail_map()
    trail = fixtures.line(30)
    show_all(view, qtbot, trail)
    # At the closest zoom every point is drawn, and so can be pointed at.
    point = f"[{trail.lat[12]!r}, {trail.lon[12]!r}]"
    painted_after(view, qtbot, lambda: view.call(
        f"map_trail.setView({point}, {MAX_ZOOM}, {{animate: false}})"))
    view.call(f"var p = map_trail.latLngToContainerPoint({point});"
              "map_trail.fire('click', {latlng: map_trail.containerPointToLatLng(p), containerPoint: p})")
    wait_until(lambda: view.events["chosen"], qtbot=qtbot, what="a point chosen")
    assert view.events["chosen"] == [12]
    text = evaluate(view, qtbot, "document.querySelector('.leaflet-tooltip-pane').textContent")
    assert "Point 13 of 30" in text and format_time(trail.t[12]) in text
    assert "Accuracy 10 m (GPS)" in text and "heading NE" in text and "In curfew hours" in text
    # The page's clock is Python's: UK time, either side of the clocks going back.
    for ts in (fixtures.START, datetime(2026, 11, 4, 13, 5, 9, tzinfo=LOCAL_TZ).timestamp()):
        assert evaluate(view, qtbot, f"EM.formatTime({ts!r})") == format_time(ts)


def test_point_numbers_on_demand(trail_map, qtbot):
    view = trail_map()
    show_all(view, qtbot, fixtures.line(40))
    assert evaluate(view, qtbot, "document.querySelectorAll('.em-number').length") == 0
    view.set_numbers(True)
    shown = evaluate(view, qtbot, "document.querySelectorAll('.em-number').length")
    assert 0 < shown <= 40
    assert evaluate(view, qtbot, "document.querySelector('.em-number').textContent").isdigit()


def test_stops_in_one_place_share_a_ring_whose_tooltip_lists_them(trail_map, qtbot):
    view = trail_map()
    home, away = fixtures.HOME, (fixtures.HOME[0] + 0.02, fixtures.HOME[1])
    places = [home] * 11 + [away] * 11 + [home] * 11  # ten minutes at each, a point a minute
    t = tuple(fixtures.START + 60.0 * i for i in range(len(places)))
    trail = Trail("r", "w", t[0], t[-1], t, tuple(p[0] for p in places), tuple(p[1] for p in places),
                  (10.0,) * len(t), (Source.GPS,) * len(t))
    show_all(view, qtbot, trail)
    assert len(view.stops) == 3 and evaluate(view, qtbot, "EM.drawn().rings") == 2
    view.call(f"var p = map_trail.latLngToContainerPoint([{home[0]!r}, {home[1]!r}]),"
              " r = map_trail.getContainer().getBoundingClientRect();"
              "document.querySelector('.leaflet-em-top-pane canvas').dispatchEvent(new MouseEvent("
              "'mousemove', {clientX: r.left + p.x, clientY: r.top + p.y, bubbles: true}))")
    script = "document.querySelector('.leaflet-tooltip-pane').textContent"
    wait_until(lambda: "2 stops here" in (evaluate(view, qtbot, script) or ""), qtbot=qtbot,
               what="the shared ring's tooltip")
    assert evaluate(view, qtbot, script).count("Stop of 10 min") == 2


def test_a_trail_with_a_zone_and_a_home_labels_them(trail_map, qtbot):
    view = trail_map()
    trail = fixtures.line(30)
    zoned = Trail(trail.request_id, trail.wearer_id, trail.start, trail.end, trail.t, trail.lat,
                  trail.lon, trail.accuracy, (Source.WIFI,) * 30, trail.home, trail.curfew,
                  (trails.Zone("Bury", True, trail.lat[5], trail.lon[5], 200.0),))
    show_all(view, qtbot, zoned)
    labels = evaluate(view, qtbot, "document.querySelector('.em-zone-label').textContent")
    assert labels == "Exclusion zone: Bury"
    assert evaluate(view, qtbot, "document.querySelectorAll('.em-home').length") >= 1
