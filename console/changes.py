"""The core's contract: what the sync engine hands its consumers (the Qt UI, the
headless status line, tests), and the decoded Event that the protocol hands the
store (so that neither imports the other). Every write to the cache returns
`Changes`; the engine coalesces them and publishes them, at most about ten times
a second."""

from __future__ import annotations

from dataclasses import dataclass, field

from msgspec import Struct

from console.domain import Alert, Device, DeviceStatus, Span, Wearer
from console.domain.actions import Action

# Per device, its flat-battery spans the cache keeps (console/domain/battery.py).
BatterySpans = dict[str, tuple[Span, ...]]


@dataclass
class Picture:
    """Everything the UI shows, as loaded from the cache or a snapshot."""

    wearers: list[Wearer]
    devices: list[Device]
    statuses: dict[str, DeviceStatus]
    alerts: dict[str, Alert]
    battery: BatterySpans = field(default_factory=dict)


@dataclass
class Changes:
    """What one or more applied batches changed; coalesced before the UI sees it."""

    picture: Picture | None = None  # set when everything was replaced
    statuses: dict[str, DeviceStatus] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)  # open alerts, new or changed
    closed: set[str] = field(default_factory=set)
    actions: dict[str, Action] = field(default_factory=dict)  # outbox rows by key
    last_event_id: int = 0
    applied: int = 0
    battery: BatterySpans = field(default_factory=dict)  # each touched device's spans, whole

    def merge(self, later: Changes) -> None:
        if later.picture is not None:
            self.picture = later.picture
            self.statuses.clear()
            self.alerts.clear()
            self.closed.clear()
            self.battery.clear()
        self.statuses.update(later.statuses)
        self.battery.update(later.battery)
        for alert_id in later.closed:
            self.alerts.pop(alert_id, None)
        self.closed |= later.closed
        self.closed -= later.alerts.keys()
        self.alerts.update(later.alerts)
        self.actions.update(later.actions)
        self.last_event_id = max(self.last_event_id, later.last_event_id)
        self.applied += later.applied

    def __bool__(self) -> bool:
        return bool(self.picture or self.statuses or self.alerts or self.closed or self.actions
                    or self.battery)

    def split(self, size: int) -> list[Changes]:
        """The same changes in slices of at most `size` statuses, to be applied in
        order: the first carries everything else, so later slices only add statuses."""
        items = list(self.statuses.items())
        if len(items) <= size:
            return [self]
        first = Changes(self.picture, dict(items[:size]), self.alerts, self.closed,
                        self.actions, self.last_event_id, self.applied, self.battery)
        return [first] + [Changes(statuses=dict(items[i:i + size]))
                          for i in range(size, len(items), size)]


class Event(Struct, frozen=True, gc=False):
    """A decoded event. A Struct the garbage collector does not track, as
    DeviceStatus is: the writer makes tens of thousands a second, and nothing it
    holds refers back to it, so it can be in no reference cycle."""

    id: int
    type: str
    payload: DeviceStatus | Alert | None  # None for reset
