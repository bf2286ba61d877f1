"""The audit trail proves itself (issue 11, part 5): a real trail, written through the
store's own API, then changed behind the console's back the way someone with the file
and sqlite3 would; `em-console audit verify` must name the entry and what was done.
The backend's own trail likewise."""

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import env

from console import domain
from console.domain.actions import Acknowledge, Action, ActionKind, ActionState
from console.domain.cases import EntryKind
from console.protocol import schema
from console.simulator import server
from console.simulator.alerts import transition
from console.simulator.backend import Backend
from console.store import SCHEMA_VERSION, Store, verify_audit
from console.store import audit as chain
from console.store.database import connect
from console.store.migrations import MIGRATIONS
from ui import cli

T = 1_795_000_000.0
ENTRIES = 8


def ack(n: int) -> Action:
    return Action(f"k{n}", ActionKind.ACKNOWLEDGE, Acknowledge(f"A{n}", f"called wearer {n}"), T,
                  ActionState.PENDING, operator="Ann", username="ann")


def write_trail(path: Path) -> Path:
    """Eight entries: four actions queued, a retry (not audited), three answers, and
    one action damaged in the cache and set aside at the next start."""
    store = Store(path)
    for n in range(1, 5):
        store.enqueue(ack(n))
    store.settle("k1", ActionState.PENDING, "ConnectError", 1)
    store.settle("k1", ActionState.DELIVERED, None, 2)
    store.settle("k2", ActionState.CONFLICT, "alert A2 is closed", 1)
    store.settle("k3", ActionState.REJECTED, "422: the note is empty", 1)
    store.conn.execute("UPDATE outbox SET payload = '{' WHERE key = 'k4'")
    store.close()
    store = Store(path)
    store.load()
    store.close()
    return path


@pytest.fixture
def trail(tmp_path) -> Path:
    return write_trail(tmp_path / "cache.db")


def tamper(path: Path, *statements: str, args=(), opener=connect) -> None:
    """Run statements on a cache (encrypted: opened with its key), or with
    opener=sqlite3.connect on a backend's state file."""
    conn = opener(path)
    with conn:
        for sql in statements:
            conn.execute(sql, args if "?" in sql else ())
    conn.close()


def row(path: Path, seq: int) -> chain.Entry:
    conn = connect(path, read_only=True)
    entries, _ = chain.read(conn, chain.CACHE_FIELDS)
    conn.close()
    return next(e for e in entries if e.seq == seq)


def forge(path: Path, seq: int, after: int) -> None:
    """What someone who knows the rule inserts as entry `seq`: sealed properly, after
    entry `after`, the entries from `seq` on moved up one to make room."""
    fields = {**row(path, 1).fields, "detail": '{"alert_id":"A1","note":"never said"}'}
    forged = chain.chained(fields, (seq - 1, row(path, after).hash))
    conn = connect(path)
    with conn:
        for s in sorted((s for (s,) in conn.execute("SELECT seq FROM audit WHERE seq >= ?", (seq,))),
                        reverse=True):
            conn.execute("UPDATE audit SET seq = seq + 1 WHERE seq = ?", (s,))
        sql, args = chain.statements(forged)[0]
        conn.execute(sql, args)
    conn.close()


def reseal(path: Path, seq: int, detail: str) -> None:
    """Change an entry and seal it again under the rule, as someone who knows it would."""
    e = row(path, seq)
    fields = {**e.fields, "detail": detail}
    tamper(path, "UPDATE audit SET detail = ?, hash = ? WHERE seq = ?",
           args=(detail, chain.entry_hash(seq, fields, e.prev), seq))


def swap(path: Path, a: int, b: int) -> None:
    tamper(path, f"UPDATE audit SET seq = -1 WHERE seq = {a}",
           f"UPDATE audit SET seq = {a} WHERE seq = {b}", f"UPDATE audit SET seq = {b} WHERE seq = -1")


def test_an_untouched_trail_holds_and_says_its_length_and_head(trail):
    head = row(trail, ENTRIES).hash
    assert verify_audit(trail) == (0, [f"audit trail intact: {ENTRIES} entries, head {head[:16]}"])
    conn = connect(trail)
    assert chain.recorded_head(conn) == chain.Head(ENTRIES, head)
    # Every event is on record, the damaged one with what was stored.
    assert [e for (e,) in conn.execute("SELECT event FROM audit ORDER BY seq")] == [
        "queued", "queued", "queued", "queued", "delivered", "conflict", "rejected", "damaged"]
    conn.close()


@pytest.mark.parametrize("spoil, verdict", [
    (lambda p: tamper(p, "UPDATE audit SET detail = '{\"alert_id\":\"A3\",\"note\":\"all fine\"}' "
                         "WHERE seq = 3"),
     "broken at entry #3 (seq 3): modified (it does not match its hash)"),
    (lambda p: tamper(p, "UPDATE audit SET operator = 'Bob' WHERE seq = 8"),
     "broken at entry #8 (seq 8): modified"),
    (lambda p: reseal(p, 3, '{"alert_id":"A3","note":"all fine"}'),
     "broken at entry #3 (seq 3): modified (re-sealed"),
    (lambda p: tamper(p, "DELETE FROM audit WHERE seq = 4"),
     "broken at entry #4 (seq 5): deleted (seq 4 before it is missing)"),
    (lambda p: tamper(p, "DELETE FROM audit WHERE seq IN (4, 5)",
                      "UPDATE audit SET seq = seq - 2 WHERE seq > 5"),
     "broken at entry #4 (seq 4): deleted (seq 4 to 5 before it is missing)"),
    (lambda p: tamper(p, "DELETE FROM audit WHERE seq = 1"),
     "broken at entry #1 (seq 2): deleted (seq 1 before it is missing)"),
    (lambda p: forge(p, 3, after=2), "broken at entry #3 (seq 3): inserted"),
    (lambda p: forge(p, ENTRIES + 1, after=ENTRIES),
     f"broken at entry #{ENTRIES + 1} (seq {ENTRIES + 1}): inserted"),
    (lambda p: swap(p, 3, 6), "broken at entry #3 (seq 3): out of order"),
    (lambda p: tamper(p, "DELETE FROM audit WHERE seq > 6"),
     "broken at entry #7 (seq 7): deleted (the recorded head has 8 entries: the last 2 are missing)"),
    (lambda p: tamper(p, "DELETE FROM meta WHERE key = 'audit_head'"),
     f"broken at entry #{ENTRIES + 1} (seq {ENTRIES + 1}): head missing"),
])
def test_a_changed_trail_is_broken_where_and_how_it_was_changed(trail, spoil, verdict):
    spoil(trail)
    code, lines = verify_audit(trail)
    assert (code, len(lines)) == (1, 1) and verdict in lines[0], lines


def test_verify_on_the_command_line_as_an_operator_runs_it(trail, tmp_path):
    def verify(*args):
        return subprocess.run([sys.executable, "-m", "ui.cli", "audit", "verify", *args],
                              capture_output=True, text=True, timeout=60, env=env(tmp_path))

    before = hashlib.sha256(trail.read_bytes()).hexdigest()
    intact = verify("--cache", str(trail))
    assert (intact.returncode, intact.stdout.startswith(f"audit trail intact: {ENTRIES} entries")) \
        == (0, True), intact.stderr
    assert hashlib.sha256(trail.read_bytes()).hexdigest() == before  # read-only
    tamper(trail, "DELETE FROM audit WHERE seq = 2")
    broken = verify("--cache", str(trail))
    assert broken.returncode == 1
    assert broken.stdout.strip() == \
        "audit trail broken at entry #2 (seq 3): deleted (seq 2 before it is missing)"
    # With no --cache: the live cache in the user data directory, which is not there.
    missing = verify()
    assert missing.returncode == 2 and "cache.db: no such cache file" in missing.stderr
    assert not (tmp_path / "data" / "em-console").exists()  # nothing was created
    assert "Traceback" not in intact.stderr + broken.stderr + missing.stderr


def test_verify_where_no_keyring_holds_the_key_says_so_and_exits_2(trail, tmp_path):
    out = subprocess.run([sys.executable, "-m", "ui.cli", "audit", "verify", "--cache", str(trail)],
                         capture_output=True, text=True, timeout=60,
                         env={**env(tmp_path), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert out.returncode == 2 and "No keyring is available" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.parametrize("make, says", [
    (lambda p: None, "no such cache file"),
    (lambda p: p.mkdir(), "no such cache file"),
    # Encrypted, a cache is bytes no key of ours opens, as garbage is: said as such.
    (lambda p: p.write_bytes(b"not a database, a shopping list\n" * 200),
     "its key is not in the keyring"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)"),
     "not a console's cache (it has no schema version)"),
    (lambda p: tamper(write_trail(p), f"PRAGMA user_version = {SCHEMA_VERSION + 1}"),
     f"its schema version {SCHEMA_VERSION + 1} is newer than this console's"),
    (lambda p: tamper(write_trail(p), "ALTER TABLE audit DROP COLUMN hash"),
     "not readable as a console's cache (no such column: hash)"),
])
def test_what_is_not_a_cache_is_said_plainly_and_exits_2(tmp_path, capsys, make, says):
    path = tmp_path / "cache.db"
    make(path)
    assert cli.main(["audit", "verify", "--cache", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and says in out.err and out.err.count("\n") == 1


def test_verify_reads_beside_a_console_that_holds_the_cache_and_writes_on(trail):
    store = Store(trail)  # holds the lock
    try:
        store.enqueue(ack(5))
        assert verify_audit(trail)[1][0].startswith(f"audit trail intact: {ENTRIES + 1} entries")
        store.settle("k5", ActionState.DELIVERED, None, 1)
        assert verify_audit(trail)[1][0].startswith(f"audit trail intact: {ENTRIES + 2} entries")
    finally:
        store.close()


def test_a_version_5_trail_is_chained_by_the_migration_as_it_stands(tmp_path):
    import sqlite_utils

    path = tmp_path / "v5.db"
    conn = connect(path)
    db = sqlite_utils.Database(conn)
    for version in range(1, 6):
        MIGRATIONS[version](db)
    conn.execute("PRAGMA user_version = 5")
    trail = [(T + n, "Ann", "ann", "queued", "acknowledge", f"A{n}", f"k{n}", f'{{"n":{n}}}')
             for n in range(1, 4)]
    conn.executemany("INSERT INTO audit (at, operator, username, event, kind, alert_id, key, detail) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", trail)
    conn.close()
    code, lines = verify_audit(path)
    assert code == 2 and "predates the audit chain" in lines[0]

    store = Store(path)
    assert store.notice is None
    assert [tuple(e) for e in store.audit()] == trail  # what it held, unchanged
    store.enqueue(ack(4))
    store.close()
    assert verify_audit(path)[1][0].startswith("audit trail intact: 4 entries")
    tamper(path, "UPDATE audit SET detail = 'x' WHERE seq = 2")
    assert verify_audit(path)[1][0].startswith("audit trail broken at entry #2 (seq 2): modified")


def test_a_cache_moved_aside_begins_a_new_chain_that_names_the_old_one(trail):
    old_head = row(trail, ENTRIES).hash
    tamper(trail, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # unusable: moved aside
    store = Store(trail)
    aside = store.notice.split("moved to ")[1].split(" ")[0]
    store.close()
    code, lines = verify_audit(trail)
    assert code == 0 and lines[0].startswith("audit trail intact: 1 entries")
    assert lines[1].startswith(f"it begins a new chain (entry #1, {aside}): the previous cache "
                               "could not be used")
    assert f"its audit trail ended at entry #{ENTRIES}, hash {old_head}" in lines[1]


def test_what_a_chain_cannot_prove_a_whole_trail_and_head_rewritten(trail):
    """docs/reliability.md says so: someone who rewrites every entry after a change,
    and the head, leaves a chain that holds. Only a copy of the head kept elsewhere
    (a verify's output, written down) tells."""
    reseal(trail, 3, '{"alert_id":"A3","note":"all fine"}')
    conn = connect(trail)
    entries, _ = chain.read(conn, chain.CACHE_FIELDS)
    last = (2, entries[1].hash)
    with conn:
        for e in entries[2:]:
            e = chain.chained(e.fields, last)
            conn.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", (e.prev, e.hash, e.seq))
            last = (e.seq, e.hash)
        conn.execute(*chain.statements(e)[1])
    conn.close()
    assert verify_audit(trail)[0] == 0


# -- the backend's own trail ----------------------------------------------------

OPERATOR = schema.Operator("op-demo", "Demo Operator", ["operator"])


def backend_trail(path: Path | None) -> Backend:
    """Views of two wearers' records, a claim, a start, a claim of one's own again (no
    change: not audited), a case entry and a suspension."""
    backend = Backend(60, 7, 60, 1000, path and str(path))
    wearers = [w.id for w in backend.fleet.wearers[:2]]
    for wearer_id in wearers:
        backend.view_wearer(wearer_id, OPERATOR)
    alert = next(a for a in backend.fleet.open_alerts() if a.holder is None)
    claim = transition(b"claim", alert.id, schema.Claim())
    for key, verb, move in [("k1", claim, lambda a, now: domain.claim(a, now, OPERATOR.name)),
                            ("k2", transition(b"start", alert.id),
                             lambda a, now: domain.start_work(a, now, OPERATOR.name)),
                            ("k3", claim, lambda a, now: domain.claim(a, now, OPERATOR.name))]:
        assert backend.handle(alert.id, verb, OPERATOR, key, move).status == 200
    now = schema.wire_time(backend.fleet.now)
    entry = schema.NewCaseEntry(EntryKind.BREACH_IDENTIFIED, now, [alert.id], "seen")
    assert backend.record_case_entry(alert.wearer_id, entry, OPERATOR, "k4").status == 200
    suspension = schema.Suspension(domain.SuspensionReason.HOSPITAL, now,
                                   schema.wire_time(backend.fleet.now + 3600))
    assert backend.suspend(wearers[0], suspension, OPERATOR, "k5").status == 200
    return backend


def test_the_backend_keeps_its_own_trail_chained_the_same_way(tmp_path):
    for path in (None, tmp_path / "state.db"):  # in memory, and in a state file
        backend = backend_trail(path)
        events = [(e.fields["event"], e.fields["operator"]) for e in backend.trail]
        assert events == [("viewed", "Demo Operator"), ("viewed", "Demo Operator"),
                          ("claimed", "Demo Operator"), ("in work", "Demo Operator"),
                          ("case entry", "Demo Operator"), ("suspended", "Demo Operator")]
        last = backend.trail[-1]
        assert chain.first_break(backend.trail, chain.Head(last.seq, last.hash)) is None
        assert len(backend.viewed) == 2  # GET /sim/audit answers as it did
        if backend.db:
            backend.db.close()
    assert verify_backend(tmp_path / "state.db") == (0, "audit trail intact: 6 entries")
    restarted = Backend(60, 7, 60, 1000, str(tmp_path / "state.db"))  # read back, and kept
    assert [e.hash for e in restarted.trail] == [e.hash for e in backend.trail]
    assert restarted.viewed == backend.viewed
    restarted.db.close()


def verify_backend(state: Path) -> tuple[int, str]:
    """As someone with the state file runs it: the verdict, without the head's hash."""
    proc = subprocess.run([sys.executable, "-m", "console.simulator", "audit", "verify",
                           "--state", str(state)], capture_output=True, text=True, timeout=60)
    out = (proc.stdout or proc.stderr).strip()
    return proc.returncode, out.rsplit(", head", 1)[0]


@pytest.mark.parametrize("spoil, verdict", [
    ("UPDATE audit SET subject = 'W00000009' WHERE seq = 1", "#1 (seq 1): modified"),
    ("DELETE FROM audit WHERE seq = 3", "#3 (seq 4): deleted (seq 3 before it is missing)"),
    ("DELETE FROM audit WHERE seq = 6", "#6 (seq 6): deleted (the recorded head has 6 entries"),
])
def test_a_changed_backend_trail_is_broken_where_it_was_changed(tmp_path, capsys, spoil, verdict):
    backend_trail(tmp_path / "state.db").db.close()
    tamper(tmp_path / "state.db", spoil, opener=sqlite3.connect)
    assert server.main(["audit", "verify", "--state", str(tmp_path / "state.db")]) == 1
    assert f"audit trail broken at entry {verdict}" in capsys.readouterr().out


def test_a_running_backends_trail_cannot_be_read_and_it_says_so(tmp_path, capsys):
    backend = backend_trail(tmp_path / "state.db")
    try:
        assert server.main(["audit", "verify", "--state", str(tmp_path / "state.db")]) == 2
        assert "in use by a running backend" in capsys.readouterr().err
    finally:
        backend.db.close()
    assert server.main(["audit", "verify", "--state", str(tmp_path / "none.db")]) == 2
    assert "no such state file" in capsys.readouterr().err


def test_views_kept_before_the_chain_begin_the_backends_trail(tmp_path):
    state = tmp_path / "state.db"
    Backend(60, 7, 60, 1000, str(state)).db.close()
    tamper(state, "CREATE TABLE viewed (at REAL NOT NULL, operator TEXT NOT NULL, "
                  "wearer_id TEXT NOT NULL)",
           f"INSERT INTO viewed VALUES ({T}, 'Demo Operator', 'W00000001')",
           f"INSERT INTO viewed VALUES ({T + 1}, 'Demo Operator', 'W00000002')",
           opener=sqlite3.connect)
    backend = Backend(60, 7, 60, 1000, str(state))
    assert [(v.operator, v.wearer_id) for v in backend.viewed] == [
        ("Demo Operator", "W00000001"), ("Demo Operator", "W00000002")]
    backend.db.close()
    assert verify_backend(state) == (0, "audit trail intact: 2 entries")
