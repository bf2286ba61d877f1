"""The alert queue's model: open alerts, most urgent first, with each one's action.

It shows one of the queue's lists at a time (console/domain/workitems.py: breaches,
device faults, battery, shelved and suppressed; or all of them), and a wearer's
alerts close together in time as one incident: its members next to each other,
in the order the incident came, the incident where its most urgent member goes."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Signal

from console.changes import BatterySpans, Changes
from console.domain import (
    LOCAL_TZ,
    Alert,
    Priority,
    condition_text,
    format_age,
    handling_text,
    priority,
    queue_key,
    workitems,
)
from console.domain.actions import Action, ActionState, anticipated, reflected
from console.domain.workitems import Incident, WorkList, work_items, work_list
from ui.common.table import CAUTION, WARN, Clock, SelfSortingModel, uk_datetime


class AlertQueueModel(SelfSortingModel):
    """Open alerts, most urgent first, then oldest first (ICIBI §5.14)."""

    # Every list's counts moved without the order shown moving (an alert closed):
    # the tabs say so too.
    counts_changed = Signal()

    # The two axes of an alert side by side: its handling (State) and whether what
    # raised it is still there (Condition), as alarm tables show them.
    HEADERS = ("Priority", "Type", "Wearer", "Incident", "State", "Condition", "Age",
               "Raised (UK time)")
    COL_INCIDENT = 3
    COL_STATE = 4
    COL_CONDITION = 5
    COL_AGE = 6
    COL_RAISED = 7

    def __init__(self, clock: Clock, device_clock: Clock | None = None):
        """Ages run on `clock`; the out-of-contact rule of priority runs on
        `device_clock` (the engine's picture time), which holds while the link is down."""
        super().__init__(clock)
        self.device_clock = device_clock or clock
        self._index: dict[str, int] = {}
        self._refs: dict[str, str] = {}
        self._last_contact: dict[str, float] = {}
        self.actions: dict[str, Action] = {}  # latest action per alert id
        self.queued: dict[str, list[Action]] = {}  # per alert id: still queued, in order
        # By key: actions the backend refused, and queued ones that wait for another
        # operator to sign in (an action leaves once it no longer needs attention).
        self.problems: dict[str, Action] = {}
        self.list: WorkList | None = WorkList.BREACHES  # None: every open alert
        # Per list, as last ordered: (work items, alerts). The tabs show them.
        self.counts: dict[WorkList | None, tuple[int, int]] = {}
        self._incident: dict[str, Incident] = {}  # alert id -> its incident
        self._list_of: dict[str, WorkList] = {}  # alert id -> the list it is in
        self.battery: BatterySpans = {}  # per device, its flat-battery spans

    def show(self, work: WorkList | None) -> None:
        """Show one list (None: all), keeping the selection where it still shows."""
        self.list = work
        self._reorder()

    def alert_at(self, position: int) -> Alert:
        return self.row_at(position)

    def alerts_where(self, ids: set[str] | None = None) -> list[Alert]:
        """The open alerts with these ids (all of them without), most urgent first,
        whichever list is shown."""
        return self._most_urgent_first([a for a in self._rows if ids is None or a.id in ids])

    def _most_urgent_first(self, alerts: list[Alert]) -> list[Alert]:
        now, last_contact = self.device_clock(), self._last_contact
        return sorted(alerts, key=lambda a: queue_key(a, last_contact.get(a.device_id), now))

    def open_alerts(self) -> list[Alert]:
        """Every open alert, in no particular order."""
        return list(self._rows)

    def shown(self) -> list[Alert]:
        """The alerts of the list shown, in its order."""
        return [self._rows[r] for r in self._order]

    def list_of(self, alert: Alert) -> WorkList | None:
        """The list the alert is in, as last ordered (None: arrived since)."""
        return self._list_of.get(alert.id)

    def incident_of(self, alert: Alert) -> list[Alert]:
        """The open alerts of the alert's incident in the list shown, oldest first."""
        incident = self._incident.get(alert.id)
        rows = [self._rows[self._index[a]] for a in (incident.members if incident else ())
                if a in self._index]
        return rows or [alert]

    def alerts_of(self, wearer_id: str) -> list[Alert]:
        """The wearer's open alerts, most urgent first, whichever list is shown."""
        return self._most_urgent_first([a for a in self._rows if a.wearer_id == wearer_id])

    def wearer_ref(self, wearer_id: str) -> str:
        return self._refs.get(wearer_id, wearer_id)

    def priority_of(self, alert: Alert) -> Priority:
        return priority(alert, self._last_contact.get(alert.device_id), self.device_clock())

    def _render(self, alert: Alert, now: float) -> tuple[tuple[str, ...], tuple]:
        p = self.priority_of(alert)
        texts = tuple(self._text(alert, col, now) for col in range(len(self.HEADERS)))
        background = {Priority.URGENT: WARN, Priority.HIGH: CAUTION}.get(p)
        return texts, (background,) + (None,) * (len(self.HEADERS) - 1)

    def _tooltip(self, alert: Alert, col: int) -> str | None:
        if col == self.COL_RAISED:
            return f"Raised {uk_datetime(alert.raised_at)}"
        if col == self.COL_INCIDENT:
            incident, members = self._incident.get(alert.id), self.incident_of(alert)
            if incident is not None and incident.battery is not None:
                what = "Battery breach" if incident.battery.breached else "Towards a battery breach"
                return (f"{what}: the device was out of contact with a flat battery "
                        f"{incident.battery.describe()}, over these spans:\n" + "\n".join(
                            f"{uk_datetime(s.start)} to {uk_datetime(s.end)}"
                            for s in incident.battery.spans))
            if len(members) < 2:
                return None
            return "One incident: the wearer's alerts close together in time\n" + "\n".join(
                f"{a.type_label}, raised {uk_datetime(a.raised_at)}" for a in members)
        if col == self.COL_CONDITION:
            return condition_text(alert)
        if col == self.COL_AGE:
            late = self.overdue(alert, self.clock())
            return f"⚑ {late[0].upper()}{late[1:]}" if late else None
        if col != self.COL_STATE:
            return None
        history = "\n".join(
            f"{h.what} {format_age(self.clock() - h.at)} ago"
            + (f" by {h.by}" if h.by else "") + (f" ({h.outcome.label})" if h.outcome else "")
            + (f": {h.note}" if h.note else "") for h in alert.history)
        action = self.actions.get(alert.id)
        if action is not None and action.state.refused:
            return f"Your {action.what}: {action.label}\n\n{history}"
        return history

    def _text(self, alert: Alert, col: int, now: float) -> str:
        if col == 0:
            return self.priority_of(alert).label
        if col == 1:
            if alert.type == "battery":  # a breach only by the accumulated policy
                incident = self._incident.get(alert.id)
                breach = incident is not None and incident.battery is not None \
                    and incident.battery.breached
                return "Battery breach" if breach else "Flat battery"
            return alert.type_label
        if col == 2:
            return self.wearer_ref(alert.wearer_id)
        if col == self.COL_INCIDENT:
            incident = self._incident.get(alert.id)
            if incident is None:
                return ""
            # A battery item says how long its device was flat (⚑: a breach, 12 h or more).
            standing = incident.battery
            flat = "" if standing is None else f"{'⚑ ' if standing.breached else ''}{standing.hours}"
            members = incident.members
            place = f"{members.index(alert.id) + 1}/{len(members)}" if len(members) > 1 else ""
            return " ".join(t for t in (place, flat) if t)
        if col == self.COL_CONDITION:
            return "● active" if alert.active else "○ cleared"
        if col == self.COL_AGE:
            # A symbol, not a colour: past its deadline to claim or to close.
            late = "⚑ " if self.overdue(alert, now) else ""
            return late + format_age(now - alert.raised_at)
        if col == self.COL_RAISED:
            # The time alone is ambiguous once the UK day has turned: then say which day.
            raised = datetime.fromtimestamp(alert.raised_at, LOCAL_TZ)
            if raised.date() == datetime.fromtimestamp(now, LOCAL_TZ).date():
                return f"{raised:%H:%M}"
            return f"{raised:%a %d %b %H:%M}"
        action = self.actions.get(alert.id)
        if action is not None and action.state.refused:
            # The alert as it stands, and that this console's act on it was refused;
            # the backend's reason is in the tooltip and in View ▸ Actions needing attention.
            return f"{handling_text(alert, now)} · {action.kind.text(action.state)}"
        # A queued action shows; a delivered one until the stream brings its effect.
        if action is not None and not (action.state is ActionState.DELIVERED
                                       and reflected(alert, action, now)):
            return action.label  # the kind's text for its state (console/domain/actions.py)
        return handling_text(alert, now)

    def overdue(self, alert: Alert, now: float) -> str | None:
        """Which service deadline it has passed, as this console will see it."""
        return workitems.overdue(self.anticipated(alert), self.priority_of(alert), now)

    def anticipated(self, alert: Alert) -> Alert:
        """The alert as it will be once this console's queued actions on it arrive."""
        return anticipated(alert, self.queued.get(alert.id, []), self.clock())

    def _reorder(self) -> None:
        before = self.counts
        super()._reorder()
        if self.counts != before:
            self.counts_changed.emit()

    def _compute_order(self) -> list[int]:
        """The list shown, incident by incident, and every list's counts."""
        now, device_now = self.clock(), self.device_clock()
        self._rendered.clear()  # incidents may have changed, and with them the Incident column
        queued = self.queued
        rows = [self.anticipated(a) if a.id in queued else a for a in self._rows]
        items = work_items(rows, now, self.battery)
        self._incident, self._list_of = {}, {}
        self.counts = {None: (sum(map(len, items.values())), len(rows))}
        for work, incidents in items.items():
            self.counts[work] = (len(incidents), sum(len(i.members) for i in incidents))
            for incident in incidents:
                for member in incident.members:
                    self._incident[member] = incident
                    self._list_of[member] = work
        # An incident goes where its most urgent member goes; its members, in the order
        # they came, follow each other.
        index, last_contact = self._index, self._last_contact
        keyed = []
        for work, incidents in items.items():
            if self.list not in (None, work):
                continue
            for incident in incidents:
                members = [index[m] for m in incident.members]
                first = min(queue_key(self._rows[r], last_contact.get(self._rows[r].device_id),
                                      device_now) for r in members)
                keyed.append((first, members))
        keyed.sort(key=lambda k: k[0])
        return [r for _, members in keyed for r in members]

    def apply(self, changes: Changes) -> None:
        for device_id, status in changes.statuses.items():
            self._last_contact[device_id] = status.ts
        for key, action in changes.actions.items():
            latest = self.actions.get(action.alert_id)
            if action.alert_id is not None and (latest is None or action.seq >= latest.seq):
                self.actions[action.alert_id] = action
            if action.alert_id is not None:
                queued = [a for a in self.queued.pop(action.alert_id, []) if a.key != key]
                if action.state is ActionState.PENDING:
                    queued = sorted([*queued, action], key=lambda a: a.seq)
                if queued:
                    self.queued[action.alert_id] = queued
            if action.state.refused or action.waiting:
                self.problems[key] = action
            else:
                self.problems.pop(key, None)
        if changes.picture is not None:
            self.battery = dict(changes.picture.battery)
        self.battery.update(changes.battery)
        if changes.picture is not None:
            p = changes.picture
            self._refs = {w.id: w.ref for w in p.wearers}
            self._last_contact = {d: s.ts for d, s in p.statuses.items()}
            rows = list(p.alerts.values())
            self._index = {a.id: i for i, a in enumerate(rows)}
            self._reset(rows)
            return
        if changes.closed or any(a not in self._index for a in changes.alerts):
            rows = [a for a in self._rows if a.id not in changes.closed]
            known = {a.id: i for i, a in enumerate(rows)}
            for alert in changes.alerts.values():
                if alert.id in known:
                    rows[known[alert.id]] = alert
                else:
                    known[alert.id] = len(rows)
                    rows.append(alert)
            self._replace_rows(rows, known)
            return
        touched = set()
        for alert in changes.alerts.values():
            i = self._index[alert.id]
            self._rows[i] = alert
            touched.add(i)
        touched |= {self._index[x.alert_id] for x in changes.actions.values()
                    if x.alert_id in self._index}
        self._rows_changed(touched)
        # A shelving (or one queued) moves an alert to another list, and a device's flat
        # time its battery alerts (their spans come with the change): re-sort then only,
        # not for every update of a state (the order does not depend on it).
        now = self.clock()
        if changes.battery or any(
                work_list(self.anticipated(self._rows[i]), now) is not self._list_of.get(
                    self._rows[i].id) for i in touched if self._rows[i].type != "battery"):
            self._reorder_soon()

    def _replace_rows(self, rows: list[Alert], index: dict[str, int]) -> None:
        """Alerts came or went: rebuild, keeping the selection on the same alerts.
        Closed ones leave at once; new ones take their place in their list with the
        next reorder, within a second: working out the lists and incidents takes
        milliseconds per thousand alerts, too long to do for every batch."""
        old = self._rows
        self._rows, self._index = rows, index
        self._rendered.clear()
        kept = [index[old[r].id] for r in self._order if old[r].id in index]
        self._relayout(kept, carry=lambda r: index.get(old[r].id))
        self._reorder_soon()
