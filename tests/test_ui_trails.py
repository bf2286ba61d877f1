"""The trail request dialog tells an operator, before anything is sent, what the
backend will do with the request (issue 12): refused and why, granted at once, or
waiting for a supervisor; and it refers to the alert in hand."""

import uuid

from console.domain import Alert, AlertState, Curfew, HistoryEntry, Wearer
from console.domain.clock import DAY
from console.domain.trails import Purpose, ReferenceKind
from ui.trails.request import BEFORE_ALERT, DEFAULT_WINDOW, TrailRequestDialog

NOW = 1_795_000_000.0
WEARER = Wearer("W000001", "EM-100001", Curfew.parse("19:00-07:00"))


def alert(wearer_id: str = WEARER.id) -> Alert:
    raised = NOW - 3 * 3600
    return Alert("A00000042", wearer_id, "D000001", "absence_15min", raised,
                 AlertState.UNACKNOWLEDGED, True, (HistoryEntry(AlertState.UNACKNOWLEDGED, raised),))


def dialog(qtbot, in_hand: Alert | None = None) -> TrailRequestDialog:
    d = TrailRequestDialog(WEARER, in_hand, NOW)
    qtbot.addWidget(d)
    return d


def set_window(d: TrailRequestDialog, start: float, end: float) -> None:
    from PySide6.QtCore import QDateTime

    from ui.common.dates import UK

    d.start.setDateTime(QDateTime.fromSecsSinceEpoch(int(start), UK))
    d.end.setDateTime(QDateTime.fromSecsSinceEpoch(int(end), UK))


def test_the_alert_in_hand_is_the_reference_and_the_window_starts_before_it(qtbot):
    d = dialog(qtbot, alert())
    request = d.request()
    assert (request.reference_kind, request.reference) == (ReferenceKind.ALERT, "A00000042")
    assert request.start == alert().raised_at - BEFORE_ALERT and request.end == NOW


def test_an_old_alerts_window_is_the_day_around_it_not_everything_since(qtbot):
    old = alert()
    old = Alert(old.id, old.wearer_id, old.device_id, old.type, NOW - 11 * DAY, old.state, True,
                old.history)
    request = dialog(qtbot, old).request()
    assert request.start == old.raised_at - BEFORE_ALERT
    assert request.end == request.start + DEFAULT_WINDOW  # granted at once, not 11 days


def test_another_wearers_alert_is_not_taken_as_the_reference(qtbot):
    d = dialog(qtbot, alert("W000002"))
    assert d.request().reference == "" and d.request().start == NOW - DAY


def test_nothing_is_sent_without_a_justification_and_the_dialog_says_why(qtbot):
    d = dialog(qtbot, alert())
    assert not d.ok.isEnabled()
    assert "justification is required" in d.verdict.text()
    d.justification.setPlainText("   ")
    assert not d.ok.isEnabled()
    d.justification.setPlainText("Absent during curfew; whereabouts needed to assess risk")
    assert d.ok.isEnabled() and "Granted at once" in d.verdict.text()


def test_a_window_over_seven_days_says_it_waits_for_a_supervisor(qtbot):
    d = dialog(qtbot, alert())
    d.justification.setPlainText("Article 8 representations need the month's movements")
    set_window(d, NOW - 8 * DAY, NOW)
    assert d.ok.isEnabled() and d.ok.text() == "Ask a supervisor"
    assert "supervisor's approval" in d.verdict.text()


def test_windows_the_backend_refuses_are_refused_here_with_the_reason(qtbot):
    d = dialog(qtbot, alert())
    d.justification.setPlainText("reason")
    for start, end, why in ((NOW - 3600, NOW - 7200, "ends before it starts"),
                            (NOW - 3600, NOW + 3600, "into the future"),
                            (NOW - 32 * DAY, NOW, "longer than 31 days")):
        set_window(d, start, end)
        assert not d.ok.isEnabled() and why in d.verdict.text()


def test_each_request_gets_its_own_id_so_a_retry_is_the_same_request(qtbot):
    d = dialog(qtbot, alert())
    d.justification.setPlainText("reason")
    d.purpose.setCurrentIndex(list(Purpose).index(Purpose.ABSCONDING))
    first, second = d.payload(), d.payload()
    assert first.request_id != second.request_id and uuid.UUID(first.request_id)
    assert first.purpose is Purpose.ABSCONDING and first.wearer_id == WEARER.id


def test_an_evidence_report_lists_every_point_or_condenses_to_stops_gaps_and_moves():
    import trail_fixtures as fixtures

    from ui.trails.reports import CONDENSED_EVERY, evidence_rows

    trail = fixtures.line(60, gap_after=29)  # a walk, a 20-minute gap, a walk
    full = evidence_rows(trail, condensed=False)
    assert [r[0] for r in full] == [str(i + 1) for i in range(60)]
    assert full[0][5] == "GPS" and full[1][6] and full[1][7]  # source, speed, direction
    condensed = evidence_rows(trail, condensed=True)
    numbers = [int(r[0]) for r in condensed]
    assert numbers[0] == 1 and numbers[-1] == 60 and len(numbers) < 30
    notes = {int(r[0]): r[8] for r in condensed}
    assert notes[30] == "signal lost" and notes[31].startswith("signal back after 21 min")
    # Points a moving wearer passed are listed every few minutes, with their own numbers.
    assert all(full[n - 1][:8] == r[:8] for n, r in zip(numbers, condensed, strict=True))
    assert numbers[1] == 1 + CONDENSED_EVERY // 60  # a point a minute: the one 5 minutes on
