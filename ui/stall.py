"""Measures how late the GUI thread runs a short timer: its stalls, in milliseconds."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 20


class StallMeter(QObject):
    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.late_ms: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer(self, interval=INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.late_ms.append(max(0.0, (now - self._last) * 1000 - INTERVAL_MS))
        self._last = now

    def summary(self) -> dict:
        if not self.late_ms:
            return {"gui_stall_p99_ms": None, "gui_stall_max_ms": None}
        ordered = sorted(self.late_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {"gui_stall_p99_ms": round(p99, 1), "gui_stall_max_ms": round(ordered[-1], 1)}
