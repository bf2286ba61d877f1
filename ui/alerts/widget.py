"""The alert queue: the table of open alerts and the buttons that handle the
selected one. Which button is on, and why not, is the domain's rule
(console/domain/actions.py, `offered`); each button says why it is off."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from console.domain.actions import ActionKind, may_acknowledge, offered
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


class AlertQueue(QWidget):
    acknowledge_requested = Signal(object)  # Alert
    transition_requested = Signal(object, object)  # Alert (as anticipated), ActionKind

    def __init__(self, model: AlertQueueModel, me: Callable[[], str | None]):
        """me: the signed-in operator's name, as the backend records holders."""
        super().__init__()
        self.model = model
        self.me = me
        self.setAccessibleName("Alert queue")
        self.title = QLabel()
        self.title.setAccessibleName("Open alerts count")
        self.ack = QPushButton("&Acknowledge…", enabled=False)
        self.ack.setAccessibleName("Acknowledge the selected alert")
        self.ack.setToolTip("Acknowledge the selected alert with a note (Alt+A)")
        self.ack.clicked.connect(self._request)
        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)
        bar.addWidget(self.ack)
        self.buttons: dict[ActionKind, QPushButton] = {}
        for kind, (text, what) in BUTTONS.items():
            button = QPushButton(text, enabled=False)
            button.setAccessibleName(what)
            button.clicked.connect(lambda _=False, k=kind: self._transition(k))
            self.buttons[kind] = button
            bar.addWidget(button)
        # Narrow enough to leave Raised room for a day and a time.
        self.view = table(model, "Alert queue table", (90, 128, 85, 160, 74, 64))
        self.view.selectionModel().selectionChanged.connect(self._enable)
        self.view.activated.connect(lambda _: self._request())
        stack(self, bar, self.view)
        for signal in (model.modelReset, model.layoutChanged, model.dataChanged):
            signal.connect(self._refresh)

    def selected(self):
        rows = self.view.selectionModel().selectedRows()
        return self.model.alert_at(rows[0].row()) if rows else None

    def _refresh(self, *_) -> None:
        self.title.setText(f"<b>{self.model.rowCount():,} open alerts</b>, most urgent first")
        self._enable()

    def _enable(self, *_) -> None:
        alert = self.selected()
        if alert is None:
            self.ack.setEnabled(False)
            reasons = {kind: "Select an alert" for kind in BUTTONS}
        else:
            ahead, me = self.model.anticipated(alert), self.me()
            self.ack.setEnabled(may_acknowledge(ahead, self.model.actions.get(alert.id)))
            reasons = offered(ahead, me, self.model.clock())
        for kind, button in self.buttons.items():
            what, reason = BUTTONS[kind][1], reasons[kind]
            if kind is ActionKind.CLAIM and not reason and ahead.holder not in (None, me):
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
            self.transition_requested.emit(self.model.anticipated(alert), kind)
