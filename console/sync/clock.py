"""Time as the backend tells it, and how long to wait before trying again."""

from __future__ import annotations

import random
import time

BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0
_rng = random.Random()


def backoff_delay(attempt: int, rng: random.Random = _rng) -> float:
    """Full-jitter exponential backoff (AWS architecture blog, 2015)."""
    return rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


class ServerClock:
    """The backend's time, extrapolated. A simulator may run faster than real time,
    and a workstation's clock may be wrong: ages and future-timestamp checks use this.

    It also remembers the server time at which the backend last spoke to us
    (`last_heard`): while the link is down, that is as far as anyone knows what the
    devices did."""

    def __init__(self) -> None:
        self._anchor = (time.time(), time.monotonic(), 1.0)
        self.last_heard: float | None = None

    def set(self, server_time: float, rate: float | None = None) -> None:
        rate = self._anchor[2] if rate is None else rate
        self._anchor = (server_time, time.monotonic(), rate)
        self.heard()

    def heard(self, at: float | None = None) -> None:
        """The backend spoke just now (or, from the cache, at server time `at`)."""
        self.last_heard = self.now() if at is None else at

    def now(self) -> float:
        t, mono, rate = self._anchor
        return t + (time.monotonic() - mono) * rate

    @property
    def rate(self) -> float:
        return self._anchor[2]

    def picture_time(self, live: bool) -> float:
        """The server time the picture is judged at. Live, it is now; with the link
        down it stays at the last moment the backend spoke, so the console's own
        silence never makes devices look silent."""
        now = self.now()
        if live or self.last_heard is None:
            return now
        return min(now, self.last_heard)

    def state(self) -> tuple:
        """All this clock knows, to be `adopt`ed by a copy in another process
        (monotonic time is the machine's, not the process's)."""
        return self._anchor, self.last_heard

    def adopt(self, state: tuple) -> None:
        self._anchor, self.last_heard = state
