"""The alerts table: open alerts with their history."""

from __future__ import annotations

import orjson

from console.domain import Alert, AlertState, HistoryEntry
from console.store.rows import Damaged, flag, moment, opt_text, text

ALERT_COLUMNS = "id, wearer_id, device_id, type, raised_at, state, active, history"


def alert_row(a: Alert, event_id: int) -> tuple:
    history = orjson.dumps([[h.state.value, h.at, h.by, h.note] for h in a.history])
    return (a.id, a.wearer_id, a.device_id, a.type, a.raised_at, a.state.value, int(a.active),
            history.decode(), event_id)


def history_entry(e: object) -> HistoryEntry:
    if not isinstance(e, list) or len(e) != 4:
        raise Damaged(f"history entry {e!r:.60}")
    state, at, by, note = e
    return HistoryEntry(AlertState(state), moment(at), opt_text(by), opt_text(note))


def alert_from_row(r: tuple) -> Alert:
    id_, wearer_id, device_id, type_, raised_at, state, active, history = r
    entries = orjson.loads(text(history))
    if not isinstance(entries, list):
        raise Damaged(f"history is not a list: {history!r:.40}")
    return Alert(text(id_), text(wearer_id), text(device_id), text(type_), moment(raised_at),
                 AlertState(state), flag(active), tuple(map(history_entry, entries)))


