"""The simulated fleet's breach rates against ICIBI Figure 6, and its ground truth."""

from collections import Counter

from console.domain import DAY
from console.simulator.fleet import Fleet

START = 1_795_000_000.0  # a fixed moment, so the run is reproducible


def run(wearers: int, days: int) -> tuple[Fleet, Counter]:
    fleet = Fleet(wearers, seed=11, start=START)
    for minute in range(int(days * 24 * 60)):
        fleet.advance(START + (minute + 1) * 60)
    # Leave out day one: it still carries the starting battery levels.
    raised = Counter(a.type for a in fleet.alerts.values() if a.raised_at > START + DAY)
    return fleet, raised


def test_breaches_run_near_one_per_device_per_month_and_mostly_battery():
    wearers, days = 150, 8
    fleet, raised = run(wearers, days)
    total = sum(raised.values())
    per_device_month = total / wearers / (days - 1) * 30
    assert 0.5 <= per_device_month <= 1.8, raised
    assert 0.5 <= raised["battery"] / total <= 0.9, raised
    assert raised["absence_15min"] > 0, raised
    # Every breach has a ground truth, and both causes occur.
    assert set(fleet.truth) == set(fleet.alerts)
    assert set(fleet.truth.values()) == {"non_compliance", "equipment_fault"}


def test_the_same_seed_gives_the_same_fleet():
    a, b = Fleet(50, 3, START), Fleet(50, 3, START)
    assert a.wearers == b.wearers and a.devices == b.devices
    assert a.advance(START + 3600) == b.advance(START + 3600)


def test_an_alert_raised_while_a_recorded_suspension_holds_is_suppressed():
    from console.domain import Suspension, SuspensionReason

    fleet = Fleet(20, seed=11, start=START)
    wearer = fleet.wearers[3].id
    fleet.recorded[3] = [Suspension(wearer, SuspensionReason.CUSTODY, START, START + 3600)]
    during = fleet._raise(3, "strap_tamper", START + 60, "non_compliance")
    after = fleet._raise(3, "strap_tamper", START + 3600, "non_compliance")
    other = fleet._raise(4, "strap_tamper", START + 60, "non_compliance")
    assert during.suppressed is SuspensionReason.CUSTODY
    # Neither wearer has a suspension of the simulation's own then: only the recorded one quiets.
    assert fleet.suspensions(4, START + 60) == [] and other.suppressed is None
    assert after.suppressed is None  # it ended


def test_the_seeded_backlogs_histories_are_in_order_and_none_is_dated_after_now():
    for seed in (1, 2, 3):
        fleet = Fleet(1500, seed=seed, start=START)
        for alert in fleet.alerts.values():
            times = [h.at for h in alert.history]
            assert times == sorted(times) and times[-1] <= fleet.now, alert.id
