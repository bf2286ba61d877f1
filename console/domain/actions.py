"""Operators' actions, as queued in the outbox until the backend has them."""

from __future__ import annotations

from dataclasses import dataclass

from console.domain.alerts import Alert, AlertState


@dataclass(frozen=True)
class Action:
    """An operator's action as queued in the outbox."""

    key: str
    action: str
    alert_id: str
    note: str
    created_at: float
    state: str  # pending / delivered / conflict / rejected / damaged (set aside, never sent)
    attempts: int = 0
    detail: str | None = None
    seq: int = 0
    operator: str | None = None


def may_acknowledge(alert: Alert, latest: Action | None) -> bool:
    """An unacknowledged alert may be acknowledged unless an acknowledgement is
    already queued or accepted; one the backend refused may be tried again."""
    return alert.state is AlertState.UNACKNOWLEDGED and (
        latest is None or latest.state in ("conflict", "rejected"))
