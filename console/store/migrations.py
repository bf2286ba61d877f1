"""The cache's schema, as the migrations that made each version of it: a cache is
migrated from its `user_version` up to SCHEMA_VERSION, and a table whose columns
are not what these made is not as this console made it (database.open_database)."""

from __future__ import annotations

import functools
import json

import sqlcipher3
import sqlite_utils

from console.store import audit

SCHEMA_VERSION = 7


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


def _migrate_3(db: sqlite_utils.Database) -> None:
    # Actions of every kind: the outbox holds each action's kind and its payload as
    # JSON instead of an acknowledgement's alert_id and note, and who queued it by
    # sign-in name (username), the stable identity its delivery is checked against.
    # The audit gets the sign-in name too, and an alert only for actions on one.
    # SQLite cannot change columns in place: each table is made anew, copied and
    # renamed, inside the migration's transaction (no sqlite-utils transform: it
    # commits on its own).
    conn = db.conn
    db["outbox_v3"].create(
        {"seq": int, "key": str, "kind": str, "payload": str, "created_at": float,
         "state": str, "attempts": int, "detail": str, "operator": str, "username": str},
        pk="seq", not_null={"key", "kind", "payload", "created_at", "state", "attempts"},
    )
    rows = conn.execute("SELECT seq, key, action, alert_id, note, created_at, state, attempts, "
                        "detail, operator FROM outbox ORDER BY seq").fetchall()
    conn.executemany(
        "INSERT INTO outbox_v3 (seq, key, kind, payload, created_at, state, attempts, detail, "
        "operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(seq, key, action, _v2_payload(alert_id, note), created_at, state, attempts, detail,
          operator)
         for seq, key, action, alert_id, note, created_at, state, attempts, detail, operator
         in rows])
    conn.execute("DROP TABLE outbox")
    conn.execute("ALTER TABLE outbox_v3 RENAME TO outbox")
    db["outbox"].create_index(["key"], unique=True)
    db["audit_v3"].create(
        {"seq": int, "at": float, "operator": str, "username": str, "event": str, "kind": str,
         "alert_id": str, "key": str, "detail": str},
        pk="seq", not_null={"at", "event", "kind", "key"},
    )
    conn.execute("INSERT INTO audit_v3 (seq, at, operator, event, kind, alert_id, key, detail) "
                 "SELECT seq, at, operator, event, action, alert_id, key, detail FROM audit")
    conn.execute("DROP TABLE audit")
    conn.execute("ALTER TABLE audit_v3 RENAME TO audit")


def _v2_payload(alert_id: object, note: object) -> str:
    """An acknowledgement's payload from a schema-2 row. A row whose values are not
    text (damaged) gets a payload that names its alert where it can and does not read
    back as an acknowledgement: it is then set aside and told, never sent or lost."""
    if isinstance(alert_id, str) and isinstance(note, str):
        return json.dumps({"alert_id": alert_id, "note": note}, ensure_ascii=False)
    return json.dumps({"alert_id": alert_id if isinstance(alert_id, str) else None,
                       "unreadable": f"schema 2 row: alert_id {alert_id!r:.60}, note {note!r:.60}"},
                      ensure_ascii=False)


def _migrate_4(db: sqlite_utils.Database) -> None:
    # Alerts are claimed by one operator, closed with an outcome and shelved for a
    # while; each history entry may carry the outcome it closed with.
    db["alerts"].add_column("holder", str)
    db["alerts"].add_column("outcome", str)
    db["alerts"].add_column("shelved_until", float)
    db["alerts"].add_column("shelved_reason", str)


def _migrate_5(db: sqlite_utils.Database) -> None:
    # When each alert's condition cleared, what its device last reported before it
    # (it routes faults before breaches), and the suspension it was raised under
    # (it never notifies). Alerts cached before say none of it, as a backend that
    # does not tell would.
    db["alerts"].add_column("cleared_at", float)
    db["alerts"].add_column("evidence", str)
    db["alerts"].add_column("suppressed", str)
    # The accumulated battery policy counts flat time over 7 days, also of alerts
    # closed since: each battery alert's span outlives the alert's row.
    db["battery_spans"].create({"alert_id": str, "device_id": str, "start": float, "end": float},
                               pk="alert_id", not_null={"device_id", "start"})
    db["battery_spans"].create_index(["device_id"])
    # Battery alerts cached before: a device still flat has been so since its alert
    # came. When a cleared one cleared was not kept, so it counts from the next
    # snapshot on, as the backend then says.
    db.conn.execute("INSERT INTO battery_spans SELECT id, device_id, raised_at, NULL FROM alerts "
                    "WHERE type = 'battery' AND active = 1")


def _migrate_6(db: sqlite_utils.Database) -> None:
    # The audit trail proves itself: each entry seals the one before it
    # (console/store/audit.py), and meta records the head, so that `em-console audit
    # verify` finds an entry changed, removed, added or moved. The entries so far
    # are sealed as they stand: the chain vouches for them from now on.
    db["audit"].add_column("prev", str)
    db["audit"].add_column("hash", str)
    conn = db.conn
    head = audit.Head(0, audit.GENESIS)
    rows = conn.execute(f"SELECT seq, {', '.join(audit.CACHE_FIELDS)} FROM audit ORDER BY seq")
    for seq, *values in rows.fetchall():
        digest = audit.entry_hash(seq, dict(zip(audit.CACHE_FIELDS, values, strict=True)), head.hash)
        conn.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", (head.hash, digest, seq))
        head = audit.Head(seq, digest)
    conn.execute("REPLACE INTO meta VALUES (?, ?)", (audit.HEAD_KEY, str(head)))


def _migrate_7(db: sqlite_utils.Database) -> None:
    # Trails fetched under a grant, kept at most a day (console/store/trails.py).
    db["trails"].create({"request_id": str, "wearer_id": str, "fetched_at": float,
                         "expires_at": float, "body": bytes},
                        pk="request_id", not_null={"wearer_id", "fetched_at", "expires_at", "body"})


MIGRATIONS = {1: _migrate_1, 2: _migrate_2, 3: _migrate_3, 4: _migrate_4, 5: _migrate_5,
              6: _migrate_6, 7: _migrate_7}


@functools.cache
def columns_made_by_migrations() -> dict[str, list[tuple]]:
    conn = sqlcipher3.connect(":memory:")
    db = sqlite_utils.Database(conn)
    for target in sorted(MIGRATIONS):
        MIGRATIONS[target](db)
    columns = {t: conn.execute(f"PRAGMA table_info([{t}])").fetchall() for t in db.table_names()}
    conn.close()
    return columns
