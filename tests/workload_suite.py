"""`make workload`: how many work items operators face, against raw notifications,
and whether every real breach reached one (issue 10, docs/perf.md).

    python tests/workload_suite.py --wearers 1732 --days 30 --operators 4 --report docs/perf.md

The simulated fleet (console/simulator/fleet.py, the backend's own model) runs for
the given simulated days in-process, and every notification it raises goes
through the console's rules (console/domain/workitems.py and battery.py):
- faults before breaches: `route` sends what looks like equipment to the
  device-fault list (one item per device until it has been quiet a day);
- battery notifications go to the battery list, and count per device; 12 hours
  out of contact in 7 days is one breach item (`work_items`, as the queue makes
  them), which an operator confirms, so that the next needs 12 hours more;
- breaches for one wearer close together are one incident.
The simulator's ground truth says which notifications were real non-compliance.
Notifications raised under a wearer's suspension (hospital, custody, an approved
absence) are recorded and not notified: they are counted apart, neither as items
nor as breaches. A real breach is reached when it is a member of a work item; a
flat battery is a real breach when the wearer's own flat time (not a charging fault's), read from
the simulated devices every ten minutes rather than from the notifications,
reaches 12 hours in 7 days, and reached when the console made a battery item for
that device within the 7 days before it (late, within the 7 days after: the
console counts from the device's first report after it went flat).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_suite import replace_marked  # noqa: E402

from console.domain import DAY, Alert  # noqa: E402
from console.domain.battery import WINDOW, Span, span_of, standing  # noqa: E402
from console.domain.workitems import Route, WorkList, grouped, route, work_items  # noqa: E402
from console.simulator.fleet import Fleet  # noqa: E402

STEP = 600.0  # ten minutes: the operators' load is counted per ten minutes
START = 1_790_000_000.0  # a fixed start (2026-09-21), so that runs compare
FAULT_QUIET = DAY  # a device's fault item stays the one item until it is quiet this long


class FlatTime:
    """The ground truth's side of the policy: per device, the spans its battery was
    flat, sampled; 12 hours of them in 7 days is one breach. That time is then spent,
    and so is the rest of an outage still going on, as in the console: the breach's
    alerts are closed as confirmed while the device is still flat, so the rest of
    that outage makes no new alert."""

    def __init__(self) -> None:
        self.spans: dict[str, list[Span]] = defaultdict(list)
        self.items: dict[str, list[float]] = defaultdict(list)  # device -> when its breaches came
        self.spent: set[str] = set()  # devices whose outage now going on made a breach already

    def out(self, device: str, at: float) -> None:
        spans = self.spans[device]
        if device not in self.spent and not (spans and spans[-1].end is None):
            spans.append(Span(at))

    def back(self, device: str, at: float) -> None:
        self.spent.discard(device)
        spans = self.spans.get(device)
        if spans and spans[-1].end is None:
            spans[-1] = Span(spans[-1].start, at)

    def judge(self, now: float) -> None:
        for device, spans in self.spans.items():
            if spans and standing(spans, now).breached:
                self.items[device].append(now)
                if spans[-1].end is None:
                    self.spent.add(device)
                spans.clear()


class Workload:
    def __init__(self) -> None:
        self.raw = 0
        self.items: Counter[str] = Counter()  # kind of work item -> how many
        self.per_step: Counter[int] = Counter()  # step -> items made in it
        self.breaches: dict[str, tuple[Alert, int]] = {}  # breach-list alerts and their steps
        self.in_incidents: set[str] = set()  # once grouped: the alerts in a breach incident
        self.fault_items: dict[str, float] = {}  # device -> last fault notification
        # The battery list, as the console keeps it: its open alerts, and per device
        # the spans that count towards the policy (console/store/cache.py).
        self.flat: dict[str, Alert] = {}
        self.spans: dict[str, dict[str, Span]] = defaultdict(dict)  # device -> alert id -> span
        self.battery_items: dict[str, list[float]] = defaultdict(list)  # device -> when made
        self.routed: dict[str, Route] = {}
        self.suppressed: set[str] = set()
        # The same policy over the simulator's own state, sampled each step: when
        # each device was flat through the wearer's neglect (not a charging fault),
        # whatever was notified.
        self.truth = FlatTime()

    def item(self, kind: str, step: int) -> None:
        self.items[kind] += 1
        self.per_step[step] += 1

    def raised(self, alert: Alert, step: int) -> None:
        self.raw += 1
        if alert.suppressed is not None:  # raised under a suspension: recorded, not notified
            self.suppressed.add(alert.id)
            return
        where = self.routed[alert.id] = route(alert)
        if where is Route.BREACH:
            self.breaches[alert.id] = (alert, step)
        elif where is Route.DEVICE_FAULT:
            previous = self.fault_items.get(alert.device_id)
            if previous is None or alert.raised_at - previous > FAULT_QUIET:
                self.item("device fault", step)
            self.fault_items[alert.device_id] = alert.raised_at
        else:
            self.flat[alert.id] = alert
            self.changed(alert)

    def changed(self, alert: Alert) -> None:
        """A battery alert of the battery list was raised or its condition cleared."""
        if alert.id in self.flat:
            self.flat[alert.id] = alert
            self.spans[alert.device_id][alert.id] = span_of(alert)

    def observe(self, fleet: Fleet, now: float) -> None:
        """The ground truth of flat batteries, from the simulated devices themselves:
        the wearer's own doing, so neither a charging fault nor a device out of
        contact for another cause (an absconder's: that is its own urgent item)."""
        for device, sim in zip(fleet.devices, fleet.sims, strict=True):
            if sim.battery <= 0 and sim.fault_until < now and sim.no_contact_until <= now:
                self.truth.out(device.id, now)
            else:
                self.truth.back(device.id, now)

    def judge_battery(self, now: float, step: int) -> None:
        """The console's rule (work_items) over the battery list. An operator works
        each battery breach item it makes and confirms it: its alerts close, and
        their time stops counting. Cleared alerts whose time has left the window
        are closed in bulk (their time still counted while it was in it)."""
        devices = {a.device_id for a in self.flat.values()}
        items = work_items(list(self.flat.values()), now,
                           {d: tuple(self.spans[d].values()) for d in devices})
        for item in items[WorkList.BREACHES]:
            if item.battery is None:
                continue
            self.item("battery breach", step)
            for alert_id in item.members:
                alert = self.flat.pop(alert_id)
                self.spans[alert.device_id].pop(alert_id, None)
            self.battery_items[alert.device_id].append(now)
        for alert in [a for a in self.flat.values() if a.cleared_at and a.cleared_at < now - WINDOW]:
            del self.flat[alert.id]
        self.truth.judge(now)

    def group_breaches(self) -> None:
        """The breach list's incidents (the queue's rule), each an item in the step its
        first alert came."""
        for incident in grouped(a for a, _ in self.breaches.values()):
            self.item("breach incident", self.breaches[incident.members[0]][1])
            self.in_incidents.update(incident.members)


def run(wearers: int, days: float, seed: int) -> tuple[Workload, Fleet]:
    fleet = Fleet(wearers, seed, START)
    # The backlog a centre starts with is not this month's workload.
    seen = set(fleet.alerts)
    load = Workload()
    steps = int(days * DAY / STEP)
    for step in range(1, steps + 1):
        now = START + step * STEP
        for kind, payload in fleet.advance(now):
            if kind == "device.status":
                continue
            if payload.id in seen:
                if payload.type == "battery":
                    load.changed(payload)
            else:
                seen.add(payload.id)
                load.raised(payload, step)
        load.observe(fleet, now)
        load.judge_battery(now, step)
    load.group_breaches()
    return load, fleet


def judge(load: Workload, fleet: Fleet) -> dict:
    """Every real breach against the work items: the wearer's conduct (ground truth
    non-compliance) other than batteries, each notification on its own; batteries,
    by the policy, once the wearer's own flat time reaches 12 hours in 7 days."""
    real = [a for a in load.routed
            if fleet.truth[a] == "non_compliance" and fleet.alerts[a].type != "battery"]
    missed = [a for a in real
              if a not in load.in_incidents and load.routed[a] is not Route.DEVICE_FAULT]
    to_faults = [a for a in real if load.routed[a] is Route.DEVICE_FAULT]
    battery_real = sum(len(t) for t in load.truth.items.values())
    # A console item in the 7 days before the truth's breach reached it; one in the 7
    # days after reached it late: the console counts only the flat time it is told
    # of, from the device's first report after it went flat.
    battery_missed, late = [], []
    for device, times in load.truth.items.items():
        made = load.battery_items.get(device, [])
        for t in times:
            if any(t - WINDOW <= m <= t + STEP for m in made):
                continue
            after = [m - t for m in made if t < m <= t + WINDOW]
            if after:
                late.append(min(after))
            else:
                battery_missed.append((device, t))
    # Each miss named, with what the console made of it, so that it can be explained.
    named = [f"alert {a} ({fleet.alerts[a].type}, wearer {fleet.alerts[a].wearer_id})"
             for a in missed] + [battery_miss(load, device, t) for device, t in battery_missed]
    battery_missed = len(battery_missed)
    # The other way round: a console battery item with no real breach of that device
    # within 7 days either side (its flat time was a fault's, or the device's silence
    # another cause's).
    unfounded = sum(1 for device, made in load.battery_items.items() for m in made
                    if not any(abs(t - m) <= WINDOW for t in load.truth.items.get(device, [])))
    return {"real_breaches": len(real) + battery_real, "missed": len(missed) + battery_missed,
            "named": named,
            "real_on_fault_list": len(to_faults), "battery_real": battery_real,
            "battery_missed": battery_missed, "suppressed": len(load.suppressed),
            "late": sorted(late), "unfounded": unfounded,
            "real_suppressed": sum(fleet.truth[a] == "non_compliance" for a in load.suppressed)}


def hours(t: float | None) -> str:
    return "open" if t is None else f"{(t - START) / 3600:.1f} h"


def late_text(late: list[float]) -> str:
    if not late:
        return "0"
    return (f"{len(late)}: median {late[len(late) // 2] / 3600:.1f} h late, "
            f"at most {late[-1] / 3600:.1f} h")


def battery_miss(load: Workload, device: str, at: float) -> str:
    """A flat-battery breach of the ground truth that the console's notifications
    did not make an item of: when, and what the console knew of that device."""
    made = ", ".join(hours(m) for m in load.battery_items.get(device, [])) or "none"
    spans = ", ".join(f"{hours(s.start)} to {hours(s.end)}" for s in load.spans[device].values())
    return (f"battery of {device}, 12 h flat at {hours(at)} (from the start); the console's "
            f"battery items at {made}; its notified spans not yet counted: {spans or 'none'}")


def report(load: Workload, truth: dict, args, seconds: float) -> str:
    items = sum(load.items.values())
    steps = int(args.days * DAY / STEP)
    per_op = items / steps / args.operators
    peak = max(load.per_step.values(), default=0) / args.operators
    fewer = 1 - items / load.raw if load.raw else 0.0
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(load.items.items()))
    return "\n".join([
        "| measure | target | measured |", "|---|---|---|",
        f"| raw notifications | | {load.raw:,} |",
        f"| operator-facing work items | ≥ 75% fewer than raw | {items:,} ({fewer:.1%} fewer): "
        f"{kinds} |",
        f"| items per operator per 10 minutes ({args.operators} operators) | EEMUA 191: about 1 "
        f"manageable, 10 a flood | mean {per_op:.3f}, busiest 10 minutes {peak:.2f} |",
        f"| real breaches (ground truth) that reached no work item | 0 | {truth['missed']} of "
        f"{truth['real_breaches']:,} ({truth['battery_real']} of them accumulated battery) |",
        f"| accumulated battery breaches reached late (the console's item after the "
        f"truth's) | (reported) | {late_text(truth['late'])} |",
        f"| battery breach items with no real battery breach of that device within 7 days | "
        f"(reported) | {truth['unfounded']} |",
        f"| real breaches first routed to the device-fault list | (reported) | "
        f"{truth['real_on_fault_list']} |",
        f"| raised under a suspension (recorded, not notified) | (reported) | "
        f"{truth['suppressed']} ({truth['real_suppressed']} of them the wearer's conduct) |",
        *(["", "Missed: " + "; ".join(truth["named"]) + "."] if truth["named"] else []),
        "", f"{args.wearers:,} wearers, {args.days:g} simulated days, seed {args.seed}; "
        f"ran in {seconds:.0f} s."])


def write_report(path: Path, table: str) -> None:
    replace_marked(path, "workload", (
        f"## Workload (`make workload`)\n\nMeasured {time.strftime('%Y-%m-%d', time.gmtime())}. "
        f"Command: `python tests/workload_suite.py {' '.join(sys.argv[1:])}`.\n\n{table}"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wearers", type=int, default=1732)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--operators", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--report", type=Path)
    args = p.parse_args()
    started = time.monotonic()
    load, fleet = run(args.wearers, args.days, args.seed)
    table = report(load, judge(load, fleet), args, time.monotonic() - started)
    print(table)
    if args.report:
        write_report(args.report, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
