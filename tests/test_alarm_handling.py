"""The alarm model's handling axis and overlays, as pure rules: claim, take over,
work, close with an outcome, latching, bulk close of cleared battery alerts,
shelving with an expiry, suspensions on the wearer."""

from dataclasses import replace

import pytest

from console.domain import (
    DAY,
    MAX_SHELVE,
    Alert,
    AlertState,
    HistoryEntry,
    LifecycleError,
    Outcome,
    OutOfBounds,
    Suspension,
    SuspensionReason,
    claim,
    close,
    notifies,
    return_to_normal,
    shelve,
    start_work,
    suppression,
    unshelve,
)
from console.domain.workitems import self_cleared

T = 1_795_000_000.0


def alert(id_="A1", type_="strap_tamper", active=True, wearer="W1") -> Alert:
    return Alert(id_, wearer, "D1", type_, T, AlertState.UNACKNOWLEDGED, active,
                 (HistoryEntry(AlertState.UNACKNOWLEDGED, T),))


def test_a_claim_names_its_holder_and_a_second_claim_needs_take_over():
    held = claim(alert(), T + 10, "Ann")
    assert held.state is AlertState.CLAIMED and held.holder == "Ann"
    with pytest.raises(LifecycleError, match="held by Ann; take it over"):
        claim(held, T + 20, "Bob")
    taken = claim(held, T + 20, "Bob", take_over=True)
    assert taken.holder == "Bob" and taken.history[-1].note == "taken over from Ann"


def test_claiming_what_one_holds_changes_nothing():
    held = claim(alert(), T + 10, "Ann")
    assert claim(held, T + 30, "Ann") is held


def test_only_the_holder_closes_and_only_with_an_outcome_and_a_note():
    held = start_work(claim(alert(), T + 10, "Ann"), T + 20, "Ann")
    assert held.state is AlertState.IN_WORK
    with pytest.raises(LifecycleError, match="held by Ann; claim it"):
        close(held, T + 30, "Bob", Outcome.FALSE_ALARM, "tested")
    with pytest.raises(OutOfBounds, match="needs a note"):
        close(held, T + 30, "Ann", Outcome.FALSE_ALARM, "  ")
    closed = close(held, T + 30, "Ann", Outcome.EQUIPMENT_FAULT, "strap sensor, swap booked")
    assert not closed.is_open and closed.outcome is Outcome.EQUIPMENT_FAULT
    assert closed.history[-1] == HistoryEntry(AlertState.CLOSED, T + 30, "Ann",
                                              "strap sensor, swap booked", Outcome.EQUIPMENT_FAULT)
    with pytest.raises(LifecycleError, match="closed"):
        claim(closed, T + 40, "Ann")


def test_an_unclaimed_alert_cannot_be_closed_or_worked():
    with pytest.raises(LifecycleError, match="held by nobody"):
        close(alert(), T + 30, "Ann", Outcome.DUPLICATE, "same as A0")
    with pytest.raises(LifecycleError, match="not claimed by Ann"):
        start_work(alert(), T + 30, "Ann")


def test_a_condition_that_clears_before_handling_stays_latched_until_closed():
    cleared = return_to_normal(alert(), T + 60)
    assert cleared.is_open and cleared.latched and cleared.state is AlertState.UNACKNOWLEDGED


def test_only_self_cleared_battery_alerts_nobody_else_holds_are_offered_for_bulk_closing():
    mine = replace(alert("B2", "battery", active=False), holder="Ann", state=AlertState.CLAIMED)
    offered = [return_to_normal(alert("B1", "battery"), T + 60), mine]
    others = [alert("S1", "strap_tamper", active=False),  # not a battery alert
              alert("B9", "battery", active=True),  # still flat
              replace(alert("B8", "battery", active=False), holder="Bob", state=AlertState.CLAIMED)]
    assert self_cleared(offered + others, "Ann") == offered


@pytest.mark.parametrize("hours", [0, -1, 8.01])
def test_shelving_lasts_more_than_nothing_and_at_most_8_hours(hours):
    with pytest.raises(OutOfBounds, match="at most 8 hours"):
        shelve(alert(), T, "Ann", "known fault, engineer booked", T + hours * 3600)


def test_a_shelved_alert_is_quiet_until_its_expiry_and_stays_recorded():
    quiet = shelve(alert(), T, "Ann", "known fault, engineer booked", T + MAX_SHELVE)
    assert quiet.shelved(T + MAX_SHELVE - 1) and not quiet.shelved(T + MAX_SHELVE)
    assert not notifies(quiet, T + 60) and notifies(quiet, T + MAX_SHELVE)
    assert quiet.is_open and quiet.history[-1].note == "shelved: known fault, engineer booked"
    with pytest.raises(OutOfBounds, match="needs a note"):
        shelve(alert(), T, "Ann", "", T + 60)
    assert notifies(unshelve(quiet, T + 60, "Ann"), T + 61)


def test_a_suspension_repeats_weekly_and_quiets_what_is_raised_while_it_holds():
    hospital = Suspension("W1", SuspensionReason.HOSPITAL, T, T + 3 * 3600, every=7 * DAY)
    assert hospital.problem() is None
    assert suppression([hospital], T + 3600) is SuspensionReason.HOSPITAL
    assert suppression([hospital], T + 4 * 3600) is None
    assert suppression([hospital], T + 7 * DAY + 60) is SuspensionReason.HOSPITAL  # next week's
    assert suppression([hospital], T - 60) is None  # not before it starts
    # Raised under it: recorded and open, but it never notifies, even once the suspension ends.
    quiet = replace(alert(), suppressed=suppression([hospital], T + 3600))
    assert quiet.is_open and not notifies(quiet, T + 4 * 3600)
    assert notifies(alert(), T + 3600)


@pytest.mark.parametrize("end, every, problem", [
    (T - 1, None, "ends before it starts"),
    (T, None, "ends before it starts"),
    (T + DAY, 3600.0, "repeats before it ends"),
])
def test_an_impossible_suspension_is_refused_with_a_reason(end, every, problem):
    assert problem in Suspension("W1", SuspensionReason.CUSTODY, T, end, every).problem()


def test_what_another_operator_holds_is_theirs_to_shelve_and_the_history_says_shelved():
    held = claim(alert(), T, "Bob")
    with pytest.raises(LifecycleError, match="held by Bob; take it over first"):
        shelve(held, T + 60, "Ann", "engineer booked", T + 3600)
    from console.domain.access import Identity, Role
    from console.domain.actions import ActionKind, offered
    ann = Identity("Ann", frozenset({Role.OPERATOR}))
    assert offered(held, ann, T + 60)[ActionKind.SHELVE] == "Bob holds it"
    quiet = shelve(held, T + 60, "Bob", "engineer booked", T + 3600)
    with pytest.raises(LifecycleError, match="held by Bob"):
        unshelve(quiet, T + 120, "Ann")
    assert [h.what for h in unshelve(quiet, T + 120, "Bob").history] == [
        "unacknowledged", "claimed", "shelved", "unshelved"]
