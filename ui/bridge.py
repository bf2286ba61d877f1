"""The one place where work moves onto the GUI thread.

The sync engine publishes change batches on its writer thread; `publish` emits a
signal, and Qt queues the call onto the GUI thread, where the bridge lives.
Nothing else in the UI is called from another thread.

A catch-up after an outage brings batches of tens of thousands of statuses; the
bridge hands them on in slices, one per turn of the event loop, so that painting
and input are never held up for long. Slices keep their order.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future

from PySide6.QtCore import QObject, QTimer, Signal

from console.changes import Changes

SLICE = 5_000  # statuses per turn of the event loop: a few milliseconds of model work


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
