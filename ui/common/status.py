"""The console's own state, shown above the tables: the connection, how fresh the
picture is, and the training banner."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from console.domain import format_age
from console.sync import SyncStatus


class ConnectionIndicator(QLabel):
    """Live / reconnecting in N s / offline since, and the last event's time."""

    def __init__(self, status: Callable[[], SyncStatus]):
        super().__init__()
        self._status = status
        self.setAccessibleName("Connection")
        self.setTextFormat(Qt.PlainText)
        self.refresh()

    def refresh(self) -> None:
        s = self._status()
        now = time.time()
        last = (f"last event {datetime.fromtimestamp(s.last_event_at):%H:%M:%S}"
                if s.last_event_at else "no events yet")
        if s.state == "live":
            text = f"● Live — {last}"
        elif s.state == "reconnecting":
            wait = max(0, round((s.retry_at or now) - now))
            text = (f"◐ Reconnecting in {wait} s — offline since "
                    f"{datetime.fromtimestamp(s.since):%H:%M:%S} ({s.detail}) — {last}")
        elif s.state == "refused":
            text = (f"⊘ Not syncing: the backend refused your sign-in ({s.detail}). Queued actions "
                    f"wait; File ▸ Sign out, then sign in again — {last}")
        elif s.state == "cached":
            text = "○ Cached picture — connecting…"
        else:
            text = f"◌ {s.state.capitalize()}…"
        self.setText(text)
        self.setAccessibleDescription(text)


class StaleNotice(QLabel):
    """Says, above the board, that the picture is not live and how old it is."""

    def __init__(self, status: Callable[[], SyncStatus]):
        super().__init__()
        self._status = status
        self.setAccessibleName("Data freshness")
        self.setObjectName("stale")
        self.refresh()

    def refresh(self) -> None:
        s = self._status()
        synced = s.last_event_at or s.synced_at
        if s.state == "live":
            self.hide()
            return
        if not synced:  # nothing cached and the backend not reached: nothing to show
            self.setText("⚠ NO DATA — this console has no picture yet: nothing was cached here "
                         "and the backend has not been reached. Alerts and devices cannot be "
                         "shown; an empty queue does not mean there are none.")
            self.show()
            return
        age = f", {format_age(time.time() - synced)} old"
        self.setText(f"⚠ STALE — not live{age}. Devices are shown as they were when the link "
                     "was lost; whether they have made contact since is unknown.")
        self.show()


class TrainingBanner(QLabel):
    def __init__(self):
        super().__init__("TRAINING — SIMULATED DATA")
        self.setObjectName("training")
        self.setAlignment(Qt.AlignCenter)
        self.setAccessibleName("Training mode: simulated data")
