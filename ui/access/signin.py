"""Signing in: the operator's name and password, checked against the backend."""

from __future__ import annotations

import httpx
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from console.protocol.wire import API

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
