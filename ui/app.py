"""`em-console`: the console's command line.

    em-console                          the console on the embedded training simulator
    em-console --backend URL            the console on a real backend
    em-console --headless --backend URL --cache PATH
    em-console --offscreen-for 20 --screenshot board.png
    em-console --self-test              check an installed console works (one line of JSON)
    em-console simulator [...]          the reference backend (see --help there)
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from console.embedded import EmbeddedSimulator
from console.protocol.client import MAX_SNAPSHOT_BYTES
from console.store import CacheInUse, cache_in_use

try:
    VERSION = version("em-console")
except PackageNotFoundError:  # a bundle without metadata
    VERSION = "unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="em-console", description="Electronic-monitoring centre console.")
    p.add_argument("--backend", help="backend URL; without it the training simulator is started")
    p.add_argument("--user", default=os.environ.get("EM_CONSOLE_USER"),
                   help="operator name for --headless and --offscreen-for, whose password is "
                        "$EM_CONSOLE_PASSWORD (default $EM_CONSOLE_USER; the window asks)")
    p.add_argument("--allow-insecure-http", action="store_true",
                   help="allow a plain http:// backend beyond this machine, though the password "
                        "and token then cross the network in clear")
    p.add_argument("--ca-bundle", default=os.environ.get("EM_CONSOLE_CA_BUNDLE"), metavar="PATH",
                   help="PEM file of the CAs to trust for an https:// backend, such as the "
                        "centre's own (default $EM_CONSOLE_CA_BUNDLE, else the public CAs)")
    p.add_argument("--cache", help="offline cache file (default: in the user data directory)")
    p.add_argument("--headless", action="store_true", help="keep the cache in sync without a UI")
    p.add_argument("--status-interval", type=float, default=5.0, help="headless status line period")
    p.add_argument("--read-timeout", type=float, default=30.0,
                   help="seconds of stream silence before reconnecting; keep it above the "
                        "backend's heartbeat interval (at most 15 s by the protocol)")
    p.add_argument("--max-snapshot-mb", type=int, default=MAX_SNAPSHOT_BYTES >> 20,
                   help="refuse a snapshot larger than this (default %(default)s MB; "
                        "100,000 wearers take about 26)")
    p.add_argument("--offscreen-for", type=float, metavar="SECONDS",
                   help="run the real window offscreen this long, then print a JSON summary")
    p.add_argument("--screenshot", help="with --offscreen-for: write the window to this PNG")
    p.add_argument("--warm-up", type=float, default=0.0, metavar="SECONDS",
                   help="with --offscreen-for: leave the first seconds out of the stall and "
                        "lag figures (start-up is measured on its own)")
    p.add_argument("--wearers", type=int, help="training simulator fleet size")
    p.add_argument("--version", action="version", version=f"em-console {VERSION}")
    p.add_argument("--self-test", action="store_true",
                   help="check offscreen that this installation works; prints one line of JSON")
    p.add_argument("--self-test-webengine", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.headless and not args.backend:
        p.error("--headless needs --backend")
    if args.screenshot and not args.offscreen_for:
        p.error("--screenshot goes with --offscreen-for")
    if not 0 < args.read_timeout <= 600:
        p.error("--read-timeout must be between 0 and 600 seconds")
    if not 1 <= args.max_snapshot_mb <= 16_384:
        p.error("--max-snapshot-mb must be between 1 and 16384")
    if args.backend is None:
        args.user = args.user or "demo"  # the training backend's operator
    else:
        url = urlsplit(args.backend)
        if url.scheme not in ("http", "https") or not url.hostname:
            p.error(f"--backend {args.backend}: give an https:// URL, "
                    "e.g. https://monitoring.example.internal")
        if in_clear(args.backend) and not args.allow_insecure_http:
            p.error(f"--backend {args.backend}: plain http:// beyond this machine sends the "
                    "password and token in clear; use https://, or --allow-insecure-http on a "
                    "network you trust")
        # Only the training backend's password may be guessed; with no window to ask in,
        # a real backend's must be given.
        if (args.headless or args.offscreen_for) and not (
                args.user and os.environ.get("EM_CONSOLE_PASSWORD")):
            p.error("a real --backend with no window to ask in needs EM_CONSOLE_USER (or --user) "
                    "and EM_CONSOLE_PASSWORD in the environment")
    if args.ca_bundle:
        try:
            ssl.create_default_context(cafile=args.ca_bundle)
        except (OSError, ssl.SSLError) as e:
            p.error(f"--ca-bundle {args.ca_bundle}: not a readable PEM file of CA certificates ({e})")
    return args


def in_clear(url: str) -> bool:
    """Whether url is plain http to anything but this machine (127.0.0.0/8, ::1,
    localhost), so that a password sent there crosses a network unencrypted."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname == "localhost":
        return False
    try:
        return not ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return True


def engine_options(args: argparse.Namespace) -> dict:
    """The sync engine's keyword arguments that come from the command line."""
    return {"read_timeout": args.read_timeout, "max_snapshot_bytes": args.max_snapshot_mb << 20,
            "ca_bundle": args.ca_bundle}


def data_dir() -> Path:
    path = Path(platformdirs.user_data_dir("em-console", appauthor=False))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":  # its caches hold personal data; older versions made it 0755
        path.chmod(0o700)
    return path


def choose_cache(cache: str, ask: Callable[[CacheInUse, str], bool]) -> str | None:
    """The cache for this window: `cache`, unless another console holds it. Then
    ask(held, separate) whether to use a separate cache beside it, the first one
    free (cache-2.db, cache-3.db, ...); None means quit."""
    held = cache_in_use(cache)
    if held is None:
        return cache
    path = Path(cache)
    for n in itertools.count(2):
        separate = str(path.with_name(f"{path.stem}-{n}{path.suffix}"))
        if cache_in_use(separate) is None:
            return separate if ask(held, separate) else None


def ask_separate_cache(held: CacheInUse, separate: str) -> bool:
    """Ask the operator whether to use a separate cache or quit."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Warning, "Offline cache in use",
                      f"{held}\n\nA separate cache ({separate}) starts empty and fills from the "
                      "backend. Actions queued in the other cache stay with the console using it.")
    use = box.addButton("Use a separate cache", QMessageBox.AcceptRole)
    box.addButton("Quit", QMessageBox.RejectRole)
    box.exec()
    return box.clickedButton() is use


def _refuse_held_cache(held: CacheInUse, separate: str) -> bool:
    print(held, file=sys.stderr, flush=True)  # offscreen: nobody to ask
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulator"]:
        from console.simulator.server import main as simulator

        return simulator(argv[1:])
    args = parse_args(argv)
    if args.self_test or args.self_test_webengine:
        from ui import self_test

        return self_test.run(VERSION) if args.self_test else self_test.run_webengine()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.backend and in_clear(args.backend):  # parse_args allowed it: --allow-insecure-http
        logging.warning("the password and token travel in clear to %s", args.backend)
    # parse_args made sure a real backend with no window to ask in has a password.
    password = os.environ.get("EM_CONSOLE_PASSWORD") or ("demo" if args.backend is None else "")
    if args.headless:
        from console.headless import run

        cache = args.cache or str(data_dir() / "cache.db")
        return run(args.backend, args.user, password, cache, args.status_interval,
                   **engine_options(args))
    return run_window(args, password)


def run_window(args: argparse.Namespace, password: str) -> int:
    if args.offscreen_for:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from maps.web import sandbox_off_reason  # imports QtWebEngine before the QApplication

    sandbox_off = sandbox_off_reason()
    if sandbox_off:
        logging.warning("QtWebEngine's sandbox is off: %s", sandbox_off)
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

    from console.sync import SyncEngine
    from ui.access.signin import SignInDialog
    from ui.alerts.model import AlertQueueModel
    from ui.board.model import StatusBoardModel
    from ui.bridge import GuiBridge
    from ui.main_window import MainWindow
    from ui.metrics import LagMeter, StallMeter
    from ui.resources import resource

    training = args.backend is None
    app = QApplication(sys.argv[:1])
    app.setApplicationName("EM Console")
    app.setApplicationVersion(VERSION)
    app.setStyleSheet(resource("style.qss").read_text())
    app.setWindowIcon(QIcon(str(resource("icons/em-console.png"))))
    # Training data never mixes with a real cache: its own files.
    cache = args.cache or str(data_dir() / ("training-cache.db" if training else "cache.db"))
    # One console per cache, asked before anything starts on it.
    cache = choose_cache(cache, _refuse_held_cache if args.offscreen_for else ask_separate_cache)
    if cache is None:
        return 1
    simulator = None
    if training:
        try:
            # The training backend's state pairs with the cache, so that a second
            # console on a separate training cache gets a backend of its own.
            simulator = EmbeddedSimulator(Path(cache).with_suffix(".backend.db"), args.wearers,
                                          keep_alive=True)
        except RuntimeError as e:
            QMessageBox.critical(None, "Training backend", f"The training backend did not start: {e}")
            return 1
        backend = simulator.url
    else:
        backend = args.backend.rstrip("/")
    try:
        user = args.user
        if not args.offscreen_for:
            dialog = SignInDialog(backend, training)
            if dialog.exec() != QDialog.Accepted:
                return 1
            user, password = dialog.username.text(), dialog.password.text()

        bridge = GuiBridge()
        engine = SyncEngine(backend, user, password, cache, bridge.publish, **engine_options(args))
        board = StatusBoardModel(engine.picture_time)
        alerts = AlertQueueModel(engine.clock.now, engine.picture_time)
        window = MainWindow(board, alerts, bridge, lambda: engine.status, engine.acknowledge,
                            training, VERSION)
        stalls = StallMeter(window, args.warm_up)
        lags = LagMeter(engine.clock.now, lambda: engine.clock.rate, args.warm_up)
        bridge.changes.connect(lags.changes_applied)  # after the window's models
        bridge.notice.connect(lambda text: window.statusBar().showMessage(text, 300_000))
        if simulator is not None:
            simulator.on_restart = bridge.notice.emit
        # A full picture is hundreds of thousands of long-lived objects; left in the
        # collector's oldest generation, each full collection stalled the GUI thread
        # for 200-250 ms at 100,000 wearers. Refcounting still frees them when replaced.
        bridge.changes.connect(lambda c: c.picture is not None and gc.freeze())
        # Statuses replace one another at thousands a second and die by refcount;
        # collecting every 700 allocations only walks the live board again and again.
        gc.set_threshold(100_000, 50, 1000)
        _quit_on_signals(app)
        try:
            engine.start()
        except CacheInUse as e:  # another console took the cache since choose_cache
            QMessageBox.critical(None, "Offline cache in use", str(e))
            return 1
        window.resize(1500, 850)
        window.show()
        if args.offscreen_for:
            return _offscreen(app, window, engine, board, alerts, (stalls, lags), args)
        code = app.exec()
        engine.stop()
        return code
    finally:
        if simulator is not None:
            simulator.stop()


def _quit_on_signals(app) -> None:
    """SIGTERM or Ctrl+C close the window the normal way, so the engine and the
    training simulator stop cleanly."""
    from PySide6.QtCore import QTimer

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app.quit())
    # Python runs signal handlers only between bytecodes; wake it now and then.
    timer = QTimer(app, interval=250)
    timer.timeout.connect(lambda: None)
    timer.start()


def _offscreen(app, window, engine, board, alerts, meters, args) -> int:
    from PySide6.QtCore import QTimer

    QTimer.singleShot(int(args.offscreen_for * 1000), app.quit)
    app.exec()
    if args.screenshot:
        window.grab().save(args.screenshot)
    status = engine.status
    engine.stop()
    print(json.dumps({"wearers": board.total, "events_applied": status.applied,
                      "open_alerts": alerts.rowCount(), "state": status.state,
                      "rejected": status.rejected, "last_event_id": status.last_event_id,
                      **meters[0].summary(), **meters[1].summary(),
                      "at": time.strftime("%Y-%m-%dT%H:%M:%S")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
