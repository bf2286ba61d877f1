"""Asking to see a trail: the purpose, the reference (prefilled from the alert in
hand), a justification and the window, in UK time. The dialog says before sending
what the backend would refuse, and that a window over 7 days waits for a
supervisor (console/domain/trails.py); the backend's check is the safeguard."""

from __future__ import annotations

import uuid

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTreeWidget,
    QVBoxLayout,
)

from console.domain import Alert, Wearer
from console.domain.actions import RequestTrail
from console.domain.clock import DAY
from console.domain.trails import (
    MAX_OPERATOR_WINDOW,
    Purpose,
    ReferenceKind,
    TrailRequest,
    needs_approval,
)
from console.protocol.schema import MAX_NOTE
from ui.common.dates import uk_edit

REFERENCE_LABELS = {ReferenceKind.ALERT: "Alert", ReferenceKind.CASE_ENTRY: "Case entry",
                    ReferenceKind.EXTERNAL: "External reference"}
# Before the alert was raised: how the wearer came to breach is part of the picture.
BEFORE_ALERT = 2 * 3600
DEFAULT_WINDOW = DAY  # what is asked for unless the operator says otherwise: no more


def selected_request(tree: QTreeWidget, requests: list[TrailRequest]) -> TrailRequest | None:
    """The request of a list's selected row (each row keeps its request's id)."""
    items = tree.selectedItems()
    chosen = items[0].data(0, Qt.UserRole) if items else None
    return next((r for r in requests if r.id == chosen), None)


class TrailRequestDialog(QDialog):
    def __init__(self, wearer: Wearer, alert: Alert | None, now: float):
        """alert: the alert in hand, if it is this wearer's: the reference and the
        window start from it."""
        super().__init__()
        self.wearer = wearer
        self._now = now
        self.setWindowTitle(f"Ask to see the trail — {wearer.ref}")
        self.purpose = QComboBox()
        self.purpose.setAccessibleName("Purpose")
        for purpose in Purpose:
            self.purpose.addItem(purpose.label, purpose)
        self.reference_kind = QComboBox()
        self.reference_kind.setAccessibleName("Kind of reference")
        for kind, label in REFERENCE_LABELS.items():
            self.reference_kind.addItem(label, kind)
        self.reference = QLineEdit()
        self.reference.setAccessibleName("Reference")
        self.reference.setPlaceholderText("an alert id, a case entry id, or e.g. a police reference")
        self.justification = QPlainTextEdit()
        self.justification.setAccessibleName("Justification")
        self.justification.setPlaceholderText(
            "Why seeing where the wearer was is necessary and proportionate for this purpose")
        self.justification.setTabChangesFocus(True)
        start = now - DEFAULT_WINDOW
        if alert is not None and alert.wearer_id == wearer.id:
            self.reference_kind.setCurrentIndex(list(REFERENCE_LABELS).index(ReferenceKind.ALERT))
            self.reference.setText(alert.id)
            start = alert.raised_at - BEFORE_ALERT
        self.start = uk_edit(start, "Window from (UK time)")
        self.end = uk_edit(min(now, start + DEFAULT_WINDOW), "Window until (UK time)")
        self.verdict = QLabel()
        self.verdict.setAccessibleName("What will happen to this request")
        self.verdict.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = buttons.button(QDialogButtonBox.Ok)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("&Purpose", self.purpose)
        form.addRow("Reference &kind", self.reference_kind)
        form.addRow("&Reference", self.reference)
        form.addRow("&Justification", self.justification)
        form.addRow("&From (UK time)", self.start)
        form.addRow("&Until (UK time)", self.end)
        layout = QVBoxLayout(self)
        intro = QLabel("A trail shows where the wearer was: it is seen only for a recorded "
                       "purpose, and the backend records this request and every view of it.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.verdict)
        layout.addWidget(buttons)
        for signal in (self.reference.textChanged, self.justification.textChanged,
                       self.start.dateTimeChanged, self.end.dateTimeChanged):
            signal.connect(self._validate)
        self._validate()

    def request(self) -> TrailRequest:
        return TrailRequest(
            "", self.wearer.id, Purpose(self.purpose.currentData()),
            ReferenceKind(self.reference_kind.currentData()), self.reference.text().strip(),
            self.justification.toPlainText().strip(),
            float(self.start.dateTime().toSecsSinceEpoch()),
            float(self.end.dateTime().toSecsSinceEpoch()))

    def payload(self) -> RequestTrail:
        r = self.request()
        return RequestTrail(str(uuid.uuid4()), r.wearer_id, r.purpose, r.reference_kind, r.reference,
                            r.justification, r.start, r.end)

    def _validate(self, *_) -> None:
        r = self.request()
        problem = r.problem(self._now)
        if problem is None and len(r.justification) > MAX_NOTE:
            problem = f"the justification is longer than {MAX_NOTE} characters"
        if problem:
            self.verdict.setText(f"⚠ Cannot ask: {problem}.")
            self.ok.setText("Ask")
        elif needs_approval(r.start, r.end):
            self.verdict.setText(f"⚑ A window over {MAX_OPERATOR_WINDOW / DAY:.0f} days waits for "
                                 "a supervisor's approval: the trail opens once they approve.")
            self.ok.setText("Ask a supervisor")
        else:
            self.verdict.setText("✓ Granted at once for 24 hours: the trail opens when the "
                                 "backend has the request.")
            self.ok.setText("Ask and open")
        self.ok.setEnabled(problem is None)
        self.ok.setAccessibleDescription(problem or "")
