"""`em-console --offscreen-for SECONDS`: the real window, offscreen, signed in with
the given credentials (nobody is there to ask), for a while; then optionally a
screenshot and one line of JSON: what the window showed, the engine's counters, and
what ui/metrics.py measured (the benchmarks read it)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from ui.app import Console, Ended
from ui.metrics import LagMeter, StallMeter


async def run(console: Console, credentials: tuple[str, str], seconds: float,
              screenshot: str | None, warm_up: float) -> int:
    session = console.new_session(credentials)
    engine, window = session.engine, session.window
    stalls = StallMeter(window, warm_up)
    lags = LagMeter(engine.clock.now, lambda: engine.clock.rate, warm_up)
    session.bridge.changes.connect(lags.changes_applied)  # after the window's models
    try:
        session.start()
        window.show()
        # Until the time is up, or SIGTERM, or the cache could not be opened.
        try:
            how = await asyncio.wait_for(asyncio.shield(session.ended), seconds)
        except TimeoutError:
            how = Ended.QUIT
        if isinstance(how, BaseException):
            print(how, file=sys.stderr, flush=True)
            return 1
        if screenshot:
            window.grab().save(screenshot)
        status = engine.status
        summary = {"wearers": session.board.total, "events_applied": status.applied,
                   "open_alerts": session.alerts.rowCount(), "state": status.state,
                   "rejected": status.rejected, "last_event_id": status.last_event_id,
                   **stalls.summary(), **lags.summary(), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    finally:
        await session.close()
    print(json.dumps(summary), flush=True)
    return 0
