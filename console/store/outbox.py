"""The outbox and its audit trail: operators' actions, durable before the UI shows
them as done, with who did what and when."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace

from console.changes import Changes
from console.domain.actions import Action
from console.store.database import durable
from console.store.rows import Damaged, decoded, number, one_of, opt_text, text

log = logging.getLogger(__name__)

ACTION_COLUMNS = "seq, key, action, alert_id, note, created_at, state, attempts, detail, operator"
ACTIONS = ("acknowledge",)  # what the console queues
ACTION_STATES = ("pending", "delivered", "conflict", "rejected")


def actions(c: sqlite3.Connection, states: tuple[str, ...]) -> list[Action]:
    """Queued actions in these states, oldest first. A row that does not read back
    (damaged since load() set the others aside) is skipped, never sent."""
    marks = ",".join("?" * len(states))
    rows = c.execute(f"SELECT {ACTION_COLUMNS} FROM outbox WHERE state IN ({marks}) "
                 "ORDER BY seq", states)
    return list(decoded("outbox", rows, action_from_row, []))


def audit(c: sqlite3.Connection) -> list[tuple]:
    return c.execute(
    "SELECT at, operator, event, action, alert_id, key, detail FROM audit ORDER BY seq"
    ).fetchall()


def _audit(c: sqlite3.Connection, action: Action, event: str, detail: str | None) -> None:
    c.execute("INSERT INTO audit (at, operator, event, action, alert_id, key, detail) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)",
          (time.time(), action.operator, event, action.action, action.alert_id,
           action.key, detail))


def enqueue(conn: sqlite3.Connection, action: Action) -> Changes:
    """Queue an operator's action and audit it in one durable transaction,
    before the UI may show it as done."""
    with durable(conn) as c:
        cur = c.execute(
            "INSERT INTO outbox (key, action, alert_id, note, created_at, state, attempts, "
            "operator) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)",
            (action.key, action.action, action.alert_id, action.note, action.created_at,
             action.operator))
        _audit(c, action, "queued", action.note)
    queued = replace(action, state="pending", seq=cur.lastrowid)
    return Changes(actions={action.key: queued})


def settle(conn: sqlite3.Connection, key: str, state: str, detail: str | None,
           attempts: int) -> Changes:
    """Record the backend's answer to an action (or, while pending, the last error)."""
    with durable(conn) as c:
        c.execute("UPDATE outbox SET state=?, detail=?, attempts=? WHERE key=?",
                  (state, detail, attempts, key))
        row = c.execute(f"SELECT {ACTION_COLUMNS} FROM outbox WHERE key=?", (key,)).fetchone()
        action = action_from_row(row)
        if state != "pending":
            _audit(c, action, state, detail)
    return Changes(actions={key: action})


def set_aside_damaged(conn: sqlite3.Connection) -> str | None:
    """A queued action that does not read back as written is an operator's action
    that may not be what they did: it is never sent, and never dropped quietly.
    It is marked 'damaged' and audited (so it is told once), logged and named in
    the notice it returns. Delivered actions are history, not checked."""
    bad = []
    for row in conn.execute(f"SELECT {ACTION_COLUMNS} FROM outbox "
                                 "WHERE state NOT IN ('delivered', 'damaged') ORDER BY seq"):
        try:
            action_from_row(row)
        except (ValueError, TypeError) as e:
            seq, key, _, alert_id, *_ = row
            log.error("a queued action in the cache is damaged and will not be sent: "
                      "outbox key %r, alert %r: %s", key, alert_id, e)
            bad.append((seq, f"alert {alert_id!r:.40}", f"damaged, set aside: {e}"[:500]))
    if not bad:
        return None
    with durable(conn) as c:
        for seq, _, reason in bad:
            c.execute("UPDATE outbox SET state = 'damaged', detail = ? WHERE seq = ?",
                      (reason, seq))
            c.execute("INSERT INTO audit (at, operator, event, action, alert_id, key, detail) "
                      "SELECT ?, operator, 'damaged', action, alert_id, key, ? FROM outbox "
                      "WHERE seq = ?", (time.time(), reason, seq))
    were = "action in the offline cache is" if len(bad) == 1 else \
        "actions in the offline cache are"
    return (f"{len(bad)} queued operator {were} damaged and will not be sent: "
            f"{', '.join(alert for _, alert, _ in bad)}. Check those alerts and act again "
            "where needed.")


def action_from_row(r: tuple) -> Action:
    seq, key, action, alert_id, note, created_at, state, attempts, detail, operator = r
    if type(attempts) is not int or attempts < 0:
        raise Damaged(f"attempts: {attempts!r:.40}")
    return Action(text(key), one_of(action, ACTIONS), text(alert_id), opt_text(note),
                  number(created_at), one_of(state, ACTION_STATES), attempts,
                  opt_text(detail), seq, opt_text(operator))
