"""The session lock: after an idle time the window hides every wearer's data until
the operator who is signed in gives their password again.

Locking hides the work area (queue, board, wearer view) and closes any dialog
open over it; the connection line stays, and the engine goes on syncing and
sending queued actions. Urgent alarms still sound, without naming the wearer.
The password is checked by the engine against this workstation's verifier
(SyncEngine.unlock), so unlocking works offline too. After MAX_TRIES wrong
passwords the session is signed out."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QWindow
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.protocol.client import AuthError

LOCK_AFTER = 10 * 60.0  # seconds without input before the session locks (--lock-after)
MAX_TRIES = 5
WINDOW_SCAN_MS = 2_000  # how often IdleWatch looks for windows it does not watch yet
# What an operator does at the workstation; a timer or a repaint is not that.
INPUT = {QEvent.KeyPress, QEvent.MouseButtonPress, QEvent.MouseMove, QEvent.Wheel,
         QEvent.TouchBegin}


class IdleWatch(QObject):
    """Emits `idle` once no input has reached the console's windows for `seconds`.

    It watches each window (QWindow), through which all input arrives, not the
    application: a filter on the application is handed every object's events, and
    PySide crashed wrapping a QtWebEngine request job (the trail map's) that was
    still being built. A window is watched once it has the focus, and every few
    seconds all are looked for, so that none is missed."""

    idle = Signal()

    def __init__(self, seconds: float, parent: QObject | None = None):
        super().__init__(parent)
        self._timer = QTimer(self, singleShot=True, interval=round(seconds * 1000))
        self._timer.timeout.connect(self.idle)
        self._scan = QTimer(self, interval=WINDOW_SCAN_MS)
        self._scan.timeout.connect(self.watch_windows)
        QGuiApplication.instance().focusWindowChanged.connect(self._watch)
        self.watch_windows()
        self._scan.start()
        self._timer.start()

    def watch_windows(self) -> None:
        for window in QGuiApplication.topLevelWindows():
            self._watch(window)

    def _watch(self, window: QWindow | None) -> None:
        if window is not None:
            window.installEventFilter(self)  # again is harmless: no filter twice

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in INPUT:
            self._timer.start()  # restarts the wait
        return False

    def stop(self) -> None:
        self._timer.stop()
        self._scan.stop()
        QGuiApplication.instance().focusWindowChanged.disconnect(self._watch)
        for window in QGuiApplication.topLevelWindows():
            window.removeEventFilter(self)


class LockPage(QWidget):
    """What the locked window shows: who is signed in, and a password to unlock.
    `unlocked` once the password is right; `give_up` after MAX_TRIES wrong ones."""

    unlocked = Signal()
    give_up = Signal()
    _checked = Signal(object)  # the unlock future, done: back on the GUI thread

    def __init__(self, unlock: Callable[[str], Future]):
        super().__init__()
        self.setAccessibleName("Session locked")
        self._unlock = unlock
        self._tries = 0
        self._checking = False
        self.title = QLabel(textFormat=Qt.PlainText, alignment=Qt.AlignCenter)
        self.title.setAccessibleName("Locked")
        self.title.setStyleSheet("font-size: 16pt; font-weight: bold")
        self.message = QLabel(textFormat=Qt.PlainText, alignment=Qt.AlignCenter, wordWrap=True)
        self.message.setAccessibleName("Unlock message")
        self.password = QLineEdit(echoMode=QLineEdit.Password)
        self.password.setAccessibleName("Password")
        self.password.setPlaceholderText("Password")
        self.password.returnPressed.connect(self.check)
        self.button = QPushButton("&Unlock")
        self.button.setAccessibleName("Unlock")
        self.button.clicked.connect(self.check)
        self._checked.connect(self._answered)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.password)
        row.addWidget(self.button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addLayout(row)
        layout.addStretch(2)

    def show_for(self, name: str | None) -> None:
        self._tries = 0
        self.title.setText("Session locked")
        self.message.setText(
            f"Signed in as {name or 'nobody'}. Wearers' data is hidden; queued actions are still "
            "being sent and urgent alarms still sound. Enter your password to go on, or "
            "File ▸ Sign out for another operator.")
        self.password.clear()
        self.password.setFocus()

    def check(self) -> None:
        if self._checking or not self.password.text():
            return
        self._checking = True
        self.button.setEnabled(False)
        self.message.setText("Checking…")
        fut = self._unlock(self.password.text())
        fut.add_done_callback(self._checked.emit)  # from the engine's thread

    def _answered(self, fut: Future) -> None:
        self._checking = False
        self.button.setEnabled(True)
        self.password.clear()
        if fut.cancelled():  # the session is ending
            return
        error = fut.exception()
        if error is None:
            self.unlocked.emit()
            return
        if not isinstance(error, AuthError):  # e.g. the engine stopped: say so
            self.message.setText(f"The password could not be checked ({type(error).__name__}: "
                                 f"{str(error)[:200]}).")
            return
        self._tries += 1
        if self._tries >= MAX_TRIES:
            self.give_up.emit()
            return
        left = MAX_TRIES - self._tries
        self.message.setText(f"Wrong password. {left} more tr{'y' if left == 1 else 'ies'} before "
                             "the session is signed out.")
        self.password.setFocus()
