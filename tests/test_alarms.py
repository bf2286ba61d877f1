"""Alarms operators hear: urgent alerts announced once, together when they come
together, a flood summed up; only unhandled urgent ones counted; mute with an
expiry that still shows what it silenced."""

from dataclasses import replace

from console.changes import Changes, Picture
from console.domain import Alert, AlertState, Device, DeviceKind, Priority, Wearer
from console.domain.alarms import Mute, announcement, sounding
from ui.alerts.alarms import GATHER_MS, Annunciator
from ui.alerts.model import AlertQueueModel

NOW = 1_795_000_000.0


def alert(id_, wearer="W1", type_="strap_tamper", **kw) -> Alert:
    return replace(Alert(id_, wearer, "D" + wearer[1:], type_, NOW - 60,
                         AlertState.UNACKNOWLEDGED, True), **kw)


def fleet(n=20) -> Picture:
    return Picture([Wearer(f"W{i}", f"EM-{i:03d}") for i in range(n)],
                   [Device(f"D{i}", f"W{i}", DeviceKind.GPS) for i in range(n)], {}, {})


def test_only_urgent_unhandled_notifying_alerts_sound():
    assert sounding(alert("A1"), Priority.URGENT, NOW)
    assert not sounding(alert("A1"), Priority.HIGH, NOW)
    assert not sounding(alert("A1", state=AlertState.CLAIMED, holder="Bob"), Priority.URGENT, NOW)
    assert not sounding(alert("A1", shelved_until=NOW + 60), Priority.URGENT, NOW)
    assert sounding(alert("A1", shelved_until=NOW - 1), Priority.URGENT, NOW)


def test_a_few_are_read_out_and_a_flood_is_summed_up():
    one = announcement([(alert("A1"), "EM-001")])
    assert one == "Urgent: Strap tamper, EM-001."
    three = announcement([(alert(f"A{i}"), f"EM-00{i}") for i in range(3)])
    assert three.count("Urgent:") == 3
    flood = announcement([(alert(f"A{i}"), f"EM-{i:03d}") for i in range(12)])
    assert flood == "Urgent: Strap tamper, EM-000. And 11 more urgent alerts."
    assert announcement([]) == ""
    # A locked session's alarms name no wearer.
    assert announcement([(alert("A1"), None), (alert("A2"), None)]) == (
        "Urgent: Strap tamper. Urgent: Strap tamper.")


def test_a_mute_holds_until_its_expiry_and_says_until_when():
    mute = Mute(NOW + 900, "Ann")
    assert mute.holds(NOW) and not mute.holds(NOW + 900)
    assert mute.text().startswith("⊘ Alarms muted by Ann until ") and "(UK time)" in mute.text()
    assert Mute(NOW + 900).text().startswith("⊘ Alarms muted until ")


def annunciator(qtbot, wall):
    model = AlertQueueModel(lambda: NOW)
    alarms = Annunciator(model, wall=lambda: wall[0])
    model.apply(Changes(picture=fleet()))
    alarms.apply(Changes(picture=fleet()))
    heard = []
    alarms.announced.connect(lambda text, loud: heard.append((text, loud)))
    return model, alarms, heard


def feed(model, alarms, *alerts):
    changes = Changes(alerts={a.id: a for a in alerts})
    model.apply(changes)
    alarms.apply(changes)


def test_urgent_alerts_coming_together_are_announced_once_and_counted(qtbot):
    model, alarms, heard = annunciator(qtbot, [NOW])
    feed(model, alarms, alert("A1", "W1"), alert("A2", "W2", type_="battery"))
    feed(model, alarms, *[alert(f"U{i}", f"W{i}") for i in range(3, 14)])
    assert alarms.unhandled == 12  # the battery alert is not urgent
    qtbot.waitUntil(lambda: len(heard) > 0, timeout=GATHER_MS * 3)
    assert heard == [("Urgent: Strap tamper, EM-001. And 11 more urgent alerts.", True)]
    feed(model, alarms, replace(alert("A1", "W1"), active=False))  # an update is not news
    qtbot.wait(GATHER_MS + 300)
    assert len(heard) == 1
    assert "12 urgent alerts unhandled" in alarms.summary()


def test_a_claimed_alert_leaves_the_count(qtbot):
    model, alarms, heard = annunciator(qtbot, [NOW])
    feed(model, alarms, alert("A1", "W1"), alert("A2", "W2"))
    assert alarms.unhandled == 2
    feed(model, alarms, alert("A1", "W1", state=AlertState.CLAIMED, holder="Bob"))
    assert alarms.unhandled == 1


def test_muted_alarms_are_shown_not_heard_and_the_mute_expires(qtbot):
    wall = [NOW]
    model, alarms, heard = annunciator(qtbot, wall)
    alarms.mute_for(300, "Ann")
    feed(model, alarms, alert("A1", "W1"))
    qtbot.waitUntil(lambda: len(heard) > 0, timeout=GATHER_MS * 3)
    assert heard == [("Urgent: Strap tamper, EM-001.", False)]
    wall[0] += 301
    alarms.tick()
    assert not alarms.muted() and alarms.mute is None
    feed(model, alarms, alert("A2", "W2"))
    qtbot.waitUntil(lambda: len(heard) == 2, timeout=GATHER_MS * 3)
    assert heard[-1] == ("Urgent: Strap tamper, EM-002.", True)


def test_an_alert_taken_up_before_the_announcement_is_not_announced(qtbot):
    model, alarms, heard = annunciator(qtbot, [NOW])
    feed(model, alarms, alert("A1", "W1"))
    feed(model, alarms, alert("A1", "W1", state=AlertState.CLAIMED, holder="Bob"))
    qtbot.wait(GATHER_MS + 300)
    assert heard == []


def test_urgent_alerts_are_counted_and_announced_whichever_list_the_queue_shows(qtbot):
    from console.domain.workitems import WorkList

    model, alarms, heard = annunciator(qtbot, [NOW])
    model.show(WorkList.BATTERY)
    feed(model, alarms, alert("A1", "W1"))
    assert model.shown() == [] and alarms.unhandled == 1
    qtbot.waitUntil(lambda: len(heard) > 0, timeout=GATHER_MS * 3)
    assert heard == [("Urgent: Strap tamper, EM-001.", True)]
