"""The sync engine in a process of its own, for the window.

Decoding the stream and writing the cache held the GIL for up to half a second at
a time while catching up, and the GUI thread waited for it inside Qt (docs/perf.md).
So the window's process keeps only the GUI thread's work: `EngineProcess` runs a
SyncEngine in a child process and offers what the window uses of one (launch, stop,
sign_in, sign_in_later, unlock, act, wearer_record, the trail operations, status, clock,
picture_time). The child sends back its
`Changes` (the same contract), its status and its clock over one pipe, in order: an
action's `Changes` arrive before the answer to `act`.

If the child dies, the pending requests fail, the status says so, and a new child
is started on the same cache (after a backoff) with the credentials that were
signed in; it publishes the cached picture again and resumes the stream from the
cache. If the window's process dies, the child reads the end of the pipe and stops.
The child's side is console/sync/child.py.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace

from console.changes import Changes
from console.domain.actions import Payload
from console.sync.child import Outcome, serve, unship
from console.sync.clock import ServerClock, backoff_delay
from console.sync.status import SyncState, SyncStatus

log = logging.getLogger(__name__)

STOP_SECONDS = 15.0  # the engine's stop finishes a batch in progress (at most 10 s)


class EngineGone(RuntimeError):
    """The sync process ended before it answered."""


class EngineProcess:
    """A SyncEngine in a child process; `publish` is called on a thread of this
    process with each `Changes`, as SyncEngine calls it on its writer thread."""

    def __init__(self, backend_url: str, username: str | None, password: str | None,
                 cache_path: str, publish: Callable[[Changes], None], **options):
        self.clock = ServerClock()
        self.status = SyncStatus(state=SyncState.STARTING, since=time.time())
        self._before = SyncStatus()  # what the children before this one counted
        self._publish = publish
        self._engine_args = dict(backend_url=backend_url, cache_path=cache_path, **options)
        self._credentials = (username, password) if username else None
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()  # the pending requests, the child, stopping
        self._pending: dict[int, Future] = {}
        self._ids = itertools.count()
        self._child: multiprocessing.Process | None = None
        self._reader: threading.Thread | None = None
        self._conn = None
        self._launched: Future | None = None
        self._stopping = False
        self._deaths = 0

    # -- what the window uses -------------------------------------------------

    def launch(self) -> Future:
        """Start the child; the future resolves once it has opened the cache, or
        raises why it could not (the caller then calls stop)."""
        if self._launched is None:
            self._spawn()
            self._launched = self._ask("launch")
        return self._launched

    def start(self) -> None:
        try:
            self.launch().result()
        except BaseException:
            self.stop()
            raise

    def sign_in(self, username: str, password: str) -> Future[dict]:
        fut = self._ask("sign_in", username, password)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception() or self._keep(
            username, password))
        return fut

    def sign_in_later(self, username: str, password: str) -> Future[None]:
        fut = self._ask("sign_in_later", username, password)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception() or self._keep(
            username, password))
        return fut

    def unlock(self, password: str) -> Future[None]:
        return self._ask("unlock", password)

    def act(self, payload: Payload) -> Future:
        return self._ask("act", payload)

    def wearer_record(self, wearer_id: str) -> Future:
        return self._ask("wearer_record", wearer_id)

    def trail_requests(self, state=None, wearer_id: str | None = None) -> Future:
        return self._ask("trail_requests", state, wearer_id)

    def trail_request(self, request_id: str) -> Future:
        return self._ask("trail_request", request_id)

    def trail(self, request) -> Future:
        return self._ask("trail", request)

    def trail_exported(self, request, report: str) -> Future:
        return self._ask("trail_exported", request, report)

    def trail_access(self, wearer_id: str, since: float | None = None,
                     until: float | None = None) -> Future:
        return self._ask("trail_access", wearer_id, since, until)

    def picture_time(self) -> float:
        return self.clock.picture_time(self.status.state is SyncState.LIVE)

    def stop(self) -> None:
        """Stop the child's engine (queued actions stay in the outbox) and wait for
        the child to end; kill it if it does not."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        while True:  # a replacement may have been started as this began: stop it too
            with self._lock:
                child, reader = self._child, self._reader
            if child is None:
                break
            try:
                self._send(("stop",))
            except OSError:
                pass  # already gone
            # Only the reader waits for the child: two threads reaping one process
            # race, and the loser takes it for alive.
            reader.join(STOP_SECONDS)
            if reader.is_alive():
                log.error("the sync process did not stop in time; killing it")
                child.kill()
                reader.join(5)
            with self._lock:
                if self._child is child:
                    break
        self._fail_pending(EngineGone("the sync engine has stopped"))
        self.status = replace(self.status, state=SyncState.STOPPED, since=time.time())

    # -- requests and answers -------------------------------------------------

    def _keep(self, username: str, password: str) -> None:
        """The credentials a restarted child signs in with."""
        self._credentials = (username, password)

    def _ask(self, method: str, *args) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._stopping:
                fut.set_exception(EngineGone("the sync engine has stopped"))
                return fut
            op_id = next(self._ids)
            self._pending[op_id] = fut
        try:
            self._send(("call", op_id, method, args))
        except OSError as e:  # the child is gone; the reader fails what is pending
            self._answer(op_id, Outcome.FAILED, EngineGone(f"the sync process is not running ({e})"))
            return fut
        fut.add_done_callback(lambda f: f.cancelled() and self._cancel(op_id))
        return fut

    def _cancel(self, op_id: int) -> None:
        with self._lock:
            self._pending.pop(op_id, None)
        try:
            self._send(("cancel", op_id))
        except OSError:
            pass

    def _answer(self, op_id: int, outcome: Outcome, value) -> None:
        with self._lock:
            fut = self._pending.pop(op_id, None)
        if fut is None or fut.done():
            return  # cancelled here meanwhile
        if outcome is Outcome.CANCELLED:
            fut.cancel()
        elif outcome is Outcome.DONE:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            if self._conn is None:
                raise OSError("no sync process")
            self._conn.send(message)

    # -- the child ------------------------------------------------------------

    def _spawn(self) -> None:
        child, mine = _take_spare() or _start_child()
        username, password = self._credentials or (None, None)
        reader = threading.Thread(target=self._read, args=(child, mine),
                                  name="sync-process-reader", daemon=True)
        with self._lock:
            self._child, self._reader, self._conn = child, reader, mine
        reader.start()
        try:
            self._send(("engine", dict(self._engine_args, username=username, password=password)))
        except OSError:
            pass  # it died already: the reader sees that and starts another

    def _read(self, child: multiprocessing.Process, conn) -> None:
        """Hand on what the child sends, until it ends; then start another unless
        stopping. Any failure here is logged and ends in a restart, not silence."""
        try:
            while True:
                message = conn.recv()
                kind = message[0]
                if kind == "changes":
                    self._publish(unship(*message[1:]))
                elif kind == "status":
                    _, status, clock = message
                    self.clock.adopt(clock)
                    # A replacement counts from zero; the window shows the session's totals.
                    b = self._before
                    self.status = replace(status, applied=status.applied + b.applied,
                                          rejected=status.rejected + b.rejected,
                                          snapshots=status.snapshots + b.snapshots,
                                          reconnects=status.reconnects + b.reconnects)
                    if status.state is SyncState.LIVE:
                        self._deaths = 0  # a replacement that works ends the backoff
                elif kind == "answer":
                    self._answer(*message[1:])
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("reading from the sync process failed")
            child.kill()
        with self._send_lock:
            conn.close()
            self._conn = None
        child.join(STOP_SECONDS)
        if child.exitcode is None:  # it closed the pipe but hangs
            child.kill()
            child.join()
        with self._lock:
            stopping = self._stopping
        if stopping:
            return
        self._restart(child.exitcode)

    def _restart(self, exitcode: int | None) -> None:
        delay = backoff_delay(min(self._deaths, 4))
        self._deaths += 1
        self._before = replace(self.status, reconnects=self.status.reconnects + 1)
        reason = f"the sync process ended unexpectedly (exit code {exitcode})"
        log.error("%s; starting it again in %.1f s", reason, delay)
        self._fail_pending(EngineGone(reason))
        self.status = replace(self.status, state=SyncState.RECONNECTING, since=time.time(),
                              retry_at=time.time() + delay,
                              detail=f"{reason}; starting a new one")
        time.sleep(delay)
        with self._lock:
            if self._stopping:
                return
        self._spawn()
        self._ask("launch").add_done_callback(self._relaunched)

    def _relaunched(self, fut: Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("the restarted sync process could not open the cache: %s", fut.exception())
            self.status = replace(self.status, detail=f"the cache could not be opened again: "
                                                      f"{fut.exception()}")


_spare: tuple | None = None  # a child started early, waiting for its engine's arguments


def prestart() -> None:
    """Start a sync process now, so that its imports (0.3 s) overlap the window's
    (Qt's); the first EngineProcess takes it."""
    global _spare
    if _spare is None:
        _spare = _start_child()


def _take_spare() -> tuple | None:
    global _spare
    spare, _spare = _spare, None
    return spare


def _start_child() -> tuple:
    # spawn, not fork: the window's process has Qt's threads, which a fork would
    # copy in whatever state they were.
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    child = context.Process(target=serve, name="em-console-sync", daemon=True,
                            args=(theirs, logging.getLogger().getEffectiveLevel()))
    child.start()
    theirs.close()  # so that the child's death ends our reads
    return child, mine
