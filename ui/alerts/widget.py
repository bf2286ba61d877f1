"""The alert queue: the table of open alerts and the acknowledge button."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from console.domain.actions import may_acknowledge
from ui.alerts.model import AlertQueueModel
from ui.common.table import stack, table


class AlertQueue(QWidget):
    acknowledge_requested = Signal(object)  # Alert

    def __init__(self, model: AlertQueueModel):
        super().__init__()
        self.model = model
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
        # Narrow enough to leave Raised room for a day and a time.
        self.view = table(model, "Alert queue table", (95, 140, 90, 165, 50))
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
        action = self.model.actions.get(alert.id) if alert else None
        self.ack.setEnabled(alert is not None and may_acknowledge(alert, action))

    def _request(self) -> None:
        alert = self.selected()
        if alert is not None and self.ack.isEnabled():
            self.acknowledge_requested.emit(alert)
