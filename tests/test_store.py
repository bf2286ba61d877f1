"""The offline cache: schema, idempotent batches, the outbox, and recovery from bad files."""

import pytest
import sqlcipher3
from hypothesis import given, settings
from hypothesis import strategies as st

from console.changes import Event, Picture
from console.domain import (
    Alert,
    AlertState,
    Device,
    DeviceKind,
    DeviceStatus,
    Evidence,
    HistoryEntry,
    Outcome,
    Span,
    SuspensionReason,
    Wearer,
    claim,
    close,
    return_to_normal,
)
from console.domain.actions import Acknowledge, Action, ActionKind, ActionState
from console.domain.battery import span_of
from console.store import SCHEMA_VERSION, Store, connect
from console.store.database import PLAINTEXT_HEADER

T = 1_795_000_000.0


def picture(n=3) -> Picture:
    return Picture(
        wearers=[Wearer(f"W{i}", f"EM-{i}") for i in range(n)],
        devices=[Device(f"D{i}", f"W{i}", DeviceKind.GPS) for i in range(n)],
        statuses={f"D{i}": DeviceStatus(f"D{i}", T, 50.0, False, "ok", True, True) for i in range(n)},
        alerts={},
    )


def status(n, ts, battery):
    return DeviceStatus(f"D{n}", ts, battery, False, "ok", True, None)


def raised(id_, state=AlertState.UNACKNOWLEDGED, active=True):
    return Alert(id_, "W1", "D1", "battery", T, state, active)


def ack(key, alert_id, note, **kw) -> Action:
    return Action(key, ActionKind.ACKNOWLEDGE, Acknowledge(alert_id, note), T,
                  ActionState.PENDING, **kw)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "cache.db")
    s.replace_all(picture(), 10, stream_id="s1")
    yield s
    s.close()


def test_schema_is_explicit_versioned_and_in_wal_mode(store):
    types = {row[1]: row[2] for row in store.conn.execute("PRAGMA table_info(device_status)")}
    assert types["battery"] == "REAL" and types["ts"] == "REAL" and types["charging"] == "INTEGER"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_batch_applied_twice_changes_nothing_the_second_time(store):
    events = [Event(11, "device.status", status(1, T + 60, 40.0)),
              Event(12, "alert.raised", raised("A1")),
              Event(13, "device.status", status(1, T + 120, 39.0))]
    first = store.apply(events)
    second = store.apply(events)
    assert first.applied == 3 and second.applied == 0
    assert store.last_event_id == 13
    meta = store.meta()
    assert int(meta["applied_since_snapshot"]) == 13 - int(meta["snapshot_event_id"]) == 3
    assert store.load().statuses["D1"].battery == 39.0  # coalesced to the latest
    assert list(store.load().alerts) == ["A1"]


# Text as the wire admits it: valid Unicode, no NUL (SQLite's JSON ends a string there).
WIRE_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                    min_size=1, max_size=20)
# A battery's share, down to magnitudes no device reports: SQLite 3.51 (SQLCipher's)
# reads text below about 1e-90 back an ulp or so off (store.database.insert_rows).
BATTERY = st.just(0.0) | st.floats(1e-80, 100)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.tuples(BATTERY, st.floats(T, T + 1e6), WIRE_TEXT),
                       min_size=1, max_size=20))
def test_what_is_written_in_one_statement_reads_back_bit_for_bit(tmp_path_factory, values):
    """Rows go into SQLite as one JSON array (store.database.insert_rows): each float
    must come back as the same double, each text as text, each None as NULL."""
    store = Store(tmp_path_factory.mktemp("c") / "cache.db")
    try:
        ids = [f"{text}{i}" for i, (_, _, text) in enumerate(values)]
        store.replace_all(Picture(
            wearers=[Wearer(i, "007" + i, None) for i in ids],
            devices=[Device(i, i, DeviceKind.RF) for i in ids],
            statuses={i: DeviceStatus(i, ts, battery, True, None, None, False)
                      for i, (battery, ts, _) in zip(ids, values, strict=True)},
            alerts={}), 1)
        events = [Event(2 + n, "device.status", DeviceStatus(i, ts + 1, battery / 3, False, "open",
                                                          True, None))
                  for n, (i, (battery, ts, _)) in enumerate(zip(ids, values, strict=True))]
        store.apply(events)
        loaded = store.load()
        assert sorted(w.ref for w in loaded.wearers) == sorted("007" + i for i in ids)  # text
        assert loaded.statuses == {e.payload.device_id: e.payload for e in events}
    finally:
        store.close()


def test_a_late_out_of_order_status_does_not_overwrite_a_newer_one(store):
    store.apply([Event(11, "device.status", status(2, T + 600, 20.0))])
    store.apply([Event(12, "device.status", status(2, T + 300, 90.0))])
    assert store.load().statuses["D2"].battery == 20.0


def test_closed_alerts_leave_the_store(store):
    store.apply([Event(11, "alert.raised", raised("A1")), Event(12, "alert.raised", raised("A2"))])
    changes = store.apply([Event(13, "alert.cleared", raised("A1", AlertState.CLOSED, False))])
    assert changes.closed == {"A1"}
    assert list(store.load().alerts) == ["A2"]


def test_an_alerts_handling_evidence_and_suppression_read_back_as_written(tmp_path, store):
    handled = Alert("A7", "W1", "D1", "strap_tamper", T, AlertState.IN_WORK, False, (
        HistoryEntry(AlertState.UNACKNOWLEDGED, T),
        HistoryEntry(AlertState.CLAIMED, T + 60, "Ann", "taken over from Bob"),
        HistoryEntry(AlertState.CLOSED, T + 90, "Ann", "spoke to him", Outcome.FALSE_ALARM),
    ), holder="Ann", outcome=None, shelved_until=T + 3600, shelved_reason="engineer booked",
        cleared_at=T + 30, evidence=Evidence(at_home=None, charging=True),
        suppressed=SuspensionReason.HOSPITAL)
    store.apply([Event(11, "alert.updated", handled)])
    store.close()
    again = Store(tmp_path / "cache.db")
    try:
        assert again.load().alerts == {"A7": handled}
    finally:
        again.close()


def test_a_version_3_cache_reads_its_alerts_after_migration(tmp_path, store):
    store.apply([Event(11, "alert.raised", raised("A1"))])
    conn = store.conn
    # A schema-3 cache: history entries of four items, no handling columns, and
    # nothing of schema 5 (when the condition cleared, evidence, suppression, spans)
    # or 6 (the audit trail's chain) or 7 (trails).
    conn.execute("DROP TABLE battery_spans")
    conn.execute("DROP TABLE trails")
    for column in ("prev", "hash"):
        conn.execute(f"ALTER TABLE audit DROP COLUMN {column}")
    for column in ("holder", "outcome", "shelved_until", "shelved_reason", "cleared_at",
                   "evidence", "suppressed"):
        conn.execute(f"ALTER TABLE alerts DROP COLUMN {column}")
    conn.execute("UPDATE alerts SET history = ?", (f'[["unacknowledged", {T!r}, null, null]]',))
    conn.execute("PRAGMA user_version=3")
    store.close()
    again = Store(tmp_path / "cache.db")
    try:
        alert = again.load().alerts["A1"]
        assert alert.history == (HistoryEntry(AlertState.UNACKNOWLEDGED, T),)
        assert alert.holder is None and alert.outcome is None and alert.shelved_until is None
        assert alert.evidence is None and alert.suppressed is None and alert.cleared_at is None
        # Still flat when the cache was upgraded: flat since it was raised.
        assert again.load().battery == {"D1": (Span(T),)}
    finally:
        again.close()


def test_a_queued_action_survives_reopening_and_settles(tmp_path, store):
    store.enqueue(ack("k1", "A1", "called", operator="Ann", username="ann"))
    store.close()
    reopened = Store(tmp_path / "cache.db")
    [queued] = reopened.actions((ActionState.PENDING,))
    assert (queued.key, queued.kind, queued.payload) == \
        ("k1", ActionKind.ACKNOWLEDGE, Acknowledge("A1", "called"))
    assert (queued.operator, queued.username, queued.alert_id) == ("Ann", "ann", "A1")
    reopened.settle("k1", ActionState.CONFLICT, "already closed", 1)
    assert reopened.actions((ActionState.PENDING,)) == []
    assert reopened.actions()[0].detail == "already closed"
    assert reopened.actions()[0].state is ActionState.CONFLICT
    with pytest.raises(sqlcipher3.IntegrityError):  # one key, one action
        reopened.enqueue(ack("k1", "A2", "x"))
    reopened.close()


def test_the_outbox_stores_each_actions_kind_and_its_payload_as_json(store):
    store.enqueue(ack("k1", "A1", "called \u2014 at home"))
    assert store.conn.execute("SELECT kind, payload FROM outbox").fetchall() == \
        [("acknowledge", '{"alert_id":"A1","note":"called \u2014 at home"}')]
    types = {row[1]: row[2] for row in store.conn.execute("PRAGMA table_info(outbox)")}
    assert types == {"seq": "INTEGER", "key": "TEXT", "kind": "TEXT", "payload": "TEXT",
                     "created_at": "REAL", "state": "TEXT", "attempts": "INTEGER",
                     "detail": "TEXT", "operator": "TEXT", "username": "TEXT"}


def _garbage_after_a_plaintext_header(path):
    """An older console's cache that is not a database past its header: it cannot
    be encrypted (a file that no key opens is a question: tests/test_encryption.py)."""
    path.write_bytes(PLAINTEXT_HEADER + b"this is not a database at all" * 100)


def _first_page_flipped(path):
    """One bit of the encrypted first page: it fails its check, the others pass."""
    Store(path).close()
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(data)


def _truncated(path):
    s = Store(path)
    s.replace_all(picture(2000), 5)
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _newer(path):
    conn = connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()


@pytest.mark.parametrize("spoil", [_garbage_after_a_plaintext_header, _first_page_flipped,
                                   _truncated, _newer])
def test_an_unusable_cache_is_moved_aside_and_a_fresh_one_built(tmp_path, spoil):
    path = tmp_path / "cache.db"
    spoil(path)
    store = Store(path)
    assert store.notice and "moved to" in store.notice
    assert store.last_event_id == 0 and store.load().wearers == []
    aside = [p for p in tmp_path.iterdir() if ".unusable-" in p.name]
    assert aside, "the unusable file is kept for inspection"
    store.replace_all(picture(), 3)
    assert len(store.load().wearers) == 3
    store.close()


def test_queued_actions_in_an_unusable_cache_are_carried_into_the_fresh_one(tmp_path):
    """The backend rebuilds a replaced cache, but not the operator's unsent acts."""
    path = tmp_path / "cache.db"
    store = Store(path)
    store.enqueue(ack("k1", "A1", "called wearer", operator="Ann", username="ann"))
    store.enqueue(ack("k2", "A2", "sent already"))
    store.settle("k2", ActionState.DELIVERED, None, 1)
    store.close()
    _newer(path)
    store = Store(path)
    try:
        assert "moved to" in store.notice and "1 queued action was carried over" in store.notice
        [carried] = store.actions((ActionState.PENDING,))
        assert (carried.key, carried.payload, carried.operator) == ("k1", Acknowledge(
            "A1", "called wearer"), "Ann")  # the same key: delivered at most once
        assert [a.key for a in store.actions((ActionState.DELIVERED,))] == []
    finally:
        store.close()


def test_queued_actions_that_cannot_be_read_are_said_to_stay_in_the_unusable_file(tmp_path):
    path = tmp_path / "cache.db"
    Store(path).close()
    conn = connect(path)
    conn.execute("DROP TABLE outbox")
    conn.close()
    _newer(path)
    store = Store(path)
    try:
        assert "queued actions could not be read (no such table: outbox)" in store.notice
        assert ".unusable-" in store.notice.rsplit("stay in", 1)[1]
        assert store.actions() == []
    finally:
        store.close()


def test_every_action_is_audited_with_its_operator_in_the_same_write(store):
    store.enqueue(ack("k9", "A1", "called", operator="Ann", username="ann"))
    store.settle("k9", ActionState.PENDING, "ConnectError", 1)  # a retry is not an outcome
    store.settle("k9", ActionState.DELIVERED, None, 2)
    trail = [(e.operator, e.username, e.event, e.kind, e.alert_id, e.key)
             for e in store.audit()]
    assert trail == [("Ann", "ann", "queued", "acknowledge", "A1", "k9"),
                     ("Ann", "ann", "delivered", "acknowledge", "A1", "k9")]
    # What was queued is on record whole: the payload as it went into the outbox.
    assert store.audit()[0].detail == '{"alert_id":"A1","note":"called"}'


def test_a_version_1_cache_is_migrated_without_losing_queued_actions(tmp_path):
    import sqlite_utils

    from console.store.migrations import _migrate_1

    conn = connect(tmp_path / "old.db")
    _migrate_1(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO outbox (key, action, alert_id, note, created_at, state, attempts) "
                 "VALUES ('k1', 'acknowledge', 'A1', 'n', 1, 'pending', 0)")
    conn.close()
    store = Store(tmp_path / "old.db")
    assert store.notice is None
    assert [a.key for a in store.actions((ActionState.PENDING,))] == ["k1"]
    assert store.audit() == []
    store.close()


def test_a_version_2_cache_is_migrated_keeping_every_action_and_its_audit(tmp_path):
    import sqlite_utils

    from console.store.migrations import _migrate_1, _migrate_2

    conn = connect(tmp_path / "v2.db")
    db = sqlite_utils.Database(conn)
    _migrate_1(db)
    _migrate_2(db)
    conn.execute("PRAGMA user_version=2")
    rows = [  # as a version-2 console left them: one per state, and one damaged
        ("k1", "A1", "called the wearer", 100.0, "delivered", 1, None, "Demo Operator"),
        ("k2", "A2", "on my way", 101.0, "pending", 3, "ConnectError: refused", "demo"),
        ("k3", "A3", "seen", 102.0, "conflict", 1, "alert A3 is closed", "Demo Operator"),
        ("k4", "A4", "seen \u2014 twice", 103.0, "pending", 0, None, None),
        ("k5", "A5", b"\xff", 104.0, "pending", 0, None, "Demo Operator"),
    ]
    conn.executemany("INSERT INTO outbox (key, action, alert_id, note, created_at, state, "
                     "attempts, detail, operator) VALUES (?, 'acknowledge', ?, ?, ?, ?, ?, ?, ?)",
                     rows)
    audit = [(90.0, "Demo Operator", "queued", "acknowledge", "A1", "k1", "called the wearer"),
             (95.0, "Demo Operator", "delivered", "acknowledge", "A1", "k1", None),
             (96.0, "demo", "queued", "acknowledge", "A2", "k2", "on my way")]
    conn.executemany("INSERT INTO audit (at, operator, event, action, alert_id, key, detail) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", audit)
    conn.close()

    store = Store(tmp_path / "v2.db")
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.load()  # sets the damaged one aside, and says so
    assert "1 queued operator action in the offline cache is damaged" in store.notice
    assert "alert 'A5'" in store.notice
    every = {a.key: a for a in store.actions(tuple(ActionState)[:4])}
    assert {k: (a.kind, a.payload, a.created_at, a.state, a.attempts, a.detail, a.operator,
                a.username) for k, a in every.items()} == {
        "k1": (ActionKind.ACKNOWLEDGE, Acknowledge("A1", "called the wearer"), 100.0,
               ActionState.DELIVERED, 1, None, "Demo Operator", None),
        "k2": (ActionKind.ACKNOWLEDGE, Acknowledge("A2", "on my way"), 101.0,
               ActionState.PENDING, 3, "ConnectError: refused", "demo", None),
        "k3": (ActionKind.ACKNOWLEDGE, Acknowledge("A3", "seen"), 102.0,
               ActionState.CONFLICT, 1, "alert A3 is closed", "Demo Operator", None),
        "k4": (ActionKind.ACKNOWLEDGE, Acknowledge("A4", "seen \u2014 twice"), 103.0,
               ActionState.PENDING, 0, None, None, None),
    }
    assert [a.key for a in store.actions((ActionState.PENDING,))] == ["k2", "k4"]  # in order
    assert [a.seq for a in every.values()] == [1, 2, 3, 4]
    trail = [(e.at, e.operator, e.event, e.kind, e.alert_id, e.key, e.detail)
             for e in store.audit()]
    assert trail[:3] == audit and trail[3][1:6] == ("Demo Operator", "damaged", "acknowledge",
                                                    "A5", "k5")
    # Actions queued from now on are numbered after the old ones.
    changes = store.enqueue(ack("k6", "A6", "new"))
    assert changes.actions["k6"].seq == 6
    store.close()
    # Migrated once: a second start changes nothing.
    reopened = Store(tmp_path / "v2.db")
    reopened.load()
    assert reopened.notice is None and len(reopened.audit()) == 5
    reopened.close()


def test_queued_actions_wait_for_the_operator_who_queued_them():
    mine = ack("k1", "A1", "n", operator="Demo Operator", username="demo")
    assert mine.queued_by("demo", "Demo Operator")
    assert not mine.queued_by("demo2", "Demo Operator")  # the same name is not the same person
    assert not mine.queued_by(None, None)  # nobody is signed in
    assert mine.waiting_detail == "waits for Demo Operator (demo) to sign in"
    # Schema 2 recorded the name, or the sign-in name before the backend had told it.
    older = ack("k2", "A1", "n", operator="Demo Operator")
    assert older.queued_by("demo", "Demo Operator") and not older.queued_by("demo2", "Second")
    assert ack("k3", "A1", "n", operator="demo").queued_by("demo", None)
    assert ack("k4", "A1", "n").queued_by("demo2", None)  # schema 1: nobody recorded


def test_battery_spans_outlive_their_alerts_and_a_snapshot_and_are_read_back_by_device(
        tmp_path, store):
    """The accumulated battery policy counts 7 days of flat time, also of alerts
    closed since: the store keeps each battery alert's span."""
    flat = Alert("B1", "W1", "D1", "battery", T, AlertState.UNACKNOWLEDGED, True)
    cleared = return_to_normal(flat, T + 3600)
    closed = close(claim(cleared, T + 4000, "Ann"), T + 4000, "Ann", Outcome.RESOLVED_BY_CONTACT,
                   "charging now")
    other = Alert("B2", "W1", "D1", "battery", T + 7200, AlertState.UNACKNOWLEDGED, True)
    assert store.apply([Event(11, "alert.raised", flat)]).battery == {"D1": (Span(T),)}
    changes = store.apply([Event(12, "alert.updated", cleared), Event(13, "alert.cleared", closed),
                           Event(14, "alert.raised", other)])
    assert changes.battery == {"D1": (Span(T, T + 3600), Span(T + 7200))}
    store.replace_all(picture(), 20, stream_id="s2")  # a snapshot: B1 is no longer an alert
    store.close()
    again = Store(tmp_path / "cache.db")
    try:
        assert again.load().battery == {"D1": (Span(T, T + 3600), Span(T + 7200))}
        # Counted into a confirmed breach: that time no longer counts towards the next.
        breach = close(claim(other, T + 9000, "Ann"), T + 9000, "Ann",
                       Outcome.CONFIRMED_NON_COMPLIANCE, "12 hours flat this week")
        assert again.apply([Event(21, "alert.cleared", breach)]).battery == {
            "D1": (Span(T, T + 3600),)}
    finally:
        again.close()


def test_a_battery_alert_closed_while_still_flat_ends_its_span_at_the_closing():
    flat = Alert("B1", "W1", "D1", "battery", T, AlertState.UNACKNOWLEDGED, True)
    closed = close(claim(flat, T + 60, "Ann"), T + 90, "Ann", Outcome.EQUIPMENT_FAULT, "faulty")
    assert span_of(closed) == Span(T, T + 90) and span_of(flat) == Span(T)
