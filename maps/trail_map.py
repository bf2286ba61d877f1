"""TrailMap: a wearer's trail on an offline map, with replay, in one widget.

The page (maps/page.py, resources/web/trail.js) is loaded once through the emmap:
scheme and holds no trail; show_trail() prepares the trail on a worker thread
(maps/trail.py) and pushes it in with one runJavaScript call: first what the first
frame needs, then the other zoom levels and the rest. runJavaScript rather
than QWebChannel: the trail is one large document sent once, which QWebChannel
would marshal through QVariants, and every later call is a one-liner. The page
answers with events (maps/web.py's ReportingPage) that become the signals below.

The banner saying why the trail is open, and the replay controls, are the UI's:
everything they need is a method, property or signal here.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal

from console.domain import trails as domain
from console.domain.clock import LOCAL_TZ
from maps import tiles as tile_store
from maps.trail import PreparedTrail, prepare, refine
from maps.web import LocalPage, ReportingPage, scheme_handler

PAGE_URL = "emmap://app/trail.html"
TILES_URL = "emmap://tiles/{z}/{x}/{y}.png"
FIT_SECONDS = 60  # the "fit" replay speed plays the whole trail in this long (trail.js too)

# One worker: a trail shown while another is being prepared waits its turn, and the
# GUI thread never does the preparing.
_workers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trail-prepare")


def format_time(ts: float) -> str:
    """A point's time as the map shows it: "2026-11-03 14:02:11 GMT", UK time."""
    local = datetime.fromtimestamp(ts, LOCAL_TZ)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


class _Relay(QObject):
    """Carries a prepared trail from the worker thread to the GUI thread. It lives
    for the whole process, so the worker never holds the last reference to a widget
    (a Qt object freed off the GUI thread crashes)."""

    prepared = Signal(object, int, object)  # the map's key, its request's number, the result


_relay: _Relay | None = None


class TrailMap(LocalPage):
    """A trail on a Leaflet canvas map, simplified per zoom, with replay.

    tiles: the MBTiles file of offline tiles (maps/tiles.py), or None; without tiles
    the map draws the Natural Earth outline of the UK and says so."""

    painted = Signal(int, int)  # vertices drawn, zoom: after the frame is painted
    replay_moved = Signal(float)  # the replay's time (epoch s), at most 4 times a second
    point_chosen = Signal(int)  # the index in the trail of a point the user clicked
    failed = Signal(str)  # the page could not load or run (a missing asset)
    basemap_described = Signal(str)  # "Basemap: offline tiles, zoom 5-12", once drawn
    refined = Signal()  # every zoom level, the totals and the speeds are in (after `painted`)

    def __init__(self, tiles: Path | None = None, parent=None):
        global _relay
        handler = scheme_handler()
        if "trail.html" not in handler.pages:
            from maps.page import trail_page  # folium: imported when a map is first made

            handler.pages["trail.html"] = trail_page
        store = tile_store.MBTiles.open(tiles)
        handler.tiles = store
        self.basemap = tile_store.describe(store)
        page = ReportingPage()
        super().__init__(QUrl(PAGE_URL), parent, page)
        page.message.connect(self._event)
        self.loadFinished.connect(self._load_finished)
        self.setAccessibleName("Trail map")
        self.setAccessibleDescription(self.basemap)
        if _relay is None:
            _relay = _Relay()
        _relay.prepared.connect(self._prepared)
        self._key = id(self)
        self._request = 0
        self._trail: PreparedTrail | None = None
        self.failure: str | None = None
        self.drawn = {"vertices": 0, "zoom": None, "lines": 0}
        self.replay_position: float | None = None
        self.in_curfew = False  # where the replay is
        zooms = store.zooms() if store else None
        tiles_js = "null" if zooms is None else json.dumps(
            {"url": TILES_URL, "min": zooms[0], "max": zooms[1]})
        self.call(f"EM.basemap({json.dumps(self.basemap)}, {tiles_js})")

    # What the UI reads.

    @property
    def totals(self) -> domain.Totals | None:
        """Distance, moving and stopped time, stops and gaps of the trail shown."""
        return self._trail.totals if self._trail else None

    @property
    def stops(self) -> tuple[domain.Stop, ...]:
        return self._trail.stops if self._trail else ()

    @property
    def vertex_counts(self) -> dict[int, int]:
        """Vertices the page draws at each zoom, as Python simplified them."""
        return self._trail.counts if self._trail else {}

    @property
    def fit_speed(self) -> float:
        """The replay speed that plays the whole trail in FIT_SECONDS."""
        if not self._trail:
            return 1.0
        return max(1.0, (self._trail.last - self._trail.first) / FIT_SECONDS)

    # What the UI does.

    def show_trail(self, trail: domain.Trail) -> None:
        """Draws the trail (prepared on a worker thread), zoomed to fit it; an empty
        trail says "No points in this window". `painted` follows, then `refined`
        when every zoom level, the totals and the points' speeds are there."""
        self._request += 1
        key, request, relay = self._key, self._request, _relay
        width, height = self.width(), self.height()

        def work() -> None:
            try:
                first = prepare(trail, width, height)
                relay.prepared.emit(key, request, first)
                result = refine(trail, first)
            except Exception as e:  # shown as a failure, not lost on the worker thread
                result = e
            relay.prepared.emit(key, request, result)

        _workers.submit(work)

    def clear(self) -> None:
        self._request += 1  # a trail still being prepared is not shown
        self._trail = None
        self.call("EM.clear()")

    def set_numbers(self, on: bool) -> None:
        """Point numbers on the points in view (when not too many: the legend says)."""
        self.call(f"EM.setNumbers({json.dumps(bool(on))})")

    def play(self, speed: float) -> None:
        """Replays from where it is, `speed` seconds of the trail a second (1 to 60,
        or fit_speed); from the start if it was at the end."""
        self.call(f"EM.play({float(speed)!r})")

    def pause(self) -> None:
        self.call("EM.pause()")

    def seek(self, t: float) -> None:
        """Moves the replay to time t (epoch seconds; clamped to the trail)."""
        self.call(f"EM.seek({float(t)!r})")

    def set_follow(self, on: bool) -> None:
        """Whether the map pans to keep the replay's marker in view."""
        self.call(f"EM.setFollow({json.dumps(bool(on))})")

    def zoom_to_trail(self) -> None:
        self.call("EM.zoomToTrail()")

    def zoom_to(self, zoom: int) -> None:
        self.call(f"EM.zoomTo({int(zoom)})")

    # What the page says.

    def _prepared(self, key: int, request: int, result) -> None:
        if key != self._key or request != self._request:
            return  # another map's, or a trail since replaced
        if isinstance(result, Exception):
            self._fail(f"the trail could not be drawn: {result}")
            return
        self._trail = result
        refined = result.zoom is None  # refine()'s: the rest of the trail shown
        # JSON is JavaScript.
        self.call(("EM.refine(" if refined else "EM.show(") + result.json.decode() + ")")
        if refined:
            self.refined.emit()

    def _load_finished(self, ok: bool) -> None:
        if not ok:
            self._fail("the map page did not load")

    def _fail(self, detail: str) -> None:
        if self.failure is None:  # the first cause; what follows from it says less
            self.failure = detail
            self.failed.emit(detail)

    def _event(self, text: str) -> None:
        message = json.loads(text)
        event, detail = message["event"], message.get("detail")
        if event == "painted":
            self.drawn = detail
            self.painted.emit(detail["vertices"], round(detail["zoom"]))
        elif event == "replay":
            self.replay_position, self.in_curfew = detail["t"], detail["curfew"]
            self.replay_moved.emit(detail["t"])
        elif event == "chosen":
            self.point_chosen.emit(detail)
        elif event == "basemap":
            self.basemap_described.emit(detail)
        elif event in ("failed", "error"):
            self._fail(detail)
