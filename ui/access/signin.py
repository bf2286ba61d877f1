"""Signing in: the operator's name and password, checked by the sync engine.

The check is the engine's own sign-in (`SyncEngine.sign_in`): it runs on the
engine's network thread with the engine's HTTP client, and the session it opens is
the one the console then works in. The dialog awaits it in a coroutine on the GUI
thread's event loop, so it keeps painting and answering while the backend is slow
or silent: it says what it is doing, Cancel (or Escape) abandons the attempt, and
an attempt that gets no answer in SIGN_IN_TIMEOUT seconds is given up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future

import httpx
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
)

from console.protocol.client import ApiError, AuthError, ProtocolError
from ui.bridge import result_of

SIGN_IN_TIMEOUT = 20.0  # seconds without an answer before the attempt is given up

OFFLINE_TEXT = (
    "You can open the cached picture and work offline if you have signed in online on "
    "this workstation before: your password is checked against what was kept then. "
    "Actions are queued under your name, and the console signs in when the backend is back.")


class SignInDialog(QDialog):
    """`sign_in(username, password)` returns a future of the backend's operator
    record (SyncEngine.sign_in), `sign_in_offline` one that checks them against
    this workstation's verifier (SyncEngine.sign_in_later). Accepted: signed in
    (`operator`), or, with the backend out of reach, signed in offline (`offline`)."""

    def __init__(self, sign_in: Callable[[str, str], Future],
                 sign_in_offline: Callable[[str, str], Future], backend_url: str,
                 training: bool, timeout: float = SIGN_IN_TIMEOUT, username: str = "",
                 why: str = ""):
        """why: why it asks again, said first (and nothing is prefilled then)."""
        super().__init__()
        self.setWindowTitle("EM Console — sign in")
        self._ask_backend = sign_in
        self._ask_workstation = sign_in_offline
        self.backend_url = backend_url
        self.timeout = timeout
        self.operator: dict | None = None
        self.offline = False
        self.attempt: asyncio.Task | None = None
        self._started = 0.0
        self.username = QLineEdit(username or ("demo" if training else ""))
        self.username.setAccessibleName("Username")
        self.password = QLineEdit("demo" if training and not why else "",
                                  echoMode=QLineEdit.Password)
        self.password.setAccessibleName("Password")
        self._where = f"Backend: {backend_url}" + (" (training simulator)" if training else "")
        self.message = QLabel(f"{why} {self._where}" if why else self._where)
        self.message.setTextFormat(Qt.PlainText)  # it quotes what a backend said
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Sign-in message")
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: how long it takes is unknown
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Signing in")
        self.progress.hide()
        self._ticker = QTimer(self, interval=1000)
        self._ticker.timeout.connect(self._say_progress)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.sign_in_button = self.buttons.button(QDialogButtonBox.Ok)
        self.sign_in_button.setText("Sign in")
        self.sign_in_button.setAccessibleName("Sign in")
        self.cancel_button = self.buttons.button(QDialogButtonBox.Cancel)
        self.cancel_button.setAccessibleName("Cancel")
        self.offline_button = self.buttons.addButton("&Open cached picture offline",
                                                     QDialogButtonBox.ActionRole)
        self.offline_button.setAccessibleName("Open cached picture offline")
        self.offline_button.hide()
        self.offline_button.clicked.connect(self._go_offline)
        self.buttons.accepted.connect(self.sign_in)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("&Username", self.username)
        form.addRow("&Password", self.password)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(460)

    @property
    def busy(self) -> bool:
        return self.attempt is not None and not self.attempt.done()

    def sign_in(self) -> None:
        """Start checking the name and password (the Sign in button, Return)."""
        if self.busy:
            return
        if not self.username.text().strip() or not self.password.text():
            self._say("Enter your username and password.")
            (self.password if self.username.text().strip() else self.username).setFocus()
            return
        self.attempt = asyncio.ensure_future(
            self._check(self.username.text(), self.password.text()))

    def reject(self) -> None:
        """Cancel or Escape: abandon the attempt in progress, if any; else close."""
        if self.busy:
            self.attempt.cancel()
        else:
            super().reject()

    async def _check(self, username: str, password: str) -> None:
        self._set_busy(True)
        try:
            async with asyncio.timeout(self.timeout):
                operator = await result_of(self._ask_backend(username, password))
        except asyncio.CancelledError:
            self._say("Sign-in cancelled. " + self._where)
            raise
        except AuthError:
            self._say("Sign-in refused: wrong username or password.")
            self.password.selectAll()
            self.password.setFocus()
        except TimeoutError:
            self._offer_offline(f"The backend did not answer within {self.timeout:.0f} s.")
        except (httpx.HTTPError, OSError) as e:
            self._offer_offline(f"The backend cannot be reached ({type(e).__name__}).")
        except ApiError as e:
            if 400 <= e.status < 500:  # it answered, and refused: working offline is no way round
                self._say(f"The backend refused the sign-in ({str(e)[:200]}).")
            else:
                self._offer_offline(f"The backend could not sign you in ({str(e)[:200]}).")
        except ProtocolError as e:
            self._offer_offline(f"The backend could not sign you in ({str(e)[:200]}).")
        except Exception as e:  # e.g. the engine stopped: say so rather than hang
            self._say(f"Sign-in failed: {type(e).__name__}: {str(e)[:200]}")
        else:
            self.operator = operator
            self.accept()
        finally:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        for w in (self.username, self.password, self.sign_in_button):
            w.setEnabled(not busy)
        self.progress.setVisible(busy)
        if busy:
            self.offline_button.hide()
            self._started = time.monotonic()
            self._say_progress()
            self._ticker.start()
            self.cancel_button.setFocus()
        else:
            self._ticker.stop()
            self.password.setFocus()

    def _say_progress(self) -> None:
        waited = round(time.monotonic() - self._started)  # a timer may fire a little early
        self._say("Signing in…" + (f" {waited} s; Cancel stops trying." if waited else ""))

    def _say(self, text: str) -> None:
        self.message.setText(text)
        # A window does not grow by itself for a label that wraps onto more lines.
        needed = self.heightForWidth(self.width())
        if needed > self.height():
            self.resize(self.width(), needed)

    def _offer_offline(self, why: str) -> None:
        self.offline_button.show()
        self._say(f"{why} {OFFLINE_TEXT}")

    def _go_offline(self) -> None:
        if not self.busy and self.username.text().strip() and self.password.text():
            self.attempt = asyncio.ensure_future(
                self._check_offline(self.username.text(), self.password.text()))

    async def _check_offline(self, username: str, password: str) -> None:
        self.offline_button.setEnabled(False)
        try:
            await result_of(self._ask_workstation(username, password))
        except AuthError as e:
            self._say(f"Offline sign-in refused: {e}.")
            self.password.selectAll()
            self.password.setFocus()
        except Exception as e:  # e.g. the cache could not be opened: say so rather than hang
            self._say(f"Offline sign-in failed: {type(e).__name__}: {str(e)[:200]}")
        else:
            self.offline = True
            self.accept()
        finally:
            self.offline_button.setEnabled(True)
