"""Alarms operators hear and see: a sound, and speech where the system has a speech
engine, when urgent alerts come; the count of unhandled urgent alerts on the tray
icon and in the status bar; mute with an expiry. What counts and what is said is
console/domain/alarms.py's; this only plays it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtMultimedia import QSoundEffect
from PySide6.QtTextToSpeech import QTextToSpeech
from PySide6.QtWidgets import QSystemTrayIcon

from console.changes import Changes
from console.domain.alarms import Mute, announcement, sounding
from ui.alerts.model import AlertQueueModel
from ui.resources import resource

log = logging.getLogger(__name__)

GATHER_MS = 1_500  # urgent alerts arriving within this are announced together
SPEAK_AFTER_MS = 700  # the chime first, then the words


def voice(parent: QObject) -> QTextToSpeech | None:
    """A speech engine that works here, or None (then the sound alone is played).
    Qt's "mock" engine says nothing and is never taken."""
    for engine in QTextToSpeech.availableEngines():
        if engine == "mock":
            continue
        speech = QTextToSpeech(engine, parent)
        if speech.state() != QTextToSpeech.State.Error:
            return speech
        log.info("speech engine %s unusable: %s", engine, speech.errorString())
        speech.deleteLater()
    return None


class Annunciator(QObject):
    # What was announced, and whether it was heard (False: muted); the window shows
    # it either way, so that no alarm rests on sound alone.
    announced = Signal(str, bool)
    changed = Signal()  # the unhandled count or the mute changed

    def __init__(self, model: AlertQueueModel, parent: QObject | None = None,
                 wall: Callable[[], float] = time.time):
        """`wall` is the workstation's clock: a mute lasts real minutes, whatever
        pace the backend's clock keeps."""
        super().__init__(parent)
        self.model, self._wall = model, wall
        self.mute: Mute | None = None
        self.speak = True
        self.unhandled = -1  # not counted yet
        self.last = ""
        self.private = False  # the session is locked: say no wearer's reference
        self._announced: set[str] = set()
        self._pending: list[str] = []
        self._gather = QTimer(self, singleShot=True, interval=GATHER_MS)
        self._gather.timeout.connect(self._announce)
        self.sound = QSoundEffect(self)
        self.sound.setSource(QUrl.fromLocalFile(str(resource("sounds/urgent-alert.wav"))))
        self.voice = voice(self)
        self.tray = QSystemTrayIcon(self) if QSystemTrayIcon.isSystemTrayAvailable() else None
        if self.tray is not None:
            self.tray.show()
        self._recount()

    # -- what came ------------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        """After the queue's model applied `changes`: note urgent alerts not yet
        announced, announce them together once they stop coming, and recount."""
        now = self.model.clock()
        came = list(changes.alerts.values())
        if changes.picture is not None:
            came += changes.picture.alerts.values()
        for alert in came:
            if alert.id not in self._announced and sounding(
                    alert, self.model.priority_of(alert), now):
                self._announced.add(alert.id)
                self._pending.append(alert.id)
        if self._pending and not self._gather.isActive():
            self._gather.start()
        # Most batches are device statuses alone, which change no count (urgency that
        # comes with time is recounted by `tick`).
        if changes.picture is not None or changes.alerts or changes.closed or changes.actions:
            self._recount()

    def tick(self) -> None:
        """Once in a while: mutes and shelvings expire, urgency comes with time."""
        if self.mute is not None and not self.mute.holds(self._wall()):
            self.mute = None
            self.changed.emit()
        self._recount()

    def _announce(self) -> None:
        ids, self._pending = set(self._pending), []
        now = self.model.clock()
        still = [a for a in map(self.model.anticipated, self.model.alerts_where(ids))
                 if sounding(a, self.model.priority_of(a), now)]
        text = announcement([(a, None if self.private else self.model.wearer_ref(a.wearer_id))
                             for a in still])
        if not text:
            return  # taken up or shelved meanwhile
        self.last = text
        heard = not self.muted()
        if heard:
            self.sound.play()
            if self.speak and self.voice is not None:
                QTimer.singleShot(SPEAK_AFTER_MS, lambda: self.voice.say(text))
        self.announced.emit(text, heard)

    def repeat(self) -> None:
        """Say the last announcement again (the operator missed it)."""
        if self.last and self.voice is not None and not self.muted():
            self.voice.say(self.last)
        if self.last:
            self.announced.emit(self.last, not self.muted())

    # -- mute -----------------------------------------------------------------

    def mute_for(self, seconds: float, by: str | None) -> None:
        self.mute = Mute(self._wall() + seconds, by)
        if self.voice is not None:
            self.voice.stop()
        self.changed.emit()

    def unmute(self) -> None:
        self.mute = None
        self.changed.emit()

    def muted(self) -> bool:
        return self.mute is not None and self.mute.holds(self._wall())

    # -- the count --------------------------------------------------------------

    def _recount(self) -> None:
        now, queued = self.model.clock(), self.model.queued
        count = sum(1 for a in self.model.open_alerts() if sounding(
            self.model.anticipated(a) if a.id in queued else a, self.model.priority_of(a), now))
        if count == self.unhandled:
            return
        self.unhandled = count
        if self.tray is not None:
            self.tray.setIcon(badge(count))
            self.tray.setToolTip(self.summary())
        self.changed.emit()

    def summary(self) -> str:
        n = self.unhandled
        return f"▲ {n} urgent alert{'s' if n != 1 else ''} unhandled" if n else "No urgent alert unhandled"


def badge(count: int) -> QIcon:
    """The console's icon with the count of unhandled urgent alerts on it."""
    pixmap = QPixmap(str(resource("icons/em-console.png"))).scaled(
        64, 64, Qt.KeepAspectRatio, Qt.SmoothTransformation)
    if count:
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setBrush(QColor("#b00020"))
        painter.setPen(Qt.NoPen)
        painter.drawEllipse(26, 0, 38, 38)
        painter.setPen(QColor("white"))
        font = QFont()
        font.setBold(True)
        font.setPixelSize(22 if count < 100 else 15)
        painter.setFont(font)
        painter.drawText(26, 0, 38, 38, Qt.AlignCenter, str(count) if count < 1000 else "999+")
        painter.end()
    return QIcon(pixmap)
