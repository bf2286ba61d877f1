"""Breach casework (console/domain/cases.py): what an entry needs, and what the
written rule says is due next, at its time limits."""

from dataclasses import replace

import pytest

from console.domain import DAY, Alert, AlertState, Outcome
from console.domain.cases import (
    CaseEntry,
    EntryKind,
    Sanction,
    breach_counts,
    next_steps,
    problem,
)

T = 1_795_000_000.0


def breach(id_="A1", at=T, type_="curfew_missed", outcome=Outcome.CONFIRMED_NON_COMPLIANCE):
    return Alert(id_, "W1", "D1", type_, at, AlertState.CLOSED, False, outcome=outcome)


def entry(kind, at, *alert_ids, **kw) -> CaseEntry:
    return CaseEntry(kind, at, alert_ids, **kw)


@pytest.mark.parametrize("bad, reason", [
    (entry(EntryKind.MITIGATION_RECEIVED, T + 60, "A1"), "dated in the future"),
    (entry(EntryKind.WARNING_LETTER, T), "names the breaches it concerns"),
    (entry(EntryKind.DECISION, T, "A1", note="repeated", sanction=Sanction.WARNING_LETTER),
     "names its decision maker"),
    (entry(EntryKind.DECISION, T, "A1", decision_maker="J. Patel", sanction=Sanction.WARNING_LETTER),
     "gives its reasons"),
    (entry(EntryKind.REFERRAL, T, "A1", decision_maker=" ", note="third breach"),
     "names its decision maker"),
    (entry(EntryKind.DECISION, T, "A1", decision_maker="J. Patel", note="late twice"),
     "says what was decided (its sanction)"),
    (entry(EntryKind.WARNING_LETTER, T, "A1", sanction=Sanction.WARNING_LETTER),
     "only a decision has a sanction"),
])
def test_an_entry_missing_what_its_kind_needs_is_refused_with_the_reason(bad, reason):
    assert reason in problem(bad, T)


def test_a_complete_decision_and_a_notification_without_breaches_are_accepted():
    decision = entry(EntryKind.DECISION, T, "A1", decision_maker="J. Patel",
                     note="second late return in a month", sanction=Sanction.CONDITIONS_VARIED)
    assert problem(decision, T) is None
    assert problem(entry(EntryKind.AUTHORITY_NOTIFIED, T), T) is None


def test_the_rule_walks_a_breach_from_recording_to_a_warning_letter():
    alerts = [breach(), breach("A2", outcome=Outcome.FALSE_ALARM)]  # only A1 is a breach
    assert next_steps([], alerts, T + 60) == ["Record the Full curfew missed of 18 Nov 2026 on the case"]
    identified = [entry(EntryKind.BREACH_IDENTIFIED, T + 60, "A1")]
    [step] = next_steps(identified, alerts, T + 60 + 2 * DAY)
    assert step.startswith("Ask for mitigation")  # on time: no flag
    [step] = next_steps(identified, alerts, T + 61 + 2 * DAY)
    assert step.startswith("⚑ Ask for mitigation")  # past 2 days: flagged
    asked = identified + [entry(EntryKind.MITIGATION_REQUESTED, T + DAY, "A1")]
    assert next_steps(asked, alerts, T + 8 * DAY) == []  # waiting for the answer: 7 days
    [step] = next_steps(asked, alerts, T + 8 * DAY + 1)
    assert step == "⚑ Warning letter due for the Full curfew missed of 18 Nov 2026: no mitigation in 7 days"
    sent = asked + [entry(EntryKind.WARNING_LETTER, T + 9 * DAY, "A1")]
    assert next_steps(sent, alerts, T + 20 * DAY) == []


def test_mitigation_received_goes_to_a_named_decision_maker_whose_warning_is_then_sent():
    alerts = [breach()]
    case = [entry(EntryKind.BREACH_IDENTIFIED, T, "A1"),
            entry(EntryKind.MITIGATION_REQUESTED, T, "A1"),
            entry(EntryKind.MITIGATION_RECEIVED, T + DAY, "A1")]
    [step] = next_steps(case, alerts, T + 2 * DAY)
    assert step.startswith("Decision due on the Full curfew missed") and "mitigation received" in step
    decided = case + [entry(EntryKind.DECISION, T + 2 * DAY, "A1", decision_maker="J. Patel",
                            note="no reasonable excuse", sanction=Sanction.WARNING_LETTER)]
    assert next_steps(decided, alerts, T + 3 * DAY) == [
        "Send the warning letter for the Full curfew missed of 18 Nov 2026, as J. Patel decided"]
    nfa = [replace(decided[-1], sanction=Sanction.NO_FURTHER_ACTION)]
    assert next_steps(case + nfa, alerts, T + 3 * DAY) == []


def test_a_breach_within_90_days_of_a_warning_letter_goes_to_a_decision_not_another_letter():
    first, second = breach("A1"), breach("A2", at=T + 60 * DAY, type_="absence_15min")
    case = [entry(EntryKind.BREACH_IDENTIFIED, T, "A1"), entry(EntryKind.MITIGATION_REQUESTED, T, "A1"),
            entry(EntryKind.WARNING_LETTER, T + 8 * DAY, "A1"),
            entry(EntryKind.BREACH_IDENTIFIED, T + 60 * DAY, "A2"),
            entry(EntryKind.MITIGATION_REQUESTED, T + 60 * DAY, "A2")]
    [step] = next_steps(case, [first, second], T + 68 * DAY)
    assert step.startswith("⚑ Decision due on the 15-minute absence") and "within 90 days" in step


def test_the_breach_history_counts_confirmed_breaches_by_type():
    alerts = [breach("A1"), breach("A2"), breach("A3", type_="strap_tamper"),
              breach("A4", outcome=Outcome.EQUIPMENT_FAULT)]
    assert breach_counts(alerts) == {"Full curfew missed": 2, "Strap tamper": 1}


def test_a_decision_already_recorded_settles_the_breach_whatever_came_before():
    decided = [entry(EntryKind.DECISION, T, "A1", decision_maker="J. Smith (RM)",
                     note="in hospital that night", sanction=Sanction.NO_FURTHER_ACTION),
               entry(EntryKind.BREACH_IDENTIFIED, T + 60, "A1")]
    assert next_steps(decided, [breach()], T + 10 * DAY) == []
