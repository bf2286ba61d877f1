"""Trails fetched from the backend, kept in the (encrypted) cache for at most
CACHE_LIFETIME after fetching and then deleted, each view and each deletion in the
audit trail. A trail is never logged: the audit records which window was seen and
why, not where anyone was."""

from __future__ import annotations

import json
import logging
import time

import msgspec
import sqlcipher3

from console.domain.trails import CACHE_LIFETIME, Trail, TrailRequest
from console.store import audit as chain
from console.store.database import durable

log = logging.getLogger(__name__)

VIEWED, EXPORTED, DELETED = "trail viewed", "trail exported", "trail deleted"
KIND = "trail"  # the audit's `kind` for trail entries


def _record(c: sqlcipher3.Connection, event: str, operator: str | None, username: str | None,
            request_id: str, detail: dict) -> None:
    chain.append(c, {"at": time.time(), "operator": operator, "username": username, "event": event,
                     "kind": KIND, "alert_id": None, "key": request_id,
                     "detail": json.dumps(detail, ensure_ascii=False)})


def viewed(conn: sqlcipher3.Connection, request: TrailRequest, trail: Trail | None,
           operator: str | None, username: str | None, now: float) -> None:
    """Keep a trail just fetched (`trail`; None when it came from this cache) and
    audit the view, in one durable transaction."""
    with durable(conn) as c:
        if trail is not None:
            c.execute("REPLACE INTO trails VALUES (?, ?, ?, ?, ?)",
                      (request.id, request.wearer_id, now, now + CACHE_LIFETIME,
                       msgspec.msgpack.encode(trail)))
        _record(c, VIEWED, operator, username, request.id, {
            "wearer_id": request.wearer_id, "purpose": request.purpose.value,
            "reference_kind": request.reference_kind.value, "reference": request.reference,
            "start": request.start, "end": request.end,
            "points": None if trail is None else len(trail), "from": "backend" if trail else "cache"})


def exported(conn: sqlcipher3.Connection, request: TrailRequest, report: str, operator: str | None,
             username: str | None) -> None:
    """Audit an evidence export of the trail seen under `request` (`report`: which)."""
    with durable(conn) as c:
        _record(c, EXPORTED, operator, username, request.id, {
            "wearer_id": request.wearer_id, "purpose": request.purpose.value,
            "reference": request.reference, "start": request.start, "end": request.end,
            "report": report})


def cached(conn: sqlcipher3.Connection, request_id: str, now: float) -> Trail | None:
    """The trail fetched under this request, if kept and not yet due for deletion."""
    row = conn.execute("SELECT body FROM trails WHERE request_id = ? AND expires_at > ?",
                       (request_id, now)).fetchone()
    if row is None:
        return None
    try:
        return msgspec.msgpack.decode(row[0], type=Trail)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as e:
        log.warning("a cached trail did not read back (%s): it is fetched again", type(e).__name__)
        return None


def sweep(conn: sqlcipher3.Connection, now: float) -> int:
    """Delete the trails kept for CACHE_LIFETIME, overwriting their pages
    (secure_delete), each deletion audited; how many were deleted."""
    due = conn.execute("SELECT request_id, wearer_id, fetched_at FROM trails WHERE expires_at <= ?",
                       (now,)).fetchall()
    if not due:
        return 0
    conn.execute("PRAGMA secure_delete=ON")
    try:
        with durable(conn) as c:
            for request_id, wearer_id, fetched_at in due:
                c.execute("DELETE FROM trails WHERE request_id = ?", (request_id,))
                _record(c, DELETED, None, None, request_id, {
                    "wearer_id": wearer_id, "fetched_at": fetched_at,
                    "why": f"kept {CACHE_LIFETIME / 3600:.0f} hours after fetching"})
    finally:
        conn.execute("PRAGMA secure_delete=OFF")
    return len(due)
