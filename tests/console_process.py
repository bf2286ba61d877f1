"""One console as a process of its own, for tests/test_two_consoles.py: the real
sync engine and cache, signed in as one operator, driven by lines on stdin and
answering one JSON line each on stdout.

    claim ID [take_over]   queue a claim; answer once the backend accepted it
    close ID OUTCOME NOTE  queue a close; answer with the state it ended in
    watch ID               answer when the stream shows the alert held, with whom
    offered ID             what this operator may do on the alert, with reasons

Run: python tests/console_process.py URL USERNAME PASSWORD CACHE"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.changes import Changes  # noqa: E402
from console.domain import Outcome  # noqa: E402
from console.domain.actions import ActionState, Claim, Close, offered  # noqa: E402
from console.sync import SyncEngine  # noqa: E402


class Seen:
    """The alerts as this console's stream brings them, with when each arrived."""

    def __init__(self):
        self.alerts, self.at = {}, {}
        self.changed = threading.Condition()

    def __call__(self, changes: Changes) -> None:
        with self.changed:
            alerts = changes.picture.alerts if changes.picture is not None else changes.alerts
            for alert in alerts.values():
                self.alerts[alert.id], self.at[alert.id] = alert, time.time()
            self.changed.notify_all()

    def wait(self, alert_id: str, predicate, timeout: float = 20.0):
        with self.changed:
            self.changed.wait_for(lambda: alert_id in self.alerts
                                  and predicate(self.alerts[alert_id]), timeout)
            return self.alerts.get(alert_id), self.at.get(alert_id)


def settled(engine: SyncEngine, key: str, timeout: float = 20.0):
    """The action's state once the backend has answered it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        action = next(a for a in engine.query(lambda s: s.actions(tuple(ActionState))).result(5)
                      if a.key == key)
        if action.state is not ActionState.PENDING:
            return action
        time.sleep(0.02)
    return action


def main() -> int:
    url, username, password, cache = sys.argv[1:5]
    seen = Seen()
    engine = SyncEngine(url, username, password, cache, seen)
    engine.start()
    try:
        while engine.status.state != "live" or not engine.status.operator:
            time.sleep(0.05)
        me = engine.status.identity
        print(json.dumps({"ready": me.name}), flush=True)
        for line in sys.stdin:
            verb, alert_id, *rest = line.split(maxsplit=3)
            if verb in ("claim", "close"):
                payload = (Claim(alert_id, rest == ["take_over"]) if verb == "claim" else
                           Close(alert_id, Outcome(rest[0]), rest[1].strip()))
                queued = engine.act(payload).result(5)
                action = settled(engine, next(iter(queued.actions)))
                out = {"state": action.state.value, "detail": action.detail, "at": time.time()}
            elif verb == "watch":
                alert, at = seen.wait(alert_id, lambda a: a.holder is not None)
                out = {"holder": alert.holder if alert else None, "at": at}
            else:  # offered
                alert, _ = seen.wait(alert_id, lambda a: True)
                out = {k.value: why for k, why in offered(alert, me, engine.clock.now()).items()}
            print(json.dumps(out), flush=True)
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
