"""`em-console --self-test`: proves an installed console works, offscreen, in seconds.

Prints one line of JSON and exits 0, or exits 1 with the failed checks named in it.
It runs the same code a console runs: the embedded simulator, the sync engine on a
temporary cache (encrypted, its key in a temporary key file: a build machine has no
keyring), a QtWebEngine page, and the trail map drawing a trail offline (the emmap:
scheme, the vendored Leaflet and basemap). The pages run in a child process,
because QtWebEngine aborts the whole process on some faults (a missing helper
process, an unusable sandbox) and the report must still be printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WEARERS = 100
LIVE_EVENTS = 20  # live events the stream must deliver after its snapshot
TIMEOUT = 60.0  # per check; a healthy machine needs a few seconds
SWATCH = "#1f8a3b"  # the colour the test page is asked to paint
OUR_RESOURCES = ("style.qss", "icons/em-console.png", "web/self-test.html",
                 "web/leaflet/leaflet.js", "web/trail.js", "web/basemap/uk-outline.geojson")
# Each platform's keyring backend and the package it needs, which a bundle must carry.
NATIVE_KEYRING = {"linux": ("SecretService", "secretstorage"), "win32": ("Windows", "win32ctypes"),
                  "darwin": ("macOS", None)}


class Failed(Exception):
    pass


def run(version: str) -> int:
    from maps.web import sandbox_off_reason

    sandbox = sandbox_off_reason()  # the child inherits the decision
    report = {"ok": True, "version": version, "frozen": bool(getattr(sys, "frozen", False)),
              "failed": [], "checks": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="em-console-self-test-") as tmp:
        simulator = []
        checks: list[tuple[str, Callable[[], dict]]] = [
            ("resources", lambda: check_resources(version)),
            ("sandbox", lambda: check_sandbox(sandbox)),
            ("simulator", lambda: check_simulator(Path(tmp), simulator)),
            ("stream", lambda: check_stream(simulator, Path(tmp))),
            ("encryption", lambda: check_encryption(Path(tmp))),
            ("webengine", check_webengine),
        ]
        try:
            for name, check in checks:
                t = time.monotonic()
                try:
                    result = {"ok": True, **check()}
                except Exception as e:  # a self-test reports every failure, whatever it is
                    result = {"ok": False, "error": str(e) or type(e).__name__}
                    report["failed"].append(f"{name}: {result['error']}")
                result["seconds"] = round(time.monotonic() - t, 2)
                report["checks"][name] = result
        finally:
            for s in simulator:
                s.stop()
    report["ok"] = not report["failed"]
    report["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


def check_resources(version: str) -> dict:
    """Our files, and the files QtWebEngine looks for beside Qt: a bundle that lacks
    one of them fails at its first launch."""
    from PySide6.QtCore import QLibraryInfo

    from ui.resources import resource

    exe = "QtWebEngineProcess.exe" if sys.platform == "win32" else "QtWebEngineProcess"
    qt = [Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.LibraryExecutablesPath)) / exe,
          Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.DataPath)) / "resources"
          / "qtwebengine_resources.pak",
          Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath))
          / "qtwebengine_locales" / "en-US.pak"]
    missing = [name for name in OUR_RESOURCES if not resource(name).is_file()]
    missing += [str(p) for p in qt if not p.is_file()]
    if version == "unknown":
        missing.append("the version stamp (package metadata)")
    if missing:
        raise Failed("missing " + ", ".join(missing))
    return {"files": len(OUR_RESOURCES) + len(qt)}


def check_sandbox(off_reason: str | None) -> dict:
    # Only root may turn it off: Chromium refuses to run as root with it on.
    if off_reason is None:
        return {"sandbox": "on"}
    if off_reason == "running as root":
        return {"sandbox": f"off ({off_reason})"}
    raise Failed(f"Chromium's sandbox is off: {off_reason}")


def check_simulator(tmp: Path, started: list) -> dict:
    from console.embedded import EmbeddedSimulator

    simulator = EmbeddedSimulator(tmp / "backend.db", WEARERS)
    started.append(simulator)
    return {"url": simulator.url}


def check_stream(simulator: list, tmp: Path) -> dict:
    """A snapshot and live events applied to a fresh cache, read back from disk, by
    the engine in its own process, as the window runs it."""
    from console.store import Store
    from console.sync.process import EngineProcess

    if not simulator:
        raise Failed("not run: the simulator did not start")
    cache = tmp / "cache.db"
    engine = EngineProcess(simulator[0].url, "demo", "demo", str(cache), lambda changes: None,
                           cache_keys=cache_keys(tmp))
    engine.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (engine.status.state == "live" and engine.status.applied >= LIVE_EVENTS):
            if time.monotonic() > deadline:
                s = engine.status
                raise Failed(f"no live stream in {TIMEOUT:.0f} s: {s.state}, {s.applied} events "
                             f"applied, {s.detail or 'no detail'}")
            time.sleep(0.05)
    finally:
        engine.stop()
    store = Store(cache, cache_keys(tmp))
    try:
        meta, wearers = store.meta(), len(store.load().wearers)
    finally:
        store.close()
    applied = int(meta["applied_since_snapshot"])
    if wearers != WEARERS or applied < LIVE_EVENTS:
        raise Failed(f"the cache holds {wearers} wearers and {applied} live events; "
                     f"expected {WEARERS} and at least {LIVE_EVENTS}")
    return {"wearers": wearers, "events_applied": applied}


def cache_keys(tmp: Path):
    from console.store import CacheKeys

    return CacheKeys(tmp / "cache.key")


def check_encryption(tmp: Path) -> dict:
    """The stream check's cache is encrypted at rest: no SQLite header and none of
    its wearers' references in the bytes of its files. And keyring finds this
    platform's backend, whose entry point and package a bundle must carry, whether
    or not this machine runs a keyring (the cache here has a key file)."""
    from importlib import import_module
    from importlib.metadata import entry_points

    import keyring

    from console.store import Store
    from console.store.database import PLAINTEXT_HEADER

    cache = tmp / "cache.db"
    if not cache.exists():
        raise Failed("not run: the stream check made no cache")
    store = Store(cache, cache_keys(tmp))
    try:
        refs = [w.ref for w in store.load().wearers]
        cipher = store.conn.execute("PRAGMA cipher_version").fetchone()[0]
    finally:
        store.close()
    stored = [Path(f"{cache}{suffix}") for suffix in ("", "-wal", "-shm")]
    data = b"".join(p.read_bytes() for p in stored if p.exists())
    if data.startswith(PLAINTEXT_HEADER) or not refs:
        raise Failed("the cache is not encrypted")
    readable = [ref for ref in refs if ref.encode() in data]
    if readable:
        raise Failed(f"{len(readable)} wearer references are readable in the cache's files")
    backend, package = NATIVE_KEYRING[sys.platform]
    found = {ep.name: ep for ep in entry_points(group="keyring.backends")}
    try:
        found[backend].load()
        if package:
            import_module(package)
    except (KeyError, ImportError) as e:
        raise Failed(f"keyring's {backend} backend is not in this installation ({e!r})") from None
    from console.store import keyring_available

    keyring_here = (keyring.get_keyring().name if keyring_available()
                    else "none on this machine: caches need --key-file")
    return {"cipher": f"SQLCipher {cipher}", "keyring": keyring_here}


def check_webengine() -> dict:
    done = subprocess.run(own_command(["--self-test-webengine"]), capture_output=True,
                          text=True, timeout=TIMEOUT + 30)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        code = done.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
        last = " / ".join(line.strip() for line in done.stderr.strip().splitlines()[-4:])
        raise Failed(f"QtWebEngine's process ended with {how}: {last}") from None
    if not result.pop("ok"):
        raise Failed(result["error"])
    return result


def own_command(args: list[str]) -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "ui.cli", *args]


def run_webengine() -> int:
    """`--self-test-webengine`, the child: a local page loads, runs a script we call,
    and draws what the script painted; then the trail map draws a small trail on its
    offline basemap. Prints one line of JSON."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from maps.web import LocalPage, sandbox_off_reason  # imports QtWebEngine first

    sandbox_off_reason()
    from PySide6.QtCore import QEvent, QEventLoop
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QApplication

    from maps.trail_map import TrailMap
    from ui.resources import resource

    app = QApplication(sys.argv[:1])
    page = LocalPage(resource("web/self-test.html"))
    page.resize(400, 300)
    page.show()
    answers = []
    page.call(f"paint({SWATCH!r})", answers.append)
    trail_map = None

    def wait(until: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not until():
            if page.load_failed:
                raise Failed("the local page did not load")
            if trail_map is not None and trail_map.failure:
                raise Failed(f"the trail map failed: {trail_map.failure}")
            if time.monotonic() > deadline:
                raise Failed(f"{what} in {TIMEOUT:.0f} s")
            app.processEvents(QEventLoop.AllEvents, 50)
            time.sleep(0.01)

    try:
        wait(lambda: answers, "no answer from the page's script")
        if answers[0] != SWATCH:
            raise Failed(f"the page's script answered {answers[0]!r}, not {SWATCH!r}")
        drawn = QColor(SWATCH).rgb()
        wait(lambda: page.grab().toImage().pixel(200, 150) == drawn, "the page did not draw")
        trail_map = TrailMap(tiles=None)
        trail_map.resize(400, 300)
        trail_map.show()
        described, painted = [], []
        trail_map.basemap_described.connect(described.append)
        trail_map.painted.connect(lambda vertices, zoom: painted.append(vertices))
        trail_map.show_trail(synthetic_trail())
        wait(lambda: described and painted, "the trail map drew no trail")
        if not painted[-1] > 0:
            raise Failed("the trail map drew a trail of no vertices")
        result = {"ok": True, "script": True, "drawn": True, "trail_vertices": painted[-1],
                  "basemap": described[0]}
    except Failed as e:
        result = {"ok": False, "error": str(e)}
    print(json.dumps(result), flush=True)
    # Deleted before the QApplication: QtWebEngine warns if its profile outlives a page.
    for view in (page, trail_map):
        if view is not None:
            view.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return 0 if result["ok"] else 1


def synthetic_trail():
    """An hour's zigzag walk in Manchester, a point a minute: a straight line would
    simplify to its two ends."""
    from console.domain.trails import Source, Trail

    start, n = 1_790_000_000.0, 60
    return Trail("self-test", "self-test", start, start + 60 * n,
                 tuple(start + 60.0 * i for i in range(n)),
                 tuple(53.46 + 0.0005 * i + 0.002 * (i % 2) for i in range(n)),
                 tuple(-2.29 + 0.0007 * i for i in range(n)), (10.0,) * n, (Source.GPS,) * n)
