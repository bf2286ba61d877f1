"""The writer thread: it owns the store, applies event batches in transactions,
and hands what changed to the ChangeFeed, which publishes at most ten times a second."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from console.changes import Changes, Event
from console.domain.actions import ActionState
from console.protocol.schema import BadEvent, decode_event
from console.protocol.sse import Frame
from console.store import CacheKeys, Store

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 0.1
# Frames per transaction, at most; a batch is only this big when frames queued up
# (a catch-up). The bigger the batch, the more statuses of one device it folds into
# one row: with 60,000 devices, 100,000 frames per batch wrote 1.8x faster than 20,000.
MAX_BATCH = 100_000


class ChangeFeed:
    """Coalesces Changes and hands them on at most once per interval."""

    def __init__(self, publish: Callable[[Changes], None], interval: float = PUBLISH_INTERVAL):
        self._publish = publish
        self._interval = interval
        self._pending = Changes()
        self._last = 0.0
        self.published = 0

    def add(self, changes: Changes) -> None:
        self._pending.merge(changes)

    def due_in(self) -> float:
        if not self._pending:
            return self._interval
        return max(0.0, self._last + self._interval - time.monotonic())

    def flush(self, force: bool = False) -> None:
        if self._pending and (force or self.due_in() == 0.0):
            out, self._pending = self._pending, Changes()
            self._last = time.monotonic()
            self.published += 1
            self._publish(out)


class Writer(threading.Thread):
    """Owns the store. Commands arrive on a queue and run in order.

    It tells the engine what happened through `report`: report.applied(applied,
    rejected reasons, last_event_id) after each batch, report.problem(detail) for
    an error the operator should see, and report.batch_lost() when events could
    not be stored and only a new snapshot can mend the cache."""

    def __init__(self, cache_path: str, cache_keys: CacheKeys, feed: ChangeFeed,
                 now: Callable[[], float], report):
        super().__init__(name="store-writer", daemon=True)
        self.cache_path = cache_path
        self.cache_keys = cache_keys
        self.feed = feed
        self._now = now
        self._report = report
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.ready: Future = Future()
        self._broken = False  # a batch failed: drop frames until the next snapshot

    def call(self, fn: Callable[[Store], object]) -> Future:
        """Run fn(store) on the writer thread; its result comes back in the future."""
        fut: Future = Future()
        self.q.put(("call", fn, fut))
        return fut

    def frames(self, frames: list[Frame]) -> None:
        self.q.put(("frames", frames, None))

    def stop(self) -> None:
        self.q.put(("stop", None, None))

    def run(self) -> None:
        try:
            store = Store(self.cache_path, self.cache_keys)
            picture = store.load()
            newest = max((s.ts for s in picture.statuses.values()), default=None)
            self.ready.set_result((store.meta(), store.notice, len(store.actions((ActionState.PENDING,))),
                                   newest))
        except BaseException as e:  # the engine reports it; nothing else can run without a store
            self.ready.set_exception(e)
            return
        feed = self.feed
        feed.add(Changes(picture=picture, last_event_id=store.last_event_id,
                         actions={a.key: a for a in store.actions()}))
        feed.flush(force=True)
        self._carry = None
        while True:
            try:
                if self._step(store, feed):
                    return
            except Exception:  # a bug must not end the only thread that writes the cache
                log.exception("the store writer failed a step; carrying on")
                self._report.problem("internal error in the cache writer (logged)")

    def _step(self, store: Store, feed: ChangeFeed) -> bool:
        """Handle one queued command; True when told to stop."""
        item, self._carry = self._carry, None
        if item is None:
            try:
                item = self.q.get(timeout=feed.due_in())
            except queue.Empty:
                feed.flush()
                return False
        kind, payload, fut = item
        if kind == "stop":
            feed.flush(force=True)
            store.close()
            return True
        self._handle(store, feed, kind, payload, fut)
        feed.flush()
        return False

    def _handle(self, store: Store, feed: ChangeFeed, kind: str, payload, fut) -> None:
        if kind == "frames":
            frames = list(payload)
            while len(frames) < MAX_BATCH:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt[0] != "frames":
                    self._carry = nxt
                    break
                frames.extend(nxt[1])
            if self._broken:
                return  # applying these after a lost batch would leave a hole
            try:
                feed.add(self._apply(store, frames))
            except Exception as e:  # e.g. disk full: these events were not applied
                log.exception("applying a batch failed; taking a new snapshot")
                self._report.problem(f"cache write failed: {e}")
                self._broken = True
                self._report.batch_lost()
            return
        # A caller that stopped waiting must not stop the write itself.
        wanted = fut.set_running_or_notify_cancel()
        try:
            result = payload(store)
            if isinstance(result, Changes):
                if result.picture is not None:
                    self._broken = False
                feed.add(result)
                feed.flush(force=True)  # an operator's action shows at once
            if wanted:
                fut.set_result(result)
        except BaseException as e:
            if wanted:
                fut.set_exception(e)

    def _apply(self, store: Store, frames: list[Frame]) -> Changes:
        events, rejected = decode_frames(frames, self._now())
        changes = store.apply(events)
        self._report.applied(changes.applied, rejected, changes.last_event_id)
        return changes


def decode_frames(frames: list[Frame], now: float) -> tuple[list[Event], list[str]]:
    """Decode what can be applied; log and return a reason, naming the event id,
    for each frame that cannot."""
    events, rejected = [], []
    for f in frames:
        try:
            events.append(decode_event(f.id, f.event, f.data, now))
        except BadEvent as e:
            rejected.append(f"event {str(f.id)[:40]}: {e}")
            log.warning("rejected event %r (%s): %s", f.id, f.event[:40], e)
    return events, rejected
