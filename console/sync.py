"""The sync engine: backend stream -> store -> coalesced change batches.

Two threads, neither of them the GUI's:
- the network thread runs one asyncio loop: sign-in, snapshots, the event stream
  with resume and backoff, and the outbox sender;
- the writer thread owns the store: it decodes events, applies them in batched
  transactions and publishes what changed, at most about ten times a second.

Consumers (the Qt UI, the headless status line, tests) receive `Changes` through
the `publish` callback, on the writer thread; the UI moves them to its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace

import httpx

from console.changes import Changes, Picture
from console.domain.actions import Action
from console.protocol.client import (
    MAX_HEARTBEAT,
    MAX_SNAPSHOT_BYTES,
    ApiError,
    AuthError,
    Client,
    ProtocolError,
    Snapshot,
)
from console.protocol.sse import Frame, SSEParser
from console.protocol.wire import BadEvent, Event, decode_event, event_id_of
from console.store import Store

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 0.1
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0
MAX_BATCH = 20_000  # frames per transaction
SHUTDOWN_SECONDS = 1.0  # stop() returns within about this, whatever the backend does
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


@dataclass(frozen=True)
class SyncStatus:
    state: str = "starting"  # cached / connecting / live / reconnecting / stopped
    since: float = 0.0  # wall time the state began
    retry_at: float | None = None  # wall time of the next attempt while reconnecting
    detail: str = ""
    last_event_at: float | None = None  # wall time an event last arrived
    synced_at: float | None = None  # wall time of the snapshot the cache started from
    last_event_id: int = 0
    applied: int = 0
    rejected: int = 0  # events and stream frames that could not be applied
    last_rejected: str = ""
    snapshots: int = 0
    reconnects: int = 0
    pending_actions: int = 0
    cache_notice: str | None = None
    operator: str | None = None


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
    """Owns the store. Commands arrive on a queue and run in order."""

    def __init__(self, engine: SyncEngine, cache_path: str):
        super().__init__(name="store-writer", daemon=True)
        self.engine = engine
        self.cache_path = cache_path
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
        engine = self.engine
        try:
            store = Store(self.cache_path)
            picture = store.load()
            newest = max((s.ts for s in picture.statuses.values()), default=None)
            self.ready.set_result((store.meta(), store.notice, len(store.actions(("pending",))),
                                   newest))
        except BaseException as e:  # the engine reports it; nothing else can run without a store
            self.ready.set_exception(e)
            return
        feed = engine.feed
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
                engine._update(detail="internal error in the cache writer (logged)")

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
                self.engine._update(detail=f"cache write failed: {e}")
                self._broken = self.engine.resync_needed = True
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
        engine = self.engine
        events, rejected = decode_frames(frames, engine.clock.now())
        changes = store.apply(events)
        engine._tally(changes.applied, rejected, last_event_id=changes.last_event_id)
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


class Cursor:
    """Follows the ids of one stream. Ids are consecutive (docs/protocol.md): an id
    already seen is dropped, and a jump or a reset means a snapshot is needed."""

    def __init__(self, last_id: int):
        self.last_id = last_id

    def accept(self, frames: list[Frame]) -> tuple[list[Frame], bool]:
        """The frames to apply, in order, and whether to stop for a new snapshot."""
        good: list[Frame] = []
        for frame in frames:
            if frame.event == "reset":
                log.warning("backend reset the stream: new snapshot")
                return good, True
            n = event_id_of(frame.id)
            if n is not None:
                if n <= self.last_id:
                    continue
                if n != self.last_id + 1:
                    log.warning("gap in event ids (%d after %d): new snapshot", n, self.last_id)
                    return good, True
                self.last_id = n
            good.append(frame)  # a frame without a usable id is rejected by decode_frames
        return good, False


class SyncEngine:
    def __init__(self, backend_url: str, username: str, password: str, cache_path: str,
                 publish: Callable[[Changes], None], read_timeout: float = 30.0,
                 max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES, ca_bundle: str | None = None):
        self.clock = ServerClock()
        self.feed = ChangeFeed(publish)
        self.status = SyncStatus(state="starting", since=time.time())
        self._status_lock = threading.Lock()
        self._client = Client(backend_url, username, password, read_timeout, ca_bundle)
        self._max_snapshot = max_snapshot_bytes
        self._writer = Writer(self, cache_path)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sync-net",
                                        daemon=True)
        self._stopping = False
        self._outbox_kick: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._attempt = 0  # consecutive stream attempts that brought nothing useful
        self.resync_needed = False  # set by the writer when a batch could not be applied
        self._resync_streak, self._last_resync = 0, -1e9

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Opens the cache (publishing the cached picture) and starts syncing.
        Raises if the cache cannot be opened at all."""
        self._writer.start()
        meta, notice, pending, newest_status = self._writer.ready.result()
        self._meta = meta
        if "server_time" in meta:
            self.clock.set(float(meta["server_time"]), float(meta.get("clock_rate", 1.0)))
        if newest_status is not None:
            # Until the backend speaks, the cached picture is as of its newest report.
            self.clock.heard(max(newest_status, self.clock.last_heard or newest_status))
        synced = meta.get("snapshot_at")
        self._update(state="cached", since=time.time(), cache_notice=notice,
                     synced_at=float(synced) if synced else None,
                     last_event_id=int(meta.get("last_event_id", 0)), pending_actions=pending)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_tasks(), self._loop).result()

    async def _start_tasks(self) -> None:
        self._outbox_kick = asyncio.Event()
        self._tasks = [asyncio.create_task(self._supervise("stream", self._run_stream)),
                       asyncio.create_task(self._supervise("outbox", self._run_outbox))]

    async def _supervise(self, name: str, run: Callable[[], object]) -> None:
        """Run a task that should never end; if it does, say so and start it again,
        with backoff, for as long as the engine runs."""
        failures = 0
        while True:
            try:
                await run()
                reason = "it returned"
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
                log.exception("the %s task failed", name)
            else:
                log.error("the %s task ended unexpectedly; restarting it", name)
            delay = backoff_delay(failures)
            failures += 1
            self._update(detail=f"internal error in the {name} task ({reason[:200]}); "
                                f"restarting it in {delay:.0f} s")
            await asyncio.sleep(delay)

    def stop(self) -> None:
        """Stop syncing and close the cache; returns within about a second whatever
        the backend does. Queued actions stay in the outbox for the next start."""
        if self._stopping:
            return
        self._stopping = True

        async def shutdown():
            for t in self._tasks:
                t.cancel()
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_SECONDS / 2)
            try:
                async with asyncio.timeout(SHUTDOWN_SECONDS / 4):
                    await self._client.aclose()
            except TimeoutError:
                log.warning("the HTTP client did not close in time")

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(SHUTDOWN_SECONDS)
            except TimeoutError:
                log.warning("the network tasks did not stop in time")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(SHUTDOWN_SECONDS)
        self._writer.stop()
        self._writer.join(10)  # a batch in progress is finished, not cut: it is one transaction
        self._update(state="stopped", since=time.time())

    def _update(self, **fields) -> None:
        with self._status_lock:
            self.status = replace(self.status, **fields)

    def _tally(self, applied: int, rejected: list[str], **fields) -> None:
        """Add to the counters; called from both threads, so read and write under the lock."""
        with self._status_lock:
            s = self.status
            if rejected:
                fields["last_rejected"] = rejected[-1]
            self.status = replace(s, applied=s.applied + applied,
                                  rejected=s.rejected + len(rejected), **fields)

    def picture_time(self) -> float:
        """The server time the picture is judged at. Live, it is now; with the link
        down it stays at the last moment the backend spoke, so the console's own
        silence never makes devices look silent."""
        now = self.clock.now()
        if self.status.state == "live" or self.clock.last_heard is None:
            return now
        return min(now, self.clock.last_heard)

    # -- operator actions -----------------------------------------------------

    def acknowledge(self, alert_id: str, note: str) -> Future:
        """Queue an acknowledgement. The future resolves once it is durable in the
        outbox; only then may the UI show it as done."""
        action = Action(key=str(uuid.uuid4()), action="acknowledge", alert_id=alert_id,
                        note=note, created_at=time.time(), state="pending",
                        operator=self.status.operator or self._client.username)
        fut = self._writer.call(lambda store: store.enqueue(action))
        fut.add_done_callback(lambda f: f.exception() or self._kick_outbox())
        return fut

    def query(self, fn: Callable[[Store], object]) -> Future:
        """Run fn(store) on the writer thread, the only one that may touch the
        cache while the engine runs (it holds the cache's lock)."""
        return self._writer.call(fn)

    def _kick_outbox(self) -> None:
        if self._outbox_kick is not None and not self._stopping:
            self._loop.call_soon_threadsafe(self._outbox_kick.set)

    async def _writer_call(self, fn: Callable[[Store], object]):
        return await asyncio.wrap_future(self._writer.call(fn))

    async def _run_outbox(self) -> None:
        """Deliver queued actions oldest first; stop at the first that cannot be
        delivered now, so that actions on one alert never overtake each other."""
        failures = 0  # consecutive rounds that delivered nothing
        while True:
            # Cleared before reading, not after the round: an action queued while
            # this round is sending sets it again and gets a round of its own.
            self._outbox_kick.clear()
            delivered, blocked = 0, False
            try:
                pending: list[Action] = await self._writer_call(lambda s: s.actions(("pending",)))
                self._update(pending_actions=len(pending))
                for action in pending:
                    state, detail = await self._deliver(action)
                    await self._writer_call(lambda s, a=action, st=state, d=detail:
                                            s.settle(a.key, st, d, a.attempts + 1))
                    if state == "pending":
                        blocked = True
                        break
                    delivered += 1
                    self._update(pending_actions=len(pending) - delivered)
            except Exception:  # e.g. a full disk: the actions stay queued; try again later
                log.exception("the outbox could not be sent")
                blocked = True
            failures = 0 if delivered or not blocked else failures + 1
            if not blocked:
                await self._outbox_kick.wait()
                continue
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the wait ends, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff_delay(failures)):
                    await self._outbox_kick.wait()

    async def _deliver(self, action: Action) -> tuple[str, str | None]:
        """Send one action. A repeated key is answered as the first time, so a
        retry after an unknown outcome cannot act twice."""
        try:
            await self._client.acknowledge(action.alert_id, action.note, action.key)
            return "delivered", None
        except ApiError as e:
            if e.status == 409:
                return "conflict", str(e.problem.get("detail", e))
            if 400 <= e.status < 500 and e.status not in (401, 408, 429):
                return "rejected", str(e.problem.get("detail", e))
            return "pending", str(e)
        except (httpx.HTTPError, ProtocolError, OSError) as e:
            return "pending", f"{type(e).__name__}: {e}"

    # -- the stream -----------------------------------------------------------

    async def _run_stream(self) -> None:
        """Sign in, snapshot, follow the stream; on any failure say why and try
        again after a backoff, for ever. The cache keeps its last good picture."""
        meta = self._meta
        stream_id = meta.get("stream_id")
        last_id: int | None = int(meta["last_event_id"]) if stream_id else None
        self._update(state="connecting", since=time.time())
        while True:
            try:
                if self._client.token is None:
                    op = await self._client.sign_in()
                    self._update(operator=op.get("name"))
                if last_id is None:
                    snap = await self._client.snapshot(self._max_snapshot)
                    await self._take_snapshot(snap)
                    stream_id, last_id = snap.stream_id, snap.last_event_id
                last_id, resync = await self._follow(stream_id, last_id)
                if resync:
                    last_id = None
                    await self._pace_resync()
                    continue
                raise ProtocolError("the backend closed the stream")
            except asyncio.CancelledError:
                raise
            except AuthError as e:
                detail = f"sign-in refused: {e}"
            except (httpx.HTTPError, ProtocolError, OSError) as e:
                detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except Exception as e:  # a bug or a store failure: never end silently
                log.exception("syncing failed unexpectedly")
                detail = f"unexpected {type(e).__name__}: {e}"
            delay = backoff_delay(self._attempt)
            self._attempt += 1
            log.info("stream interrupted (%s); retrying in %.1f s", detail, delay)
            self._update(state="reconnecting", since=self._since("reconnecting"),
                         retry_at=time.time() + delay, detail=detail[:500],
                         reconnects=self.status.reconnects + 1)
            await asyncio.sleep(delay)

    async def _pace_resync(self) -> None:
        """The first snapshot after a reset or gap is immediate; a backend that keeps
        causing them is asked again only after a backoff, not in a tight loop."""
        now = time.monotonic()
        self._resync_streak = self._resync_streak + 1 if now - self._last_resync < 60 else 0
        self._last_resync = now
        if self._resync_streak:
            await asyncio.sleep(backoff_delay(self._resync_streak))

    def _since(self, state: str) -> float:
        return self.status.since if self.status.state == state else time.time()

    async def _take_snapshot(self, snap: Snapshot) -> None:
        for reason in snap.rejected:
            log.warning("snapshot item rejected: %s", reason)
        self.clock.set(snap.server_time, snap.clock_rate)
        picture = Picture(snap.wearers, snap.devices, snap.statuses, snap.alerts)
        await self._writer_call(lambda s: s.replace_all(
            picture, snap.last_event_id, stream_id=snap.stream_id,
            server_time=snap.server_time, clock_rate=snap.clock_rate))
        self._update(snapshots=self.status.snapshots + 1, last_event_id=snap.last_event_id,
                     synced_at=time.time())

    async def _follow(self, stream_id: str, last_id: int) -> tuple[int, bool]:
        """Read the stream until it ends. Returns the last id handed to the writer
        and whether a new snapshot is needed (reset, other stream, gap)."""
        parser = SSEParser()
        async with self._client.events(last_id) as stream:
            if stream.stream_id != stream_id:
                log.warning("stream identity changed (%s -> %s): new snapshot",
                            stream_id, stream.stream_id)
                return last_id, True
            if stream.server_time is not None:
                self.clock.set(stream.server_time)
            self._update(state="live", since=time.time(), retry_at=None, detail="")
            self._outbox_kick.set()  # the backend is back: queued actions need not wait
            cursor = Cursor(last_id)
            opened = time.monotonic()
            async for chunk in stream.chunks:
                self.clock.heard()
                if self.resync_needed:
                    self.resync_needed = False
                    return cursor.last_id, True
                before = cursor.last_id
                good, resync = cursor.accept(parser.feed(chunk))
                problems = parser.take_problems()
                if problems:
                    for reason in problems:
                        log.warning("stream framing error: %s", reason)
                    self._tally(0, problems)
                if good:
                    self._writer.frames(good)
                    self._update(last_event_at=time.time())
                # Only a stream that brings new events, or stays up past a heartbeat,
                # resets the backoff: one that connects and then fails at once must
                # not be retried twice a second for ever.
                if cursor.last_id > before or time.monotonic() - opened > MAX_HEARTBEAT:
                    self._attempt = 0
                if resync:
                    return cursor.last_id, True
        return cursor.last_id, False
