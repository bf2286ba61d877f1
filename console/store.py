"""The offline cache: SQLite through sqlite-utils, owned by one writer thread.

The store keeps what the console needs to show the last known picture at once:
wearers, devices, each device's latest status, open alerts with their history,
the operator's queued actions (the outbox) and the sync position.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field, replace
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
from console.protocol.wire import Event

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2


class CacheUnusable(Exception):
    pass


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """The one place a cache connection is opened: encryption at rest goes here."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
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
    state: str  # pending / delivered / conflict / rejected
    attempts: int = 0
    detail: str | None = None
    seq: int = 0
    operator: str | None = None


class Store:
    """Not thread-safe: one thread (the sync engine's writer) owns it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.notice: str | None = None  # told to the operator when the cache was replaced
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = self._open()
        except (CacheUnusable, sqlite3.DatabaseError) as e:
            aside = self._move_aside()
            self.notice = (f"The offline cache could not be used ({e}). It was moved to "
                           f"{aside.name} and a fresh cache is being built from the backend.")
            log.warning(self.notice)
            self.conn = self._open()
        self.db = sqlite_utils.Database(self.conn)

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CacheUnusable(f"its schema version {version} is newer than this "
                                    f"console's {SCHEMA_VERSION}")
            if version:
                check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if check != "ok":
                    raise CacheUnusable(f"integrity check failed: {check}")
            db = sqlite_utils.Database(conn)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with conn:
                    conn.execute("BEGIN")
                    MIGRATIONS[target](db)
                    conn.execute(f"PRAGMA user_version={target}")
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
        c = self.conn
        wearers = [Wearer(i, ref, Curfew.parse(cf)) for i, ref, cf in
                   c.execute("SELECT id, ref, curfew FROM wearers ORDER BY id")]
        devices = [Device(i, w, DeviceKind(k)) for i, w, k in
                   c.execute("SELECT id, wearer_id, kind FROM devices")]
        statuses = {
            r[0]: DeviceStatus(r[0], r[1], r[2], bool(r[3]), r[4], _opt_bool(r[5]), _opt_bool(r[6]))
            for r in c.execute("SELECT device_id, ts, battery, charging, strap, gps_fix, at_home "
                               "FROM device_status")
        }
        alerts = {r[0]: _alert_from_row(r) for r in c.execute(
            "SELECT id, wearer_id, device_id, type, raised_at, state, active, history FROM alerts")}
        return Picture(wearers, devices, statuses, alerts)

    def actions(self, states: tuple[str, ...] = ("pending", "conflict", "rejected")) -> list[Action]:
        marks = ",".join("?" * len(states))
        return [self._action(r) for r in self.conn.execute(
            f"SELECT {ACTION_COLUMNS} FROM outbox WHERE state IN ({marks}) ORDER BY seq", states)]

    def audit(self) -> list[tuple]:
        return self.conn.execute(
            "SELECT at, operator, event, action, alert_id, key, detail FROM audit ORDER BY seq"
        ).fetchall()

    @staticmethod
    def _action(r: tuple) -> Action:
        seq, *fields, operator = r
        return Action(*fields, seq=seq, operator=operator)

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
            action = self._action(row)
            if state != "pending":
                self._audit(c, action, state, detail)
        return Changes(actions={key: action})


ACTION_COLUMNS = "seq, key, action, alert_id, note, created_at, state, attempts, detail, operator"


def _opt_bool(v: int | None) -> bool | None:
    return None if v is None else bool(v)


def _status_row(s: DeviceStatus, event_id: int) -> tuple:
    return (s.device_id, s.ts, s.battery, int(s.charging), s.strap,
            None if s.gps_fix is None else int(s.gps_fix),
            None if s.at_home is None else int(s.at_home), event_id)


def _alert_row(a: Alert, event_id: int) -> tuple:
    history = orjson.dumps([[h.state.value, h.at, h.by, h.note] for h in a.history])
    return (a.id, a.wearer_id, a.device_id, a.type, a.raised_at, a.state.value, int(a.active),
            history.decode(), event_id)


def _alert_from_row(r: tuple) -> Alert:
    history = tuple(HistoryEntry(AlertState(s), at, by, note)
                    for s, at, by, note in orjson.loads(r[7]))
    return Alert(r[0], r[1], r[2], r[3], r[4], AlertState(r[5]), bool(r[6]), history)
