"""The replay controls under a trail map: play and pause, speed, follow, point
numbers and a time slider, all from the keyboard. The page runs the replay
(maps/trail_map.py); these drive it and follow the position it reports."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from console.domain.fleet import Curfew
from ui.common.table import uk_datetime

# Trail seconds per second. "Whole trail" scrubs the window in about a minute.
SPEEDS = [("1×", 1.0), ("5×", 5.0), ("10×", 10.0), ("30×", 30.0), ("60×", 60.0),
          ("whole trail in 1 min", 0.0)]
STEPS = 1_000  # slider positions across the window


class ReplayBar(QWidget):
    seek = Signal(float)  # a time the operator chose
    play = Signal(float)  # trail seconds per second
    pause = Signal()
    follow = Signal(bool)
    numbers = Signal(bool)

    def __init__(self):
        super().__init__()
        self.setAccessibleName("Trail replay")
        self.start, self.end = 0.0, 1.0
        self.curfew: Curfew | None = None
        self.playing = False
        self.play_button = QPushButton("▶ Play")
        self.play_button.setAccessibleName("Play or pause the replay")
        self.play_button.setShortcut("Ctrl+P")
        self.play_button.clicked.connect(self.toggle)
        self.speed = QComboBox()
        self.speed.setAccessibleName("Replay speed")
        for label, value in SPEEDS:
            self.speed.addItem(label, value)
        self.speed.setCurrentIndex(4)
        self.speed.currentIndexChanged.connect(lambda _: self.playing and self.play.emit(self.rate()))
        self.follow_box = QCheckBox("&Follow")
        self.follow_box.setAccessibleName("Keep the replay's position in view")
        self.follow_box.setChecked(True)
        self.follow_box.toggled.connect(self.follow)
        self.numbers_box = QCheckBox("Point &numbers")
        self.numbers_box.setAccessibleName("Show point numbers")
        self.numbers_box.toggled.connect(self.numbers)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setAccessibleName("Replay position in the window")
        self.slider.setRange(0, STEPS)
        self.slider.setPageStep(STEPS // 20)
        self.slider.valueChanged.connect(self._slid)
        self.position = QLabel(textFormat=Qt.PlainText)
        self.position.setAccessibleName("Replay time")
        self.position.setWordWrap(True)
        controls = QHBoxLayout()
        for widget in (self.play_button, self.speed, self.follow_box, self.numbers_box):
            controls.addWidget(widget)
        controls.addWidget(self.position, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.slider)
        self.setEnabled(False)

    def show_window(self, start: float, end: float, curfew: Curfew | None) -> None:
        self.start, self.end, self.curfew = start, max(end, start + 1), curfew
        self.stopped()
        self.moved(start)
        self.setEnabled(True)

    def rate(self) -> float:
        """Trail seconds per second; 0 for "whole trail", which the page fits to the
        trail's own first and last points (a window can hold fewer)."""
        return self.speed.currentData()

    def toggle(self) -> None:
        if self.playing:
            self.stopped()
            self.pause.emit()
        else:
            self.playing = True
            self.play_button.setText("‖ Pause")
            self.play.emit(self.rate())

    def stopped(self) -> None:
        self.playing = False
        self.play_button.setText("▶ Play")

    def moved(self, t: float) -> None:
        """The page's replay reached `t`."""
        self.slider.blockSignals(True)
        self.slider.setValue(round((t - self.start) / (self.end - self.start) * STEPS))
        self.slider.blockSignals(False)
        self._say(t)
        if t >= self.end:
            self.stopped()

    def _slid(self, value: int) -> None:
        t = self.start + (self.end - self.start) * value / STEPS
        self._say(t)
        self.seek.emit(t)

    def _say(self, t: float) -> None:
        in_curfew = self.curfew is not None and self.curfew.applies(t)
        self.position.setText(uk_datetime(t) + (" · ⚑ in curfew" if in_curfew else ""))
