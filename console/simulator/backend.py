"""The simulated backend's state: fleet, event log, sessions, idempotency keys and
its own audit trail (views of personal data, operators' transitions, case entries and
suspensions), hash-chained as the console's is (console/store/audit.py).

Everything runs on the server's event loop, so no locks. With a state file, each
tick's events and the state they produced are committed together before any
client sees them, so a backend killed at any moment restarts on the same id
sequence, and no client ever holds an event the backend has forgotten.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from console.domain import Alert, CaseEntry, LifecycleError, OutOfBounds, cases
from console.protocol import schema
from console.protocol.schema import encode
from console.protocol.sse import encode_frame
from console.simulator.accounts import TOKEN_TTL, TRAINING_USERS, Accounts
from console.simulator.fleet import Fleet
from console.simulator.people import wearer_record
from console.store import audit

# An idempotency key is its operator's own: another operator's same key is another request.
IDEMPOTENCY = """
CREATE TABLE IF NOT EXISTS idempotency (
    operator TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (operator, key));
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (idx INTEGER PRIMARY KEY, state TEXT NOT NULL, reported BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, body TEXT NOT NULL, truth TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, frame BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at REAL NOT NULL, operator TEXT NOT NULL,
                                  event TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT,
                                  prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS case_entries (seq INTEGER PRIMARY KEY, wearer_id TEXT NOT NULL,
                                         body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS suspensions (seq INTEGER PRIMARY KEY, wearer_id TEXT NOT NULL,
                                        body BLOB NOT NULL);
""" + IDEMPOTENCY
# Keys were once shared by all operators; a state file from then gets the operator
# column. Its keys were all the demo operator's, the only one there was.
SCOPE_OLD_KEYS = f"""
BEGIN;
ALTER TABLE idempotency RENAME TO unscoped_keys;
{IDEMPOTENCY}
INSERT INTO idempotency SELECT 'op-demo', key, fingerprint, status, body FROM unscoped_keys;
DROP TABLE unscoped_keys;
COMMIT;
"""
# The audit trail's entries: when (simulated time), who (the operator's name), what
# (VIEWED, a transition's first history entry's `what`, CASE_ENTRY, SUSPENDED, one
# of accounts.ACCESS_EVENTS, or a trail access, trails.AUDITED), of which wearer, alert or username, and the
# detail as JSON (what was recorded) or words.
AUDIT_FIELDS = ("at", "operator", "event", "subject", "detail")
VIEWED, CASE_ENTRY, SUSPENDED = "viewed", "case entry", "suspended"


class StateInUse(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class Backend:
    def __init__(self, wearers: int, seed: int, speed: float, replay: int,
                 state_path: str | None = None, token_ttl: float = TOKEN_TTL,
                 users: dict[str, tuple[str, schema.Operator]] = TRAINING_USERS):
        self.speed = speed
        self.replay = replay
        self.db = self._open(state_path)
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall()) if self.db else {}
        if meta:
            wearers, seed = int(meta["wearers"]), int(meta["seed"])
        self.fleet = Fleet(wearers, seed, float(meta.get("sim_time", time.time())))
        self.stream_id = meta.get("stream_id") or uuid.uuid4().hex
        self.last_id = int(meta.get("last_id", 0))
        self.frames: list[bytes] = []  # the replay buffer; frames[k] has id first_id + k
        self.first_id = self.last_id + 1
        self.accounts = Accounts(self.db, self.access, token_ttl, users)
        # The audit trail, oldest first.
        self.trail = audit.read(self.db, AUDIT_FIELDS)[0] if self.db else []
        self.cases: dict[str, list[CaseEntry]] = {}  # wearer id -> case timeline, as recorded
        self._idempotency: dict[tuple[str, str], tuple[str, Answer]] = {}  # (operator id, key)
        self._changed_alerts: set[str] = set()
        self._new_events = asyncio.Event()
        self._clock = (time.monotonic(), self.fleet.now)
        if meta:
            self._load()
        else:
            self.fleet.touched.update(range(len(self.fleet.sims)))
            self._changed_alerts.update(self.fleet.alerts)
            self._commit([], {"wearers": wearers, "seed": seed})

    # -- persistence --------------------------------------------------------

    @staticmethod
    def _open(path: str | None) -> sqlite3.Connection | None:
        if path is None:
            return None
        # Owner-only, created so before SQLite opens it (SQLite gives its -wal and -shm
        # the file's mode): it holds the audit trail and the session tokens' hashes.
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, isolation_level=None, timeout=0)
        # One backend per state file: two would interleave one event log.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN EXCLUSIVE")
            db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            db.close()
            raise StateInUse(f"the state file {path} is in use by another backend ({e})") from None
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        columns = [row[1] for row in db.execute("PRAGMA table_info(idempotency)")]
        if "operator" not in columns:
            db.executescript(SCOPE_OLD_KEYS)
        # Views were once kept in a table of their own: they begin the audit trail.
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'viewed'").fetchone():
            with db:
                db.execute("BEGIN")
                for at, operator, wearer_id in db.execute(
                        "SELECT at, operator, wearer_id FROM viewed ORDER BY rowid").fetchall():
                    audit.append(db, {"at": at, "operator": operator, "event": VIEWED,
                                      "subject": wearer_id, "detail": None})
                db.execute("DROP TABLE viewed")
        return db

    def _load(self) -> None:
        db = self.db
        meta = dict(db.execute("SELECT key, value FROM meta"))
        self.fleet.restore(
            devices=[(idx, json.loads(state), schema.decode(reported, schema.DeviceStatus).to_domain(None))
                     for idx, state, reported in db.execute("SELECT * FROM devices")],
            alerts=[(schema.decode(body, schema.Alert).to_domain(None), truth)
                    for body, truth in db.execute("SELECT body, truth FROM alerts ORDER BY id")],
            next_alert=int(meta["next_alert"]),
            timers=[tuple(t) for t in json.loads(meta["timers"])],
        )
        rows = self.db.execute(
            "SELECT id, frame FROM events WHERE id > ? ORDER BY id", (self.last_id - self.replay,)
        ).fetchall()
        self.frames = [f for _, f in rows]
        self.first_id = rows[0][0] if rows else self.last_id + 1
        for wearer_id, body in self.db.execute("SELECT wearer_id, body FROM case_entries ORDER BY seq"):
            self.cases.setdefault(wearer_id, []).append(
                schema.decode(body, schema.CaseEntry).to_domain(None))
        for wearer_id, body in self.db.execute("SELECT wearer_id, body FROM suspensions ORDER BY seq"):
            self.fleet.recorded.setdefault(self.fleet.index_of_wearer(wearer_id), []).append(
                schema.decode(body, schema.Suspension).to_domain(wearer_id, "suspension"))
        for operator, key, fp, status, body in self.db.execute("SELECT * FROM idempotency"):
            self._idempotency[operator, key] = (fp, Answer(status, body))

    def _commit(self, new_frames: list[tuple[int, bytes]], extra_meta: dict | None = None,
                extra_sql: list[tuple[str, tuple]] = ()) -> None:
        if self.db is None:
            self.fleet.touched.clear()
            self._changed_alerts.clear()
            return
        fleet = self.fleet
        meta = {"sim_time": fleet.now, "stream_id": self.stream_id, "last_id": self.last_id,
                "next_alert": fleet.next_alert, "timers": json.dumps(fleet.timers)}
        meta.update(extra_meta or {})
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO events VALUES (?, ?)", new_frames)
            self.db.executemany("REPLACE INTO devices VALUES (?, ?, ?)", [
                (i, json.dumps(fleet.dump_device(i)),
                 encode(schema.DeviceStatus.from_domain(fleet.reported[i])))
                for i in fleet.touched])
            self.db.executemany("REPLACE INTO alerts VALUES (?, ?, ?)", [
                (a, encode(schema.Alert.from_domain(fleet.alerts[a])), fleet.truth[a])
                for a in self._changed_alerts])
            self.db.executemany("REPLACE INTO meta VALUES (?, ?)",
                                [(k, str(v)) for k, v in meta.items()])
            for sql, args in extra_sql:
                self.db.execute(sql, args)
            self.db.execute("DELETE FROM events WHERE id <= ?", (self.last_id - self.replay,))
        fleet.touched.clear()
        self._changed_alerts.clear()

    # -- time and events ----------------------------------------------------

    def sim_now(self) -> float:
        mono, sim = self._clock
        return sim + (time.monotonic() - mono) * self.speed

    def tick(self) -> int:
        """Advance the simulation to now, log and commit its events, wake the streams."""
        events = self.fleet.advance(self.sim_now())
        self._publish(events)
        return len(events)

    def _publish(self, events: list[tuple[str, object]], extra_sql=()) -> None:
        new = []
        for event_type, payload in events:
            self.last_id += 1
            if event_type == "device.status":
                body = schema.DeviceStatus.from_domain(payload)
            else:
                body = schema.Alert.from_domain(payload)
                self._changed_alerts.add(payload.id)
            new.append((self.last_id, encode_frame(self.last_id, event_type, encode(body))))
        self._commit(new, extra_sql=extra_sql)
        self.frames.extend(f for _, f in new)
        excess = len(self.frames) - self.replay
        if excess > self.replay // 4:  # trim in chunks, not per event
            del self.frames[:excess]
            self.first_id += excess
        if new:
            self._new_events.set()
            self._new_events = asyncio.Event()

    def frames_after(self, last_id: int) -> list[bytes] | None:
        """Frames after last_id, or None when that id is outside the replay buffer."""
        if last_id < self.first_id - 1 or last_id > self.last_id:
            return None
        return self.frames[last_id - self.first_id + 1:]

    async def wait_for_events(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._new_events.wait(), timeout)
        except TimeoutError:
            pass

    # -- requests -----------------------------------------------------------

    def snapshot(self) -> bytes:
        fleet = self.fleet
        return encode(schema.Snapshot(
            stream_id=self.stream_id,
            server_time=schema.wire_time(self.sim_now()),
            clock_rate=self.speed,
            last_event_id=self.last_id,
            wearers=[schema.Wearer.from_domain(w) for w in fleet.wearers],
            devices=[schema.Device.from_domain(d, fleet.reported[i])
                     for i, d in enumerate(fleet.devices)],
            alerts=[schema.Alert.from_domain(a) for a in fleet.open_alerts()],
        ))

    def view_wearer(self, wearer_id: str, operator: schema.Operator) -> schema.WearerRecord | None:
        """The wearer's record, audited as seen by `operator` (durably, with a state
        file, before it is answered); None for an unknown wearer."""
        self.tick()
        index = self.fleet.index_of_wearer(wearer_id)
        if index is None:
            return None
        self._together(self._audit(VIEWED, operator, wearer_id))
        return wearer_record(self.fleet, index, self.cases.get(wearer_id, []))

    def record_case_entry(self, wearer_id: str, new: schema.NewCaseEntry,
                          operator: schema.Operator, key: str,
                          acted_at: float | None = None) -> Answer:
        """An entry on a wearer's case, once per idempotency key. 404 for an unknown
        wearer; 422 for an entry its kind's rules refuse (console/domain/cases.py) or
        that names an alert that is not the wearer's. It is recorded when the operator
        recorded it (`acted_at`, for one queued offline), if no later than now."""
        scoped, fingerprint = (operator.id, key), fingerprint_of(b"case", wearer_id.encode(), encode(new))
        if (seen := self._seen(scoped, fingerprint)) is not None:
            return seen
        self.tick()
        if self.fleet.index_of_wearer(wearer_id) is None:
            return problem(404, "No such wearer", f"no wearer {wearer_id[:100]}")
        now = self.fleet.now
        try:
            entry = new.to_domain(now)
            # The console dates an entry by its estimate of this clock: allow the same
            # skew as any timestamp (schema.instant).
            reason = cases.problem(entry, now + schema.MAX_CLOCK_SKEW) or next(
                (f"alert {a[:100]} is not one of this wearer's" for a in entry.alert_ids
                 if getattr(self.fleet.alerts.get(a), "wearer_id", None) != wearer_id), None)
        except schema.BadEvent as e:
            reason = str(e)
        if reason is not None:
            answer = problem(422, "Refused by the rules", f"the case entry: {reason}")
            self._remember(scoped, fingerprint, answer)
            return answer
        entry = replace(entry, id=f"C{uuid.uuid4().hex[:12]}", recorded_by=operator.name,
                        recorded_at=now if acted_at is None else min(now, acted_at))
        body = encode(schema.CaseEntry.from_domain(entry))
        answer = Answer(200, body)
        self.cases.setdefault(wearer_id, []).append(entry)
        self._idempotency[scoped] = (fingerprint, answer)
        self._together([("INSERT INTO case_entries (wearer_id, body) VALUES (?, ?)", (wearer_id, body)),
                        self._key_sql(scoped, fingerprint, answer),
                        *self._audit(CASE_ENTRY, operator, wearer_id, body.decode())])
        return answer

    def handle(self, alert_id: str, request: bytes, operator: schema.Operator, key: str,
               change: Callable[[Alert, float], Alert], acted_at: float | None = None) -> Answer:
        """One operator's transition on one alert, once per idempotency key.
        `request` names the transition, the alert and the body: a key reused for
        another request is refused. An unknown alert is 404; a transition the alert's
        handling no longer allows is 409 with the alert as it stands; one the rules
        refuse whatever the state is 422. Each answer is kept under the key, so a
        retry gets the same answer and changes nothing. `acted_at` (the Acted-At
        header): when the operator acted, for an action queued offline; the history
        records it then, if it is no later than now and no earlier than the alert's
        last entry (so the history stays in order)."""
        scoped, fingerprint = (operator.id, key), fingerprint_of(request)
        if (seen := self._seen(scoped, fingerprint)) is not None:
            return seen
        # The world first catches up with now: the rules judge the transition (a
        # shelving's expiry, above all) at the time the backend answers, as a real one would.
        self.tick()
        alert = self.fleet.alerts.get(alert_id)
        if alert is None:
            return problem(404, "No such alert", f"no alert has the id {alert_id}")
        try:
            event = self.fleet.handle(alert_id, lambda a, now: change(a, acted(a, now, acted_at)))
        except LifecycleError as e:
            answer = problem(409, "Alert moved on", str(e), schema.Alert.from_domain(alert))
            self._remember(scoped, fingerprint, answer)
            return answer
        except OutOfBounds as e:
            answer = problem(422, "Refused by the rules", str(e))
            self._remember(scoped, fingerprint, answer)
            return answer
        answer = Answer(200, encode(schema.Alert.from_domain(event[1])))
        self._idempotency[scoped] = (fingerprint, answer)
        # What the transition added to the history (nothing for a claim of one's own).
        added = event[1].history[len(alert.history):]
        audited = self._audit(added[0].what, operator, alert_id, encode(
            [schema.HistoryEntry.from_domain(h) for h in added]).decode()) if added else []
        # The effect, its event, the key's answer and its audit entry are committed together.
        self._publish([event], extra_sql=[self._key_sql(scoped, fingerprint, answer), *audited])
        return answer

    def suspend(self, wearer_id: str, new: schema.Suspension, operator: schema.Operator,
                key: str) -> Answer:
        """Suspend a wearer's monitoring, once per idempotency key: alerts raised while
        it holds are marked suppressed. 404 for an unknown wearer; 422 for one that
        ends before it starts, repeats before it ends, or has ended already."""
        scoped, fingerprint = (operator.id, key), fingerprint_of(b"suspend", wearer_id.encode(),
                                                                 encode(new))
        if (seen := self._seen(scoped, fingerprint)) is not None:
            return seen
        self.tick()
        index = self.fleet.index_of_wearer(wearer_id)
        if index is None:
            return problem(404, "No such wearer", f"no wearer {wearer_id[:100]}")
        try:
            suspension = new.to_domain(wearer_id, "the suspension")
            if suspension.every is None and suspension.end <= self.fleet.now:
                raise schema.BadEvent("the suspension: it has ended already")
        except schema.BadEvent as e:
            answer = problem(422, "Refused by the rules", str(e))
            self._remember(scoped, fingerprint, answer)
            return answer
        answer = Answer(200, encode(new))
        self.fleet.recorded.setdefault(index, []).append(suspension)
        self._idempotency[scoped] = (fingerprint, answer)
        self._together([("INSERT INTO suspensions (wearer_id, body) VALUES (?, ?)",
                         (wearer_id, answer.body)),
                        self._key_sql(scoped, fingerprint, answer),
                        *self._audit(SUSPENDED, operator, wearer_id, answer.body.decode())])
        return answer

    @property
    def viewed(self) -> list[schema.Viewed]:
        """Who saw whose personal data, oldest first (GET /sim/audit)."""
        return [schema.Viewed(schema.wire_time(e.fields["at"]), e.fields["operator"],
                              e.fields["subject"]) for e in self.trail if e.fields["event"] == VIEWED]

    def access(self, event: str, who: str, subject: str, detail: str | None = None) -> None:
        """Audit a sign-in, a refusal or a sign-out (accounts.py), or a request the
        roles did not allow (http.py): `who` as far as known, a username if no more."""
        self._together(self._audit(event, who, subject, detail))

    def _audit(self, event: str, operator: schema.Operator | str, subject: str,
               detail: str | None = None) -> list[tuple[str, tuple]]:
        """Append to the audit trail, in memory; the SQL that keeps it in the state
        file, for the transaction that records what it audits."""
        last = self.trail[-1] if self.trail else None
        name = operator if isinstance(operator, str) else operator.name
        fields = {"at": self.fleet.now, "operator": name, "event": event,
                  "subject": subject, "detail": detail}
        entry = audit.chained(fields, last and (last.seq, last.hash))
        self.trail.append(entry)
        return audit.statements(entry)

    def _together(self, statements: list[tuple[str, tuple]]) -> None:
        """With a state file: run these in one transaction, durably, before answering."""
        if self.db is not None:
            with self.db:
                self.db.execute("BEGIN")
                for sql, args in statements:
                    self.db.execute(sql, args)

    def _seen(self, key: tuple[str, str], fingerprint: str) -> Answer | None:
        """The answer kept under an operator's idempotency key (each operator has
        keys of their own), if the key was used; a refusal if for another request."""
        seen = self._idempotency.get(key)
        if seen is not None and seen[0] != fingerprint:
            return problem(422, "Idempotency-Key reused", "this key was used for a different request")
        return None if seen is None else seen[1]

    def _remember(self, key: tuple[str, str], fingerprint: str, answer: Answer) -> None:
        self._idempotency[key] = (fingerprint, answer)
        if self.db is not None:
            with self.db:
                self.db.execute(*self._key_sql(key, fingerprint, answer))

    @staticmethod
    def _key_sql(key: tuple[str, str], fingerprint: str, answer: Answer) -> tuple[str, tuple]:
        return ("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?)",
                (*key, fingerprint, answer.status, answer.body))


def acted(alert: Alert, now: float, acted_at: float | None) -> float:
    """When a transition on `alert` happened: when the operator acted, if they said,
    within the alert's life so far; else now."""
    if acted_at is None:
        return now
    last = alert.history[-1].at if alert.history else alert.raised_at
    return min(now, max(acted_at, last, alert.raised_at))


def fingerprint_of(*parts: bytes) -> str:
    """What identifies a request, for its idempotency key."""
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def problem(status: int, title: str, detail: str, alert: schema.Alert | None = None) -> Answer:
    return Answer(status, encode(schema.Problem("about:blank", title, status, detail, alert)))



def verify_audit(state: str) -> tuple[int, str]:
    """`python -m console.simulator audit verify --state FILE`: 0 and a line when the
    backend's audit trail holds, 1 and where it breaks, 2 and why it cannot be read.
    The backend holds its state file exclusively: stop it first."""
    if not Path(state).is_file():
        return 2, f"{state}: no such state file"
    try:
        db = sqlite3.connect(f"{Path(state).absolute().as_uri()}?mode=ro", uri=True,
                             isolation_level=None, timeout=0)
        try:
            db.execute("BEGIN")
            entries, head = audit.read(db, AUDIT_FIELDS)
        finally:
            db.close()
    except sqlite3.Error as e:
        if "locked" in str(e):
            return 2, f"{state} is in use by a running backend: stop it to verify its trail"
        return 2, f"{state}: not readable as a backend's state ({e})"
    intact, line = audit.verdict(entries, head)
    return (0 if intact else 1), line
