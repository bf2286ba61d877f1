"""The alert queue: the queue's lists as tabs, the table of the list shown, and
the buttons that handle the selected alert and the rest of its incident. Which
button is on, and why not, is the domain's rule (console/domain/actions.py,
`offered`); each button says why it is off."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from console.domain.access import Identity, Permission
from console.domain.actions import ActionKind, may_acknowledge, offered
from console.domain.workitems import WorkList, self_cleared
from ui.alerts.model import AlertQueueModel
from ui.common.table import stack, table

# Each transition's button: its text (with its Alt key) and what it does.
BUTTONS = {
    ActionKind.CLAIM: ("&Claim", "Hold the selected alert: every console shows who"),
    ActionKind.START_WORK: ("Start &work", "Start work on the alert you hold"),
    ActionKind.CLOSE: ("Clos&e…", "Close the alert you hold, with an outcome and a note"),
    ActionKind.SHELVE: ("&Shelve…", "Quiet the alert for a while, with a reason"),
    ActionKind.UNSHELVE: ("&Unshelve", "Let the shelved alert notify again"),
}


LISTS: tuple[WorkList | None, ...] = (*WorkList, None)  # the tabs, in order; None: all


class AlertQueue(QWidget):
    acknowledge_requested = Signal(object)  # Alert
    # The selected alert's incident (as anticipated, the selected one first), ActionKind
    transition_requested = Signal(object, object)
    close_cleared_requested = Signal(object)  # the self-cleared battery alerts to close

    def __init__(self, model: AlertQueueModel, me: Callable[[], Identity | None]):
        """me: who is signed in (their name, as the backend records holders, and roles)."""
        super().__init__()
        self.model = model
        self.me = me
        self.setAccessibleName("Alert queue")
        self.tabs = QTabBar()
        self.tabs.setAccessibleName("The queue's lists")
        for _ in LISTS:
            self.tabs.addTab("")
        self.tabs.setCurrentIndex(LISTS.index(model.list))
        self.tabs.currentChanged.connect(lambda i: model.show(LISTS[i]))
        self.title = QLabel()
        self.title.setAccessibleName("Open alerts count")
        self.close_cleared = QPushButton("Close cleared &battery…", enabled=False)
        self.close_cleared.setAccessibleName(
            "Close the battery alerts that cleared by themselves, with one outcome and note")
        self.close_cleared.clicked.connect(self._close_cleared)
        # Shown in the Battery list only, its room kept: the columns must not jump.
        policy = self.close_cleared.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.close_cleared.setSizePolicy(policy)
        self.ack = QPushButton("&Acknowledge…", enabled=False)
        self.ack.setAccessibleName("Acknowledge the selected alert")
        self.ack.setToolTip("Acknowledge the selected alert with a note (Alt+A)")
        self.ack.clicked.connect(self._request)
        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)
        bar.addWidget(self.close_cleared)
        bar.addWidget(self.ack)
        self.buttons: dict[ActionKind, QPushButton] = {}
        for kind, (text, what) in BUTTONS.items():
            button = QPushButton(text, enabled=False)
            button.setAccessibleName(what)
            button.clicked.connect(lambda _=False, k=kind: self._transition(k))
            self.buttons[kind] = button
            bar.addWidget(button)
        # Narrow enough to leave Raised room for a day and a time.
        self.view = table(model, "Alert queue table", (90, 112, 85, 72, 160, 74, 64))
        self.view.selectionModel().selectionChanged.connect(self._enable)
        self.view.activated.connect(lambda _: self._request())
        body = QWidget()
        stack(body, bar, self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.tabs)
        layout.addWidget(body)
        for signal in (model.modelReset, model.layoutChanged, model.dataChanged,
                       model.counts_changed):
            signal.connect(self._refresh)
        self._refresh()

    def selected(self):
        rows = self.view.selectionModel().selectedRows()
        return self.model.alert_at(rows[0].row()) if rows else None

    def show_list(self, work: WorkList | None) -> None:
        self.tabs.setCurrentIndex(LISTS.index(work))

    def _refresh(self, *_) -> None:
        counts = self.model.counts
        for i, work in enumerate(LISTS):
            items, alerts = counts.get(work, (0, 0))
            name = "All" if work is None else work.label
            self.tabs.setTabText(i, f"{name} ({items:,})")
            self.tabs.setTabToolTip(i, f"{name}: {items:,} work items, {alerts:,} alerts (Ctrl+{i + 1})")
        items, alerts = counts.get(self.model.list, (0, 0))
        self.title.setText(f"<b>{items:,} work items</b> ({alerts:,} alerts), most urgent first")
        self._enable()

    def cleared_battery(self):
        me = self.me()
        if me is None or not me.may(Permission.WORK_ALERTS):
            return []
        shown = self.model.shown() if self.model.list is WorkList.BATTERY else []
        return self_cleared([self.model.anticipated(a) for a in shown], me.name)

    def _enable(self, *_) -> None:
        cleared = self.cleared_battery()
        self.close_cleared.setVisible(self.model.list is WorkList.BATTERY)
        self.close_cleared.setEnabled(bool(cleared))
        self.close_cleared.setToolTip(
            f"Close the {len(cleared)} battery alerts that cleared by themselves, with one outcome "
            "and note; each alert's history records it" if cleared else
            "No battery alert here has cleared by itself, or another operator holds them")
        alert = self.selected()
        if alert is None:
            self.ack.setEnabled(False)
            reasons = {kind: "Select an alert" for kind in BUTTONS}
        else:
            ahead, me = self.model.anticipated(alert), self.me()
            self.ack.setEnabled(may_acknowledge(ahead, self.model.actions.get(alert.id))
                                and me is not None and me.may(Permission.WORK_ALERTS))
            reasons = offered(ahead, me, self.model.clock())
        for kind, button in self.buttons.items():
            what, reason = BUTTONS[kind][1], reasons[kind]
            if kind is ActionKind.CLAIM and not reason and ahead.holder not in (None, me.name):
                what = f"{ahead.holder} holds it: claiming takes it over from them (asks first)"
            button.setEnabled(not reason)
            button.setToolTip(f"{what}: {reason}" if reason else what)
            button.setAccessibleDescription(reason)

    def _request(self) -> None:
        alert = self.selected()
        if alert is not None and self.ack.isEnabled():
            self.acknowledge_requested.emit(alert)

    def _transition(self, kind: ActionKind) -> None:
        alert = self.selected()
        if alert is not None and self.buttons[kind].isEnabled():
            others = [a for a in self.model.incident_of(alert) if a.id != alert.id]
            self.transition_requested.emit(
                [self.model.anticipated(a) for a in (alert, *others)], kind)

    def _close_cleared(self) -> None:
        cleared = self.cleared_battery()
        if cleared:
            self.close_cleared_requested.emit(cleared)
