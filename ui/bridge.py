"""The one place where work moves onto the GUI thread.

The sync engine publishes change batches on its writer thread; `publish` emits a
signal, and Qt queues the call onto the GUI thread, where the bridge lives.
Nothing else in the UI is called from another thread.

A catch-up after an outage brings batches of tens of thousands of statuses; the
bridge hands them on in slices, one per turn of the event loop, so that painting
and input are never held up for long. Slices keep their order.

Request-and-answer operations the UI starts (signing in; SyncEngine.operation)
run on the engine's network thread and come back as futures. The GUI thread's
event loop is also an asyncio loop (qasync), so the UI awaits them in coroutines
(`result_of`) and waits for dialogs the same way (`finished`): never a blocking
wait, never a nested `exec()` inside a coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QDialog

from console.changes import Changes

SLICE = 5_000  # statuses per turn of the event loop: a few milliseconds of model work
T = TypeVar("T")


class _Hop(QObject):
    """Carries a future that another thread finished onto the GUI thread, through a
    queued signal of an object that lives as long as the process. Not
    asyncio.wrap_future: that makes the other thread call the qasync loop itself,
    and a late answer for a loop that was stopping or closed crashed the process."""

    arrived = Signal(object)

    def __init__(self):
        super().__init__()
        self.arrived.connect(self._arrive)

    @staticmethod
    def _arrive(pair) -> None:
        waiting, fut = pair
        if waiting.done() or waiting.get_loop().is_closed():
            return
        if fut.cancelled():
            waiting.cancel()
        elif fut.exception() is not None:
            waiting.set_exception(fut.exception())
        else:
            waiting.set_result(fut.result())


_hop: _Hop | None = None


def on_gui_thread(fut: Future[T]) -> asyncio.Future[T]:
    """An asyncio future of the GUI thread's loop that follows `fut`, which another
    thread resolves; cancelling it cancels `fut`."""
    global _hop
    if _hop is None:
        _hop = _Hop()  # made on the GUI thread, at the first await
    waiting = asyncio.get_running_loop().create_future()
    waiting.add_done_callback(lambda w: w.cancelled() and fut.cancel())
    # An answer nobody waits for any more (the attempt was cancelled) is not sent.
    fut.add_done_callback(lambda f: waiting.done() or _hop.arrived.emit((waiting, f)))
    return waiting


class _Callback(QObject):
    """Carries a finished future to its callback on the GUI thread."""

    arrived = Signal(object)

    def __init__(self):
        super().__init__()
        self.arrived.connect(lambda pair: pair[0](pair[1]))


_callback: _Callback | None = None


def when_done(fut: Future[T], callback: Callable[[Future[T]], None]) -> None:
    """Call callback(fut) on the GUI thread once `fut` (an engine operation) is done,
    as Anki's operations call theirs. For widgets that ask and show, with no
    coroutine to await in: they work in a window that Qt alone drives. Not called
    for an operation cancelled (the engine stopped). Call it on the GUI thread."""
    global _callback
    if _callback is None:
        _callback = _Callback()  # made on the GUI thread, at the first call
    # A cancelled operation (the engine stopped) has no answer to show.
    fut.add_done_callback(lambda f: f.cancelled() or _callback.arrived.emit((callback, f)))


async def result_of(fut: Future[T]) -> T:
    """Await, in a coroutine on the GUI thread, a future another thread resolves
    (an engine operation). Cancelling the coroutine cancels the operation."""
    return await on_gui_thread(fut)


async def off_gui_thread(fn: Callable[[], T], name: str) -> T:
    """Run a blocking call (stopping the engine) on a thread of its own and await it."""
    fut: Future = Future()

    def run() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as e:
            fut.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await on_gui_thread(fut)


async def finished(dialog: QDialog) -> int:
    """Open a dialog (window-modal, without a nested event loop) and await its
    result: `exec()` inside a coroutine would run other tasks from within this one."""
    done = asyncio.get_running_loop().create_future()

    def close(result: int) -> None:
        if not done.done():
            done.set_result(result)

    dialog.finished.connect(close)
    dialog.open()
    try:
        return await done
    finally:
        with contextlib.suppress(RuntimeError):  # the dialog is gone already
            dialog.finished.disconnect(close)


COLLECT_MS = 500  # how often the GUI thread does what the collector would have done


class _GuiThreadCollector(QObject):
    """Collects reference cycles on the GUI thread only. Python's collector runs on
    whichever thread allocates past its threshold, and the thread that reads the sync
    process's pipe allocates the most: a dialog in a cycle, freed there, left its
    style animation registered with the GUI thread's timer, which crashed the
    process later. So automatic collection is off, and this does what it would
    have done, by the same thresholds, on the GUI thread."""

    def __init__(self):
        super().__init__()
        gc.disable()
        self._timer = QTimer(self, interval=COLLECT_MS)
        self._timer.timeout.connect(self.collect)
        self._timer.start()

    @staticmethod
    def collect() -> None:
        (t0, t1, t2), (c0, c1, c2) = gc.get_threshold(), gc.get_count()
        if c0 > t0:
            gc.collect(2 if c1 >= t1 and c2 >= t2 else 1 if c1 >= t1 else 0)


_collector: _GuiThreadCollector | None = None


def tune_collector(bridge: GuiBridge) -> None:
    """A full picture is hundreds of thousands of long-lived objects; left in the
    collector's oldest generation, each full collection stalled the GUI thread for
    200-250 ms at 100,000 wearers. Freeze each picture as it arrives (refcounting
    still frees it when replaced; `gc.unfreeze()` when the window goes). Statuses
    replace one another at thousands a second and die by refcount; collecting every
    700 allocations only walks the live board again and again. And collect on the
    GUI thread only (_GuiThreadCollector)."""
    global _collector
    bridge.changes.connect(lambda c: c.picture is not None and gc.freeze())
    gc.set_threshold(100_000, 50, 1000)
    if _collector is None:
        _collector = _GuiThreadCollector()


class GuiBridge(QObject):
    changes = Signal(object)  # Changes, on the GUI thread
    action_failed = Signal(str)  # an action that could not even be queued
    notice = Signal(str)  # something the operator should know, from any thread
    _arrived = Signal(object)  # from the writer thread

    def __init__(self):
        super().__init__()
        self._pending: deque[Changes] = deque()
        self._arrived.connect(self._queue)
        self._drain = QTimer(self, interval=0)
        self._drain.timeout.connect(self._deliver)

    def publish(self, changes: Changes) -> None:
        """Called on any thread."""
        self._arrived.emit(changes)

    def _queue(self, changes: Changes) -> None:
        self._pending.extend(changes.split(SLICE))
        self._deliver()

    def _deliver(self) -> None:
        if self._pending:
            self.changes.emit(self._pending.popleft())
        if self._pending:
            self._drain.start()
        else:
            self._drain.stop()

    def watch(self, fut: Future) -> None:
        """Report an action whose durable write failed; success arrives as Changes."""
        fut.add_done_callback(
            lambda f: f.exception() is not None and self.action_failed.emit(str(f.exception())))
