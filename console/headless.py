"""`em-console --headless`: keep a cache in sync with no UI, printing a status line."""

from __future__ import annotations

import signal
import sys
import threading
import time

from console.changes import Changes
from console.domain import iso
from console.store import CacheInUse
from console.sync import SyncEngine


class Tally:
    """The smallest consumer of change batches: counts, for the status line."""

    def __init__(self) -> None:
        self.wearers = 0
        self.open_alerts: set[str] = set()
        self.batches = 0

    def apply(self, changes: Changes) -> None:
        self.batches += 1
        if changes.picture is not None:
            self.wearers = len(changes.picture.wearers)
            self.open_alerts = set(changes.picture.alerts)
        self.open_alerts -= changes.closed
        self.open_alerts |= changes.alerts.keys()


def status_line(engine: SyncEngine, tally: Tally) -> str:
    s = engine.status
    return (f"{iso(time.time())} {s.state} last_event_id={s.last_event_id} applied={s.applied} "
            f"rejected={s.rejected} wearers={tally.wearers} open_alerts={len(tally.open_alerts)} "
            f"pending_actions={s.pending_actions} snapshots={s.snapshots} "
            f"reconnects={s.reconnects}" + (f" detail={s.detail!r}" if s.detail else ""))


def run(backend: str, username: str, password: str, cache: str, interval: float = 5.0,
        **engine_options) -> int:
    tally = Tally()
    engine = SyncEngine(backend, username, password, cache, tally.apply, **engine_options)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        engine.start()
    except CacheInUse as e:  # two consoles on one outbox would send each other's actions
        print(e, file=sys.stderr, flush=True)
        return 1
    if engine.status.cache_notice:
        print(engine.status.cache_notice, flush=True)
    while not done.wait(interval):
        print(status_line(engine, tally), flush=True)
    engine.stop()
    print(status_line(engine, tally), flush=True)
    return 0
