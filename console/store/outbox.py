"""The outbox and its audit trail: operators' actions, durable before the UI shows
them as done, with who did what and when, in a hash chain (console/store/audit.py).

Each row holds the action's kind and its payload as JSON, read back strictly into
the kind's payload type (console/domain/actions.py): a row that does not read back
as this console writes it is never sent."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import NamedTuple

import msgspec
import sqlcipher3

from console.changes import Changes
from console.domain.actions import Action, ActionState, Payload, kind_named
from console.store import audit as chain
from console.store.database import durable
from console.store.rows import Damaged, decoded, number, one_of, opt_text, text
from console.store.undelivered import Undelivered

log = logging.getLogger(__name__)

ACTION_COLUMNS = "seq, key, kind, payload, created_at, state, attempts, detail, operator, username"
# What a row's state may be when read back; a damaged one is set aside, not read.
READABLE_STATES = tuple(s.value for s in ActionState if s is not ActionState.DAMAGED)
SHOWN = (ActionState.PENDING, ActionState.CONFLICT, ActionState.REJECTED)


class AuditEntry(NamedTuple):
    at: float
    operator: str | None  # by name
    username: str | None  # by sign-in name (None before schema 3)
    event: str  # queued, delivered, conflict, rejected, damaged
    kind: str
    alert_id: str | None
    key: str
    detail: str | None  # for "queued": the payload as JSON; else the backend's answer


def encode_payload(payload: Payload) -> str:
    return msgspec.json.encode(payload).decode()


def decode_payload(kind, raw: object) -> Payload:
    """The payload of a `kind` action, strictly: its own fields, of their own types."""
    try:
        return msgspec.json.decode(text(raw), type=kind.spec.payload, strict=True)
    except msgspec.DecodeError as e:
        raise Damaged(f"payload: {e}") from None


def actions(c: sqlcipher3.Connection, states: tuple[ActionState, ...]) -> list[Action]:
    """Queued actions in these states, oldest first. A row that does not read back
    (damaged since load() set the others aside) is skipped, never sent."""
    marks = ",".join("?" * len(states))
    rows = c.execute(f"SELECT {ACTION_COLUMNS} FROM outbox WHERE state IN ({marks}) "
                     "ORDER BY seq", [ActionState(s).value for s in states])
    return list(decoded("outbox", rows, action_from_row, []))


def audit(c: sqlcipher3.Connection) -> list[AuditEntry]:
    return [AuditEntry(*row) for row in c.execute(
        "SELECT at, operator, username, event, kind, alert_id, key, detail FROM audit "
        "ORDER BY seq")]


def undelivered(c: sqlcipher3.Connection) -> Undelivered:
    """How many queued actions wait to be sent, and when the oldest was queued."""
    count, oldest = c.execute("SELECT count(*), min(created_at) FROM outbox WHERE state = ?",
                              (ActionState.PENDING.value,)).fetchone()
    return Undelivered(count, oldest if isinstance(oldest, float | int) else None)


def _audit(c: sqlcipher3.Connection, action: Action, event: str, detail: str | None) -> None:
    _record(c, action.operator, action.username, event, action.kind.value, action.alert_id,
            action.key, detail)


def _record(c: sqlcipher3.Connection, operator: object, username: object, event: str, kind: object,
            alert_id: str | None, key: object, detail: str | None) -> None:
    """Append to the audit trail, inside the caller's transaction. The values of a
    damaged action are recorded as they are stored."""
    chain.append(c, {"at": time.time(), "operator": operator, "username": username,
                     "event": event, "kind": kind, "alert_id": alert_id, "key": key,
                     "detail": detail})


def enqueue(conn: sqlcipher3.Connection, action: Action) -> Changes:
    """Queue an operator's action and audit it in one durable transaction,
    before the UI may show it as done."""
    payload = encode_payload(action.payload)
    with durable(conn) as c:
        cur = c.execute(
            "INSERT INTO outbox (key, kind, payload, created_at, state, attempts, operator, "
            "username) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (action.key, action.kind.value, payload, action.created_at,
             ActionState.PENDING.value, action.operator, action.username))
        _audit(c, action, "queued", payload)
    queued = replace(action, state=ActionState.PENDING, attempts=0, seq=cur.lastrowid)
    return Changes(actions={action.key: queued})


def settle(conn: sqlcipher3.Connection, key: str, state: ActionState, detail: str | None,
           attempts: int) -> Changes:
    """Record the backend's answer to an action (or, while pending, why it is still
    queued). Every answer but "still pending" is audited."""
    state = ActionState(state)
    with durable(conn) as c:
        c.execute("UPDATE outbox SET state=?, detail=?, attempts=? WHERE key=?",
                  (state.value, detail, attempts, key))
        row = c.execute(f"SELECT {ACTION_COLUMNS} FROM outbox WHERE key=?", (key,)).fetchone()
        action = action_from_row(row)
        if state is not ActionState.PENDING:
            _audit(c, action, state.value, detail)
    return Changes(actions={key: action})


def _named_alert(payload: object) -> str | None:
    """The alert a stored payload names, read loosely, to tell the operator which
    of their actions was set aside even when the payload itself is damaged."""
    raw = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    try:
        alert_id = msgspec.json.decode(raw).get("alert_id") if isinstance(raw, str) else None
    except (msgspec.DecodeError, AttributeError):
        return None
    return alert_id if isinstance(alert_id, str) else None


def set_aside_damaged(conn: sqlcipher3.Connection) -> str | None:
    """A queued action that does not read back as written is an operator's action
    that may not be what they did: it is never sent, and never dropped quietly.
    It is marked damaged and audited (so it is told once), logged and named in
    the notice it returns. Delivered actions are history, not checked."""
    bad = []
    skip = (ActionState.DELIVERED.value, ActionState.DAMAGED.value)
    for row in conn.execute(f"SELECT {ACTION_COLUMNS} FROM outbox "
                            "WHERE state NOT IN (?, ?) ORDER BY seq", skip):
        try:
            action_from_row(row)
        except (ValueError, TypeError) as e:
            seq, key, _, payload, *_ = row
            alert_id = _named_alert(payload)
            log.error("a queued action in the cache is damaged and will not be sent: "
                      "outbox key %r, alert %r: %s", key, alert_id, e)
            named = f"alert {alert_id!r:.40}" if alert_id else f"action {key!r:.40}"
            bad.append((row, alert_id, named, f"damaged, set aside: {e}"[:500]))
    if not bad:
        return None
    with durable(conn) as c:
        for (seq, key, kind, *_, operator, username), alert_id, _, reason in bad:
            c.execute("UPDATE outbox SET state = ?, detail = ? WHERE seq = ?",
                      (ActionState.DAMAGED.value, reason, seq))
            _record(c, operator, username, ActionState.DAMAGED.value, kind, alert_id, key, reason)
    were = "action in the offline cache is" if len(bad) == 1 else \
        "actions in the offline cache are"
    return (f"{len(bad)} queued operator {were} damaged and will not be sent: "
            f"{', '.join(named for _, _, named, _ in bad)}. Check those alerts and act again "
            "where needed.")


def action_from_row(r: tuple) -> Action:
    seq, key, kind, payload, created_at, state, attempts, detail, operator, username = r
    if type(attempts) is not int or attempts < 0:
        raise Damaged(f"attempts: {attempts!r:.40}")
    try:
        kind = kind_named(kind)
    except ValueError as e:
        raise Damaged(str(e)) from None
    return Action(text(key), kind, decode_payload(kind, payload), number(created_at),
                  ActionState(one_of(state, READABLE_STATES)), attempts, opt_text(detail), seq,
                  opt_text(operator), opt_text(username))
