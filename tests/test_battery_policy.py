"""The accumulated battery policy (ICIBI §5.16, footnote 20): flat-battery time out
of contact adds up over 7 days and becomes one breach at 12 hours."""

import math
from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.domain import (
    BREACH_AFTER,
    DAY,
    LOCAL_TZ,
    WINDOW,
    Alert,
    AlertState,
    Outcome,
    Span,
    accumulated,
    merged,
    standing,
)
from console.domain.battery import counts

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=LOCAL_TZ).timestamp()
HOUR = 3600.0
MINUTE = 60.0


def test_eleven_hours_fifty_nine_minutes_is_not_a_breach_and_does_not_read_as_twelve():
    s = standing([Span(T0 - DAY, T0 - DAY + 11 * HOUR + 59 * MINUTE)], T0)
    assert not s.breached
    assert s.describe() == "11.9 h of 12 h in 7 days"


def test_exactly_twelve_hours_is_a_breach():
    s = standing([Span(T0 - DAY, T0 - DAY + 12 * HOUR)], T0)
    assert s.breached and s.accumulated == BREACH_AFTER
    assert s.describe() == "12.0 h of 12 h in 7 days"


def test_a_span_crossing_the_7_day_edge_counts_only_its_part_inside_the_window():
    edge = T0 - WINDOW
    s = standing([Span(edge - 10 * HOUR, edge + 3 * HOUR)], T0)
    assert s.accumulated == 3 * HOUR and not s.breached
    assert s.spans == (Span(edge, edge + 3 * HOUR),)


def test_overlapping_spans_are_counted_once():
    spans = [Span(T0 - 10 * HOUR, T0 - 4 * HOUR), Span(T0 - 8 * HOUR, T0 - 2 * HOUR)]
    assert accumulated(spans, T0) == 8 * HOUR
    assert merged(spans, T0) == [Span(T0 - 10 * HOUR, T0 - 2 * HOUR)]


def test_a_span_inside_another_is_counted_once():
    spans = [Span(T0 - 10 * HOUR, T0 - 2 * HOUR), Span(T0 - 8 * HOUR, T0 - 6 * HOUR)]
    assert accumulated(spans, T0) == 8 * HOUR


def test_touching_spans_are_counted_once_and_listed_as_one():
    spans = [Span(T0 - 6 * HOUR, T0 - 3 * HOUR), Span(T0 - 9 * HOUR, T0 - 6 * HOUR)]
    assert merged(spans, T0) == [Span(T0 - 9 * HOUR, T0 - 3 * HOUR)]
    assert accumulated(spans, T0) == 6 * HOUR


def test_an_open_span_counts_up_to_now():
    open_span = Span(T0 - 5 * HOUR, None)
    assert accumulated([open_span], T0) == 5 * HOUR
    assert accumulated([open_span], T0 + 7 * HOUR) == 12 * HOUR
    assert standing([open_span], T0 + 7 * HOUR).breached


def test_a_span_wholly_older_than_7_days_counts_nothing():
    old = Span(T0 - WINDOW - 20 * HOUR, T0 - WINDOW)
    s = standing([old], T0)
    assert s.accumulated == 0 and not s.breached and s.spans == ()
    assert s.describe() == "0.0 h of 12 h in 7 days"


def test_several_short_spans_summing_past_twelve_hours_make_one_breach():
    spans = [Span(T0 - d * DAY, T0 - d * DAY + 2.5 * HOUR) for d in range(1, 6)]
    s = standing(spans, T0)
    assert s.breached and s.accumulated == 12.5 * HOUR
    assert len(s.spans) == 5 and [x.start for x in s.spans] == sorted(x.start for x in spans)


def test_bad_spans_are_ignored_not_raised():
    good = Span(T0 - 2 * HOUR, T0 - HOUR)
    bad = [
        Span(T0 - HOUR, T0 - 2 * HOUR),  # ends before it starts
        Span(math.nan, T0),
        Span(T0 - HOUR, math.nan),
        Span(-math.inf, T0),
        Span(T0 + HOUR, T0 + 2 * HOUR),  # wholly in the future
        Span(T0 + HOUR, None),  # open, but starting after now
    ]
    assert merged(bad + [good], T0) == [good]
    assert accumulated(bad, T0) == 0


# Whole seconds, as the service's timestamps are: they add and subtract exactly in
# floats, so the property can be checked with == and <= rather than a tolerance.
_offsets = st.integers(min_value=-10 * int(DAY), max_value=int(DAY))
_spans = st.builds(
    lambda a, b: Span(T0 + a, None if b is None else T0 + b),
    _offsets,
    st.none() | _offsets,
)


@given(st.lists(_spans, max_size=20))
def test_accumulated_never_exceeds_the_window_nor_the_plain_sum_of_clipped_spans(spans):
    def clipped_length(s):
        end = T0 if s.end is None else s.end
        return max(0.0, min(end, T0) - max(s.start, T0 - WINDOW))

    total = accumulated(spans, T0)
    assert 0 <= total <= WINDOW
    assert total <= sum(clipped_length(s) for s in spans)
    assert total >= max((clipped_length(s) for s in spans), default=0.0)


@pytest.mark.parametrize("outcome, counted", [
    (None, True),  # cleared and closed without a judgement
    (Outcome.RESOLVED_BY_CONTACT, True),  # the wearer charged it: still their flat time
    (Outcome.CONFIRMED_NON_COMPLIANCE, False),  # made a breach already: the next needs 12 h more
    (Outcome.EQUIPMENT_FAULT, False),
    (Outcome.FALSE_ALARM, False),
    (Outcome.DUPLICATE, False),
])
def test_a_closed_battery_alerts_flat_time_counts_unless_its_outcome_says_otherwise(
        outcome, counted):
    alert = Alert("B1", "W1", "D1", "battery", T0, AlertState.CLOSED, False, outcome=outcome)
    assert counts(alert) is counted
    assert not counts(replace(alert, type="strap_tamper"))
