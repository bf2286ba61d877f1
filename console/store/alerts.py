"""The alerts table: open alerts with their history and handling."""

from __future__ import annotations

import orjson

from console.domain import Alert, AlertState, Evidence, HistoryEntry, Outcome, Span, SuspensionReason
from console.domain.battery import span_of
from console.store.rows import Damaged, flag, moment, opt_text, text

ALERT_COLUMNS = ("id, wearer_id, device_id, type, raised_at, state, active, history, "
                 "holder, outcome, shelved_until, shelved_reason, cleared_at, evidence, suppressed")
# What alert_row writes, in its order: the columns read back, and the event id.
ALERT_ROW = f"{ALERT_COLUMNS}, event_id"
ALERT_WIDTH = ALERT_ROW.count(",") + 1


def alert_row(a: Alert, event_id: int) -> tuple:
    history = orjson.dumps([[h.state.value, h.at, h.by, h.note,
                             None if h.outcome is None else h.outcome.value] for h in a.history])
    return (a.id, a.wearer_id, a.device_id, a.type, a.raised_at, a.state.value, int(a.active),
            history.decode(), a.holder, None if a.outcome is None else a.outcome.value,
            a.shelved_until, a.shelved_reason, a.cleared_at, evidence_text(a.evidence),
            None if a.suppressed is None else a.suppressed.value, event_id)


def evidence_text(e: Evidence | None) -> str | None:
    return None if e is None else orjson.dumps([e.at_home, e.charging]).decode()


def evidence_from(v: object) -> Evidence | None:
    if v is None:
        return None
    at_home, charging = pair = orjson.loads(text(v))
    if not (at_home in (None, True, False) and charging in (True, False)):
        raise Damaged(f"evidence {pair!r:.60}")
    return Evidence(at_home, charging)


def history_entry(e: object) -> HistoryEntry:
    # Four items before alerts were closed with an outcome (schema 3), five since.
    if not isinstance(e, list) or len(e) not in (4, 5):
        raise Damaged(f"history entry {e!r:.60}")
    state, at, by, note, outcome = e if len(e) == 5 else (*e, None)
    return HistoryEntry(AlertState(state), moment(at), opt_text(by), opt_text(note),
                        opt_outcome(outcome))


def opt_outcome(v: object) -> Outcome | None:
    return None if v is None else Outcome(text(v))


def alert_from_row(r: tuple) -> Alert:
    (id_, wearer_id, device_id, type_, raised_at, state, active, history, holder, outcome,
     shelved_until, shelved_reason, cleared_at, evidence, suppressed) = r
    entries = orjson.loads(text(history))
    if not isinstance(entries, list):
        raise Damaged(f"history is not a list: {history!r:.40}")
    return Alert(text(id_), text(wearer_id), text(device_id), text(type_), moment(raised_at),
                 AlertState(state), flag(active), tuple(map(history_entry, entries)),
                 opt_text(holder), opt_outcome(outcome),
                 None if shelved_until is None else moment(shelved_until), opt_text(shelved_reason),
                 None if cleared_at is None else moment(cleared_at), evidence_from(evidence),
                 None if suppressed is None else SuspensionReason(text(suppressed)))


def battery_span_row(a: Alert) -> tuple:
    span = span_of(a)
    return (a.id, a.device_id, span.start, span.end)


def span_from_row(r: tuple) -> tuple[str, Span]:
    """(device id, span) of a battery_spans row."""
    _, device_id, start, end = r
    span = Span(moment(start), None if end is None else moment(end))
    if span.end is not None and span.end < span.start:
        raise Damaged(f"a span that ends before it starts: {r!r:.80}")
    return text(device_id), span
