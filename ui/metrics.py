"""What the benchmarks read off a running window: GUI-thread stalls, how long an
event takes to reach its row, and when the window became usable."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from console.changes import Changes

INTERVAL_MS = 20


class StallMeter(QObject):
    def __init__(self, parent: QObject | None = None, warm_up: float = 0.0):
        super().__init__(parent)
        self.late_ms: list[float] = []  # after the warm-up
        self.worst_ms = 0.0  # including the warm-up
        self._counting_from = time.perf_counter() + warm_up
        self._last = time.perf_counter()
        self._timer = QTimer(self, interval=INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        late = max(0.0, (now - self._last) * 1000 - INTERVAL_MS)
        self.worst_ms = max(self.worst_ms, late)
        if now >= self._counting_from:
            self.late_ms.append(late)
        self._last = now

    def summary(self) -> dict:
        return {"gui_stall_p99_ms": p99(self.late_ms, 1),
                "gui_stall_max_ms": round(max(self.late_ms), 1) if self.late_ms else None,
                "gui_stall_max_with_warm_up_ms": round(self.worst_ms, 1)}


class LagMeter:
    """Seconds from a device's report to the model holding it: connect after the
    models, so that it runs once they have applied the batch."""

    def __init__(self, server_now: Callable[[], float], rate: Callable[[], float],
                 warm_up: float = 0.0):
        self._now, self._rate = server_now, rate
        self._counting_from = time.monotonic() + warm_up
        self.lags: list[float] = []  # after the warm-up
        self.ready_at: float | None = None  # wall time the first picture was shown

    def changes_applied(self, changes: Changes) -> None:
        if changes.picture is not None and changes.picture.wearers and self.ready_at is None:
            self.ready_at = time.time()
        if changes.picture is None and changes.statuses and time.monotonic() >= self._counting_from:
            now, rate = self._now(), self._rate()
            self.lags.extend((now - s.ts) / rate for s in changes.statuses.values())

    def summary(self) -> dict:
        return {"event_to_row_p99_s": p99(self.lags, 3), "ready_at": self.ready_at}


def p99(values: list[float], digits: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], digits)
