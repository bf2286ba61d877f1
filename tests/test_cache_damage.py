"""The cache survives damage: bad rows, other users, a second console (issue 8, part B).

Each test spoils a real SQLite file the way a disk, a bad sector or a hand edit
would, then opens it the way the console does."""

import os
import random
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import keyring
import pytest
import sqlcipher3
from conftest import wait_until
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_cli import env

from console.changes import Picture
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
from console.domain.actions import Acknowledge, Action, ActionKind, ActionState
from console.store import CacheInUse, Store, connect
from console.store.database import PLAINTEXT_HEADER
from console.store.keys import SERVICE
from console.sync import SyncEngine

T = 1_795_000_000.0
N = 4
PICTURE_TABLES = ("wearers", "devices", "device_status", "alerts")


def fleet() -> Picture:
    kinds = list(DeviceKind)  # D0 is a GPS tag
    history = (HistoryEntry(AlertState.UNACKNOWLEDGED, T),
               HistoryEntry(AlertState.ACKNOWLEDGED, T + 60, "Ann", "called"))
    return Picture(
        wearers=[Wearer(f"W{i}", f"EM-{i}", Curfew.parse("19:00-07:00")) for i in range(N)],
        devices=[Device(f"D{i}", f"W{i}", kinds[i]) for i in range(N)],
        statuses={f"D{i}": DeviceStatus(f"D{i}", T, 50.0, False, "ok", True, False)
                  for i in range(N)},
        alerts={f"A{i}": Alert(f"A{i}", f"W{i}", f"D{i}", "battery", T, AlertState.ACKNOWLEDGED,
                               True, history) for i in range(N)},
    )


def make_cache(path: Path) -> Path:
    """A cache as a console leaves it: a picture, a stream position, two queued actions."""
    store = Store(path)
    store.replace_all(fleet(), 10, stream_id="s1", server_time=T, clock_rate=1.0)
    for n in (1, 2):
        store.enqueue(Action(f"k{n}", ActionKind.ACKNOWLEDGE, Acknowledge(f"A{n}", "called"), T,
                             ActionState.PENDING, operator="Ann", username="ann"))
    store.close()
    return path


def spoil(path: Path, sql: str, *args) -> None:
    """Change stored values behind the console's back, as damage would (a flip in
    a value of a plaintext file; in an encrypted one, what an editor with the key did)."""
    conn = connect(path)
    conn.execute(sql, args)
    conn.close()


def same_key(cache: Path, copy: Path) -> None:
    """A cache's key is kept under its path: a copy elsewhere needs it kept there too."""
    keyring.set_password(SERVICE, str(copy.resolve()),
                         keyring.get_password(SERVICE, str(cache.resolve())))


def integrity(path: Path) -> str:
    conn = connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# -- item 6: one bad row costs that row, never the start ----------------------


def test_the_two_reported_flips_cost_two_rows_and_the_next_snapshot_replaces_them(
        tmp_path, caplog):
    path = make_cache(tmp_path / "cache.db")
    spoil(path, """UPDATE alerts SET history = replace(history, '[["unack', '[{"unack')
                   WHERE id = 'A1'""")
    spoil(path, "UPDATE devices SET kind = 'gqs' WHERE id = 'D0'")
    assert integrity(path) == "ok"  # SQLite cannot see this damage: the console must
    store = Store(path)
    picture = store.load()
    assert sorted(picture.alerts) == ["A0", "A2", "A3"]
    assert [d.id for d in picture.devices] == ["D1", "D2", "D3"]
    assert len(picture.wearers) == N and len(picture.statuses) == N
    assert store.notice.startswith("2 damaged rows in the offline cache were skipped")
    assert "the next snapshot replaces them" in store.notice
    assert "alerts 'A1'" in caplog.text and "devices 'D0'" in caplog.text
    # The position is dropped, so the engine's first act is a snapshot, not a resume.
    assert "stream_id" not in store.meta()
    store.replace_all(fleet(), 20, stream_id="s2")
    assert len(store.load().devices) == N and len(store.load().alerts) == N
    store.close()
    reopened = Store(path)
    reopened.load()
    assert reopened.notice is None and reopened.meta()["stream_id"] == "s2"
    reopened.close()


NOT_UTF8 = "CAST(X'FF45' AS TEXT)"


@pytest.mark.parametrize("table, key, sql", [
    ("wearers", "W1", "UPDATE wearers SET curfew = '19:00-07:0x' WHERE id = 'W1'"),
    ("wearers", "W1", f"UPDATE wearers SET ref = {NOT_UTF8} WHERE id = 'W1'"),
    ("wearers", None, "UPDATE wearers SET id = NULL WHERE id = 'W1'"),
    ("devices", "D1", "UPDATE devices SET kind = 'RF' WHERE id = 'D1'"),
    ("devices", "D1", "UPDATE devices SET wearer_id = X'5731' WHERE id = 'D1'"),  # a blob
    ("device_status", "D1", "UPDATE device_status SET battery = 250 WHERE device_id = 'D1'"),
    ("device_status", "D1", "UPDATE device_status SET battery = 'fifty' WHERE device_id = 'D1'"),
    ("device_status", "D1", "UPDATE device_status SET ts = -1.7e9 WHERE device_id = 'D1'"),
    ("device_status", "D1", "UPDATE device_status SET charging = 7 WHERE device_id = 'D1'"),
    ("device_status", "D1", "UPDATE device_status SET gps_fix = 0.5 WHERE device_id = 'D1'"),
    ("device_status", "D1", "UPDATE device_status SET strap = 'opem' WHERE device_id = 'D1'"),
    ("device_status", None, "UPDATE device_status SET device_id = NULL WHERE device_id = 'D1'"),
    ("alerts", "A1", "UPDATE alerts SET state = 'acknowledgef' WHERE id = 'A1'"),
    ("alerts", "A1", "UPDATE alerts SET history = '[[\"acknowledged\", \"x\"]]' WHERE id = 'A1'"),
    ("alerts", "A1", "UPDATE alerts SET history = '{}' WHERE id = 'A1'"),
    ("alerts", "A1", f"UPDATE alerts SET history = {NOT_UTF8} WHERE id = 'A1'"),
    ("alerts", "A1", "UPDATE alerts SET raised_at = 'yesterday' WHERE id = 'A1'"),
])
def test_a_damaged_row_of_any_table_is_skipped_counted_and_logged(tmp_path, caplog, table, key,
                                                                   sql):
    path = make_cache(tmp_path / "cache.db")
    spoil(path, sql)
    store = Store(path)
    picture = store.load()
    loaded = {"wearers": len(picture.wearers), "devices": len(picture.devices),
              "device_status": len(picture.statuses), "alerts": len(picture.alerts)}
    assert loaded == {t: N - (t == table) for t in PICTURE_TABLES}
    assert store.notice.startswith(f"1 damaged row in the offline cache was skipped ({table} 1)")
    assert f"{table} {key!r}" in caplog.text
    assert [a.key for a in store.actions((ActionState.PENDING,))] == ["k1", "k2"]
    store.close()


@pytest.mark.parametrize("key, value", [
    ("last_event_id", "1O"),
    ("server_time", "nan"),
    ("clock_rate", NOT_UTF8),
])
def test_a_damaged_sync_position_or_clock_means_a_fresh_snapshot(tmp_path, key, value):
    path = make_cache(tmp_path / "cache.db")
    spoil(path, f"UPDATE meta SET value = {value if value == NOT_UTF8 else repr(value)} "
                "WHERE key = ?", key)
    store = Store(path)
    picture = store.load()
    meta = store.meta()
    assert len(picture.wearers) == N and key not in meta and "stream_id" not in meta
    assert "1 damaged row" in store.notice and store.last_event_id in (0, 10)
    store.close()


@pytest.mark.parametrize("sql", [
    "UPDATE outbox SET state = 'pendinf' WHERE key = 'k1'",
    "UPDATE outbox SET state = 'PENDING' WHERE key = 'k1'",
    f"UPDATE outbox SET payload = replace(payload, 'called', {NOT_UTF8}) WHERE key = 'k1'",
    "UPDATE outbox SET payload = replace(payload, 'called', 'calle\\u') WHERE key = 'k1'",
    "UPDATE outbox SET payload = replace(payload, '\"called\"', '7') WHERE key = 'k1'",
    "UPDATE outbox SET payload = replace(payload, 'note', 'nose') WHERE key = 'k1'",
    "UPDATE outbox SET payload = replace(payload, '}', ',\"by\":\"Bob\"}') WHERE key = 'k1'",
    "UPDATE outbox SET payload = '[\"A1\", \"called\"]' WHERE key = 'k1'",
    "UPDATE outbox SET attempts = 'x' WHERE key = 'k1'",
    "UPDATE outbox SET kind = 'acknowledgf' WHERE key = 'k1'",
    "UPDATE outbox SET created_at = X'00' WHERE key = 'k1'",
    f"UPDATE outbox SET username = {NOT_UTF8} WHERE key = 'k1'",
])
def test_a_damaged_queued_action_is_set_aside_loudly_audited_and_never_sent(tmp_path, caplog,
                                                                            sql):
    path = make_cache(tmp_path / "cache.db")
    spoil(path, sql)
    store = Store(path)
    assert len(store.load().alerts) == N  # the picture itself is whole
    assert [a.key for a in store.actions(("pending",))] == ["k2"]
    assert "1 queued operator action in the offline cache is damaged" in store.notice
    assert "will not be sent" in store.notice
    # Named by its alert, as far as the damaged payload still tells it, else by its key.
    assert "alert 'A1'" in store.notice or ("'k1'" in store.notice and "payload" in sql)
    assert "outbox" in caplog.text and "'k1'" in caplog.text
    last = store.audit()[-1]
    assert (last.operator, last.event, last.key) == ("Ann", "damaged", "k1")
    store.close()
    # Said once: set aside, it is not reported again at the next start.
    reopened = Store(path)
    reopened.load()
    assert reopened.notice is None
    assert [a.key for a in reopened.actions((ActionState.PENDING,))] == ["k2"]
    reopened.close()


VALUES_TO_FLIP = {  # table: (key column, columns a flip may hit)
    "meta": ("key", ("value",)),
    "wearers": ("id", ("id", "ref", "curfew")),
    "devices": ("id", ("id", "wearer_id", "kind")),
    "device_status": ("device_id", ("device_id", "ts", "battery", "charging", "strap", "gps_fix",
                                    "at_home")),
    "alerts": ("id", ("id", "wearer_id", "device_id", "type", "raised_at", "state", "active",
                      "history")),
    "outbox": ("seq", ("key", "kind", "payload", "created_at", "state", "attempts",
                       "operator", "username")),
}


def flipped(value, bit: int, retype: bool):
    """`value` with one bit flipped, as SQLite would read it back. `retype` flips the
    record header instead: text <-> blob and real <-> integer keep their size."""
    if isinstance(value, str):
        raw = bytearray(value.encode())
        raw[bit // 8 % len(raw)] ^= 1 << bit % 8
        return ("?", bytes(raw)) if retype else ("CAST(? AS TEXT)", bytes(raw))
    raw = bytearray(struct.pack("<d" if isinstance(value, float) else "<q", value))
    raw[bit // 8 % 8] ^= 1 << bit % 8
    return "?", struct.unpack("<d" if isinstance(value, float) != retype else "<q", raw)[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("template") / "cache.db")


def open_like_the_console(path: Path) -> Store:
    """What the writer thread and the engine do at start-up, none of which may raise."""
    store = Store(path)
    store.load()
    store.actions()
    meta = store.meta()
    if "stream_id" in meta:
        int(meta["last_event_id"])
    float(meta.get("server_time", 0)), float(meta.get("clock_rate", 1)), store.last_event_id
    return store


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=st.sampled_from(sorted(VALUES_TO_FLIP)), row=st.integers(0, N - 1),
       column=st.integers(0, 7), bit=st.integers(0, 1000), retype=st.booleans())
def test_no_flipped_bit_in_any_stored_value_stops_the_console_starting(template, table, row,
                                                                      column, bit, retype):
    key_column, columns = VALUES_TO_FLIP[table]
    column = columns[column % len(columns)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.db"
        shutil.copy(template, path)
        same_key(template, path)
        conn = connect(path)
        keys = [k for (k,) in conn.execute(f"SELECT {key_column} FROM {table} ORDER BY 1")]
        key = keys[row % len(keys)]
        (value,) = conn.execute(f"SELECT {column} FROM {table} WHERE {key_column} = ?",
                                (key,)).fetchone()
        assume(value is not None)
        placeholder, new = flipped(value, bit, retype)
        try:
            with conn:
                conn.execute(f"UPDATE {table} SET {column} = {placeholder} "
                             f"WHERE {key_column} = ?", (new, key))
        except sqlcipher3.IntegrityError:  # a NaN is stored as NULL, or a key now taken twice
            assume(False)
        finally:
            conn.close()
        open_like_the_console(path).close()


def test_no_flipped_byte_anywhere_in_the_file_stops_the_console_starting(tmp_path):
    template = make_cache(tmp_path / "template.db")
    size = template.stat().st_size
    rng = random.Random(8)
    for attempt in range(150):
        path = tmp_path / f"{attempt}" / "cache.db"
        path.parent.mkdir()
        data = bytearray(template.read_bytes())
        data[rng.randrange(size)] ^= 1 << rng.randrange(8)
        path.write_bytes(data)
        same_key(template, path)
        open_like_the_console(path).close()


def test_the_console_starts_offline_on_a_damaged_cache_and_says_so(tmp_path):
    path = make_cache(tmp_path / "cache.db")
    spoil(path, "UPDATE devices SET kind = 'gqs' WHERE id = 'D0'")
    engine = SyncEngine("http://127.0.0.1:9", "demo", "demo", str(path), lambda changes: None)
    engine.start()  # raised ValueError: 'gqs' is not a valid DeviceKind
    try:
        assert engine.status.cache_notice.startswith("1 damaged row in the offline cache")
        assert engine.status.pending_actions == 2
    finally:
        engine.stop()


def test_a_damaged_acknowledgement_is_not_delivered_and_the_good_one_is(start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=0.0001)
    first, second = [a["id"] for a in backend.snapshot()["alerts"]
                     if a["state"] == "unacknowledged"][:2]
    path = tmp_path / "cache.db"
    store = Store(path)
    for key, alert_id in (("damaged-key", first), ("good-key", second)):
        store.enqueue(Action(key, ActionKind.ACKNOWLEDGE, Acknowledge(alert_id, "called"), T,
                             ActionState.PENDING, username="demo"))
    store.close()
    spoil(path, f"UPDATE outbox SET payload = replace(payload, 'called', {NOT_UTF8}) "
                "WHERE key = 'damaged-key'")
    engine = SyncEngine(backend.url, "demo", "demo", str(path), lambda changes: None)
    engine.start()
    try:
        assert f"alert '{first}'" in engine.status.cache_notice
        acknowledged = lambda alert_id: [h for h in backend.get(  # noqa: E731
            f"/api/v1/alerts/{alert_id}").json()["history"] if h["state"] == "acknowledged"]
        wait_until(lambda: acknowledged(second))
        wait_until(lambda: engine.status.pending_actions == 0)
    finally:
        engine.stop()
    assert acknowledged(first) == []


# -- item 7: owner-only files ------------------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@pytest.fixture
def usual_umask():
    old = os.umask(0o022)  # what most desktops run with: new files 0644, folders 0755
    yield
    os.umask(old)


@posix_only
def test_a_new_cache_and_its_new_folder_are_owner_only(tmp_path, usual_umask):
    folder = tmp_path / "em"
    store = Store(folder / "cache.db")
    store.replace_all(fleet(), 10)
    assert modes(folder) == {"cache.db": 0o600, "cache.db-wal": 0o600, "cache.db-shm": 0o600,
                             "cache.db.lock": 0o600, "cache.db.undelivered.json": 0o600}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    store.close()


@posix_only
def test_an_older_versions_readable_files_are_made_owner_only(tmp_path, usual_umask):
    path = make_cache(tmp_path / "cache.db")
    aside = tmp_path / "cache.db.unusable-20260101T000000"
    aside.write_bytes(b"an older cache, moved aside")
    for p in tmp_path.glob("cache.db*"):
        if p.suffix != ".lock":  # older versions had none
            p.chmod(0o644)
    store = Store(path)
    store.load()
    assert set(modes(tmp_path).values()) == {0o600}
    store.close()


@posix_only
def test_a_cache_moved_aside_stays_owner_only(tmp_path, usual_umask):
    path = tmp_path / "cache.db"
    path.write_bytes(PLAINTEXT_HEADER + b"this is not a database at all" * 100)
    path.chmod(0o644)
    store = Store(path)
    assert "moved to" in store.notice
    assert set(modes(tmp_path).values()) == {0o600} and len(modes(tmp_path)) >= 3
    store.close()


@posix_only
def test_the_data_folder_is_made_owner_only(tmp_path, monkeypatch, usual_umask):
    from ui.cli import data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "em-console").mkdir(mode=0o755)  # as an older version left it
    assert data_dir() == tmp_path / "em-console"
    assert stat.S_IMODE((tmp_path / "em-console").stat().st_mode) == 0o700
    shutil.rmtree(tmp_path / "em-console")
    assert stat.S_IMODE(data_dir().stat().st_mode) == 0o700


# -- item 8: one console per cache ------------------------------------------------


def test_a_second_store_on_the_same_cache_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "cache.db"
    first = Store(path)
    with pytest.raises(CacheInUse) as refused:
        Store(path)
    assert refused.value.pid == os.getpid() and refused.value.host == socket.gethostname()
    assert f"process {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    first.close()
    Store(path).close()  # released on close


def test_a_console_that_died_leaves_no_lock_behind(tmp_path):
    path = tmp_path / "cache.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from console.store import Store; "
         f"s = Store({str(path)!r}); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(CacheInUse, match=f"process {holder.pid} "):
            Store(path)
    finally:
        holder.kill()
        holder.wait()
    Store(path).close()  # the OS let go of the lock with the process


def headless(url: str, cache: Path, tmp_path: Path) -> dict:
    return dict(args=[sys.executable, "-m", "ui.cli", "--headless", "--backend", url,
                      "--cache", str(cache), "--status-interval", "0.5"],
                env={**env(tmp_path), "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo"},
                text=True)


def test_a_second_headless_console_on_the_same_cache_exits_naming_the_first(start_backend,
                                                                            tmp_path):
    backend = start_backend(wearers=50, speed=60)
    cache = tmp_path / "cache.db"
    first = subprocess.Popen(**headless(backend.url, cache, tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    try:
        # Live, so the first has held its cache for a while.
        assert any(" live " in first.stdout.readline() for _ in range(40))
        second = subprocess.run(**headless(backend.url, cache, tmp_path), capture_output=True,
                                timeout=60)
        assert second.returncode == 1, second
        assert f"in use by another console (process {first.pid} on " in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=20)
    assert first.returncode == 0


def test_the_window_offers_a_separate_cache_beside_a_held_one_or_quitting(tmp_path):
    from ui.app import choose_cache

    cache = str(tmp_path / "cache.db")
    asked = []

    def ask(held, separate):
        asked.append((held.pid, separate))
        return answer

    answer = True
    assert choose_cache(cache, ask) == cache and asked == []  # free: nothing to ask
    first = Store(cache)
    assert choose_cache(cache, ask) == str(tmp_path / "cache-2.db")
    assert asked == [(os.getpid(), str(tmp_path / "cache-2.db"))]
    second = Store(tmp_path / "cache-2.db")  # a separate cache that is held too is passed over
    assert choose_cache(cache, ask) == str(tmp_path / "cache-3.db")
    answer = False
    assert choose_cache(cache, ask) is None  # quit
    first.close()
    second.close()


def test_the_window_names_the_holder_and_both_choices(tmp_path, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui.app import ask_separate_cache

    first = Store(tmp_path / "cache.db")
    try:
        Store(tmp_path / "cache.db")
    except CacheInUse as e:
        held = e
    seen = {}

    def choose():
        box = QApplication.activeModalWidget()
        seen["text"] = box.text()
        seen["buttons"] = [b.text() for b in box.buttons()]
        next(b for b in box.buttons() if b.text() == "Use a separate cache").click()

    QTimer.singleShot(200, choose)
    assert ask_separate_cache(held, str(tmp_path / "cache-2.db")) is True
    first.close()
    assert f"process {os.getpid()}" in seen["text"] and "cache-2.db" in seen["text"]
    assert sorted(seen["buttons"]) == ["Quit", "Use a separate cache"]
