"""The sync engine: backend stream -> store -> coalesced change batches.

Two threads, neither of them the GUI's:
- the network thread runs one asyncio loop with the one HTTP client: sign-in,
  snapshots, the event stream with resume and backoff (here), the outbox sender
  (outbox.py), and the request-and-answer operations a consumer asks for
  (`operation`; signing in is the first), so that there is one client, one session
  token and one place that signs in again after a 401;
- the writer thread (writer.py) owns the store: it decodes events, applies them in
  batched transactions and publishes what changed, at most about ten times a second.

Consumers (the Qt UI, the headless status line, tests) receive `Changes` through
the `publish` callback, on the writer thread; the UI moves them to its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TypeVar

import httpx

from console.changes import Changes
from console.domain.access import (
    MAX_OFFLINE_TRIES,
    KnownOperator,
    offline_wait,
    roles_of,
    verified,
    verifier_of,
)
from console.domain.actions import Acknowledge, Action, ActionState, Payload, kind_of
from console.protocol.client import (
    MAX_HEARTBEAT,
    MAX_SNAPSHOT_BYTES,
    AuthError,
    Client,
    ProtocolError,
    Snapshot,
)
from console.protocol.sse import SSEParser
from console.store import KEYRING, CacheKeys, Store
from console.sync.clock import ServerClock, backoff_delay
from console.sync.outbox import OutboxSender
from console.sync.status import SyncState, SyncStatus
from console.sync.stream import Cursor
from console.sync.trails import TrailOperations
from console.sync.writer import ChangeFeed, Writer

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 1.0  # stop() returns within about this, whatever the backend does
# One answer whether the username is unknown here or the password wrong.
OFFLINE_REFUSED = ("offline, only an operator who signed in online on this workstation "
                   "before can sign in, with the password accepted then")

T = TypeVar("T")


def _failed(error: BaseException) -> Future:
    fut: Future = Future()
    fut.set_exception(error)
    return fut


class SyncEngine(TrailOperations):
    """username None: nobody is signed in yet. The engine can start (the cached
    picture is published) and waits to connect until `sign_in` succeeds or
    `sign_in_later` gives credentials to try."""

    def __init__(self, backend_url: str, username: str | None, password: str | None,
                 cache_path: str, publish: Callable[[Changes], None], read_timeout: float = 30.0,
                 max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES, ca_bundle: str | None = None,
                 cache_keys: CacheKeys = KEYRING):
        self.clock = ServerClock()
        self.feed = ChangeFeed(publish)
        self.status = SyncStatus(state="starting", since=time.time())
        self._status_lock = threading.Lock()
        self._client = Client(backend_url, username, password, read_timeout, ca_bundle)
        self._max_snapshot = max_snapshot_bytes
        self._writer = Writer(cache_path, cache_keys, self.feed, self.clock.now, self)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sync-net",
                                        daemon=True)
        self._stopping = False
        self._outbox: OutboxSender | None = None  # made on the network thread's loop
        self._tasks: list[asyncio.Task] = []
        self._attempt = 0  # consecutive stream attempts that brought nothing useful
        self._resync_needed = False  # a batch could not be stored: only a snapshot mends it
        self._resync_streak, self._last_resync = 0, -1e9
        # Set, on the network thread, once there are credentials to connect with.
        self._credentials = asyncio.Event()
        if username:
            self._credentials.set()
        self._launched: Future | None = None
        self._operations: set[asyncio.Task] = set()  # on the network thread
        self._pending_ops: set[Future] = set()  # cancelled by stop() if still pending
        self._ops_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Opens the cache (publishing the cached picture) and starts syncing.
        Raises if the cache cannot be opened at all (and stops what it started)."""
        try:
            self.launch().result()
        except BaseException:
            self.stop()
            raise

    def launch(self) -> Future:
        """Start without waiting: operations (signing in) may be asked for at once,
        while the writer thread opens the cache; syncing starts once it is open.
        The future resolves then, or raises why the cache could not be opened (the
        caller then calls stop)."""
        if self._launched is None:
            self._writer.start()
            self._thread.start()
            self._launched = self.operation(lambda _client: self._open())
        return self._launched

    async def _open(self) -> None:
        # Shielded: stop() may cancel this wait, but not the writer's own future.
        ready = await asyncio.shield(asyncio.wrap_future(self._writer.ready))
        meta, notice, pending, newest_status = ready
        self._meta = meta
        if "server_time" in meta:
            self.clock.set(float(meta["server_time"]), float(meta.get("clock_rate", 1.0)))
        if newest_status is not None:
            # Until the backend speaks, the cached picture is as of its newest report.
            self.clock.heard(max(newest_status, self.clock.last_heard or newest_status))
        synced = meta.get("snapshot_at")
        self._update(state=SyncState.CACHED, since=time.time(), cache_notice=notice,
                     synced_at=float(synced) if synced else None,
                     last_event_id=int(meta.get("last_event_id", 0)), pending_actions=pending)
        await self._start_tasks()

    async def _start_tasks(self) -> None:
        self._outbox = OutboxSender(self._client, self._writer_call,
                                    lambda n: self._update(pending_actions=n), self.clock)
        self._tasks = [asyncio.create_task(self._supervise("stream", self._run_stream)),
                       asyncio.create_task(self._supervise("outbox", self._outbox.run)),
                       asyncio.create_task(self._supervise("trail sweep", self._sweep_trails))]

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
            running = [*self._tasks, *self._operations]  # and the opening of the cache
            for t in running:
                t.cancel()
            if running:
                await asyncio.wait(running, timeout=SHUTDOWN_SECONDS / 2)
            try:
                async with asyncio.timeout(SHUTDOWN_SECONDS / 4):
                    # The console keeps no token: a session it leaves is of no use,
                    # so it ends it on the backend rather than leave it to expire.
                    await self._client.sign_out()
            except (TimeoutError, httpx.HTTPError, OSError) as e:
                log.info("the session could not be ended on the backend (%s); it will expire",
                         type(e).__name__)
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
        with self._ops_lock:  # asked for as the engine stopped: they will never run
            for fut in self._pending_ops:
                fut.cancel()
        self._writer.stop()
        if self._writer.is_alive():
            self._writer.join(10)  # a batch in progress is finished, not cut: one transaction
        self._update(state=SyncState.STOPPED, since=time.time())

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

    # -- what the writer reports (on its thread) -------------------------------

    def applied(self, applied: int, rejected: list[str], last_event_id: int) -> None:
        self._tally(applied, rejected, last_event_id=last_event_id)

    def problem(self, detail: str) -> None:
        self._update(detail=detail)

    def batch_lost(self) -> None:
        self._resync_needed = True

    def picture_time(self) -> float:
        """The server time the picture is judged at (ServerClock.picture_time)."""
        return self.clock.picture_time(self.status.state is SyncState.LIVE)

    # -- request-and-answer operations ------------------------------------------

    def operation(self, fn: Callable[[Client], Awaitable[T]]) -> Future[T]:
        """Run fn(client) on the network thread's loop with the engine's one HTTP
        client (its session; a 401 signs in again there), and return its future,
        which any thread may wait on (the UI: `await ui.bridge.result_of(fut)`).
        Cancelling the future cancels the operation; stop() cancels those still
        running. Nothing here blocks the caller."""
        async def run() -> T:
            task = asyncio.current_task()
            self._operations.add(task)
            try:
                return await fn(self._client)
            finally:
                self._operations.discard(task)

        with self._ops_lock:  # against stop(): each is either refused or swept up by it
            if self._stopping:
                return _failed(RuntimeError("the sync engine has stopped"))
            fut = asyncio.run_coroutine_threadsafe(run(), self._loop)
            self._pending_ops.add(fut)
        fut.add_done_callback(self._operation_done)
        return fut

    def _operation_done(self, fut: Future) -> None:
        with self._ops_lock:
            self._pending_ops.discard(fut)

    def sign_in(self, username: str, password: str) -> Future[dict]:
        """Check the operator's name and password with the backend and keep the
        session: the stream, the outbox and every operation then use it, and the
        engine does not sign in again. The future gives the backend's operator
        record, or raises AuthError (refused) or why the backend could not be asked
        (httpx, protocol or OS errors), and then nothing has changed. Cancelling it
        abandons the attempt."""
        async def sign_in(client: Client) -> dict:
            operator = await client.sign_in(username, password)
            # Off the loop: hashing takes about 0.1 s.
            self._signed_in_as(username, operator, await asyncio.to_thread(verifier_of, password))
            self._credentials.set()
            return operator
        return self.operation(sign_in)

    def _signed_in_as(self, username: str, operator: dict, verifier: str | None = None) -> None:
        """The backend named the operator and their roles: shown, and remembered
        for offline work with the password's verifier (not awaited: signing in must
        not wait for the cache to open)."""
        name, roles = operator.get("name"), operator.get("roles")
        if isinstance(name, str) and name:
            roles = roles_of(r for r in roles if isinstance(r, str)) if isinstance(roles, list) \
                else frozenset()
            self._update(operator=name, roles=roles)
            known = KnownOperator(name, roles, verifier)
            self._writer.call(lambda s: s.remember_operator(username, known)).add_done_callback(
                lambda f: f.exception() and log.warning(
                    "could not remember the operator: %s", f.exception()))

    async def _known_operator(self, username: str) -> KnownOperator | None:
        """What the backend last said of this operator here, if the cache knows it."""
        try:
            await asyncio.shield(asyncio.wrap_future(self._writer.ready))
        except Exception:  # no cache: the engine reports that; the name is unknown
            return None
        return await self._writer_call(lambda s: s.known_operator(username))

    def sign_in_later(self, username: str, password: str) -> Future[None]:
        """Work offline as this operator: the backend cannot be asked now. Only an
        operator the backend accepted on this workstation before, with the password
        it accepted then (checked against its verifier), else AuthError. They act
        under the name and roles the backend gave them then, so their queued claims
        hold alerts as the backend will say; the stream signs in with these
        credentials once the backend answers, and says so if it refuses them."""
        async def later(client: Client) -> None:
            known = await self._check_offline(username, password)
            client.use_credentials(username, password)
            self._update(operator=known.name, roles=known.roles)
            self._credentials.set()
        return self.operation(later)

    def unlock(self, password: str) -> Future[None]:
        """Check the signed-in operator's password to unlock the session, against
        the verifier kept here (it works offline too); AuthError if it is wrong."""
        return self.operation(lambda client: self._check_offline(client.username, password))

    async def _check_offline(self, username: str, password: str) -> KnownOperator:
        known = await self._known_operator(username)
        failures, last = await self._writer_call(lambda s: s.offline_failures(username))
        now = time.time()
        if wait := offline_wait(failures, last, now):
            raise AuthError(f"{failures} wrong passwords in a row on this workstation: it checks "
                            f"no more for {math.ceil(wait / 60)} min (or sign in online)")
        if not await asyncio.to_thread(verified, known and known.verifier, password):
            failures = failures + 1 if failures < MAX_OFFLINE_TRIES else 1  # after a lockout
            await self._writer_call(lambda s: s.set_offline_failures(username, failures, now))
            raise AuthError(OFFLINE_REFUSED)
        if failures:
            await self._writer_call(lambda s: s.set_offline_failures(username, 0, now))
        return known

    def wearer_record(self, wearer_id: str) -> Future:
        """One wearer's record from the backend (Client.wearer_record), which audits
        the view; it is not cached."""
        return self.operation(lambda client: client.wearer_record(wearer_id))

    # -- operator actions -----------------------------------------------------

    def act(self, payload: Payload) -> Future:
        """Queue an operator's action of the kind this payload belongs to, as the
        act of the operator signed in. The future resolves once it is durable in the
        outbox (to the Changes that show it queued); only then may the UI show it."""
        username = self._client.username
        if not username:
            fut: Future = Future()
            fut.set_exception(RuntimeError("nobody is signed in to act"))
            return fut
        action = Action(key=str(uuid.uuid4()), kind=kind_of(payload), payload=payload,
                        created_at=time.time(), state=ActionState.PENDING,
                        operator=self.status.operator or username, username=username)
        fut = self._writer.call(lambda store: store.enqueue(action))
        fut.add_done_callback(lambda f: f.exception() or self._kick_outbox())
        return fut

    def acknowledge(self, alert_id: str, note: str) -> Future:
        """Queue an acknowledgement (see act)."""
        return self.act(Acknowledge(alert_id, note))

    def query(self, fn: Callable[[Store], object]) -> Future:
        """Run fn(store) on the writer thread, the only one that may touch the
        cache while the engine runs (it holds the cache's lock)."""
        return self._writer.call(fn)

    def _kick_outbox(self) -> None:
        if self._outbox is not None and not self._stopping:
            self._loop.call_soon_threadsafe(self._outbox.kick.set)

    async def _writer_call(self, fn: Callable[[Store], object]):
        return await asyncio.wrap_future(self._writer.call(fn))

    # -- the stream -----------------------------------------------------------

    async def _run_stream(self) -> None:
        """Sign in, snapshot, follow the stream; on any failure say why and try
        again after a backoff, for ever. The cache keeps its last good picture."""
        meta = self._meta
        stream_id = meta.get("stream_id")
        last_id: int | None = int(meta["last_event_id"]) if stream_id else None
        await self._credentials.wait()  # nobody to connect as until someone signs in
        self._update(state=SyncState.CONNECTING, since=time.time())
        while True:
            try:
                if self._client.token is None:  # not signed in yet, or `sign_in_later`
                    op = await self._client.sign_in()
                    self._signed_in_as(self._client.username, op)
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
                # Refused credentials are not tried again (the client keeps the refusal):
                # retrying would only lock the account out. Wait for someone to sign in.
                log.warning("the backend refused the sign-in (%s); waiting for a new one", e)
                self._credentials.clear()
                self._update(state=SyncState.REFUSED, since=time.time(), retry_at=None,
                             detail=f"sign-in refused: {e}"[:500])
                await self._credentials.wait()
                self._update(state=SyncState.CONNECTING, since=time.time(), detail="")
                continue
            except (httpx.HTTPError, ProtocolError, OSError) as e:
                detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except Exception as e:  # a bug or a store failure: never end silently
                log.exception("syncing failed unexpectedly")
                detail = f"unexpected {type(e).__name__}: {e}"
            delay = backoff_delay(self._attempt)
            self._attempt += 1
            log.info("stream interrupted (%s); retrying in %.1f s", detail, delay)
            self._update(state=SyncState.RECONNECTING, since=self._since(SyncState.RECONNECTING),
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

    def _since(self, state: SyncState) -> float:
        return self.status.since if self.status.state == state else time.time()

    async def _take_snapshot(self, snap: Snapshot) -> None:
        for reason in snap.rejected:
            log.warning("snapshot item rejected: %s", reason)
        self.clock.set(snap.server_time, snap.clock_rate)
        picture = snap.picture
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
            self._update(state=SyncState.LIVE, since=time.time(), retry_at=None, detail="")
            self._outbox.kick.set()  # the backend is back: queued actions need not wait
            cursor = Cursor(last_id)
            opened = time.monotonic()
            async for chunk in stream.chunks:
                self.clock.heard()
                if self._resync_needed:
                    self._resync_needed = False
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
