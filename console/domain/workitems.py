"""From notifications to work items: what operators work, rather than every alert.

At national scale most notifications are noise (ICIBI §5.13) and a queue of every
one drowns operators (EEMUA 191: ten in ten minutes is a flood). So:
- a notification that looks like equipment goes to the device-fault list, not the
  breach list (`route`); communication failure, location failure and a flat
  battery are told apart (`FAILURE`);
- battery notifications are not breaches one by one: they count towards the
  accumulated battery policy (console/domain/battery.py), and a device past it is
  one breach item (`work_items`);
- related alerts for one wearer close together in time are one incident
  (`grouped`), with its members kept;
- each priority has a deadline to claim and to close (`overdue`).

Pure code: what needs the time takes `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from console.domain.alerts import Alert, AlertState, Evidence, Priority
from console.domain.battery import BatteryStanding, Span, standing
from console.domain.clock import format_age


class Route(StrEnum):
    BREACH = "breach"  # the breach list: an operator works it
    DEVICE_FAULT = "device_fault"  # the device-fault list: a technician or a visit
    BATTERY = "battery"  # towards the accumulated battery policy; a breach at 12 h


class Failure(StrEnum):
    COMMUNICATION = "communication failure"  # the device cannot be heard
    LOCATION = "location failure"  # heard, but it cannot say where it is
    FLAT_BATTERY = "flat battery"


# Breach types that say which failure they are; the rest are the wearer's conduct.
FAILURE = {"inability_to_monitor": Failure.COMMUNICATION, "interference_pid": Failure.COMMUNICATION,
           "hmu_interference": Failure.COMMUNICATION, "location_breach": Failure.LOCATION,
           "battery": Failure.FLAT_BATTERY}
# Types that are the equipment's by nature: power to the home unit, its readings,
# an enrolment that failed.
EQUIPMENT_TYPES = frozenset({"ac_power_loss", "negative_ram", "failed_enrolment"})


NO_EVIDENCE = Evidence()  # the backend did not say: nothing excuses the alert


def route(alert: Alert, faulty_batch: bool = False) -> Route:
    """Faults before breaches: where a notification goes first, from what its device
    last reported before it (`alert.evidence`) and whether the device is in a batch
    known to be faulty. An operator can still move it; this decides where it is
    seen first."""
    evidence = alert.evidence or NO_EVIDENCE
    if faulty_batch or alert.type in EQUIPMENT_TYPES:
        return Route.DEVICE_FAULT
    if alert.type == "battery":
        # Flat while on the charger is the charger's fault, not the wearer's.
        return Route.DEVICE_FAULT if evidence.charging else Route.BATTERY
    if FAILURE.get(alert.type) is Failure.COMMUNICATION and evidence.at_home:
        # Silent at home, where the wearer is meant to be: the equipment first.
        return Route.DEVICE_FAULT
    return Route.BREACH


class WorkList(StrEnum):
    """The queue's lists: what operators work, apart from what they need not hear."""

    BREACHES = "breaches"
    DEVICE_FAULTS = "device_faults"
    BATTERY = "battery"  # flat batteries below the policy's 12 hours, and cleared ones to close
    QUIET = "quiet"  # shelved, or raised under a suspension: recorded, not notifying

    @property
    def label(self) -> str:
        return {"breaches": "Breaches", "device_faults": "Device faults", "battery": "Battery",
                "quiet": "Shelved and suppressed"}[self.value]


def work_list(alert: Alert, now: float, faulty_batch: bool = False) -> WorkList:
    """The list an open alert is shown in at `now`."""
    if alert.suppressed is not None or alert.shelved(now):
        return WorkList.QUIET
    return LIST_OF[route(alert, faulty_batch)]


LIST_OF = {Route.BREACH: WorkList.BREACHES, Route.DEVICE_FAULT: WorkList.DEVICE_FAULTS,
           Route.BATTERY: WorkList.BATTERY}
GROUP_WINDOW = 2 * 3600.0  # alerts for one wearer this close together are one incident


@dataclass(slots=True)
class Incident:
    """Related alerts for one wearer: one work item, its members visible."""

    wearer_id: str
    members: list[str]  # alert ids, oldest first
    first_at: float
    last_at: float
    # Battery items: the device's flat time, with its spans (a breach at 12 hours).
    battery: BatteryStanding | None = None

    @property
    def id(self) -> str:
        return self.members[0]  # named after the alert that opened it


def grouped(alerts: Iterable[Alert]) -> list[Incident]:
    """Alerts (in any order) as incidents, in no particular order: a wearer's alert
    joins their latest incident if it came within GROUP_WINDOW of its last member
    (so a chain of alerts, each close to the one before, is one incident), else
    opens one. Members are oldest first."""
    by_wearer: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_wearer.setdefault(alert.wearer_id, []).append(alert)
    out = []
    for wearer_id, mine in by_wearer.items():
        if len(mine) > 1:
            mine.sort(key=_raised)
        latest = None
        for alert in mine:
            if latest is None or alert.raised_at - latest.last_at > GROUP_WINDOW:
                latest = Incident(wearer_id, [alert.id], alert.raised_at, alert.raised_at)
                out.append(latest)
            else:
                latest.members.append(alert.id)
                latest.last_at = alert.raised_at
    return out


def _raised(alert: Alert) -> tuple[float, str]:
    return alert.raised_at, alert.id


def work_items(alerts: Iterable[Alert], now: float,
               battery: Mapping[str, Sequence[Span]]) -> dict[WorkList, list[Incident]]:
    """Open alerts as the queue's work items, per list. `battery`: each device's
    flat-battery spans (console/domain/battery.py). A device whose flat time
    reached the policy's 12 hours in 7 days is one battery breach item in the
    breach list, its open battery alerts the members, however far apart they came;
    below that, its battery alerts stay in the battery list."""
    lists: dict[WorkList, list[Alert]] = {w: [] for w in WorkList}
    flat: dict[str, list[Alert]] = {}
    standings: dict[str, BatteryStanding] = {}
    for alert in alerts:
        work = work_list(alert, now)
        device = alert.device_id
        if work is WorkList.BATTERY and device in battery:
            if device not in standings:
                standings[device] = standing(battery[device], now)
            if standings[device].breached:
                flat.setdefault(device, []).append(alert)
                continue
        lists[work].append(alert)
    items = {work: grouped(members) for work, members in lists.items()}
    device_of = {a.id: a.device_id for a in lists[WorkList.BATTERY]}
    for incident in items[WorkList.BATTERY]:  # below the policy: how far towards it
        incident.battery = standings.get(device_of[incident.members[0]])
    for device, members in flat.items():
        members.sort(key=_raised)
        items[WorkList.BREACHES].append(Incident(
            members[0].wearer_id, [a.id for a in members], members[0].raised_at,
            members[-1].raised_at, standings[device]))
    return items


def self_cleared(alerts: list[Alert], me: str) -> list[Alert]:
    """The battery alerts that cleared by themselves and nobody else holds: the
    ones an operator may close in one go, with one outcome and note, each alert's
    own history recording it (console/domain/actions.py queues a claim and a
    close for each)."""
    return [a for a in alerts if a.type == "battery" and a.latched and a.holder in (None, me)]


# Seconds to claim and to close, per priority: urgent ones are taken up at once.
DEADLINES = {Priority.URGENT: (5 * 60, 60 * 60), Priority.HIGH: (15 * 60, 4 * 3600),
             Priority.NORMAL: (60 * 60, 24 * 3600)}


def overdue(alert: Alert, priority: Priority, now: float) -> str | None:
    """Which deadline an open alert has passed, in words, or None: not claimed in
    time, or claimed but not closed in time (from when it was raised)."""
    if not alert.is_open:
        return None
    claim_within, close_within = DEADLINES[priority]
    age = now - alert.raised_at
    if alert.state is AlertState.UNACKNOWLEDGED and age > claim_within:
        return f"claim overdue by {format_age(age - claim_within)}"
    if age > close_within:
        return f"close overdue by {format_age(age - close_within)}"
    return None
