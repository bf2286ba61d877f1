"""The status board: search, filters and the table of wearers."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ui.board.model import StatusBoardModel
from ui.common.table import stack, table


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
