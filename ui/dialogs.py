"""Sign-in and acknowledgement dialogs."""

from __future__ import annotations

from html import escape

import httpx
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
)

from console.domain import Alert, format_age
from console.protocol.wire import API
from ui.models import uk_datetime

MAX_NOTE = 2000


class SignInDialog(QDialog):
    """Checks the credentials against the backend before the console opens. If the
    backend cannot be reached, the operator may open the cached picture offline."""

    def __init__(self, backend_url: str, training: bool):
        super().__init__()
        self.setWindowTitle("EM Console — sign in")
        self.backend_url = backend_url
        self.offline = False
        self.username = QLineEdit("demo" if training else "")
        self.username.setAccessibleName("Username")
        self.password = QLineEdit("demo" if training else "", echoMode=QLineEdit.Password)
        self.password.setAccessibleName("Password")
        self.message = QLabel(f"Backend: {backend_url}" + (" (training simulator)" if training else ""))
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Sign-in message")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Sign in")
        self.offline_button = self.buttons.addButton("Open cached picture offline",
                                                     QDialogButtonBox.ActionRole)
        self.offline_button.hide()
        self.offline_button.clicked.connect(self._go_offline)
        self.buttons.accepted.connect(self._sign_in)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("&Username", self.username)
        form.addRow("&Password", self.password)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

    def _sign_in(self) -> None:
        try:
            resp = httpx.post(f"{self.backend_url}{API}/session", timeout=5,
                              json={"username": self.username.text(),
                                    "password": self.password.text()})
        except httpx.HTTPError as e:
            self.message.setText(f"The backend cannot be reached ({type(e).__name__}). "
                                 "You can open the cached picture and work offline; "
                                 "actions are queued until it is back.")
            self.offline_button.show()
            return
        if resp.status_code == 200:
            self.accept()
        else:
            self.message.setText("Sign-in refused: wrong username or password.")
            self.password.selectAll()
            self.password.setFocus()

    def _go_offline(self) -> None:
        self.offline = True
        self.accept()


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
