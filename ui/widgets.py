"""The status board, the alert queue, the connection indicator and the training banner.

Each widget takes its model in its constructor and never reaches for globals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.domain import format_age
from console.sync import SyncStatus
from ui.models import AlertQueueModel, StatusBoardModel


def table(model, name: str, widths: tuple[int, ...]) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setObjectName(name)
    view.setAccessibleName(name)
    view.setSelectionBehavior(QAbstractItemView.SelectRows)
    view.setSelectionMode(QAbstractItemView.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    # Fixed row heights and interactive column widths: ResizeToContents would
    # measure every row of a national fleet.
    view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
    view.verticalHeader().setDefaultSectionSize(24)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
    view.horizontalHeader().setStretchLastSection(True)
    view.setTabKeyNavigation(False)  # Tab leaves the table, arrows move inside it
    for col, width in enumerate(widths):
        view.setColumnWidth(col, width)
    return view


def stack(widget: QWidget, bar: QHBoxLayout, view: QTableView) -> None:
    """A tool bar above a table, edge to edge."""
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addLayout(bar)
    layout.addWidget(view)


class StatusBoard(QWidget):
    def __init__(self, model: StatusBoardModel):
        super().__init__()
        self.model = model
        self.setAccessibleName("Status board")
        self.search = QLineEdit(placeholderText="Search reference or device type (Ctrl+F)",
                                toolTip="Matches the Reference and Device columns, "
                                        "e.g. EM-074 or GPS tag")
        self.search.setAccessibleName("Search the status board")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda text: model.set_filter(search=text))
        self.filters = {}
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        for key, label, tip in (
            ("offline", "&Offline or stale", "Only devices that are late making contact"),
            ("low_battery", "&Low battery", "Only devices below 20% battery"),
            ("alerts", "Open ale&rts", "Only wearers with open alerts"),
        ):
            button = QPushButton(label, checkable=True, toolTip=tip)
            button.setAccessibleName(label.replace("&", "") + " filter")
            button.toggled.connect(lambda on, k=key: model.set_filter(**{k: on}))
            bar.addWidget(button)
            self.filters[key] = button
        self.count = QLabel()
        self.count.setAccessibleName("Rows shown")
        bar.addWidget(self.count)
        # Battery, strap and curfew are wide enough for "(last known)".
        self.view = table(model, "Status board table", (100, 130, 140, 170, 110, 160, 100))
        self.view.setSortingEnabled(True)
        self.view.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
        stack(self, bar, self.view)
        for signal in (model.modelReset, model.layoutChanged, model.rowsInserted):
            signal.connect(self._count)

    def _count(self) -> None:
        self.count.setText(f"{self.model.rowCount():,} of {self.model.total:,} wearers")


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
        self.ack.setEnabled(alert is not None and alert.state.value == "unacknowledged"
                            and (action is None or action.state in ("conflict", "rejected")))

    def _request(self) -> None:
        alert = self.selected()
        if alert is not None and self.ack.isEnabled():
            self.acknowledge_requested.emit(alert)


class ConnectionIndicator(QLabel):
    """Live / reconnecting in N s / offline since, and the last event's time."""

    def __init__(self, status: Callable[[], SyncStatus]):
        super().__init__()
        self._status = status
        self.setAccessibleName("Connection")
        self.setTextFormat(Qt.PlainText)
        self.refresh()

    def refresh(self) -> None:
        s = self._status()
        now = time.time()
        last = (f"last event {datetime.fromtimestamp(s.last_event_at):%H:%M:%S}"
                if s.last_event_at else "no events yet")
        if s.state == "live":
            text = f"● Live — {last}"
        elif s.state == "reconnecting":
            wait = max(0, round((s.retry_at or now) - now))
            text = (f"◐ Reconnecting in {wait} s — offline since "
                    f"{datetime.fromtimestamp(s.since):%H:%M:%S} ({s.detail}) — {last}")
        elif s.state == "cached":
            text = "○ Cached picture — connecting…"
        else:
            text = f"◌ {s.state.capitalize()}…"
        self.setText(text)
        self.setAccessibleDescription(text)


class StaleNotice(QLabel):
    """Says, above the board, that the picture is not live and how old it is."""

    def __init__(self, status: Callable[[], SyncStatus]):
        super().__init__()
        self._status = status
        self.setAccessibleName("Data freshness")
        self.setObjectName("stale")
        self.refresh()

    def refresh(self) -> None:
        s = self._status()
        synced = s.last_event_at or s.synced_at
        if s.state == "live":
            self.hide()
            return
        age = f", {format_age(time.time() - synced)} old" if synced else ""
        self.setText(f"⚠ STALE — not live{age}. Devices are shown as they were when the link "
                     "was lost; whether they have made contact since is unknown.")
        self.show()


class TrainingBanner(QLabel):
    def __init__(self):
        super().__init__("TRAINING — SIMULATED DATA")
        self.setObjectName("training")
        self.setAlignment(Qt.AlignCenter)
        self.setAccessibleName("Training mode: simulated data")
