"""The sync process's side of console/sync/process.py: one SyncEngine, answering the
window's requests over the pipe, and what crosses it (requests, answers, Changes as
msgpack, errors that keep their type)."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from enum import Enum

import msgspec

from console.changes import BatterySpans, Changes, Picture
from console.domain import Alert, DeviceStatus
from console.sync.engine import SyncEngine

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.1  # the child sends its status at most this often, when it changed
SYNC_NICENESS = 5


# What the window may ask the child's engine for.
REQUESTS = ("launch", "sign_in", "sign_in_later", "unlock", "act", "wearer_record",
            "trail_requests", "trail_request", "trail", "trail_exported", "trail_access")


class Outcome(Enum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Shipped(msgspec.Struct, array_like=True):
    """Changes as they cross the pipe, but their actions: msgpack, which msgspec
    writes and reads in C. Pickle took 1.9 s for a picture of 100,000 wearers;
    this takes 0.4 s. Actions, few and of several payload types, are pickled."""

    picture: Picture | None
    statuses: dict[str, DeviceStatus]
    alerts: dict[str, Alert]
    closed: set[str]
    last_event_id: int
    applied: int
    battery: BatterySpans


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Shipped)


def ship(changes: Changes) -> tuple:
    c = changes
    return _encoder.encode(Shipped(c.picture, c.statuses, c.alerts, c.closed, c.last_event_id,
                                   c.applied, c.battery)), c.actions


def unship(shipped: bytes, actions: dict) -> Changes:
    s = _decoder.decode(shipped)
    return Changes(s.picture, s.statuses, s.alerts, s.closed, actions, s.last_event_id, s.applied,
                   s.battery)


def serve(conn, log_level: int) -> None:
    """The child process: one SyncEngine, made from the first message, answering
    the window's requests until told to stop or until the window's process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the window's to handle
    if hasattr(os, "nice"):
        # On a busy workstation the scheduler serves the window first: a sync that
        # falls behind for a moment catches up; a window that stutters is felt.
        os.nice(SYNC_NICENESS)
    logging.basicConfig(level=log_level,
                        format="%(asctime)s %(levelname)s %(name)s [sync process]: %(message)s")
    try:
        _, engine_args = conn.recv()
    except (EOFError, OSError):
        return  # a spare nobody took
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    engine = SyncEngine(publish=lambda changes: send(("changes", *ship(changes))),
                        **engine_args)
    stopped = threading.Event()
    threading.Thread(target=_send_status, args=(engine, send, stopped), name="status",
                     daemon=True).start()
    running: dict[int, Future] = {}

    def answer(op_id: int, fut: Future) -> None:
        running.pop(op_id, None)
        if fut.cancelled():
            message = ("answer", op_id, Outcome.CANCELLED, None)
        elif fut.exception() is not None:
            message = ("answer", op_id, Outcome.FAILED, portable(fut.exception()))
        else:
            message = ("answer", op_id, Outcome.DONE, fut.result())
        try:
            send(message)
        except OSError:
            pass  # the window's process is gone

    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
            if message[0] == "cancel":
                fut = running.get(message[1])
                if fut is not None:
                    fut.cancel()
                continue
            _, op_id, method, args = message
            try:
                if method not in REQUESTS:
                    raise ValueError(f"not a request the sync process answers: {method!r}")
                fut = getattr(engine, method)(*args)
            except Exception as e:  # answered as failed: the engine runs on
                fut = Future()
                fut.set_exception(e)
            running[op_id] = fut
            fut.add_done_callback(lambda f, op_id=op_id: answer(op_id, f))
    except (EOFError, OSError):
        log.warning("the window's process is gone; stopping")
    finally:
        engine.stop()
        stopped.set()
        try:
            send(("status", engine.status, engine.clock.state()))
        except OSError:
            pass
        conn.close()


def _send_status(engine: SyncEngine, send: Callable[[tuple], None], stopped: threading.Event) -> None:
    sent = None
    while not stopped.wait(STATUS_INTERVAL):
        now = (engine.status, engine.clock.state())
        if now != sent:
            try:
                send(("status", *now))
            except OSError:
                return
            sent = now


def portable(error: BaseException) -> BaseException:
    """The error as it can cross to the window's process: itself if it pickles,
    else the same type from its arguments alone (httpx's errors keep the request,
    which does not), else its text."""
    for candidate in (error, _bare(error)):
        if candidate is None:
            continue
        try:
            return pickle.loads(pickle.dumps(candidate))
        except Exception:
            continue
    return RuntimeError(f"{type(error).__name__}: {error}")


def _bare(error: BaseException) -> BaseException | None:
    try:
        return type(error)(*error.args)
    except Exception:
        return None
