"""Breach casework: each wearer's case record and the written rule it follows.

The ICIBI found breaches keyed by hand, mitigation unanswered, warning letters sent
"every fifth breach" and prosecutions stalled (§5.15-5.16, §5.60, §5.82-5.84). A
case is a timeline in the shape of the MoJ's EM datastore: breach identified,
authority notified, mitigation requested and received (each with its date, so
that mitigation is asked for close to the breach), warning letter, decision (a
named decision maker, a sanction and the reasons) and referral for prosecution.

What is due next follows one written rule (`next_steps`, WARNING_RULE), not a
count of breaches. Pure code: what needs the time takes `now`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from console.domain.alerts import Alert, Outcome
from console.domain.clock import DAY, format_age, format_day

MITIGATION_ASK_WITHIN = 2 * DAY  # mitigation is asked for close to the breach
MITIGATION_WAIT = 7 * DAY  # no answer in this long: the rule moves on
WARNING_MEMORY = 90 * DAY  # a breach this soon after a warning letter goes to a decision

WARNING_RULE = (
    "Every confirmed breach is recorded on the case, and mitigation is asked for "
    "within 2 days. If none is received within 7 days of asking, a warning letter is "
    "due; if it is received, a named decision maker decides, with reasons. A breach "
    "within 90 days of a warning letter goes to a decision instead of another letter.")


class EntryKind(StrEnum):
    BREACH_IDENTIFIED = "breach_identified"
    AUTHORITY_NOTIFIED = "authority_notified"
    MITIGATION_REQUESTED = "mitigation_requested"
    MITIGATION_RECEIVED = "mitigation_received"
    WARNING_LETTER = "warning_letter"
    DECISION = "decision"
    REFERRAL = "referral_for_prosecution"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def decided(self) -> bool:
        """A decision about the wearer: it needs a named decision maker and reasons."""
        return self in (EntryKind.DECISION, EntryKind.REFERRAL)

    @property
    def about_breaches(self) -> bool:
        """It concerns particular breaches, which it must name."""
        return self is not EntryKind.AUTHORITY_NOTIFIED


class Sanction(StrEnum):
    """What a decision decided."""

    NO_FURTHER_ACTION = "no_further_action"
    WARNING_LETTER = "warning_letter"
    CONDITIONS_VARIED = "conditions_varied"
    REFERRAL_FOR_PROSECUTION = "referral_for_prosecution"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class CaseEntry:
    """One entry of a wearer's case timeline. `at` is when it happened (the day the
    mitigation arrived), `recorded_at` when an operator recorded it."""

    kind: EntryKind
    at: float
    alert_ids: tuple[str, ...] = ()  # the breaches it concerns
    note: str = ""
    decision_maker: str | None = None
    sanction: Sanction | None = None
    id: str = ""  # given by the backend
    recorded_at: float = 0.0
    recorded_by: str = ""


def problem(entry: CaseEntry, now: float) -> str | None:
    """Why this entry cannot be recorded, or None."""
    if entry.at > now:
        return "it is dated in the future"
    if entry.kind.about_breaches and not entry.alert_ids:
        return f"a {entry.kind.label.lower()} names the breaches it concerns"
    if entry.kind.decided:
        if not (entry.decision_maker or "").strip():
            return f"a {entry.kind.label.lower()} names its decision maker"
        if not entry.note.strip():
            return f"a {entry.kind.label.lower()} gives its reasons"
    if entry.kind is EntryKind.DECISION and entry.sanction is None:
        return "a decision says what was decided (its sanction)"
    if entry.kind is not EntryKind.DECISION and entry.sanction is not None:
        return "only a decision has a sanction"
    return None


def confirmed_breaches(alerts: Iterable[Alert]) -> list[Alert]:
    """The wearer's alerts closed as confirmed non-compliance, oldest first."""
    return sorted((a for a in alerts if a.outcome is Outcome.CONFIRMED_NON_COMPLIANCE),
                  key=lambda a: a.raised_at)


def breach_counts(alerts: Iterable[Alert]) -> Counter[str]:
    """Confirmed breaches by type label: the case's breach history in numbers."""
    return Counter(a.type_label for a in confirmed_breaches(alerts))


def next_steps(entries: Iterable[CaseEntry], alerts: Iterable[Alert], now: float) -> list[str]:
    """What the written rule (WARNING_RULE) says is due on this case now, one line
    per confirmed breach that needs something, oldest first. "⚑" marks a step
    whose time limit has passed."""
    entries = sorted(entries, key=lambda e: e.at)
    letters = [e.at for e in entries if e.kind is EntryKind.WARNING_LETTER]
    steps = []
    for breach in confirmed_breaches(alerts):
        mine = {e.kind: e for e in entries if breach.id in e.alert_ids}
        name = f"{breach.type_label} of {format_day(breach.raised_at)}"
        identified, asked = mine.get(EntryKind.BREACH_IDENTIFIED), mine.get(EntryKind.MITIGATION_REQUESTED)
        answered, decision = mine.get(EntryKind.MITIGATION_RECEIVED), mine.get(EntryKind.DECISION)
        if decision is not None:  # decided: only a warning it decided may remain to send
            if decision.sanction is Sanction.WARNING_LETTER and EntryKind.WARNING_LETTER not in mine:
                steps.append(f"Send the warning letter for the {name}, as "
                             f"{decision.decision_maker} decided")
        elif EntryKind.WARNING_LETTER in mine:
            pass  # the rule's letter went
        elif identified is None:
            steps.append(f"Record the {name} on the case")
        elif asked is None:
            late = now - identified.at > MITIGATION_ASK_WITHIN
            steps.append(f"{'⚑ ' if late else ''}Ask for mitigation for the {name}"
                         f" (identified {format_age(now - identified.at)} ago)")
        elif answered is not None:
            steps.append(f"Decision due on the {name}: mitigation received "
                         f"{format_day(answered.at)}; a named decision maker decides")
        elif now - asked.at > MITIGATION_WAIT:
            recent = any(0 <= breach.raised_at - t <= WARNING_MEMORY for t in letters)
            steps.append(f"⚑ Decision due on the {name}: no mitigation in 7 days, and a "
                         "warning letter was sent within 90 days before it" if recent else
                         f"⚑ Warning letter due for the {name}: no mitigation in 7 days")
    return steps
