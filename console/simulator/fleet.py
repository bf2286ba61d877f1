"""A simulated fleet of wearers and devices, with ground truth for every breach.

Battery breaches, 15-minute absences and missed curfews emerge from each wearer's
routine (charging in the evening, home during curfew, some who forget); the rarer
breach types are drawn at the rates of ICIBI Figure 6. Together they come to about
one breach per device per month, about 70% of them battery.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from console.domain import (
    DAY,
    EXPECTED_INTERVAL,
    LOCAL_TZ,
    Alert,
    AlertState,
    Curfew,
    Device,
    DeviceKind,
    DeviceStatus,
    Evidence,
    HistoryEntry,
    Suspension,
    Wearer,
    acknowledge,
    claim,
    return_to_normal,
    start_work,
    suppression,
)
from console.simulator.draws import unit
from console.simulator.suspensions import suspensions_of

KIND_SHARE = [(DeviceKind.GPS, 0.80), (DeviceKind.RF, 0.08), (DeviceKind.NFD, 0.08),
              (DeviceKind.WRISTBAND, 0.04)]
CURFEWS = ["19:00-07:00", "20:00-07:00", "21:00-06:00", "22:00-07:00", "20:00-08:00"]
CHARGE_HOURS = (20, 23)  # local evening charging window of a compliant wearer
CHARGE_RATE = 100 / (2.5 * 3600)  # percent per second on the charger
FORGETFUL_SHARE = 0.15
P_FORGET = {True: 0.08, False: 0.008}  # chance per evening of not charging
P_CHARGING_FAULT = 0.003  # per device-day; the fault lasts one to three days
P_LATE_HOME = 0.0072  # per curfew night: back 20-90 minutes late
P_NIGHT_OUT = 0.0031  # per curfew night: out the whole curfew
# Breach types that do not arise from the routine: per device-day rate, and the
# share of them that turn out to be equipment faults.
RANDOM_BREACHES = {
    "interference_pid": (0.0016, 0.6),
    "not_available_for_installation": (0.0015, 0.1),
    "strap_tamper": (0.00025, 0.3),
    "inability_to_monitor": (0.0002, 0.7),
    "hmu_interference": (0.00005, 0.5),
    "ac_power_loss": (0.00005, 0.9),
    "monitor_movement": (0.00005, 0.4),
    "moved_without_variation": (0.00005, 0.1),
    "abusive_behaviour": (0.00002, 0.0),
    "negative_ram": (0.00002, 0.5),
    "unsuccessful_induction_visit": (0.00005, 0.2),
    "failed_enrolment": (0.00005, 0.6),
    "location_breach": (0.0001, 0.3),
}
ROUTINE_FAULT_SHARE = {"absence_15min": 0.2, "curfew_missed": 0.1}
HOME_AREAS = [(51.51, -0.13), (52.48, -1.90), (53.48, -2.24), (53.80, -1.55), (51.45, -2.59)]


@dataclass
class DeviceSim:
    """The simulator's private state of one device; none of it is on the wire as is."""

    battery: float
    life_h: float  # hours from full to flat
    forgetful: bool
    last_contact: float
    next_report: float
    lat: float
    lon: float
    home_lat: float
    home_lon: float
    charging: bool = False
    strap_open_until: float = 0.0
    no_contact_until: float = 0.0  # communication fault or absconded
    fault_until: float = 0.0  # charging fault
    out_since: float | None = None  # left home during curfew
    night_out_day: int = -1  # local day number of a night out or late return
    night_out_until: float = 0.0
    charge_until: float = 0.0  # a flat device, once plugged in, gets a full charge


class Fleet:
    def __init__(self, wearers: int, seed: int, start: float):
        self.seed = seed
        self.rng = random.Random(seed)
        self.wearers: list[Wearer] = []
        self.devices: list[Device] = []
        self.sims: list[DeviceSim] = []
        self.alerts: dict[str, Alert] = {}
        self.truth: dict[str, str] = {}  # alert id -> "non_compliance" / "equipment_fault"
        self.open_by_cause: dict[tuple[int, str], str] = {}  # (device, type) -> alert id
        self.touched: set[int] = set()  # devices whose private state changed; the backend persists them
        self.timers: list[tuple[float, int, str]] = []  # (until, device, type): conditions that end
        self.next_alert = 1
        self.now = start
        self.reported: list[DeviceStatus] = []
        self.recorded: dict[int, list[Suspension]] = {}  # wearer -> suspensions operators recorded
        self._build(wearers)
        # What each device last told the backend: a flat device's battery drains
        # on in the simulation, but nobody hears of it.
        self.reported = [self.status(i) for i in range(wearers)]
        self._index = {d.id: i for i, d in enumerate(self.devices)}
        self._wearer_index = {w.id: i for i, w in enumerate(self.wearers)}
        self._schedule()

    def _schedule(self) -> None:
        self._heap = [(s.next_report, i) for i, s in enumerate(self.sims)]
        heapq.heapify(self._heap)

    # -- construction -------------------------------------------------------

    def _build(self, n: int) -> None:
        rng = self.rng
        kinds, weights = zip(*KIND_SHARE, strict=False)
        for i in range(n):
            kind = rng.choices(kinds, weights)[0]
            has_curfew = kind is DeviceKind.RF or rng.random() < 0.6
            curfew = Curfew.parse(rng.choice(CURFEWS)) if has_curfew else None
            self.wearers.append(Wearer(f"W{i:06d}", f"EM-{100000 + i * 7919 % 900000:06d}", curfew))
            self.devices.append(Device(f"D{i:06d}", f"W{i:06d}", kind))
            lat, lon = rng.choice(HOME_AREAS)
            lat += rng.gauss(0, 0.05)
            lon += rng.gauss(0, 0.08)
            interval = EXPECTED_INTERVAL[kind]
            last = self.now - rng.random() * interval
            self.sims.append(DeviceSim(
                battery=rng.uniform(30, 100), life_h=rng.uniform(24, 40),
                forgetful=rng.random() < FORGETFUL_SHARE, last_contact=last,
                next_report=last + interval, lat=lat, lon=lon, home_lat=lat, home_lon=lon,
            ))
        self._seed_backlog()

    def _seed_backlog(self) -> None:
        """A monitoring centre never starts empty: some wearers are long out of
        contact and some alerts are already open."""
        rng = self.rng
        n = len(self.sims)
        for i in rng.sample(range(n), max(1, n // 400)):
            sim = self.sims[i]
            lost = self.now - rng.uniform(0.5, 12) * DAY
            sim.last_contact = lost
            sim.no_contact_until = math.inf
            self._raise(i, "inability_to_monitor", lost, "non_compliance")
        for i in rng.sample(range(n), n // 30):
            btype = rng.choices(["battery", "absence_15min", "interference_pid", "strap_tamper"],
                                [70, 15, 10, 5])[0]
            if (i, btype) in self.open_by_cause or (
                    btype == "strap_tamper" and self.devices[i].kind is DeviceKind.NFD):
                continue  # a check-in device has no strap
            alert = self._raise(i, btype, self.now - rng.uniform(60, 2 * DAY), "non_compliance")
            # Some were handled already, by operators of this shift or the last.
            # Within its life so far, so that no history entry is dated after now.
            life = self.now - alert.raised_at
            handled, at = rng.random(), alert.raised_at + 0.3 * life
            if handled < 0.12:
                alert = claim(alert, at, "Sam Okafor")
            elif handled < 0.2:
                alert = start_work(claim(alert, at, "Priya Shah"), at + 0.3 * life, "Priya Shah")
            elif handled < 0.3:
                alert = acknowledge(alert, at, "previous shift", "seen")
            if rng.random() < 0.5:
                # Cleared a while after it came, as most do: a battery a few hours flat.
                cleared = min(self.now, alert.raised_at + rng.uniform(1800, 6 * 3600))
                alert = return_to_normal(alert, max(cleared, alert.history[-1].at))
            else:
                heapq.heappush(self.timers, (self.now + rng.uniform(600, 6 * 3600), i, btype))
            self._store(i, alert)

    # -- alerts -------------------------------------------------------------

    def _raise(self, i: int, btype: str, at: float, cause: str) -> Alert:
        dev = self.devices[i]
        # What the device last told the backend; while the fleet is being built,
        # nothing has been told yet but its state then.
        last = self.reported[i] if i < len(self.reported) else self.status(i)
        alert = Alert(
            id=f"A{self.next_alert:08d}", wearer_id=dev.wearer_id, device_id=dev.id,
            type=btype, raised_at=at, state=AlertState.UNACKNOWLEDGED, active=True,
            history=(HistoryEntry(AlertState.UNACKNOWLEDGED, at),),
            evidence=Evidence(last.at_home, last.charging),
            suppressed=suppression(self.suspensions(i, at), at),
        )
        self.next_alert += 1
        self.truth[alert.id] = cause
        self._store(i, alert)
        return alert

    def _store(self, i: int, alert: Alert) -> None:
        self.alerts[alert.id] = alert
        key = (i, alert.type)
        if alert.active:
            self.open_by_cause[key] = alert.id
        elif self.open_by_cause.get(key) == alert.id:
            del self.open_by_cause[key]

    def _clear_cause(self, i: int, btype: str, events: list) -> None:
        alert_id = self.open_by_cause.get((i, btype))
        if alert_id is None:
            return
        alert = return_to_normal(self.alerts[alert_id], self.now)
        self._store(i, alert)
        events.append(("alert.cleared" if not alert.is_open else "alert.updated", alert))

    def _breach(self, i: int, btype: str, cause: str, events: list) -> None:
        if (i, btype) not in self.open_by_cause:
            events.append(("alert.raised", self._raise(i, btype, self.now, cause)))

    def handle(self, alert_id: str, change: Callable[[Alert, float], Alert]) -> tuple[str, Alert]:
        """An operator's transition, change(alert, now), from console/domain/alerts.py.
        Raises KeyError for an unknown id, and what `change` raises for a refused one."""
        alert = change(self.alerts[alert_id], self.now)
        self._store(self._index[alert.device_id], alert)
        return ("alert.cleared" if not alert.is_open else "alert.updated", alert)

    def suspensions(self, i: int, now: float) -> list[Suspension]:
        """Wearer i's suspensions: those of the simulation that have begun by `now`,
        and every one an operator recorded."""
        return suspensions_of(self.seed, i, self.wearers[i].id, now) + self.recorded.get(i, [])

    def index_of_wearer(self, wearer_id: str) -> int | None:
        return self._wearer_index.get(wearer_id)

    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.is_open]

    # -- time ---------------------------------------------------------------

    def status(self, i: int) -> DeviceStatus:
        sim = self.sims[i]
        kind = self.devices[i].kind
        return DeviceStatus(
            device_id=self.devices[i].id, ts=sim.last_contact, battery=sim.battery,
            charging=sim.charging,
            strap=None if kind is DeviceKind.NFD
            else ("open" if sim.strap_open_until > sim.last_contact else "ok"),
            gps_fix=unit(self.seed, i, int(sim.last_contact // 600), 2) > 0.03
            if kind is DeviceKind.GPS else None,
            at_home=self._at_home_reported(i),
        )

    def _at_home_reported(self, i: int) -> bool | None:
        kind = self.devices[i].kind
        if kind in (DeviceKind.GPS, DeviceKind.RF):
            sim = self.sims[i]
            return abs(sim.lat - sim.home_lat) < 0.001 and abs(sim.lon - sim.home_lon) < 0.0015
        return None

    def advance(self, now: float) -> list[tuple[str, object]]:
        """Move simulated time to `now`; return the events that happened, in order."""
        events: list[tuple[str, object]] = []
        dt_days = max(0.0, now - self.now) / DAY
        self.now = now
        self._random_breaches(dt_days, events)
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, i = heapq.heappop(heap)
            interval = EXPECTED_INTERVAL[self.devices[i].kind]
            self._report(i, due, events)
            nxt = due + interval * (0.9 + 0.2 * unit(self.seed, i, int(due)))
            self.sims[i].next_report = nxt
            heapq.heappush(heap, (nxt, i))
        return events

    def _random_breaches(self, dt_days: float, events: list) -> None:
        n = len(self.sims)
        for btype, (rate, fault_share) in RANDOM_BREACHES.items():
            for _ in range(self._poisson(rate * n * dt_days)):
                i = self.rng.randrange(n)
                sim = self.sims[i]
                if sim.no_contact_until > self.now or (
                    btype == "strap_tamper" and self.devices[i].kind is DeviceKind.NFD
                ):
                    continue
                until = self.now + self.rng.uniform(600, 6 * 3600)
                self.touched.add(i)
                if btype == "strap_tamper":
                    sim.strap_open_until = until
                elif btype == "inability_to_monitor":
                    sim.no_contact_until = until
                cause = "equipment_fault" if self.rng.random() < fault_share else "non_compliance"
                self._breach(i, btype, cause, events)
                heapq.heappush(self.timers, (until, i, btype))
        while self.timers and self.timers[0][0] <= self.now:
            _, i, btype = heapq.heappop(self.timers)
            self._clear_cause(i, btype, events)

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        k, p, limit = 0, 1.0, math.exp(-lam)
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _report(self, i: int, at: float, events: list) -> None:
        self.touched.add(i)
        sim = self.sims[i]
        kind = self.devices[i].kind
        local = datetime.fromtimestamp(at, LOCAL_TZ)
        day = local.toordinal()
        dt = max(0.0, at - sim.last_contact) if sim.battery > 0 else 0.0
        # Charging: in the evening window, unless the wearer forgets tonight; a
        # wearer whose device went flat plugs it in within a few hours.
        in_window = CHARGE_HOURS[0] <= local.hour < CHARGE_HOURS[1]
        forgot = unit(self.seed, i, day) < P_FORGET[sim.forgetful]
        if sim.battery <= 0 and unit(self.seed, i, int(at // 3600)) < 0.35:
            sim.charge_until = at + 3 * 3600
        sim.charging = (in_window and not forgot) or at < sim.charge_until
        if sim.charging and sim.fault_until < at and unit(self.seed, i, day, 7) < P_CHARGING_FAULT:
            sim.fault_until = at + (1 + 2 * unit(self.seed, i, day, 8)) * DAY
        if sim.charging and sim.fault_until < at:
            gained = CHARGE_RATE * max(dt, EXPECTED_INTERVAL[kind])
            sim.battery = min(100.0, sim.battery + gained)
        else:
            sim.battery = max(0.0, sim.battery - dt * 100 / (sim.life_h * 3600))
        self._move(i, at, local)
        if sim.battery <= 0:
            cause = "equipment_fault" if sim.fault_until >= at else "non_compliance"
            self._breach(i, "battery", cause, events)
            return  # a flat device says nothing more
        if sim.no_contact_until > at:
            return
        sim.last_contact = at
        if sim.battery > 5:
            self._clear_cause(i, "battery", events)
        if sim.no_contact_until and sim.no_contact_until <= at:
            sim.no_contact_until = 0.0
        self._curfew_rules(i, at, events)
        self.reported[i] = self.status(i)
        events.append(("device.status", self.reported[i]))

    def _move(self, i: int, at: float, local: datetime) -> None:
        """Home at night and during curfew, out for part of the day, and sometimes
        out when the curfew says home."""
        sim = self.sims[i]
        curfew = self.wearers[i].curfew
        day = local.toordinal()
        if curfew is not None and curfew.start.hour == local.hour and sim.night_out_day != day:
            r = unit(self.seed, i, day, 3)
            if r < P_NIGHT_OUT:
                sim.night_out_day, sim.night_out_until = day, at + 13 * 3600
            elif r < P_NIGHT_OUT + P_LATE_HOME:
                sim.night_out_day = day
                sim.night_out_until = at + (20 + 70 * unit(self.seed, i, day, 4)) * 60
        out_by_choice = sim.night_out_until > at
        in_day = 9 <= local.hour < 17 and unit(self.seed, i, day, 5) < 0.7
        curfew_now = curfew is not None and curfew.applies(at)
        away = out_by_choice or (in_day and not curfew_now)
        if away:
            sim.lat = sim.home_lat + 0.01 + 0.01 * unit(self.seed, i, int(at // 600))
            sim.lon = sim.home_lon + 0.01 * unit(self.seed, i, int(at // 600), 1)
        else:
            sim.lat, sim.lon = sim.home_lat, sim.home_lon

    def _curfew_rules(self, i: int, at: float, events: list) -> None:
        curfew = self.wearers[i].curfew
        at_home = self._at_home_reported(i)
        if curfew is None or at_home is None:
            return
        sim = self.sims[i]
        if curfew.applies(at) and not at_home:
            if sim.out_since is None:
                sim.out_since = at
            out_for = at - sim.out_since
            # "Full curfew missed": out for (nearly) the whole curfew period.
            btype = "curfew_missed" if out_for > 0.9 * curfew.length else "absence_15min"
            if out_for > 900:
                fault = unit(self.seed, i, int(sim.out_since)) < ROUTINE_FAULT_SHARE[btype]
                self._breach(i, btype, "equipment_fault" if fault else "non_compliance", events)
        elif sim.out_since is not None:
            sim.out_since = None
            self._clear_cause(i, "absence_15min", events)
            self._clear_cause(i, "curfew_missed", events)

    # -- persistence ----------------------------------------------------------

    def dump_device(self, i: int) -> dict:
        return asdict(self.sims[i])

    def restore(self, devices: list[tuple[int, dict, DeviceStatus]],
                alerts: list[tuple[Alert, str]], next_alert: int,
                timers: list[tuple[float, int, str]]) -> None:
        """Take up the state a backend saved, so that a restart carries on from it."""
        for i, state, reported in devices:
            self.sims[i] = DeviceSim(**state)
            self.reported[i] = reported
        self.alerts.clear()
        self.open_by_cause.clear()
        for alert, cause in alerts:
            self.truth[alert.id] = cause
            self._store(self._index[alert.device_id], alert)
        self.next_alert = next_alert
        self.timers = timers
        heapq.heapify(self.timers)
        self._schedule()
