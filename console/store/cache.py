"""The offline cache: SQLite through sqlite-utils, owned by one writer thread.

The store keeps what the console needs to show the last known picture at once:
wearers, devices, each device's latest status, open alerts with their history,
the operator's queued actions (the outbox) and the sync position. Each table group
has its module (fleet, alerts, outbox); this class opens the cache and composes them.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import msgspec
import sqlcipher3
import sqlite_utils

from console.changes import BatterySpans, Changes, Event, Picture
from console.domain import DAY, WINDOW, Alert, Span
from console.domain.access import KnownOperator
from console.domain.actions import Action, ActionState
from console.domain.battery import counts
from console.domain.trails import Trail, TrailRequest
from console.store import audit, outbox, trails, undelivered
from console.store.alerts import (
    ALERT_COLUMNS,
    ALERT_ROW,
    ALERT_WIDTH,
    alert_from_row,
    alert_row,
    battery_span_row,
    span_from_row,
)
from console.store.database import (
    PLAINTEXT_HEADER,
    SCHEMA_VERSION,
    CacheLock,
    CacheUnusable,
    connect,
    durable,
    file_header,
    insert_rows,
    move_aside,
    open_database,
    open_file,
    owner_only,
)
from console.store.fleet import (
    STATUS_COLUMNS,
    device_from_row,
    meta_from_row,
    status_from_row,
    status_row,
    wearer_from_row,
)
from console.store.keys import KEYRING, CacheKeys, KeyUnavailable
from console.store.rows import LOGGED_PER_LOAD, decoded

log = logging.getLogger(__name__)

RESTARTED = "restarted"  # the audit event that begins a new chain in a fresh cache
CHAINED_SINCE = 6  # the schema version that hash-chains the audit trail


class Store:
    """Not thread-safe: one thread (the sync engine's writer) owns it."""

    def __init__(self, path: str | os.PathLike, keys: CacheKeys = KEYRING):
        """Raises CacheInUse if another console has the cache open, KeyUnavailable
        (console/store/keys.py) if its key cannot be had."""
        self.path = Path(path)
        # Told to the operator: the cache was replaced, or damaged rows were skipped.
        self._notices: dict[str, str] = {}
        self._lock = CacheLock(self.path)
        try:
            owner_only(self.path)
            try:
                self.conn = open_database(self.path, keys)
            # SQLite's message about a damaged schema can itself be undecodable.
            except (CacheUnusable, sqlcipher3.DatabaseError, UnicodeDecodeError) as e:
                aside = move_aside(self.path)
                self._notices["replaced"] = (
                    f"The offline cache could not be used ({e}). It was moved to {aside.name} "
                    "and a fresh cache is being built from the backend.")
                self.conn = open_database(self.path, keys)
                self._begin_new_trail(aside, e, keys)
                self._notices["carried"] = self._carry_over(aside, keys)
                log.warning(self.notice)
            self._undelivered: undelivered.Undelivered | None = None
            self._record_undelivered()
        except BaseException:
            self._lock.release()
            raise
        self.db = sqlite_utils.Database(self.conn)

    @property
    def notice(self) -> str | None:
        return " ".join(n for n in self._notices.values() if n) or None

    def _begin_new_trail(self, aside: Path, why: Exception, keys: CacheKeys) -> None:
        """The fresh cache's audit trail is a new chain: its first entry says why, and
        names the file moved aside and where that file's chain ended, so that a
        verifier sees a reset rather than a short trail."""
        try:
            old = self._open_aside(aside, keys)
            try:
                head = audit.recorded_head(old)
            finally:
                old.close()
            ended = f"its audit trail ended at entry #{head.entries}, hash {head.hash}" if head \
                else "it recorded no audit trail head"
        except (sqlcipher3.Error, UnicodeDecodeError) as e:
            ended = f"its audit trail could not be read ({e})"
        detail = f"the previous cache could not be used ({why}) and was moved aside; {ended}"
        with durable(self.conn) as c:
            audit.append(c, {"at": time.time(), "operator": None, "username": None,
                             "event": RESTARTED, "kind": "cache", "alert_id": None,
                             "key": aside.name, "detail": detail})

    def _carry_over(self, aside: Path, keys: CacheKeys) -> str:
        """The backend rebuilds everything in a cache but the operators' queued
        actions: take those that still read from the unusable file into the new one,
        under their own keys, so that each still reaches the backend exactly once."""
        try:
            old = self._open_aside(aside, keys)
            try:
                queued = outbox.actions(old, (ActionState.PENDING,))
            finally:
                old.close()
        except sqlcipher3.Error as e:
            return (f"Its queued actions could not be read ({e}): they were not sent, and "
                    f"stay in {aside.name}.")
        for action in queued:
            outbox.enqueue(self.conn, action)
        n = len(queued)
        return f"{n} queued {'action was' if n == 1 else 'actions were'} carried over." if n else ""

    def _open_aside(self, aside: Path, keys: CacheKeys) -> sqlcipher3.Connection:
        """The unusable file moved aside, as it is: encrypted with this cache's key
        (the key stays the path's), or plaintext if it was an older console's that
        could not be encrypted."""
        plaintext = file_header(aside) == PLAINTEXT_HEADER
        return open_file(aside, None if plaintext else keys.key(self.path, create=False))

    def close(self) -> None:
        self.conn.close()
        self._lock.release()

    # -- meta -----------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    # Who an operator is, as the backend names them, by sign-in name: an operator
    # who signs in offline is checked against the verifier of the password the
    # backend last accepted here, and acts, and holds alerts, under the name and
    # roles the backend gave them then.
    def remember_operator(self, username: str, known: KnownOperator) -> None:
        """`known.verifier` None keeps the one remembered (a sign-in nobody typed)."""
        if known.verifier is None and (before := self.known_operator(username)):
            known = replace(known, verifier=before.verifier)
        elif known.verifier is not None:  # a password the backend accepted: guesses start over
            self.set_offline_failures(username, 0, 0.0)
        with self.conn:
            self.conn.execute("REPLACE INTO meta VALUES (?, ?)",
                              (f"operator:{username}", msgspec.json.encode(known).decode()))

    def known_operator(self, username: str) -> KnownOperator | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?",
                                (f"operator:{username}",)).fetchone()
        try:
            return msgspec.json.decode(row[0], type=KnownOperator) if row else None
        except (msgspec.DecodeError, TypeError):  # a bare name, from before verifiers
            return None

    # Wrong passwords checked against an operator's verifier, in a row (access.offline_wait).
    def offline_failures(self, username: str) -> tuple[int, float]:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?",
                                (f"offline_failures:{username}",)).fetchone()
        count, _, last = (row[0] if row and isinstance(row[0], str) else "").partition(" ")
        try:
            return int(count), float(last)
        except ValueError:  # none recorded (or unreadable: none)
            return 0, 0.0

    def set_offline_failures(self, username: str, count: int, last: float) -> None:
        with self.conn:
            if count:
                self.conn.execute("REPLACE INTO meta VALUES (?, ?)",
                                  (f"offline_failures:{username}", f"{count} {last}"))
            else:
                self.conn.execute("DELETE FROM meta WHERE key = ?", (f"offline_failures:{username}",))

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
            return decoded(table, self.conn.execute(sql), decode, damaged)

        meta = dict(rows("meta", "SELECT key, value FROM meta", meta_from_row))
        wearers = list(rows("wearers", "SELECT id, ref, curfew FROM wearers ORDER BY id",
                            wearer_from_row))
        devices = list(rows("devices", "SELECT id, wearer_id, kind FROM devices", device_from_row))
        statuses = {s.device_id: s for s in rows(
            "device_status", f"SELECT {STATUS_COLUMNS} FROM device_status", status_from_row)}
        alerts = {a.id: a for a in rows(
            "alerts", f"SELECT {ALERT_COLUMNS} FROM alerts", alert_from_row)}
        battery = self._battery_spans(damaged=damaged)
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
        damaged_actions = outbox.set_aside_damaged(self.conn)
        if damaged_actions:
            self._notices["actions"] = damaged_actions
            self._record_undelivered()
        return Picture(wearers, devices, statuses, alerts, battery)

    def _battery_spans(self, devices: set[str] | None = None,
                       damaged: list | None = None) -> BatterySpans:
        """The stored flat-battery spans of these devices (all without), by device.
        Reading them all first forgets those ended over a window before the newest:
        the policy counts 7 days, and the store takes no clock."""
        c = self.conn
        if devices is None:
            with c:
                c.execute("DELETE FROM battery_spans WHERE end < "
                          "(SELECT max(start) FROM battery_spans) - ?", (WINDOW + DAY,))
            found = c.execute("SELECT alert_id, device_id, start, end FROM battery_spans")
        else:
            found = c.execute("SELECT alert_id, device_id, start, end FROM battery_spans WHERE "
                              "device_id IN (SELECT value FROM json_each(?))",
                              (msgspec.json.encode(sorted(devices)).decode(),))
        out: dict[str, list[Span]] = {d: [] for d in devices or ()}
        for device, span in decoded("battery_spans", found, span_from_row,
                                    [] if damaged is None else damaged):
            out.setdefault(device, []).append(span)
        return {d: tuple(sorted(spans, key=lambda s: s.start)) for d, spans in out.items()}

    def _keep_battery_spans(self, alerts) -> set[str]:
        """Store the spans of the battery alerts among these while their flat time
        counts towards the policy, and forget them once it does not; the devices
        touched."""
        battery = [a for a in alerts if a.type == "battery"]
        insert_rows(self.conn, "INSERT OR REPLACE INTO battery_spans", 4,
                    [battery_span_row(a) for a in battery if counts(a)])
        gone = [a.id for a in battery if not counts(a)]
        if gone:
            self.conn.execute("DELETE FROM battery_spans WHERE alert_id IN "
                              "(SELECT value FROM json_each(?))", (msgspec.json.encode(gone).decode(),))
        return {a.device_id for a in battery}

    # -- writing --------------------------------------------------------------

    def replace_all(self, picture: Picture, last_event_id: int, **meta) -> Changes:
        c = self.conn
        with c:
            c.execute("BEGIN")
            for table in ("wearers", "devices", "device_status", "alerts"):
                c.execute(f"DELETE FROM {table}")
            insert_rows(c, "INSERT INTO wearers", 3,
                        [(w.id, w.ref, str(w.curfew) if w.curfew else None)
                         for w in picture.wearers])
            insert_rows(c, "INSERT INTO devices", 3,
                        [(d.id, d.wearer_id, d.kind.value) for d in picture.devices])
            insert_rows(c, "INSERT INTO device_status", 8,
                        [status_row(s, last_event_id) for s in picture.statuses.values()])
            insert_rows(c, f"INSERT INTO alerts ({ALERT_ROW})", ALERT_WIDTH,
                        [alert_row(a, last_event_id) for a in picture.alerts.values()])
            # Battery spans are history a snapshot does not carry: kept, and added to.
            self._keep_battery_spans(picture.alerts.values())
            self._set_meta(last_event_id=last_event_id, snapshot_at=time.time(),
                           snapshot_event_id=last_event_id, applied_since_snapshot=0, **meta)
        picture.battery = self._battery_spans()
        return Changes(picture=picture, last_event_id=last_event_id)

    def apply(self, events: list[Event]) -> Changes:
        """Apply decoded events in one transaction. Events at or below the last
        applied id are skipped, so a batch delivered twice changes nothing."""
        last = self.last_event_id
        changes = Changes(last_event_id=last)
        status_ids: dict[str, int] = {}  # the event that brought each device's newest status
        battery: dict[str, Alert] = {}  # battery alerts, open or closed, by id: their spans
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
                    status_ids[p.device_id] = ev.id
            else:
                if p.type == "battery":
                    battery[p.id] = p
                if p.is_open:
                    changes.alerts[p.id] = p
                    changes.closed.discard(p.id)
                else:
                    changes.alerts.pop(p.id, None)
                    changes.closed.add(p.id)
        c = self.conn
        with c:
            c.execute("BEGIN")
            # A status older than the one stored (a late, out-of-order report) loses.
            insert_rows(
                c, "INSERT INTO device_status", 8,
                [status_row(s, status_ids[d]) for d, s in changes.statuses.items()],
                "ON CONFLICT(device_id) DO UPDATE SET ts=excluded.ts, battery=excluded.battery, "
                "charging=excluded.charging, strap=excluded.strap, gps_fix=excluded.gps_fix, "
                "at_home=excluded.at_home, event_id=excluded.event_id WHERE excluded.ts >= ts")
            insert_rows(c, f"INSERT OR REPLACE INTO alerts ({ALERT_ROW})", ALERT_WIDTH,
                        [alert_row(a, last) for a in changes.alerts.values()])
            if changes.closed:
                c.execute("DELETE FROM alerts WHERE id IN (SELECT value FROM json_each(?))",
                          (msgspec.json.encode(list(changes.closed)).decode(),))
            if battery:
                changes.battery = self._battery_spans(self._keep_battery_spans(battery.values()))
            # A running count, so anyone can check that no event was applied twice:
            # last_event_id - snapshot_event_id == applied_since_snapshot + rejected ones.
            c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? "
                      "WHERE key = 'applied_since_snapshot'", (changes.applied,))
            self._set_meta(last_event_id=last)
        changes.last_event_id = last
        return changes

    # -- operators' actions (console/store/outbox.py) ---------------------------

    def actions(self, states: tuple[ActionState, ...] = outbox.SHOWN) -> list[Action]:
        """Actions in these states, oldest first: by default those the UI shows
        (queued, and refused ones the operator must look at)."""
        return outbox.actions(self.conn, states)

    def audit(self) -> list[outbox.AuditEntry]:
        return outbox.audit(self.conn)

    def enqueue(self, action: Action) -> Changes:
        changes = outbox.enqueue(self.conn, action)
        self._record_undelivered()
        return changes

    def settle(self, key: str, state: ActionState, detail: str | None, attempts: int) -> Changes:
        changes = outbox.settle(self.conn, key, state, detail, attempts)
        self._record_undelivered()
        return changes

    # -- trails (console/store/trails.py) -----------------------------------------

    def trail_viewed(self, request: TrailRequest, trail: Trail | None, operator: str | None,
                     username: str | None, now: float) -> None:
        trails.viewed(self.conn, request, trail, operator, username, now)

    def trail_exported(self, request: TrailRequest, report: str, operator: str | None,
                       username: str | None) -> None:
        trails.exported(self.conn, request, report, operator, username)

    def cached_trail(self, request_id: str, now: float) -> Trail | None:
        return trails.cached(self.conn, request_id, now)

    def sweep_trails(self, now: float) -> int:
        return trails.sweep(self.conn, now)

    def _record_undelivered(self) -> None:
        """Say beside the cache what its outbox holds undelivered, readable without
        the key (console/store/undelivered.py), whenever that changes."""
        now = outbox.undelivered(self.conn)
        if now != self._undelivered:
            undelivered.record(self.path, now)
            self._undelivered = now



def verify_audit(path: str | os.PathLike, keys: CacheKeys = KEYRING) -> tuple[int, list[str]]:
    """`em-console audit verify`: 0 and a line when the cache's audit trail holds, 1
    and where it breaks, 2 and why the cache cannot be read. It opens the cache
    read-only and without its lock, beside a console that may hold it: one read
    transaction sees the trail and its head as of one moment."""
    path = Path(path)
    if not path.is_file():
        return 2, [f"{path}: no such cache file"]
    try:
        conn = connect(path, keys, read_only=True)
        try:
            conn.execute("BEGIN")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if not CHAINED_SINCE <= version <= SCHEMA_VERSION:
                return 2, [f"{path}: {_unchained(version)}"]
            entries, head = audit.read(conn, audit.CACHE_FIELDS)
        finally:
            conn.close()
    except KeyUnavailable as e:  # no key for it, or no keyring to ask
        return 2, [f"{path}: {e}"]
    except (sqlcipher3.Error, CacheUnusable, UnicodeDecodeError) as e:
        return 2, [f"{path}: not readable as a console's cache ({e})"]
    intact, line = audit.verdict(entries, head)
    lines = [line]
    if entries and entries[0].fields["event"] == RESTARTED:
        first = entries[0].fields
        lines.append(f"it begins a new chain (entry #1, {first['key']}): {first['detail']}")
    return (0 if intact else 1), lines


def _unchained(version: int) -> str:
    if version == 0:
        return "not a console's cache (it has no schema version)"
    if version > SCHEMA_VERSION:
        return f"its schema version {version} is newer than this console's {SCHEMA_VERSION}"
    return (f"its schema version {version} predates the audit chain (version {CHAINED_SINCE}): "
            "the console chains its trail when it next opens it")
