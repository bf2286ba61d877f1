"""The offline cache encrypted at rest (issue 11, part 3): SQLCipher under a random key
kept in the keyring (here the tests' own, tests/conftest.py) or in a key file an
administrator allowed; an older console's plaintext cache encrypted in place; and a
cache whose key is missing, which is never rebuilt without asking.

Real stores on real files, real processes for the command line."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import keyring
import pytest
import sqlite_utils
from conftest import wait_until
from keyring.backends import fail
from test_cli import env

from console.changes import Picture
from console.domain import Alert, AlertState, Device, DeviceKind, DeviceStatus, HistoryEntry, Wearer
from console.domain.actions import Acknowledge, Action, ActionKind, ActionState
from console.store import (
    CacheKeyMissing,
    CacheKeys,
    KeyFileRefused,
    NoKeyring,
    Store,
    move_unreadable_aside,
)
from console.store import outbox as outbox_rows
from console.store.database import PLAINTEXT_HEADER, SCHEMA_VERSION, open_file
from console.store.keys import KEY_BYTES, SERVICE
from console.store.migrations import MIGRATIONS
from console.store.undelivered import Undelivered, recorded
from console.sync import SyncEngine
from console.sync.child import portable

T = 1_795_000_000.0
WEARER_MARKER = "EMREF-WEARER-7Q4Z"
NOTE_MARKER = "NOTE-MARKER-Xk93"
TOKEN_MARKER = "tok_5f0c2a9e7b3d4c61a8e2f4b6d9c1e3a7"


def stored_key(cache: Path) -> str | None:
    return keyring.get_password(SERVICE, str(cache.resolve()))


def files_of(cache: Path) -> bytes:
    """Every byte the cache has on disk: the database, its WAL and shared memory."""
    return b"".join(Path(f"{cache}{s}").read_bytes() for s in ("", "-wal", "-shm")
                    if Path(f"{cache}{s}").exists())


def ack(key: str, alert_id: str, note: str = "called", created_at: float = T) -> Action:
    return Action(key, ActionKind.ACKNOWLEDGE, Acknowledge(alert_id, note), created_at,
                  ActionState.PENDING, operator="Demo Operator", username="demo")


def personal_picture() -> Picture:
    wearers = [Wearer(f"W{i}", f"{WEARER_MARKER}-{i}") for i in range(50)]
    history = (HistoryEntry(AlertState.UNACKNOWLEDGED, T),
               HistoryEntry(AlertState.ACKNOWLEDGED, T + 60, "Ann", f"{NOTE_MARKER} in a history"))
    return Picture(
        wearers=wearers,
        devices=[Device(f"D{i}", f"W{i}", DeviceKind.GPS) for i in range(50)],
        statuses={f"D{i}": DeviceStatus(f"D{i}", T, 50.0, False, "ok", True, True)
                  for i in range(50)},
        alerts={"A1": Alert("A1", "W1", "D1", "battery", T, AlertState.ACKNOWLEDGED, True,
                            history)})


# -- no plaintext on disk ---------------------------------------------------------------


def test_the_cache_files_hold_no_wearer_reference_note_or_token_a_plaintext_copy_does(tmp_path):
    cache = tmp_path / "cache.db"
    store = Store(cache)
    store.replace_all(personal_picture(), 10, stream_id="s1")
    note = (NOTE_MARKER + " the wearer said ").ljust(2000, "x")
    store.enqueue(ack(TOKEN_MARKER, "A1", note))
    markers = [WEARER_MARKER, NOTE_MARKER, TOKEN_MARKER]
    # While it is open, the writes are in the WAL and the shared memory...
    assert Path(f"{cache}-wal").stat().st_size > 0
    assert [m for m in markers if m.encode() in files_of(cache)] == []
    # ...and once closed, in the database file.
    control = tmp_path / "control.db"
    store.conn.execute("ATTACH DATABASE ? AS control KEY ''", (str(control),))
    store.conn.execute("SELECT sqlcipher_export('control')")
    store.conn.execute("DETACH DATABASE control")
    store.close()
    data = files_of(cache)
    assert not data.startswith(PLAINTEXT_HEADER)
    assert [m for m in markers if m.encode() in data] == []
    # The same content in plaintext: the search would have found each of them.
    assert [m for m in markers if m.encode() in control.read_bytes()] == markers


# -- the key ----------------------------------------------------------------------------


def test_a_cache_gets_a_random_key_of_its_own_once_and_keeps_it(tmp_path, caplog):
    caplog.set_level("INFO")
    first, second = tmp_path / "cache.db", tmp_path / "cache-2.db"
    Store(first).close()
    key = stored_key(first)
    assert len(bytes.fromhex(key)) == KEY_BYTES
    Store(second).close()
    assert stored_key(second) not in (None, key)  # each cache its own
    reopened = Store(first)  # the key is found, not made again
    reopened.replace_all(personal_picture(), 1)
    reopened.close()
    assert stored_key(first) == key
    assert caplog.text.count(f"made a new key for the offline cache {first}") == 1
    assert "the offline cache's key is in the keyring" in caplog.text
    # Never said: not in a log, nor in what a refused cache tells.
    assert key not in caplog.text and key[:16] not in caplog.text


def test_a_flipped_bit_in_the_files_salt_changes_nothing(tmp_path):
    """SQLCipher reads each file's salt from its first 16 bytes unless the key brings
    it: the key does, or one flip there would make every page fail as a wrong key does."""
    cache = tmp_path / "cache.db"
    store = Store(cache)
    store.replace_all(personal_picture(), 10)
    store.close()
    data = bytearray(cache.read_bytes())
    data[7] ^= 0x10
    cache.write_bytes(data)
    store = Store(cache)
    assert store.notice is None and len(store.load().wearers) == 50
    store.close()


@pytest.fixture
def no_keyring(monkeypatch):
    """A machine where keyring finds no backend, for this process and its children."""
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield
    keyring.set_keyring(before)


def test_without_a_keyring_the_cache_is_refused_naming_the_fix(tmp_path, no_keyring):
    cache = tmp_path / "cache.db"
    with pytest.raises(NoKeyring, match=r"does not keep the cache unencrypted.*--key-file PATH") \
            as refused:
        Store(cache)
    assert not cache.exists()
    # It crosses from the sync process to the window's as itself, to be shown as such.
    assert type(portable(refused.value)) is NoKeyring


def test_a_keyring_that_keeps_secrets_in_clear_counts_only_when_configured_on_purpose(tmp_path):
    """keyrings.alt's plaintext file ranks below 1, and keyring picks it where nothing
    better is installed (a developer's virtualenv): the console must not take it for
    a keyring then, only when someone configured it (as these tests do)."""
    ask = [sys.executable, "-c", "import keyring; from console.store import keyring_available; "
                                 "print(keyring_available(), keyring.get_keyring().priority)"]
    chosen = {k: v for k, v in env(tmp_path).items() if k != "PYTHON_KEYRING_BACKEND"}
    available, priority = subprocess.run(ask, capture_output=True, text=True, timeout=60,
                                         env=chosen).stdout.split()
    if float(priority) >= 1:
        pytest.skip("this machine has a real keyring")
    assert available == "False"
    configured = {**chosen, "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"}
    assert subprocess.run(ask, capture_output=True, text=True, timeout=60,
                          env=configured).stdout.split()[0] == "True"


def test_a_key_file_an_administrator_allowed_is_made_owner_only_and_used(tmp_path, no_keyring):
    key_file = tmp_path / "keys" / "em-console.key"
    key_file.parent.mkdir()
    keys = CacheKeys(key_file)
    store = Store(tmp_path / "cache.db", keys)
    store.replace_all(personal_picture(), 10)
    store.close()
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text())) == KEY_BYTES
    store = Store(tmp_path / "cache.db", keys)
    assert len(store.load().wearers) == 50
    store.close()


posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes and owners are POSIX")


@posix_only
def test_a_key_file_others_can_read_or_that_is_not_ours_or_not_a_key_is_refused(tmp_path):
    key_file = tmp_path / "em-console.key"
    keys = CacheKeys(key_file)
    Store(tmp_path / "cache.db", keys).close()
    key_file.chmod(0o640)
    with pytest.raises(KeyFileRefused, match=r"mode 0640.*chmod 600"):
        Store(tmp_path / "cache.db", keys)
    key_file.chmod(0o600)
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(key_file, 65534, -1)
        with pytest.raises(KeyFileRefused, match="belongs to user 65534"):
            Store(tmp_path / "cache.db", keys)
        os.chown(key_file, 0, -1)
    key_file.write_text("my secret passphrase\n")
    with pytest.raises(KeyFileRefused, match="does not hold a key") as refused:
        Store(tmp_path / "cache.db", keys)
    assert "passphrase" not in str(refused.value)


# -- an older console's plaintext cache -------------------------------------------------


def plaintext_cache(path: Path, actions: list[Action]) -> None:
    """A cache as a console before encryption left it when killed: plaintext, in WAL
    mode, its latest writes (the queued actions) still in the WAL."""
    conn = open_file(path, None)
    conn.execute("PRAGMA journal_mode=WAL")
    db = sqlite_utils.Database(conn)
    for target in range(1, SCHEMA_VERSION + 1):
        MIGRATIONS[target](db)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for action in actions:
        outbox_rows.enqueue(conn, action)
    outbox_rows.settle(conn, actions[-1].key, ActionState.DELIVERED, None, 1)
    # Copied while open, as a kill -9 would leave them.
    killed = {s: Path(f"{path}{s}").read_bytes() for s in ("", "-wal")}
    conn.close()
    for suffix, data in killed.items():
        Path(f"{path}{suffix}").write_bytes(data)


def test_a_plaintext_cache_is_encrypted_in_place_and_each_queued_action_is_sent_once(
        start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=0.0001)
    alert_ids = [a["id"] for a in backend.snapshot()["alerts"]
                 if a["state"] == "unacknowledged"][:4]
    cache = tmp_path / "cache.db"
    now = time.time()  # when the operator acted: the backend dates the acknowledgement then
    queued = [ack(f"queued-offline-{n}", alert_id, f"note {n}", now + n)
              for n, alert_id in enumerate(alert_ids)]
    plaintext_cache(cache, queued)
    assert cache.read_bytes().startswith(PLAINTEXT_HEADER)
    assert b"note 2" in Path(f"{cache}-wal").read_bytes()
    (tmp_path / "cache.db.encrypting").write_bytes(b"left by a migration that stopped")

    store = Store(cache)
    pending = store.actions((ActionState.PENDING,))
    assert [(a.key, a.payload) for a in pending] == [(a.key, a.payload) for a in queued[:3]]
    assert [e.event for e in store.audit()] == ["queued"] * 4 + ["delivered"]
    store.close()
    assert not files_of(cache).startswith(PLAINTEXT_HEADER) and b"note 2" not in files_of(cache)
    assert not (tmp_path / "cache.db.encrypting").exists()
    assert recorded(cache) == Undelivered(3, now)

    engine = SyncEngine(backend.url, "demo", "demo", str(cache), lambda changes: None)
    engine.start()
    try:
        wait_until(lambda: engine.status.pending_actions == 0, what="the outbox to drain")
    finally:
        engine.stop()
    store = Store(cache)
    assert {a.key: a.state for a in store.actions(tuple(ActionState))} == {
        a.key: ActionState.DELIVERED for a in queued}
    store.close()
    acknowledged = {alert_id: [h for h in backend.get(f"/api/v1/alerts/{alert_id}").json()[
        "history"] if h["state"] == "acknowledged"] for alert_id in alert_ids}
    assert {a: len(h) for a, h in acknowledged.items()} == {
        **{a.payload.alert_id: 1 for a in queued[:3]}, queued[3].payload.alert_id: 0}
    assert recorded(cache) == Undelivered(0, None)


# -- a cache whose key is missing -------------------------------------------------------


def cache_with_queued_actions(cache: Path) -> None:
    store = Store(cache)
    store.replace_all(personal_picture(), 10)
    store.enqueue(ack("k1", "A1", created_at=T))
    store.enqueue(ack("k2", "A2", created_at=T + 60))
    store.close()


def test_a_cache_whose_key_is_missing_is_left_as_it_is_and_says_what_it_holds(tmp_path):
    cache = tmp_path / "cache.db"
    cache_with_queued_actions(cache)
    keyring.delete_password(SERVICE, str(cache.resolve()))
    before = hashlib.sha256(cache.read_bytes()).digest()
    with pytest.raises(CacheKeyMissing) as missing:
        Store(cache)
    error = missing.value
    assert f"The offline cache {cache} is encrypted, and its key is not in the keyring" in str(error)
    assert "It holds 2 operator actions not yet sent, the oldest queued" in str(error)
    assert error.undelivered == Undelivered(2, T)
    again = pickle.loads(pickle.dumps(error))  # it crosses from the sync process
    assert (type(again), str(again), again.undelivered) == (CacheKeyMissing, str(error), error.undelivered)
    # Nothing moved, nothing made: the file waits for its key or for the operator.
    assert hashlib.sha256(cache.read_bytes()).digest() == before
    assert stored_key(cache) is None
    assert [p.name for p in tmp_path.iterdir() if ".unusable-" in p.name] == []

    # The operator's other choice: rebuild from the backend, keeping the file aside.
    aside = move_unreadable_aside(cache)
    assert hashlib.sha256(aside.read_bytes()).digest() == before
    assert recorded(aside) == Undelivered(2, T)  # what it holds goes with it
    store = Store(cache)
    assert store.load().wearers == [] and store.actions() == []
    store.close()


def test_a_cache_the_keys_key_does_not_open_is_told_apart_from_damage(tmp_path):
    cache = tmp_path / "cache.db"
    cache_with_queued_actions(cache)
    keyring.set_password(SERVICE, str(cache.resolve()), os.urandom(KEY_BYTES).hex())
    with pytest.raises(CacheKeyMissing, match=r"cannot be opened with the key in the keyring "
                       r"\(service 'em-console'\): it was encrypted with another key, or it is "
                       "not a cache. It holds 2 operator actions not yet sent"):
        Store(cache)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"\0" * 8192])
def test_a_file_that_no_key_opens_is_asked_about_not_taken_for_damage(tmp_path, content):
    """Without the key, an encrypted cache cannot be told from any other bytes."""
    cache = tmp_path / "cache.db"
    cache.write_bytes(content)
    with pytest.raises(CacheKeyMissing, match="is encrypted, and its key is not in") as missing:
        Store(cache)
    assert "Whether it holds operator actions not yet sent is not known" in str(missing.value)
    assert cache.read_bytes() == content


def headless(url: str, cache: Path, tmp_path: Path, *extra: str,
             **env_extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", "--headless", "--backend", url, "--cache", str(cache),
         "--status-interval", "0.5", *extra],
        env={**env(tmp_path), "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo",
             **env_extra}, capture_output=True, text=True, timeout=60)


def headless_until_live(url: str, cache: Path, tmp_path: Path, *extra: str, **env_extra) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "--headless", "--backend", url, "--cache", str(cache),
         "--status-interval", "0.5", *extra],
        env={**env(tmp_path), "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo",
             **env_extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert any(" live " in proc.stdout.readline() for _ in range(40)), proc.stderr.read()
    proc.terminate()
    proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_headless_leaves_a_cache_whose_key_is_missing_unless_told_to_rebuild_it(
        start_backend, tmp_path):
    backend = start_backend(wearers=50, speed=60)
    cache = tmp_path / "cache.db"
    cache_with_queued_actions(cache)
    keyring.delete_password(SERVICE, str(cache.resolve()))
    refused = headless(backend.url, cache, tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert "its key is not in the keyring" in refused.stderr
    assert "It holds 2 operator actions not yet sent" in refused.stderr
    assert "--rebuild-cache moves it aside" in refused.stderr
    assert [p for p in tmp_path.iterdir() if ".unusable-" in p.name] == []
    headless_until_live(backend.url, cache, tmp_path, "--rebuild-cache")
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".undelivered.json")
                and ".unusable-" in p.name]) == 1


def test_headless_without_a_keyring_needs_the_administrators_key_file(start_backend, tmp_path):
    backend = start_backend(wearers=50, speed=60)
    no_keyring = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    refused = headless(backend.url, tmp_path / "cache.db", tmp_path, **no_keyring)
    assert refused.returncode == 1 and "No keyring is available" in refused.stderr
    key_file = tmp_path / "em-console.key"
    headless_until_live(backend.url, tmp_path / "cache.db", tmp_path, "--key-file", str(key_file),
                        **no_keyring)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    store = Store(tmp_path / "cache.db", CacheKeys(key_file))
    assert len(store.load().wearers) == 50
    store.close()
