"""The audit trail's hash chain, written once: for the console's cache (the `audit`
table, written with the outbox) and for the backend's own records (the simulator's
state file), each an `audit` table of `seq`, its fields, `prev` and `hash`, and its
head in `meta` under `audit_head`.

Each entry seals the one before it: its `hash` is the SHA-256 of its canonical
encoding, which includes its `seq` and `prev`, the hash of the entry before it
(GENESIS for the first). Changing, removing, adding or moving an entry breaks the
chain where it happened. Removing the last entries does not, so the head (how many
entries, and the last one's hash) is recorded too, and `verdict` says it: it proves
nothing against someone who rewrites the whole chain and its head (docs/reliability.md)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

import msgspec

GENESIS = "0" * 64  # the `prev` of a chain's first entry
HEAD_KEY = "audit_head"  # in meta: "<entries> <hash of the last>"
# The console's own trail: who did what to which alert, and the backend's answer.
CACHE_FIELDS = ("at", "operator", "username", "event", "kind", "alert_id", "key", "detail")


class Entry(NamedTuple):
    seq: int
    fields: dict[str, object]  # every column but seq, prev and hash, as stored
    prev: object  # as stored: damage can make it anything
    hash: object


class Head(NamedTuple):
    entries: int
    hash: str

    def __str__(self) -> str:
        return f"{self.entries} {self.hash}"

    @classmethod
    def parse(cls, value: object) -> Head | None:
        """The head as recorded, or None when it is not there or not readable."""
        entries, _, digest = value.partition(" ") if isinstance(value, str) else ("", "", "")
        return cls(int(entries), digest) if entries.isdigit() and len(digest) == 64 else None


class Break(NamedTuple):
    position: int  # entry #position, counting from 1 in seq order
    seq: int
    kind: str  # modified, inserted, deleted, out of order; head missing
    why: str


def entry_hash(seq: int, fields: dict[str, object], prev: object) -> str:
    """SHA-256 (hex) of the entry's canonical encoding: one JSON object of its fields,
    `seq` and `prev`, keys sorted, no whitespace, UTF-8 (msgspec: floats in their
    shortest round-trip form, bytes as base64, None as null)."""
    encoded = msgspec.json.encode({**fields, "seq": seq, "prev": prev}, order="sorted")
    return hashlib.sha256(encoded).hexdigest()


def chained(fields: dict[str, object], last: tuple[int, object] | None) -> Entry:
    """The entry that follows `last` (its seq and hash; None for the first)."""
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    return Entry(seq, fields, prev, entry_hash(seq, fields, prev))


def statements(entry: Entry) -> list[tuple[str, tuple]]:
    """The SQL that appends `entry` and moves the head to it: for the transaction that
    writes what the entry records."""
    columns = ", ".join(entry.fields)
    marks = ", ".join("?" * (len(entry.fields) + 3))
    return [(f"INSERT INTO audit (seq, {columns}, prev, hash) VALUES ({marks})",
             (entry.seq, *entry.fields.values(), entry.prev, entry.hash)),
            ("REPLACE INTO meta VALUES (?, ?)", (HEAD_KEY, str(Head(entry.seq, entry.hash))))]


def append(c: sqlite3.Connection, fields: dict[str, object]) -> None:
    """Append to the trail in `c`, inside the caller's transaction. It reads only the
    last entry's seq and hash (by the primary key), so its cost does not grow with
    the trail."""
    last = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    for sql, args in statements(chained(fields, last)):
        c.execute(sql, args)


def read(c: sqlite3.Connection, fields: Sequence[str]) -> tuple[list[Entry], Head | None]:
    """The trail and its recorded head, as stored; run it in one read transaction so
    that both are of the same moment while another connection appends."""
    rows = c.execute(f"SELECT seq, {', '.join(fields)}, prev, hash FROM audit ORDER BY seq")
    entries = [Entry(seq, dict(zip(fields, values, strict=True)), prev, digest)
               for seq, *values, prev, digest in rows]
    return entries, recorded_head(c)


def recorded_head(c: sqlite3.Connection) -> Head | None:
    row = c.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)).fetchone()
    return Head.parse(row[0]) if row else None


def first_break(entries: Sequence[Entry], head: Head | None) -> Break | None:
    """Where the chain first fails, and how, or None when it holds and ends in `head`.

    An entry is compared with what should come next: the seq after the last good
    one, linked to its hash. When it is not, its own hash says which seq it was
    sealed with, and its `prev` which entry it followed; from the two: entries
    between it and the one it followed were inserted; the one it followed comes
    later (out of order); the one it followed is nowhere and seqs are missing
    (deleted), or none are and the entry before it was re-sealed (modified)."""
    position_of = {e.hash: k for k, e in enumerate(entries, 1)}
    position_of[GENESIS] = 0
    # A moved entry was sealed with its first seq: found among these (after deleting
    # and renumbering, up to as many entries as are left).
    highest = 2 * len(entries) + 1
    expected_seq, expected_prev = 1, GENESIS
    for k, e in enumerate(entries, 1):
        if head and k > head.entries:
            return Break(k, e.seq, "inserted", f"the recorded head ends at entry #{head.entries}")
        sealed = _sealed_seq(e, highest)
        if sealed is None:
            return Break(k, e.seq, "modified", "it does not match its hash")
        if sealed == e.seq == expected_seq and e.prev == expected_prev:
            expected_seq, expected_prev = e.seq + 1, e.hash
            continue
        followed = position_of.get(e.prev)
        if followed is not None and followed < k - 1:
            first = entries[followed]
            return Break(followed + 1, first.seq, "inserted",
                         f"entry #{k} was sealed to follow entry #{followed}")
        if followed is not None and followed >= k:
            return Break(k, e.seq, "out of order", f"it was sealed to follow entry #{followed}")
        if sealed > expected_seq:
            missing = f"seq {expected_seq}" + (f" to {sealed - 1}" if sealed - 1 > expected_seq else "")
            return Break(k, e.seq, "deleted", f"{missing} before it is missing")
        if followed is None and sealed == expected_seq and k > 1:
            return Break(k - 1, entries[k - 2].seq, "modified",
                         f"re-sealed: entry #{k} was sealed to follow another")
        return Break(k, e.seq, "modified", f"it was sealed as seq {sealed}" if sealed != e.seq
                     else "it was sealed to follow an entry that is not here")
    if head is None:
        return Break(len(entries) + 1, expected_seq, "head missing",
                     "no readable head is recorded: entries from here on may have been deleted")
    if len(entries) < head.entries:
        return Break(len(entries) + 1, expected_seq, "deleted",
                     f"the recorded head has {head.entries} entries: the last "
                     f"{head.entries - len(entries)} are missing")
    if head.hash != expected_prev:
        return Break(len(entries), expected_seq - 1, "modified",
                     "the trail does not end in its recorded head: it was rewritten")
    return None


def _sealed_seq(e: Entry, highest: int) -> int | None:
    """The seq the entry was sealed with: its own, or another when it was moved
    (searched only at a break: one hash per candidate)."""
    if entry_hash(e.seq, e.fields, e.prev) == e.hash:
        return e.seq
    return next((s for s in range(1, highest + 1)
                 if s != e.seq and entry_hash(s, e.fields, e.prev) == e.hash), None)


def verdict(entries: Sequence[Entry], head: Head | None) -> tuple[bool, str]:
    """Whether the trail holds, and one line that says so (or where it breaks)."""
    found = first_break(entries, head)
    if found is None:
        last = entries[-1].hash if entries else GENESIS
        return True, f"audit trail intact: {len(entries)} entries, head {last[:16]}"
    return False, (f"audit trail broken at entry #{found.position} (seq {found.seq}): "
                   f"{found.kind} ({found.why})")
