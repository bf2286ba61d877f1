"""Benchmark P7 (issue 12): a 30-day trail of 43,200 points on the map, ours against
a stock folium page, in one run.

    python tests/bench_trails.py [--report docs/perf.md]

Each page runs in a child process of its own (`--scenario stock|empty|ours`), so
that each renderer's memory is its own and QtWebEngine starts and exits once per
process. Load-to-paint is from the load (or, for ours, the fetch answer) to the
second requestAnimationFrame after it: the first runs before a frame is painted,
the second after. `make bench` runs this through tests/bench_suite.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

POINTS = 43_200
REPEATS = 5  # loads or shows of each page, after one to warm up; medians
ZOOMS = 6  # zoom steps timed (in and out by one level)
SCRUB_STEPS = 200  # positions a slider drag from start to end sends
TIMEOUT = 600.0
PAINTED = ("requestAnimationFrame(function () { requestAnimationFrame(function () {"
           "console.debug('emmap:' + JSON.stringify({event: 'painted', detail: {}})); }); });")
# After a full collection (--js-flags=--expose-gc): what the page holds, not its garbage.
MEMORY = "gc(); JSON.stringify({heap: performance.memory.usedJSHeapSize})"


def rss(pid: int) -> int:
    """Resident bytes of a process (the renderer), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Harness:
    """A QApplication, a way to wait, and a 10 ms timer that measures the GUI
    thread's longest stall."""

    def __init__(self):
        from maps.web import sandbox_off_reason  # imports QtWebEngine before the QApplication

        sandbox_off_reason()
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication

        self.app = QApplication(sys.argv[:1])
        self._loop_flags = QEventLoop.ProcessEventsFlag.AllEvents
        self.stall, self._last = 0.0, time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stall = max(self.stall, now - self._last)
        self._last = now

    def reset_stall(self) -> None:
        self.stall, self._last = 0.0, time.perf_counter()

    def wait(self, until, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            self.app.processEvents(self._loop_flags, 5)

    def delete(self, view) -> None:
        """Deletes a view now: QtWebEngine crashes at exit if a page outlives its profile."""
        from PySide6.QtCore import QEvent

        view.close()
        view.deleteLater()
        self.app.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.wait(lambda: time.monotonic() > deadline, "idle")

    def evaluate(self, view, script: str):
        answers = []
        view.page().runJavaScript(script, 0, answers.append)
        self.wait(lambda: answers, script)
        return answers[0]


def stock_page(trail) -> str:
    """The stock folium way: a PolyLine and a CircleMarker with a time tooltip per
    point. folium's CDN links point at our vendored Leaflet (this machine has no
    internet); jQuery, Bootstrap and Font Awesome, which nothing here uses, are left out."""
    import folium

    from maps.page import LEAFLET_CSS, LEAFLET_JS
    from maps.trail_map import format_time

    points = list(zip(trail.lat, trail.lon, strict=True))
    m = folium.Map(location=points[0], zoom_start=12, tiles=None)
    m.default_js, m.default_css = LEAFLET_JS, LEAFLET_CSS
    folium.PolyLine(points, weight=3).add_to(m)
    for (la, lo), t in zip(points, trail.t, strict=True):
        folium.CircleMarker((la, lo), radius=3, tooltip=format_time(t)).add_to(m)
    return m.get_root().render()


def empty_page() -> str:
    from maps.page import empty_map

    return empty_map().get_root().render()


def load_to_paint(h: Harness, html_file: Path, repeats: int) -> dict:
    """Loads a page from a file `repeats` times after one to warm up: the median
    load-to-paint, and the first load's JS heap and renderer RSS (a fresh renderer's)."""
    from maps.web import LocalPage, ReportingPage

    times, memory, renderer = [], None, None
    for _ in range(repeats + 1):
        page = ReportingPage()
        events = []
        page.message.connect(events.append)
        view = LocalPage(html_file, page=page)  # loads at once
        started = time.perf_counter()
        view.resize(1000, 700)
        view.show()
        view.call(PAINTED)
        h.wait(lambda: events or view.load_failed, "painted")  # noqa: B023
        times.append(time.perf_counter() - started)
        if memory is None:
            memory = json.loads(h.evaluate(view, MEMORY))
            renderer = rss(view.page().renderProcessPid())
        h.delete(view)
    return {"load_to_paint_s": statistics.median(times[1:]), "loads_s": times,
            "js_heap_bytes": memory["heap"], "renderer_rss_bytes": renderer,
            "page_bytes": html_file.stat().st_size}


def scenario_stock(h: Harness, tmp: Path) -> dict:
    import trail_fixtures

    trail = trail_fixtures.month(POINTS)
    started = time.perf_counter()
    html = stock_page(trail)
    build = time.perf_counter() - started
    path = tmp / "stock.html"
    path.write_text(html)
    result = load_to_paint(h, path, 1)  # each load of it takes seconds
    result["build_s"] = build
    result["total_s"] = build + result["load_to_paint_s"]
    result["set_html"] = set_html_result(h, html)
    return result


def set_html_result(h: Harness, html: str) -> str:
    """What setHtml makes of the page (Qt documents a 2 MB limit)."""
    from PySide6.QtWebEngineWidgets import QWebEngineView

    view = QWebEngineView()
    done = []
    view.loadFinished.connect(done.append)
    view.setHtml(html)
    h.wait(lambda: done, "setHtml")
    shapes = h.evaluate(view, "document.querySelectorAll('.leaflet-interactive').length")
    h.delete(view)
    return f"loadFinished({done[0]}), {shapes or 0} shapes drawn"


def scenario_empty(h: Harness, tmp: Path) -> dict:
    path = tmp / "empty.html"
    path.write_text(empty_page())
    return load_to_paint(h, path, REPEATS)


def scenario_ours(h: Harness, tmp: Path) -> dict:
    """From the fetch answer (TrailPoints bytes) to the first painted frame, the page
    loaded once before: decoding on a worker thread, preparing on TrailMap's."""
    import msgspec
    import trail_fixtures
    from PySide6.QtCore import QObject, Signal

    from console.protocol.trails import TrailPoints
    from maps.page import trail_page
    from maps.trail import prepare, refine
    from maps.trail_map import TrailMap

    class Decoded(QObject):
        trail = Signal(object)

    body = trail_fixtures.wire(trail_fixtures.month(POINTS))
    view = TrailMap(tmp / "no-tiles.mbtiles")
    view.resize(1000, 700)
    view.show()
    events = {"painted": [], "basemap": [], "replay": []}
    view.painted.connect(lambda v, z: events["painted"].append((v, z, time.perf_counter())))
    view.basemap_described.connect(events["basemap"].append)
    view.replay_moved.connect(lambda t: events["replay"].append(t))
    h.wait(lambda: events["basemap"], "the basemap")
    decoded = Decoded()
    decoded.trail.connect(view.show_trail)

    def fetch_answer() -> None:  # as the console's network side hands it over
        decoded.trail.emit(msgspec.json.decode(body, type=TrailPoints).to_domain())

    times, stalls = [], []
    for _ in range(REPEATS + 1):
        before = len(events["painted"])
        h.reset_stall()
        started = time.perf_counter()
        threading.Thread(target=fetch_answer).start()
        h.wait(lambda: len(events["painted"]) > before, "painted")  # noqa: B023
        times.append(events["painted"][-1][2] - started)
        stalls.append(h.stall)
        h.idle(0.3)  # the last show's work done before the next is timed
    vertices, zoom, _ = events["painted"][-1]
    zoom_times = []
    for step in range(ZOOMS):
        target = zoom + 1 if step % 2 == 0 else zoom
        before = len(events["painted"])
        started = time.perf_counter()
        view.zoom_to(target)
        h.wait(lambda: len(events["painted"]) > before, "zoom painted")  # noqa: B023
        zoom_times.append(events["painted"][-1][2] - started)
    memory = json.loads(h.evaluate(view, MEMORY))
    renderer = rss(view.page().renderProcessPid())
    first, last = view._trail.first, view._trail.last
    moved = len(events["replay"])
    started = time.perf_counter()
    for k in range(1, SCRUB_STEPS + 1):
        view.seek(first + (last - first) * k / SCRUB_STEPS)
        h.wait(lambda: len(events["replay"]) >= moved + k, "replay moved")  # noqa: B023
    scrub = time.perf_counter() - started
    h.delete(view)
    # Where the time goes: the two Python stages alone, on this thread, untimed above.
    decode_s, prepare_s, refine_s = [], [], []
    for _ in range(3):
        started = time.perf_counter()
        trail = msgspec.json.decode(body, type=TrailPoints).to_domain()
        decode_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        first = prepare(trail, 1000, 700)
        prepare_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        rest = refine(trail, first)
        refine_s.append(time.perf_counter() - started)
    pushed = [len(first.json), len(rest.json)]
    return {"fetch_to_paint_s": statistics.median(times[1:]), "shows_s": times,
            "gui_stall_max_s": max(stalls[1:]), "vertices": vertices, "zoom": zoom,
            "zoom_repaint_s": statistics.median(zoom_times), "zooms_s": zoom_times,
            "js_heap_bytes": memory["heap"], "renderer_rss_bytes": renderer,
            "page_bytes": len(trail_page()), "pushed_bytes": pushed, "wire_bytes": len(body),
            "scrub_s": scrub, "scrub_steps": SCRUB_STEPS,
            "decode_s": statistics.median(decode_s), "prepare_s": statistics.median(prepare_s),
            "refine_s": statistics.median(refine_s)}


def child(name: str) -> int:
    h = Harness()
    with tempfile.TemporaryDirectory(prefix="em-bench-trails-") as tmp:
        result = {"stock": scenario_stock, "empty": scenario_empty, "ours": scenario_ours}[name](
            h, Path(tmp))
    print(json.dumps(result), flush=True)
    return 0


def run(name: str) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "QTWEBENGINE_CHROMIUM_FLAGS": (os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
                                          + " --enable-precise-memory-info --js-flags=--expose-gc").strip()}
    done = subprocess.run([sys.executable, __file__, "--scenario", name], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT * 2)
    if done.returncode != 0:
        raise RuntimeError(f"P7 {name}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure() -> dict:
    """P7's numbers, the three pages one after another in one run."""
    results = {}
    for name in ("empty", "ours", "stock"):
        print(f"  P7 {name}...", flush=True)
        results[name] = run(name)
    return results


def table(r: dict) -> str:
    stock, empty, ours = r["stock"], r["empty"], r["ours"]
    mb = lambda b: f"{b / 2**20:,.1f} MB" if b >= 2**20 else f"{b / 1024:,.1f} KB"  # noqa: E731
    ratio_empty = ours["fetch_to_paint_s"] / empty["load_to_paint_s"]
    ratio_stock = stock["total_s"] / ours["fetch_to_paint_s"]
    rows = [
        ("P7", "trail of 43,200 points: fetch answer → first painted frame, against an empty "
               "folium map's load-to-paint", "≤ 1.5×",
         f"{ours['fetch_to_paint_s']:.3f} s against {empty['load_to_paint_s']:.3f} s: "
         f"{ratio_empty:.2f}×"),
        ("P7", "stock folium pipeline (build + load + paint) against ours", "≥ 20× faster",
         f"{stock['total_s']:.1f} s ({stock['build_s']:.1f} s build, "
         f"{stock['load_to_paint_s']:.2f} s load-to-paint) against "
         f"{ours['fetch_to_paint_s']:.3f} s: {ratio_stock:,.0f}×"),
        ("P7", "zooming one level, to the repainted frame", "≤ 250 ms",
         f"{ours['zoom_repaint_s'] * 1000:.0f} ms (median of {len(ours['zooms_s'])})"),
        ("P7", "GUI thread's longest stall while ours decodes, prepares and paints (10 ms timer)",
         "not blocked", f"{ours['gui_stall_max_s'] * 1000:.0f} ms"),
        ("P7", "page size: stock; ours (page, then the trail pushed in: first frame, rest)",
         "(reported)", f"{mb(stock['page_bytes'])}; {mb(ours['page_bytes'])} + "
         f"{mb(ours['pushed_bytes'][0])} + {mb(ours['pushed_bytes'][1])} "
         f"(the fetch answer: {mb(ours['wire_bytes'])})"),
        ("P7", "JS heap: stock; ours; empty", "(reported)",
         f"{mb(stock['js_heap_bytes'])}; {mb(ours['js_heap_bytes'])}; {mb(empty['js_heap_bytes'])}"),
        ("P7", "renderer RSS: stock; ours; empty", "(reported)",
         f"{mb(stock['renderer_rss_bytes'])}; {mb(ours['renderer_rss_bytes'])}; "
         f"{mb(empty['renderer_rss_bytes'])}"),
        ("P7", "scrubbing the replay from start to end", "(reported)",
         f"{ours['scrub_s']:.2f} s for {ours['scrub_steps']} positions, each reported back"),
        ("P7", "the stock page through setHtml", "(reported)", stock["set_html"]),
    ]
    lines = ["| # | what | target (2 cores, software rendering) | measured |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    vertices = f"{ours['vertices']:,} vertices drawn at zoom {ours['zoom']}"
    shows = ", ".join(f"{s:.3f}" for s in ours["shows_s"][1:])
    loads = ", ".join(f"{s:.3f}" for s in empty["loads_s"][1:])
    return "\n".join(lines) + (
        f"\n\nOurs: {vertices} of {POINTS:,} points; medians of {REPEATS} loads or shows after "
        f"one to warm up. Each show: {shows} s, of which decoding the answer into a Trail "
        f"(`TrailPoints.to_domain`) takes {ours['decode_s']:.3f} s and preparing its first "
        f"frame (`maps.trail.prepare`: simplification at the fitted zoom, stops, JSON) "
        f"{ours['prepare_s']:.3f} s, each alone; the rest is the page's (parsing, drawing, "
        f"painting). The other zoom levels, speeds and totals (`maps.trail.refine`, "
        f"{ours['refine_s']:.3f} s alone) follow the first frame. The empty page's "
        f"loads: {loads} s (its first, starting a renderer: {empty['loads_s'][0]:.3f} s).")


def write_report(path: Path, block: str, machine: str) -> None:
    from bench_suite import replace_marked

    replace_marked(path, "bench-p7", (
        f"## Trails on the map: P7 (`make bench`)\n\nMachine: {machine}, QtWebEngine with "
        f"software rendering, offscreen. Measured {time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"one run. Command: `python tests/bench_trails.py` (or `python tests/bench_suite.py "
        f"--only P7`).\n\n{block}"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=["stock", "empty", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--report", help="write the P7 section into this Markdown file")
    args = p.parse_args()
    if args.scenario:
        return child(args.scenario)
    from bench_suite import machine

    block = table(measure())
    print(block)
    if args.report:
        write_report(Path(args.report), block, machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
