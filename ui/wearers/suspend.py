"""Suspending a wearer's monitoring by design: a reason, a start and an end (UK
time), repeating weekly if asked. Alerts raised meanwhile are recorded and never
notify. The button says why it is off (console/domain/alerts.py, Suspension)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
)

from console.domain import DAY, Suspension, SuspensionReason, Wearer
from console.domain.actions import Suspend
from ui.common.dates import uk_edit


class SuspendDialog(QDialog):
    def __init__(self, wearer: Wearer, now: float):
        super().__init__()
        self.wearer_id = wearer.id
        self.setWindowTitle(f"Suspend monitoring — {wearer.ref}")
        self.reason = QComboBox()
        self.reason.setAccessibleName("Reason")
        for reason in SuspensionReason:
            self.reason.addItem(reason.label, reason)
        self.start = uk_edit(now, "From (UK time)")
        self.end = uk_edit(now + 4 * 3600, "Until (UK time)")
        self.weekly = QCheckBox("Repeat &every week (an appointment)")
        self.weekly.setAccessibleName("Repeat every week")
        self.why_not = QLabel()
        self.why_not.setAccessibleName("Why suspending is unavailable")
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = buttons.button(QDialogButtonBox.Ok)
        self.ok.setText("Suspend")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("&Reason", self.reason)
        form.addRow("&From (UK time)", self.start)
        form.addRow("&Until (UK time)", self.end)
        form.addRow("", self.weekly)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Alerts raised while it holds are recorded and never notify."))
        layout.addLayout(form)
        layout.addWidget(self.why_not)
        layout.addWidget(buttons)
        for signal in (self.start.dateTimeChanged, self.end.dateTimeChanged,
                       self.weekly.toggled):
            signal.connect(self._validate)
        self._validate()

    def suspension(self) -> Suspension:
        return Suspension(self.wearer_id, SuspensionReason(self.reason.currentData()),
                          float(self.start.dateTime().toSecsSinceEpoch()),
                          float(self.end.dateTime().toSecsSinceEpoch()),
                          7 * DAY if self.weekly.isChecked() else None)

    def payload(self) -> Suspend:
        s = self.suspension()
        return Suspend(s.wearer_id, s.reason, s.start, s.end, s.every)

    def _validate(self, *_) -> None:
        problem = self.suspension().problem()
        self.why_not.setText(f"Cannot suspend: {problem}" if problem else "")
        self.ok.setEnabled(problem is None)
        self.ok.setAccessibleDescription(problem or "")
