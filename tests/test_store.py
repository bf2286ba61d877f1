"""The offline cache: schema, idempotent batches, the outbox, and recovery from bad files."""

import sqlite3

import pytest

from console.changes import Picture
from console.domain import Alert, AlertState, Device, DeviceKind, DeviceStatus, Wearer
from console.domain.actions import Action
from console.protocol.wire import Event
from console.store import SCHEMA_VERSION, Store, connect

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


def test_a_late_out_of_order_status_does_not_overwrite_a_newer_one(store):
    store.apply([Event(11, "device.status", status(2, T + 600, 20.0))])
    store.apply([Event(12, "device.status", status(2, T + 300, 90.0))])
    assert store.load().statuses["D2"].battery == 20.0


def test_closed_alerts_leave_the_store(store):
    store.apply([Event(11, "alert.raised", raised("A1")), Event(12, "alert.raised", raised("A2"))])
    changes = store.apply([Event(13, "alert.cleared", raised("A1", AlertState.CLOSED, False))])
    assert changes.closed == {"A1"}
    assert list(store.load().alerts) == ["A2"]


def test_a_queued_action_survives_reopening_and_settles(tmp_path, store):
    store.enqueue(Action("k1", "acknowledge", "A1", "called", T, "pending"))
    store.close()
    reopened = Store(tmp_path / "cache.db")
    assert [a.key for a in reopened.actions(("pending",))] == ["k1"]
    reopened.settle("k1", "conflict", "already closed", 1)
    assert reopened.actions(("pending",)) == []
    assert reopened.actions()[0].detail == "already closed"
    with pytest.raises(sqlite3.IntegrityError):  # one key, one action
        reopened.enqueue(Action("k1", "acknowledge", "A2", "x", T, "pending"))
    reopened.close()


def _garbage(path):
    path.write_bytes(b"this is not a database at all" * 100)


def _zeros(path):
    path.write_bytes(b"\0" * 8192)


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


@pytest.mark.parametrize("spoil", [_garbage, _zeros, _truncated, _newer])
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


def test_every_action_is_audited_with_its_operator_in_the_same_write(store):
    store.enqueue(Action("k9", "acknowledge", "A1", "called", T, "pending", operator="Ann"))
    store.settle("k9", "pending", "ConnectError", 1)  # a retry is not an outcome
    store.settle("k9", "delivered", None, 2)
    trail = [(op, event, alert, key) for _, op, event, _, alert, key, _ in store.audit()]
    assert trail == [("Ann", "queued", "A1", "k9"), ("Ann", "delivered", "A1", "k9")]


def test_a_version_1_cache_is_migrated_without_losing_queued_actions(tmp_path):
    import sqlite_utils

    from console.store.database import _migrate_1

    conn = connect(tmp_path / "old.db")
    _migrate_1(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO outbox (key, action, alert_id, note, created_at, state, attempts) "
                 "VALUES ('k1', 'acknowledge', 'A1', 'n', 1, 'pending', 0)")
    conn.close()
    store = Store(tmp_path / "old.db")
    assert store.notice is None
    assert [a.key for a in store.actions(("pending",))] == ["k1"]
    assert store.audit() == []
    store.close()
