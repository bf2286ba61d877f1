"""The one place where work moves onto the GUI thread.

The sync engine publishes change batches on its writer thread; `publish` emits a
signal, and Qt queues the call to the slots on the GUI thread, where the bridge
lives. Nothing else in the UI is called from another thread.
"""

from __future__ import annotations

from concurrent.futures import Future

from PySide6.QtCore import QObject, Signal

from console.store import Changes


class GuiBridge(QObject):
    changes = Signal(object)  # Changes
    action_failed = Signal(str)  # an action that could not even be queued

    def publish(self, changes: Changes) -> None:
        self.changes.emit(changes)

    def watch(self, fut: Future) -> None:
        """Report an action whose durable write failed; success arrives as Changes."""
        fut.add_done_callback(
            lambda f: f.exception() is not None and self.action_failed.emit(str(f.exception())))
