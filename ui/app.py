"""The window application, composed: the Qt application on an asyncio loop (qasync),
the offline cache chosen, the training backend if there is no other, and then one
session after another until the operator quits.

A session is one operator's time at the console: a sync engine on the cache, the
models and the main window. Its engine starts (opening the cache on its writer
thread) while the sign-in dialog asks for a name and password; the dialog's check
is the engine's own sign-in, so the session it opens is the one the console works
in. File ▸ Sign out ends the session: the engine stops, the window closes and the
dialog asks again, on the same cache, for whoever signs in next.

ui/cli.py reads the command line and calls run_window; ui/offscreen.py runs a
session offscreen for the benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from console.embedded import EmbeddedSimulator
from console.store import (
    CacheInUse,
    CacheKeyMissing,
    KeyUnavailable,
    cache_in_use,
    move_unreadable_aside,
)
from console.sync.process import EngineProcess
from maps.web import sandbox_off_reason  # imports QtWebEngine, before any QApplication exists
from ui.access.lock import LOCK_AFTER, MAX_TRIES
from ui.access.signin import SignInDialog
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel
from ui.bridge import GuiBridge, finished, off_gui_thread, on_gui_thread, tune_collector
from ui.main_window import MainWindow
from ui.resources import resource

log = logging.getLogger(__name__)

# The choice for a cache that no key opens.
REBUILD = "Rebuild from the backend"
KEEP = "Keep the file for an administrator"


class Ended(Enum):
    SIGNED_OUT = "signed out"  # File ▸ Sign out: the sign-in dialog again
    LOCKED_OUT = "locked out"  # too many wrong passwords at the lock screen: the same, saying so
    QUIT = "quit"  # File ▸ Quit, the window closed, Cancel at sign-in, SIGTERM


class Session:
    """One operator's time at the console: engine, models and window. `ended`
    resolves to how it ended (Ended), or to the exception that ended it (the
    cache could not be opened)."""

    def __init__(self, backend: str, cache: str, training: bool, version: str,
                 engine_options: dict, credentials: tuple[str, str] | None = None,
                 lock_after: float = LOCK_AFTER, tiles: Path | None = None):
        self.bridge = GuiBridge()
        username, password = credentials or (None, None)
        # Decoding and the cache in a process of their own: the GUI thread never
        # waits for them (console/sync/process.py).
        self.engine = EngineProcess(backend, username, password, cache, self.bridge.publish,
                                    **engine_options)
        self.board = StatusBoardModel(self.engine.picture_time)
        self.alerts = AlertQueueModel(self.engine.clock.now, self.engine.picture_time)
        self.window = MainWindow(self.board, self.alerts, self.bridge, lambda: self.engine.status,
                                 self.engine.act, self.engine.wearer_record, training, version,
                                 self.engine.unlock, lock_after, trails=self.engine, tiles=tiles)
        self.window.resize(1500, 850)
        self.bridge.notice.connect(lambda text: self.window.statusBar().showMessage(text, 300_000))
        tune_collector(self.bridge)
        self.ended: asyncio.Future = asyncio.get_running_loop().create_future()
        self.window.sign_out_requested.connect(lambda: self.end(Ended.SIGNED_OUT))
        self.window.locked_out.connect(lambda: self.end(Ended.LOCKED_OUT))
        self.window.closed.connect(lambda: self.end(Ended.QUIT))
        self._closed = False

    def end(self, how: Ended | BaseException) -> None:
        if not self.ended.done():
            self.ended.set_result(how)

    def start(self) -> None:
        """Start the engine without waiting: it opens the cache on its writer thread
        (publishing the cached picture) and is ready to sign in at once."""
        opened = on_gui_thread(self.engine.launch())
        opened.add_done_callback(
            lambda f: f.cancelled() or f.exception() is None or self.end(f.exception()))

    async def close(self) -> None:
        """Stop the engine (off the GUI thread: it may finish a batch) and let the
        window go. Queued actions stay in the outbox."""
        if self._closed:
            return
        self._closed = True
        self.end(Ended.QUIT)
        self.window.close()
        await off_gui_thread(self.engine.stop, "sync-engine-stop")
        self.window.deleteLater()
        gc.unfreeze()  # the old picture, frozen by tune_collector, may be collected now


class Console:
    """Sessions on one cache, one after another, until the operator quits."""

    def __init__(self, backend: str, cache: str, training: bool, version: str,
                 engine_options: dict, simulator: EmbeddedSimulator | None = None,
                 username: str | None = None, lock_after: float = LOCK_AFTER,
                 tiles: Path | None = None):
        self.backend, self.cache, self.training = backend, cache, training
        self.version, self.engine_options = version, engine_options
        self.simulator = simulator
        self.username = username  # prefilled in the sign-in dialog
        self.lock_after = lock_after
        self.tiles = tiles  # the trail map's offline basemap
        self.session: Session | None = None
        self.dialog: SignInDialog | None = None  # while it is open

    def new_session(self, credentials: tuple[str, str] | None = None) -> Session:
        self.session = Session(self.backend, self.cache, self.training, self.version,
                               self.engine_options, credentials, self.lock_after, self.tiles)
        if self.simulator is not None:
            self.simulator.on_restart = self.session.bridge.notice.emit
        return self.session

    def quit(self) -> None:
        """End whatever is showing, as File ▸ Quit does (SIGTERM, Ctrl+C)."""
        if self.session is not None:
            self.session.end(Ended.QUIT)

    async def run(self) -> int:
        """Sign in, work, and after signing out sign in again. 0 when the operator
        quits; 1 if they cancel the first sign-in or the cache cannot be opened."""
        first, why = True, ""
        while True:
            session = self.new_session()
            try:
                session.start()
                how = await self._sign_in(session, why)
                signed_in = how is None
                if signed_in:  # or working offline
                    session.window.show()
                    session.window.activateWindow()
                    how = await session.ended
            finally:
                await session.close()
            if isinstance(how, BaseException):
                if await self._cannot_open(how):
                    continue  # moved aside: a fresh cache
                return 1
            if how not in (Ended.SIGNED_OUT, Ended.LOCKED_OUT):
                return 1 if first and not signed_in else 0
            first = False
            why = (f"Signed out after {MAX_TRIES} wrong passwords at the lock screen."
                   if how is Ended.LOCKED_OUT else "")

    async def _sign_in(self, session: Session, why: str = "") -> Ended | BaseException | None:
        """The sign-in dialog, asking the session's engine, saying `why` it asks again.
        None once signed in (or working offline); else how the session ended meanwhile
        (Ended.QUIT for Cancel)."""
        dialog = self.dialog = SignInDialog(session.engine.sign_in, session.engine.sign_in_later,
                                            self.backend, self.training,
                                            username=self.username or "", why=why)

        def close_dialog(_) -> None:  # the session ended: quit, or the cache failed
            dialog.done(QDialog.Rejected)

        session.ended.add_done_callback(close_dialog)
        try:
            accepted = await finished(dialog) == QDialog.Accepted
        finally:
            session.ended.remove_done_callback(close_dialog)
            if dialog.busy:  # the session ended during an attempt: end it before the dialog
                dialog.attempt.cancel()
                await asyncio.wait([dialog.attempt])
            self.dialog = None
            dialog.deleteLater()
        if session.ended.done():
            return session.ended.result()
        return None if accepted else Ended.QUIT

    async def _cannot_open(self, error: BaseException) -> bool:
        """Say why the cache could not be opened. True if the operator chose to
        rebuild a cache that no key opens: it was moved aside, and a fresh one starts."""
        log.error("the offline cache could not be opened: %s", error)
        if isinstance(error, CacheKeyMissing):
            return await self._rebuild_or_keep(error)
        if isinstance(error, CacheInUse):  # another console took it since choose_cache
            box = QMessageBox(QMessageBox.Critical, "Offline cache in use", str(error))
        elif isinstance(error, KeyUnavailable):  # no keyring, a key file refused
            box = QMessageBox(QMessageBox.Critical, "Offline cache key", str(error))
        else:
            box = QMessageBox(QMessageBox.Critical, "Offline cache",
                              f"The offline cache {self.cache} could not be opened: "
                              f"{type(error).__name__}: {error}")
        await finished(box)
        return False

    async def _rebuild_or_keep(self, error: CacheKeyMissing) -> bool:
        """No key opens the cache: the operator chooses, and nothing is lost either way."""
        box = QMessageBox(QMessageBox.Warning, "Offline cache key missing",
                          f"{error}\n\nRebuild from the backend: the file is moved aside and "
                          "kept, and a fresh cache fills from the backend; actions in it are not "
                          "sent.\nKeep the file for an administrator: the console quits and "
                          "leaves it as it is, to be opened again once its key is restored.")
        rebuild = box.addButton(REBUILD, QMessageBox.AcceptRole)
        box.setDefaultButton(box.addButton(KEEP, QMessageBox.RejectRole))
        await finished(box)
        if box.clickedButton() is not rebuild:
            return False
        try:
            move_unreadable_aside(self.cache)
        except CacheInUse as e:  # another console opened it meanwhile
            await finished(QMessageBox(QMessageBox.Critical, "Offline cache in use", str(e)))
            return False
        return True


def run_window(args: argparse.Namespace, credentials: tuple[str, str] | None,
               engine_options: dict, version: str) -> int:
    """The window application. credentials: for --offscreen-for, with nobody to
    ask; otherwise the sign-in dialog asks."""
    sandbox_off = sandbox_off_reason()
    if sandbox_off:
        logging.warning("QtWebEngine's sandbox is off: %s", sandbox_off)
    training = args.backend is None
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("EM Console")
    app.setApplicationVersion(version)
    app.setStyleSheet(resource("style.qss").read_text())
    app.setWindowIcon(QIcon(str(resource("icons/em-console.png"))))
    # One console per cache, asked before anything starts on it (and before the
    # asyncio loop runs: the question is a modal exec()).
    cache = choose_cache(args.cache, _refuse_held_cache if args.offscreen_for else ask_separate_cache)
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
    backend = simulator.url if simulator is not None else args.backend.rstrip("/")
    try:
        console = Console(backend, cache, training, version, engine_options, simulator, args.user,
                          args.lock_after * 60, args.tiles)
        if args.offscreen_for:
            from ui import offscreen

            main = offscreen.run(console, credentials, args.offscreen_for, args.screenshot,
                                 args.warm_up)
        else:
            main = console.run()
        return run_on_qt_loop(app, main, console.quit)
    finally:
        if simulator is not None:
            simulator.stop()


def run_on_qt_loop(app: QApplication, main: Coroutine, quit: Callable[[], None]) -> int:
    """Run main on an asyncio loop that is Qt's event loop (qasync), until it returns.
    main, not the last window closing, decides when the application ends (signing
    out closes the window, then asks for a name again). SIGTERM and Ctrl+C call
    quit. Whatever is still pending when main returns (a sign-in attempt) is
    cancelled and let finish before the loop closes."""
    # Imported here, with PySide6 loaded: qasync binds to the Qt binding already
    # imported, and would otherwise take the first it can import (PyQt5 first).
    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    quit_on_last_window = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    restore_signals = _quit_on_signals(app, quit)
    async def main_then_tidy():
        try:
            return await main
        finally:
            pending = asyncio.all_tasks() - {asyncio.current_task()}
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    try:
        # One run of Qt's event loop: re-entering app.exec() for each clean-up step
        # (as a run_until_complete per step does) crashed now and then in app.exit().
        return loop.run_until_complete(main_then_tidy())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        restore_signals()
        app.setQuitOnLastWindowClosed(quit_on_last_window)


def _quit_on_signals(app: QApplication, quit: Callable[[], None]) -> Callable[[], None]:
    """SIGTERM or Ctrl+C end the console the normal way, so the engine and the
    training simulator stop cleanly. Returns what puts things back."""
    before = {sig: signal.signal(sig, lambda *_: quit()) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Python runs signal handlers only between bytecodes; wake it now and then.
    timer = QTimer(app, interval=250)
    timer.timeout.connect(lambda: None)
    timer.start()

    def restore() -> None:
        timer.stop()
        timer.deleteLater()
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return restore


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
