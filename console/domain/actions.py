"""Operators' actions, as queued in the outbox until the backend has them."""

from __future__ import annotations

from dataclasses import dataclass


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
