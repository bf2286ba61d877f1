"""The offline cache: SQLite through sqlite-utils, owned by one writer thread.

The store keeps what the console needs to show the last known picture at once:
wearers, devices, each device's latest status, open alerts with their history,
the operator's queued actions (the outbox) and the sync position.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import math
import os
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import orjson
import sqlite_utils

from console.domain import (
    Alert,
    AlertState,
    Curfew,
    Device,
    DeviceKind,
    DeviceStatus,
    HistoryEntry,
    Wearer,
)
from console.protocol.wire import EARLIEST, Event

if os.name == "nt":
    import msvcrt
else:
    import fcntl

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2


class CacheUnusable(Exception):
    pass


class CacheInUse(Exception):
    """Another console holds the cache. Two consoles on one outbox would each send
    the other's queued actions while it still shows them as queued."""

    def __init__(self, path: Path, holder: str):
        pid, _, host = holder.strip().partition(" ")
        self.pid = int(pid) if pid.isdigit() else None
        self.host = host or None
        who = f"process {self.pid} on {self.host}" if self.pid else "a process that has not said which"
        super().__init__(f"The offline cache {path} is in use by another console ({who}). "
                         "Only one console may use a cache at a time.")


class CacheLock:
    """One console per cache: an exclusive OS lock on `<cache>.lock`, which names the
    holder's pid and host. The OS lets go when the process ends, even by kill -9, so
    a crash leaves no stale lock; the file itself stays (deleting it would race)."""

    def __init__(self, cache: Path):
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(cache.with_name(cache.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        self._file = open(fd, "r+b")  # a file object: a Store dropped unclosed still lets go
        if not _try_lock(self._file):
            holder = self._file.read(300).decode(errors="replace")
            self._file.close()
            raise CacheInUse(cache, holder)
        self._file.truncate()
        self._file.write(f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._file.flush()

    def release(self) -> None:
        self._file.close()  # closing lets go of the lock


if os.name == "nt":
    def _try_lock(f) -> bool:
        # One byte far past the holder's pid and host, which others must still read.
        f.seek(1 << 20)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
        finally:
            f.seek(0)
else:
    def _try_lock(f) -> bool:
        # flock, not lockf: it also refuses a second Store in the same process.
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False


def cache_in_use(path: str | os.PathLike) -> CacheInUse | None:
    """Why the cache at `path` cannot be opened now (another console holds it), or
    None. Takes the lock and lets go at once: the window asks before it starts."""
    try:
        CacheLock(Path(path)).release()
    except CacheInUse as e:
        return e
    return None


def _owner_only(cache: Path) -> None:
    """The cache holds personal data: make its files owner-only, whatever an older
    version or the umask left (new ones are created so, see connect). POSIX only:
    on Windows the ACL of the user's profile folder applies."""
    if os.name != "posix":
        return
    files = [cache.with_name(cache.name + s) for s in ("", "-wal", "-shm")]
    for f in files + list(cache.parent.glob(glob.escape(cache.name) + ".unusable-*")):
        try:
            f.chmod(0o600)
        except FileNotFoundError:
            pass
        except PermissionError as e:  # another user's file: say so, but still start
            log.warning("could not make %s owner-only: %s", f, e)


def _text(data: bytes) -> str | bytes:
    """SQLite does not check that TEXT is UTF-8, and sqlite3's own decoding raises on
    such a row again at every fetch: one bad byte would block every read of its
    table. Text that is not UTF-8 comes back as bytes, which the row decoders refuse."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """The one place a cache connection is opened: encryption at rest goes here."""
    # Created owner-only before SQLite opens it: SQLite would create it 0644, and gives
    # the -wal and -shm files the database file's mode. Not a umask: that is the whole
    # process's, and other threads create files meanwhile.
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.text_factory = _text
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()  # a damaged file fails here; it is then moved aside, even on Windows
        raise
    return conn


def _migrate_1(db: sqlite_utils.Database) -> None:
    # Explicit types: sqlite-utils would otherwise guess them from the first rows.
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["wearers"].create({"id": str, "ref": str, "curfew": str}, pk="id", not_null={"ref"})
    db["devices"].create({"id": str, "wearer_id": str, "kind": str}, pk="id",
                         not_null={"wearer_id", "kind"})
    db["device_status"].create(
        {"device_id": str, "ts": float, "battery": float, "charging": int, "strap": str,
         "gps_fix": int, "at_home": int, "event_id": int},
        pk="device_id", not_null={"ts", "battery", "charging", "event_id"},
    )
    db["alerts"].create(
        {"id": str, "wearer_id": str, "device_id": str, "type": str, "raised_at": float,
         "state": str, "active": int, "history": str, "event_id": int},
        pk="id", not_null={"wearer_id", "device_id", "type", "raised_at", "state", "active",
                           "history", "event_id"},
    )
    db["outbox"].create(
        {"seq": int, "key": str, "action": str, "alert_id": str, "note": str,
         "created_at": float, "state": str, "attempts": int, "detail": str},
        pk="seq", not_null={"key", "action", "alert_id", "created_at", "state", "attempts"},
    )
    db["outbox"].create_index(["key"], unique=True)


def _migrate_2(db: sqlite_utils.Database) -> None:
    # Who did what, when: written in the same transaction as the action itself.
    db["outbox"].add_column("operator", str)
    db["audit"].create(
        {"seq": int, "at": float, "operator": str, "event": str, "action": str,
         "alert_id": str, "key": str, "detail": str},
        pk="seq", not_null={"at", "event", "action", "alert_id", "key"},
    )


MIGRATIONS = {1: _migrate_1, 2: _migrate_2}


@functools.cache
def _columns_made_by_migrations() -> dict[str, list[tuple]]:
    conn = sqlite3.connect(":memory:")
    db = sqlite_utils.Database(conn)
    for target in sorted(MIGRATIONS):
        MIGRATIONS[target](db)
    columns = {t: conn.execute(f"PRAGMA table_info([{t}])").fetchall() for t in db.table_names()}
    conn.close()
    return columns


@dataclass
class Picture:
    """Everything the UI shows, as loaded from the cache or a snapshot."""

    wearers: list[Wearer]
    devices: list[Device]
    statuses: dict[str, DeviceStatus]
    alerts: dict[str, Alert]


@dataclass
class Changes:
    """What one or more applied batches changed; coalesced before the UI sees it."""

    picture: Picture | None = None  # set when everything was replaced
    statuses: dict[str, DeviceStatus] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)  # open alerts, new or changed
    closed: set[str] = field(default_factory=set)
    actions: dict[str, Action] = field(default_factory=dict)  # outbox rows by key
    last_event_id: int = 0
    applied: int = 0

    def merge(self, later: Changes) -> None:
        if later.picture is not None:
            self.picture = later.picture
            self.statuses.clear()
            self.alerts.clear()
            self.closed.clear()
        self.statuses.update(later.statuses)
        for alert_id in later.closed:
            self.alerts.pop(alert_id, None)
        self.closed |= later.closed
        self.closed -= later.alerts.keys()
        self.alerts.update(later.alerts)
        self.actions.update(later.actions)
        self.last_event_id = max(self.last_event_id, later.last_event_id)
        self.applied += later.applied

    def __bool__(self) -> bool:
        return bool(self.picture or self.statuses or self.alerts or self.closed or self.actions)

    def split(self, size: int) -> list[Changes]:
        """The same changes in slices of at most `size` statuses, to be applied in
        order: the first carries everything else, so later slices only add statuses."""
        items = list(self.statuses.items())
        if len(items) <= size:
            return [self]
        first = Changes(self.picture, dict(items[:size]), self.alerts, self.closed,
                        self.actions, self.last_event_id, self.applied)
        return [first] + [Changes(statuses=dict(items[i:i + size]))
                          for i in range(size, len(items), size)]


@dataclass(frozen=True)
class Action:
    """An operator's action as queued in the outbox."""

    key: str
    action: str
    alert_id: str
    note: str
    created_at: float
    state: str  # pending / delivered / conflict / rejected / damaged (set aside, never sent)
    attempts: int = 0
    detail: str | None = None
    seq: int = 0
    operator: str | None = None


class Store:
    """Not thread-safe: one thread (the sync engine's writer) owns it."""

    def __init__(self, path: str | os.PathLike):
        """Raises CacheInUse if another console has the cache open."""
        self.path = Path(path)
        # Told to the operator: the cache was replaced, or damaged rows were skipped.
        self._notices: dict[str, str] = {}
        self._lock = CacheLock(self.path)
        try:
            _owner_only(self.path)
            try:
                self.conn = self._open()
            # SQLite's message about a damaged schema can itself be undecodable.
            except (CacheUnusable, sqlite3.DatabaseError, UnicodeDecodeError) as e:
                aside = self._move_aside()
                self._notices["replaced"] = (
                    f"The offline cache could not be used ({e}). It was moved to {aside.name} "
                    "and a fresh cache is being built from the backend.")
                log.warning(self.notice)
                self.conn = self._open()
        except BaseException:
            self._lock.release()
            raise
        self.db = sqlite_utils.Database(self.conn)

    @property
    def notice(self) -> str | None:
        return " ".join(self._notices.values()) or None

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CacheUnusable(f"its schema version {version} is newer than this "
                                    f"console's {SCHEMA_VERSION}")
            if version:
                # integrity_check, not quick_check: it also compares each index with its
                # table, and a damaged index fails reads that quick_check passed (80 ms
                # for 100,000 wearers, against 25).
                check = conn.execute("PRAGMA integrity_check(1)").fetchone()[0]
                if check != "ok":
                    raise CacheUnusable(f"integrity check failed: {check}")
            db = sqlite_utils.Database(conn)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with conn:
                    conn.execute("BEGIN")
                    MIGRATIONS[target](db)
                    conn.execute(f"PRAGMA user_version={target}")
            # A flipped byte in the schema's text can rename a column and still pass
            # the integrity check; every later query on that table would then fail.
            for table, columns in _columns_made_by_migrations().items():
                if conn.execute(f"PRAGMA table_info([{table}])").fetchall() != columns:
                    raise CacheUnusable(f"its {table} table is not as this console made it")
            return conn
        except BaseException:
            conn.close()
            raise

    def _move_aside(self) -> Path:
        aside = self.path.with_name(f"{self.path.name}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.replace(Path(str(aside) + suffix))
        return aside

    def close(self) -> None:
        self.conn.close()
        self._lock.release()

    # -- meta -----------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def _set_meta(self, **values) -> None:
        self.conn.executemany("REPLACE INTO meta VALUES (?, ?)",
                              [(k, str(v)) for k, v in values.items()])

    @property
    def last_event_id(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='last_event_id'").fetchone()
        return int(row[0]) if row else 0

    # -- reading --------------------------------------------------------------

    def load(self) -> Picture:
        """The cached picture, and a check of everything the engine starts from.

        SQLite's integrity check cannot see a flipped bit inside a value, and one bad
        row must not stop the console starting. A row that does not read back as this
        console writes it is skipped, logged by table and key, and counted in
        `notice`; the stream position is then dropped, so that the engine's first act
        is a snapshot, which replaces every row. Damaged queued actions are set aside."""
        damaged: list[tuple[str, object]] = []

        def rows(table: str, sql: str, decode: Callable) -> Iterator:
            return _decoded(table, self.conn.execute(sql), decode, damaged)

        meta = dict(rows("meta", "SELECT key, value FROM meta", _meta_from_row))
        wearers = list(rows("wearers", "SELECT id, ref, curfew FROM wearers ORDER BY id",
                            _wearer_from_row))
        devices = list(rows("devices", "SELECT id, wearer_id, kind FROM devices", _device_from_row))
        statuses = {s.device_id: s for s in rows(
            "device_status", "SELECT device_id, ts, battery, charging, strap, gps_fix, at_home "
            "FROM device_status", _status_from_row)}
        alerts = {a.id: a for a in rows(
            "alerts", "SELECT id, wearer_id, device_id, type, raised_at, state, active, history "
            "FROM alerts", _alert_from_row)}
        if damaged:
            tables = ", ".join(f"{t} {n}" for t, n in Counter(t for t, _ in damaged).items())
            were = "row in the offline cache was" if len(damaged) == 1 else \
                "rows in the offline cache were"
            self._notices["rows"] = (f"{len(damaged)} damaged {were} skipped ({tables}); "
                                     "the next snapshot replaces them.")
            if len(damaged) > LOGGED_PER_LOAD:
                log.warning("... and %d more damaged rows", len(damaged) - LOGGED_PER_LOAD)
        if damaged or ("stream_id" in meta and "last_event_id" not in meta):
            bad_meta = [key for table, key in damaged if table == "meta"]
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("DELETE FROM meta WHERE key = ?",
                                      [(k,) for k in ["stream_id", *bad_meta]])
            log.warning("the cache's stream position is dropped: a snapshot comes first")
        self._set_aside_damaged_actions()
        return Picture(wearers, devices, statuses, alerts)

    def _set_aside_damaged_actions(self) -> None:
        """A queued action that does not read back as written is an operator's action
        that may not be what they did: it is never sent, and never dropped quietly.
        It is marked 'damaged' and audited (so it is told once), logged and named in
        `notice`. Delivered actions are history, not checked."""
        bad = []
        for row in self.conn.execute(f"SELECT {ACTION_COLUMNS} FROM outbox "
                                     "WHERE state NOT IN ('delivered', 'damaged') ORDER BY seq"):
            try:
                _action_from_row(row)
            except (ValueError, TypeError) as e:
                seq, key, _, alert_id, *_ = row
                log.error("a queued action in the cache is damaged and will not be sent: "
                          "outbox key %r, alert %r: %s", key, alert_id, e)
                bad.append((seq, f"alert {alert_id!r:.40}", f"damaged, set aside: {e}"[:500]))
        if not bad:
            return
        with self._durable() as c:
            for seq, _, reason in bad:
                c.execute("UPDATE outbox SET state = 'damaged', detail = ? WHERE seq = ?",
                          (reason, seq))
                c.execute("INSERT INTO audit (at, operator, event, action, alert_id, key, detail) "
                          "SELECT ?, operator, 'damaged', action, alert_id, key, ? FROM outbox "
                          "WHERE seq = ?", (time.time(), reason, seq))
        actions = "action in the offline cache is" if len(bad) == 1 else \
            "actions in the offline cache are"
        self._notices["actions"] = (
            f"{len(bad)} queued operator {actions} damaged and will not be sent: "
            f"{', '.join(alert for _, alert, _ in bad)}. Check those alerts and act again "
            "where needed.")

    def actions(self, states: tuple[str, ...] = ("pending", "conflict", "rejected")) -> list[Action]:
        """Queued actions in these states, oldest first. A row that does not read back
        (damaged since load() set the others aside) is skipped, never sent."""
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(f"SELECT {ACTION_COLUMNS} FROM outbox WHERE state IN ({marks}) "
                                 "ORDER BY seq", states)
        return list(_decoded("outbox", rows, _action_from_row, []))

    def audit(self) -> list[tuple]:
        return self.conn.execute(
            "SELECT at, operator, event, action, alert_id, key, detail FROM audit ORDER BY seq"
        ).fetchall()

    # -- writing --------------------------------------------------------------

    def replace_all(self, picture: Picture, last_event_id: int, **meta) -> Changes:
        c = self.conn
        with c:
            c.execute("BEGIN")
            for table in ("wearers", "devices", "device_status", "alerts"):
                c.execute(f"DELETE FROM {table}")
            c.executemany("INSERT INTO wearers VALUES (?, ?, ?)",
                          [(w.id, w.ref, str(w.curfew) if w.curfew else None)
                           for w in picture.wearers])
            c.executemany("INSERT INTO devices VALUES (?, ?, ?)",
                          [(d.id, d.wearer_id, d.kind.value) for d in picture.devices])
            c.executemany("INSERT INTO device_status VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          [_status_row(s, last_event_id) for s in picture.statuses.values()])
            c.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [_alert_row(a, last_event_id) for a in picture.alerts.values()])
            self._set_meta(last_event_id=last_event_id, snapshot_at=time.time(),
                           snapshot_event_id=last_event_id, applied_since_snapshot=0, **meta)
        return Changes(picture=picture, last_event_id=last_event_id)

    def apply(self, events: list[Event]) -> Changes:
        """Apply decoded events in one transaction. Events at or below the last
        applied id are skipped, so a batch delivered twice changes nothing."""
        last = self.last_event_id
        changes = Changes(last_event_id=last)
        status_rows: dict[str, tuple] = {}
        for ev in events:
            if ev.id <= last:
                continue
            last = ev.id
            changes.applied += 1
            p = ev.payload
            if ev.type == "device.status":
                prior = changes.statuses.get(p.device_id)
                if prior is None or p.ts >= prior.ts:
                    changes.statuses[p.device_id] = p
                    status_rows[p.device_id] = _status_row(p, ev.id)
            elif p.is_open:
                changes.alerts[p.id] = p
                changes.closed.discard(p.id)
            else:
                changes.alerts.pop(p.id, None)
                changes.closed.add(p.id)
        c = self.conn
        with c:
            c.execute("BEGIN")
            # A status older than the one stored (a late, out-of-order report) loses.
            c.executemany(
                "INSERT INTO device_status VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET ts=excluded.ts, battery=excluded.battery, "
                "charging=excluded.charging, strap=excluded.strap, gps_fix=excluded.gps_fix, "
                "at_home=excluded.at_home, event_id=excluded.event_id WHERE excluded.ts >= ts",
                list(status_rows.values()))
            c.executemany("REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [_alert_row(a, last) for a in changes.alerts.values()])
            c.executemany("DELETE FROM alerts WHERE id = ?", [(i,) for i in changes.closed])
            # A running count, so anyone can check that no event was applied twice:
            # last_event_id - snapshot_event_id == applied_since_snapshot + rejected ones.
            c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? "
                      "WHERE key = 'applied_since_snapshot'", (changes.applied,))
            self._set_meta(last_event_id=last)
        changes.last_event_id = last
        return changes

    @contextlib.contextmanager
    def _durable(self):
        """A transaction that is on disk when it returns (synchronous=FULL), for
        operators' actions and their audit trail; the cache itself runs NORMAL."""
        c = self.conn
        c.execute("PRAGMA synchronous=FULL")
        try:
            with c:
                c.execute("BEGIN")
                yield c
        finally:
            c.execute("PRAGMA synchronous=NORMAL")

    def _audit(self, c: sqlite3.Connection, action: Action, event: str, detail: str | None) -> None:
        c.execute("INSERT INTO audit (at, operator, event, action, alert_id, key, detail) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (time.time(), action.operator, event, action.action, action.alert_id,
                   action.key, detail))

    def enqueue(self, action: Action) -> Changes:
        """Queue an operator's action and audit it in one durable transaction,
        before the UI may show it as done."""
        with self._durable() as c:
            cur = c.execute(
                "INSERT INTO outbox (key, action, alert_id, note, created_at, state, attempts, "
                "operator) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)",
                (action.key, action.action, action.alert_id, action.note, action.created_at,
                 action.operator))
            self._audit(c, action, "queued", action.note)
        queued = replace(action, state="pending", seq=cur.lastrowid)
        return Changes(actions={action.key: queued})

    def settle(self, key: str, state: str, detail: str | None, attempts: int) -> Changes:
        """Record the backend's answer to an action (or, while pending, the last error)."""
        with self._durable() as c:
            c.execute("UPDATE outbox SET state=?, detail=?, attempts=? WHERE key=?",
                      (state, detail, attempts, key))
            row = c.execute(f"SELECT {ACTION_COLUMNS} FROM outbox WHERE key=?", (key,)).fetchone()
            action = _action_from_row(row)
            if state != "pending":
                self._audit(c, action, state, detail)
        return Changes(actions={key: action})


ACTION_COLUMNS = "seq, key, action, alert_id, note, created_at, state, attempts, detail, operator"
LOGGED_PER_LOAD = 20  # damaged rows logged one by one; a ruined table is not 100,000 lines



def _status_row(s: DeviceStatus, event_id: int) -> tuple:
    return (s.device_id, s.ts, s.battery, int(s.charging), s.strap,
            None if s.gps_fix is None else int(s.gps_fix),
            None if s.at_home is None else int(s.at_home), event_id)


def _alert_row(a: Alert, event_id: int) -> tuple:
    history = orjson.dumps([[h.state.value, h.at, h.by, h.note] for h in a.history])
    return (a.id, a.wearer_id, a.device_id, a.type, a.raised_at, a.state.value, int(a.active),
            history.decode(), event_id)


# -- reading rows back --------------------------------------------------------------
# Each decoder checks every value it uses against what this console writes, and
# raises ValueError (or TypeError) for anything else: the caller skips that row.

LATEST = datetime(2100, 1, 1).timestamp()  # with EARLIEST: a flipped exponent or sign bit
META_NUMBERS = {"last_event_id": int, "snapshot_event_id": int, "applied_since_snapshot": int,
                "server_time": float, "clock_rate": float, "snapshot_at": float}
STRAPS = (None, "ok", "open")
ACTIONS = ("acknowledge",)  # what the console queues
ACTION_STATES = ("pending", "delivered", "conflict", "rejected")


class Damaged(ValueError):
    """A stored value that this console does not write."""


def _decoded(table: str, rows: Iterable[tuple], decode: Callable, damaged: list) -> Iterator:
    """Each row decoded; a damaged one is logged, added to `damaged` and skipped."""
    for row in rows:
        try:
            yield decode(row)
        except (ValueError, TypeError) as e:  # what the decoders raise for a bad value
            damaged.append((table, row[0]))
            if len(damaged) <= LOGGED_PER_LOAD:
                log.warning("skipped a damaged row of the cache: %s %r: %s", table, row[0], e)


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise Damaged(f"expected text, found {v!r:.40}")
    return v


def _opt_str(v: object) -> str | None:
    return None if v is None else _str(v)


def _number(v: object, low: float = -math.inf, high: float = math.inf) -> float:
    # type(), not isinstance(): True is an int. NaN fails the range check.
    if type(v) not in (int, float) or not low <= v <= high:
        raise Damaged(f"expected a number from {low} to {high}, found {v!r:.40}")
    return float(v)


def _time(v: object) -> float:
    return _number(v, EARLIEST, LATEST)


def _flag(v: object) -> bool:
    if type(v) is not int or v not in (0, 1):
        raise Damaged(f"expected 0 or 1, found {v!r:.40}")
    return bool(v)


def _opt_flag(v: object) -> bool | None:
    return None if v is None else _flag(v)


def _one_of(v: object, allowed: tuple) -> object:
    if v not in allowed:
        raise Damaged(f"expected one of {allowed}, found {v!r:.40}")
    return v


def _meta_from_row(r: tuple) -> tuple:
    key, value = r
    if key in META_NUMBERS and not 0 <= META_NUMBERS[key](_str(value)) < math.inf:
        raise Damaged(f"not a number: {value!r:.40}")
    return key, value


def _wearer_from_row(r: tuple) -> Wearer:
    id_, ref, curfew = r
    return Wearer(_str(id_), _str(ref), Curfew.parse(_opt_str(curfew)))


def _device_from_row(r: tuple) -> Device:
    id_, wearer_id, kind = r
    return Device(_str(id_), _str(wearer_id), DeviceKind(_str(kind)))


def _status_from_row(r: tuple) -> DeviceStatus:
    device_id, ts, battery, charging, strap, gps_fix, at_home = r
    return DeviceStatus(_str(device_id), _time(ts), _number(battery, 0, 100), _flag(charging),
                        _one_of(strap, STRAPS), _opt_flag(gps_fix), _opt_flag(at_home))


def _history_entry(e: object) -> HistoryEntry:
    if not isinstance(e, list) or len(e) != 4:
        raise Damaged(f"history entry {e!r:.60}")
    state, at, by, note = e
    return HistoryEntry(AlertState(state), _time(at), _opt_str(by), _opt_str(note))


def _alert_from_row(r: tuple) -> Alert:
    id_, wearer_id, device_id, type_, raised_at, state, active, history = r
    entries = orjson.loads(_str(history))
    if not isinstance(entries, list):
        raise Damaged(f"history is not a list: {history!r:.40}")
    return Alert(_str(id_), _str(wearer_id), _str(device_id), _str(type_), _time(raised_at),
                 AlertState(state), _flag(active), tuple(map(_history_entry, entries)))


def _action_from_row(r: tuple) -> Action:
    seq, key, action, alert_id, note, created_at, state, attempts, detail, operator = r
    if type(attempts) is not int or attempts < 0:
        raise Damaged(f"attempts: {attempts!r:.40}")
    return Action(_str(key), _one_of(action, ACTIONS), _str(alert_id), _opt_str(note),
                  _number(created_at), _one_of(state, ACTION_STATES), attempts,
                  _opt_str(detail), seq, _opt_str(operator))
