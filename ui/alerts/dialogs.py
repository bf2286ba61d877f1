"""Acknowledging an alert: the note, its length and why the button may be off."""

from __future__ import annotations

from html import escape

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
)

from console.domain import Alert, format_age
from console.protocol.schema import MAX_NOTE
from ui.common.table import uk_datetime


class AcknowledgeDialog(QDialog):
    def __init__(self, alert: Alert, wearer_ref: str, now: float):
        super().__init__()
        self.setWindowTitle("Acknowledge alert")
        # Backend texts go into rich text: escaped, so they cannot restyle the dialog.
        self.summary = QLabel(f"<b>{escape(alert.type_label)}</b> — {escape(wearer_ref)}<br>"
                              f"raised {uk_datetime(alert.raised_at)} "
                              f"({format_age(now - alert.raised_at)} ago), {alert.state.value}")
        self.summary.setAccessibleName("Alert summary")
        self.note = QPlainTextEdit()
        self.note.setAccessibleName("Acknowledgement note")
        self.note.setPlaceholderText("What you saw and what you will do (required)")
        self.note.setTabChangesFocus(True)
        self.note.textChanged.connect(self._validate)
        # Why Acknowledge is disabled, and how close the note is to the limit,
        # so the button never goes grey without a word.
        self.reason = QLabel()
        self.reason.setAccessibleName("Why Acknowledge is unavailable")
        self.count = QLabel()
        self.count.setAccessibleName("Note length")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.Ok)
        self.ok.setText("Acknowledge")
        self.ok.setToolTip("Acknowledge the alert with this note (Ctrl+Return)")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        # Return inside the note is a new line, so the note needs its own submit key.
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, activated=self._submit)
        status = QHBoxLayout()
        status.addWidget(self.reason, 1)
        status.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(QLabel("&Note", buddy=self.note))
        layout.addWidget(self.note)
        layout.addLayout(status)
        layout.addWidget(self.buttons)
        self._validate()

    def text(self) -> str:
        return self.note.toPlainText().strip()

    def _validate(self) -> None:
        n = len(self.text())
        self.count.setText(f"{n} / {MAX_NOTE}")
        if n == 0:
            reason = "Write a note"
        elif n > MAX_NOTE:
            over = n - MAX_NOTE
            reason = f"Too long by {over:,} character{'s' if over > 1 else ''}"
        else:
            reason = ""
        self.reason.setText(reason)
        self.ok.setEnabled(not reason)
        self.ok.setAccessibleDescription(reason)

    def _submit(self) -> None:
        if self.ok.isEnabled():
            self.accept()
