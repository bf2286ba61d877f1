"""`em-console --headless`: keep a cache in sync with no UI, printing a status line."""

from __future__ import annotations

import signal
import sys
import threading
import time

from console.changes import Changes
from console.domain import iso
from console.store import CacheInUse, CacheKeyMissing, KeyUnavailable, move_unreadable_aside
from console.sync import SyncEngine, SyncState


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
        rebuild_cache: bool = False, **engine_options) -> int:
    """rebuild_cache: a cache that no key opens is moved aside and rebuilt; without
    it the console says so and exits 1, leaving the file for an administrator."""
    tally = Tally()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        try:
            engine = _started(backend, username, password, cache, tally, engine_options)
        except CacheKeyMissing as e:
            print(e, file=sys.stderr, flush=True)
            if not rebuild_cache:
                print("The file is left as it is for an administrator. --rebuild-cache moves it "
                      "aside and builds a fresh cache from the backend.", file=sys.stderr, flush=True)
                return 1
            aside = move_unreadable_aside(cache)
            print(f"Moved it to {aside.name}, kept; building a fresh cache from the backend.",
                  file=sys.stderr, flush=True)
            engine = _started(backend, username, password, cache, tally, engine_options)
    # Two consoles on one outbox would send each other's actions; a key that cannot be
    # had leaves a cache that cannot be opened, and none is kept unencrypted.
    except (CacheInUse, KeyUnavailable) as e:
        print(e, file=sys.stderr, flush=True)
        return 1
    if engine.status.cache_notice:
        print(engine.status.cache_notice, flush=True)
    while not done.wait(interval) and engine.status.state is not SyncState.REFUSED:
        print(status_line(engine, tally), flush=True)
    refused = engine.status.detail if engine.status.state is SyncState.REFUSED else None
    engine.stop()
    print(status_line(engine, tally), flush=True)
    if refused:
        # Said and ended: a service with a stale password must not keep the account locked.
        print(f"{refused}: check EM_CONSOLE_USER and EM_CONSOLE_PASSWORD; the cache and its "
              "queued actions are kept.", file=sys.stderr, flush=True)
        return 1
    return 0


def _started(backend: str, username: str, password: str, cache: str, tally: Tally,
             engine_options: dict) -> SyncEngine:
    engine = SyncEngine(backend, username, password, cache, tally.apply, **engine_options)
    engine.start()
    return engine
