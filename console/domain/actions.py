"""Operators' actions, as queued in the outbox until the backend has them.

Each kind of action is a member of a `Kind` enum, registered in `KINDS` with the
type of its payload and the texts the UI shows for it: the transitions on an alert
(acknowledge, claim, start work, close, shelve, unshelve), case entries,
suspensions, trail requests and supervisors' decisions on them. A new one (a
call, a visit outcome) adds a member to `ActionKind`, its payload struct, its row
in `KINDS` and its delivery function in console/sync/outbox.py, and nothing else:
the outbox, the sender's loop and the UI take any registered kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec

from console.domain import alerts as rules
from console.domain.access import Identity, Permission
from console.domain.alerts import (
    Alert,
    AlertState,
    LifecycleError,
    Outcome,
    OutOfBounds,
    Suspension,
    SuspensionReason,
)
from console.domain.cases import CaseEntry, EntryKind, Sanction
from console.domain.trails import Purpose, ReferenceKind, TrailRequest


class ActionState(StrEnum):
    """Where an action stands. The values are what the outbox stores."""

    PENDING = "pending"  # queued; not yet answered by the backend
    DELIVERED = "delivered"  # the backend accepted it
    CONFLICT = "conflict"  # 409: it no longer applies (e.g. the alert was closed)
    REJECTED = "rejected"  # another 4xx: the backend refused it
    DAMAGED = "damaged"  # did not read back from the cache as written: set aside, never sent

    @property
    def stands(self) -> bool:
        """Queued or accepted: doing the same again would repeat the operator's act."""
        return self in (ActionState.PENDING, ActionState.DELIVERED)

    @property
    def refused(self) -> bool:
        """The backend answered and did not accept it: the operator must look at it."""
        return self in (ActionState.CONFLICT, ActionState.REJECTED)


class Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an action of one kind carries; each kind has its own subclass.
    Stored as JSON in the outbox and read back strictly (console/store/outbox.py)."""


class Acknowledge(Payload, frozen=True):
    alert_id: str
    note: str


class Claim(Payload, frozen=True):
    alert_id: str
    take_over: bool = False  # what another operator holds is taken only on purpose


class StartWork(Payload, frozen=True):
    alert_id: str


class Close(Payload, frozen=True):
    alert_id: str
    outcome: Outcome
    note: str


class Shelve(Payload, frozen=True):
    alert_id: str
    until: float  # epoch seconds, server time: set when the operator shelved it
    reason: str


class Unshelve(Payload, frozen=True):
    alert_id: str


class Suspend(Payload, frozen=True):
    """Suspend a wearer's monitoring by design (console/domain/alerts.py, Suspension)."""

    wearer_id: str
    reason: SuspensionReason
    start: float
    end: float
    every: float | None = None  # seconds: repeats (a weekly appointment)

    @property
    def suspension(self) -> Suspension:
        return Suspension(self.wearer_id, self.reason, self.start, self.end, self.every)


class RecordCaseEntry(Payload, frozen=True):
    """An entry on a wearer's breach case (console/domain/cases.py)."""

    wearer_id: str
    kind: EntryKind
    at: float  # when it happened, epoch seconds
    alert_ids: tuple[str, ...] = ()
    note: str = ""
    decision_maker: str | None = None
    sanction: Sanction | None = None

    @property
    def entry(self) -> CaseEntry:
        return CaseEntry(self.kind, self.at, self.alert_ids, self.note, self.decision_maker,
                         self.sanction)


class RequestTrail(Payload, frozen=True):
    """Ask to see a wearer's trail for a purpose (console/domain/trails.py). The
    request's id is chosen here, so the console follows it before the answer."""

    request_id: str
    wearer_id: str
    purpose: Purpose
    reference_kind: ReferenceKind
    reference: str
    justification: str
    start: float
    end: float

    @property
    def request(self) -> TrailRequest:
        return TrailRequest(self.request_id, self.wearer_id, self.purpose, self.reference_kind,
                            self.reference, self.justification, self.start, self.end)


class DecideTrailRequest(Payload, frozen=True):
    """A supervisor's approval or refusal of a trail request, with the reason."""

    request_id: str
    approve: bool
    note: str


@dataclass(frozen=True)
class KindTexts:
    """What the UI says about an action of one kind, by state. Only glyphs that
    DejaVu Sans has: a stock Debian desktop has no emoji font."""

    queued: str  # "◷ acknowledging (queued)"
    sent: str  # "✓ acknowledged (sent)"
    what: str  # the act, formatted with the payload's fields: "acknowledgement of alert {alert_id}"
    conflict: str = "⚠ conflict"
    refused: str = "⚠ refused"
    damaged: str = "⚠ damaged, not sent"

    def of(self, state: ActionState) -> str:
        return {ActionState.PENDING: self.queued, ActionState.DELIVERED: self.sent,
                ActionState.CONFLICT: self.conflict, ActionState.REJECTED: self.refused,
                ActionState.DAMAGED: self.damaged}[state]


@dataclass(frozen=True)
class KindSpec:
    payload: type[Payload]
    texts: KindTexts


class Kind(StrEnum):
    """The base of action-kind enums. A member must be registered in `KINDS`."""

    @property
    def spec(self) -> KindSpec:
        return KINDS[self]

    def text(self, state: ActionState) -> str:
        return self.spec.texts.of(state)


class ActionKind(Kind):
    ACKNOWLEDGE = "acknowledge"
    CLAIM = "claim"
    START_WORK = "start_work"
    CLOSE = "close"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    CASE_ENTRY = "case_entry"
    SUSPEND = "suspend"
    REQUEST_TRAIL = "request_trail"
    DECIDE_TRAIL = "decide_trail"


# The kinds this console queues, reads back and shows. Tests may register a kind of
# their own (a member of another Kind subclass) and remove it afterwards.
KINDS: dict[Kind, KindSpec] = {
    ActionKind.ACKNOWLEDGE: KindSpec(Acknowledge, KindTexts(
        queued="◷ acknowledging (queued)", sent="✓ acknowledged (sent)",
        what="acknowledgement of alert {alert_id}")),
    ActionKind.CLAIM: KindSpec(Claim, KindTexts(
        queued="◷ claiming (queued)", sent="✓ claimed (sent)", what="claim of alert {alert_id}")),
    ActionKind.START_WORK: KindSpec(StartWork, KindTexts(
        queued="◷ starting work (queued)", sent="✓ in work (sent)",
        what="start of work on alert {alert_id}")),
    ActionKind.CLOSE: KindSpec(Close, KindTexts(
        queued="◷ closing (queued)", sent="✓ closed (sent)", what="closing of alert {alert_id}")),
    ActionKind.SHELVE: KindSpec(Shelve, KindTexts(
        queued="◷ shelving (queued)", sent="✓ shelved (sent)", what="shelving of alert {alert_id}")),
    ActionKind.UNSHELVE: KindSpec(Unshelve, KindTexts(
        queued="◷ unshelving (queued)", sent="✓ unshelved (sent)",
        what="unshelving of alert {alert_id}")),
    ActionKind.CASE_ENTRY: KindSpec(RecordCaseEntry, KindTexts(
        queued="◷ recording (queued)", sent="✓ recorded (sent)",
        what="case entry ({kind}) for wearer {wearer_id}")),
    ActionKind.SUSPEND: KindSpec(Suspend, KindTexts(
        queued="◷ suspending (queued)", sent="✓ suspended (sent)",
        what="suspension ({reason}) of wearer {wearer_id}")),
    ActionKind.REQUEST_TRAIL: KindSpec(RequestTrail, KindTexts(
        queued="◷ asking for the trail (queued)", sent="✓ trail request sent",
        what="trail request ({purpose}) for wearer {wearer_id}")),
    ActionKind.DECIDE_TRAIL: KindSpec(DecideTrailRequest, KindTexts(
        queued="◷ deciding (queued)", sent="✓ decision sent",
        what="decision on trail request {request_id}")),
}


def kind_named(name: object) -> Kind:
    """The registered kind whose stored value is `name`; ValueError for any other."""
    for kind in KINDS:
        if kind.value == name:
            return kind
    raise ValueError(f"not a kind of action this console knows: {name!r:.40}")


def kind_of(payload: Payload) -> Kind:
    """The kind whose payload this is."""
    for kind, spec in KINDS.items():
        if type(payload) is spec.payload:
            return kind
    raise ValueError(f"no kind of action carries a {type(payload).__name__}")


@dataclass(frozen=True)
class Action:
    """An operator's action as queued in the outbox."""

    key: str  # the idempotency key: every attempt at this action sends the same
    kind: Kind
    payload: Payload
    created_at: float
    state: ActionState
    attempts: int = 0
    detail: str | None = None  # the backend's answer, or why it is still queued
    seq: int = 0  # order of queueing
    operator: str | None = None  # who queued it, by name, as the audit shows it
    username: str | None = None  # who queued it, by sign-in name: only they deliver it

    def __post_init__(self) -> None:
        if type(self.payload) is not self.kind.spec.payload:
            raise ValueError(f"a {self.kind.value} action carries a {self.kind.spec.payload.__name__}, "
                             f"not a {type(self.payload).__name__}")

    @property
    def alert_id(self) -> str | None:
        """The alert it acts on, for kinds that act on an alert."""
        alert_id = getattr(self.payload, "alert_id", None)
        return alert_id if isinstance(alert_id, str) else None

    @property
    def what(self) -> str:
        """The act itself, e.g. "acknowledgement of alert A1"."""
        return self.kind.spec.texts.what.format(**msgspec.structs.asdict(self.payload))

    @property
    def waiting_detail(self) -> str:
        """The detail of an action left queued while someone else is signed in."""
        who = self.username or self.operator or "the operator who queued it"
        if self.operator and self.username and self.operator != self.username:
            who = f"{self.operator} ({self.username})"
        return f"waits for {who} to sign in"

    @property
    def waiting(self) -> bool:
        """Queued, and waiting for the operator who queued it to sign in."""
        return self.state is ActionState.PENDING and self.detail == self.waiting_detail

    @property
    def label(self) -> str:
        """What the UI shows: the kind's text for the state, and the backend's reason
        for a refusal, or whom a queued action waits for. A queued action's last
        network error is not shown here: the connection line tells that."""
        text = self.kind.text(self.state)
        if self.detail and (self.state is not ActionState.PENDING or self.waiting):
            return f"{text}: {self.detail}"
        return text

    def queued_by(self, username: str | None, name: str | None) -> bool:
        """Whether the operator signed in as `username` (called `name`, once the
        backend has said) queued this action, and so may deliver it.

        Actions queued before the cache recorded sign-in names (schema 2) recorded the
        operator's name, or their sign-in name before the backend had told it; those
        from before any operator was recorded (schema 1) were anyone's to deliver."""
        if username is None:
            return False  # nobody is signed in
        if self.username is not None:
            return self.username == username
        return self.operator is None or self.operator in (username, name)


def may_acknowledge(alert: Alert, latest: Action | None) -> bool:
    """An unacknowledged alert may be acknowledged unless the latest action on it
    is an acknowledgement that is queued or accepted; one that was refused or set
    aside may be tried again."""
    return alert.state is AlertState.UNACKNOWLEDGED and (
        latest is None or latest.kind is not ActionKind.ACKNOWLEDGE or not latest.state.stands)


# The transitions the alert queue offers, in its order.
TRANSITIONS = (ActionKind.CLAIM, ActionKind.START_WORK, ActionKind.CLOSE, ActionKind.SHELVE,
               ActionKind.UNSHELVE)


def anticipated(alert: Alert, queued: list[Action], now: float) -> Alert:
    """The alert as it will be once this console's queued actions on it arrive,
    applied in order by the same rules the backend applies. An operator working
    offline can so claim, work and close in a row; an action the rules would
    refuse changes nothing here, and the backend's answer will say why."""
    for action in queued:
        by, p = action.operator or action.username or "", action.payload
        try:
            if isinstance(p, Acknowledge):
                alert = rules.acknowledge(alert, now, by, p.note)
            elif isinstance(p, Claim):
                alert = rules.claim(alert, now, by, p.take_over)
            elif isinstance(p, StartWork):
                alert = rules.start_work(alert, now, by)
            elif isinstance(p, Close):
                alert = rules.close(alert, now, by, p.outcome, p.note)
            elif isinstance(p, Shelve):
                alert = rules.shelve(alert, now, by, p.reason, p.until)
            elif isinstance(p, Unshelve):
                alert = rules.unshelve(alert, now, by)
        except (LifecycleError, OutOfBounds):
            pass
    return alert


def offered(alert: Alert, who: Identity | None, now: float) -> dict[ActionKind, str]:
    """Each transition of the queue for `who` on this alert (as anticipated): ""
    when they may do it now, else why not, in words for the button's tooltip, so
    that no button goes grey without a reason."""
    if who is None:
        return {kind: "Not signed in" for kind in TRANSITIONS}
    if why := who.why_not(Permission.WORK_ALERTS):
        return {kind: why for kind in TRANSITIONS}
    me = who.name
    if not alert.is_open:
        return {kind: "The alert is closed" for kind in TRANSITIONS}
    held = alert.holder == me
    holder = "Claim it first" if alert.holder is None else f"{alert.holder} holds it"
    shelved = alert.shelved(now)
    return {
        ActionKind.CLAIM: "You hold it" if held else "",
        ActionKind.START_WORK: ("" if held and alert.state is AlertState.CLAIMED
                                else "In work already" if held else holder),
        ActionKind.CLOSE: "" if held else holder,
        ActionKind.SHELVE: ("Shelved already" if shelved else
                            "" if alert.holder in (None, me) else holder),
        ActionKind.UNSHELVE: ("Not shelved" if not shelved else
                              "" if alert.holder in (None, me) else holder),
    }


def reflected(alert: Alert, action: Action, now: float) -> bool:
    """Whether the alert already shows what this action does: then the stream has
    brought its effect, and the queue shows the alert's state instead of the act."""
    p = action.payload
    if isinstance(p, Shelve):  # shelving again is allowed (to extend it): compare expiries
        return alert.shelved_until is not None and abs(alert.shelved_until - p.until) < 1e-3
    return anticipated(alert, [action], now) == alert
