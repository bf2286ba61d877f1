"""A supervisor's trail approvals: the requests for windows over 7 days that wait
for one, each with its purpose, reference, justification and window, approved or
refused with a reason through the outbox. The backend refuses a supervisor's
decision on their own request; the dialog does not offer it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from console.domain.access import Identity
from console.domain.actions import DecideTrailRequest, Payload
from console.domain.trails import RequestState, TrailRequest
from ui.bridge import when_done
from ui.common.table import uk_datetime
from ui.trails.request import REFERENCE_LABELS, selected_request
from ui.trails.tab import window_text

REFRESH_MS = 15_000


def awaiting(requests: list[TrailRequest], me: Identity | None) -> list[TrailRequest]:
    """The requests this supervisor may decide: pending, and not their own."""
    return [r for r in requests if r.state is RequestState.PENDING
            and (me is None or r.requested_by != me.name)]


class ApprovalsDialog(QDialog):
    decided = Signal()

    def __init__(self, service, act: Callable[[Payload], None], me: Callable[[], Identity | None],
                 wearer_ref: Callable[[str], str]):
        super().__init__()
        self.setWindowTitle("Trail requests awaiting approval")
        self.setAccessibleName("Trail requests awaiting your approval")
        self._service, self._act, self._me, self._ref = service, act, me, wearer_ref
        self.requests: list[TrailRequest] = []
        self.decided_ids: set[str] = set()  # queued here: not offered again
        self.status = QLabel(textFormat=Qt.PlainText)
        self.status.setAccessibleName("Approvals status")
        self.status.setWordWrap(True)
        self.list = QTreeWidget()
        self.list.setAccessibleName("Requests awaiting approval")
        self.list.setHeaderLabels(["Wearer", "Purpose", "Reference", "Window (UK time)", "Asked by",
                                   "Justification"])
        self.list.setRootIsDecorated(False)
        self.list.itemSelectionChanged.connect(self._enable)
        self.note = QLineEdit()
        self.note.setAccessibleName("Reason for the decision")
        self.note.setPlaceholderText("The reason, recorded with the decision (required)")
        self.note.textChanged.connect(self._enable)
        self.approve = QPushButton("&Approve")
        self.approve.setAccessibleName("Approve the selected request")
        self.approve.clicked.connect(lambda: self._decide(True))
        self.refuse = QPushButton("&Refuse")
        self.refuse.setAccessibleName("Refuse the selected request")
        self.refuse.clicked.connect(lambda: self._decide(False))
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("&Reason:", buddy=self.note))
        buttons.addWidget(self.note, 1)
        buttons.addWidget(self.approve)
        buttons.addWidget(self.refuse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self.resize(1200, 420)
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self.reload)
        self._timer.start()
        self.reload()
        self._enable()

    def reload(self) -> None:
        self.status.setText("◷ Asking the backend…")
        when_done(self._service.trail_requests(RequestState.PENDING, None), self._came)

    def _came(self, fut: Future) -> None:
        if fut.exception() is not None:
            e = fut.exception()
            self.status.setText(f"⚠ The requests could not be had ({type(e).__name__}: {str(e)[:160]}).")
            return
        self.requests = [r for r in awaiting(fut.result(), self._me()) if r.id not in self.decided_ids]
        self.list.clear()
        for r in self.requests:
            item = QTreeWidgetItem([self._ref(r.wearer_id), r.purpose.label,
                                    f"{REFERENCE_LABELS[r.reference_kind]} {r.reference}",
                                    window_text(r), f"{r.requested_by}, {uk_datetime(r.requested_at)}",
                                    r.justification])
            item.setData(0, Qt.UserRole, r.id)
            item.setToolTip(5, r.justification)
            self.list.addTopLevelItem(item)
        for column in range(self.list.columnCount() - 1):  # the justification may run on
            self.list.resizeColumnToContents(column)
        self.status.setText(f"{len(self.requests)} request(s) await your decision."
                            if self.requests else "No trail requests await your decision.")
        if self.requests and not self.list.selectedItems():
            self.list.setCurrentItem(self.list.topLevelItem(0))
        self._enable()

    def _selected(self) -> TrailRequest | None:
        return selected_request(self.list, self.requests)

    def _enable(self) -> None:
        ready = self._selected() is not None and bool(self.note.text().strip())
        for button in (self.approve, self.refuse):
            button.setEnabled(ready)
            button.setToolTip("" if ready else "Select a request and give the reason")

    def _decide(self, approve: bool) -> None:
        chosen = self._selected()
        if chosen is None or not self.note.text().strip():
            return
        self._act(DecideTrailRequest(chosen.id, approve, self.note.text().strip()))
        self.decided_ids.add(chosen.id)
        self.requests.remove(chosen)
        self.list.takeTopLevelItem(self.list.indexOfTopLevelItem(self.list.selectedItems()[0]))
        self.note.clear()
        self.status.setText(f"{'Approval' if approve else 'Refusal'} queued for "
                            f"{self._ref(chosen.wearer_id)}: it is sent to the backend now.")
        self.decided.emit()
