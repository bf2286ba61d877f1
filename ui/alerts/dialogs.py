"""The dialogs of the alert queue's actions: acknowledging, closing with an outcome
and shelving. Each takes a required note with its limit, and says why its button
is off rather than greying it without a word."""

from __future__ import annotations

from html import escape

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from console.domain import MAX_SHELVE, Alert, Outcome, format_age, handling_text
from console.protocol.schema import MAX_NOTE, MAX_SHELVE_REASON
from ui.common.table import uk_datetime

# What an operator can pick for shelving: the centre's usual 15 minutes to 2 hours,
# up to the 8-hour limit of the rules.
SHELVE_FOR = [(15 * 60, "15 minutes"), (30 * 60, "30 minutes"), (3600, "1 hour"),
              (2 * 3600, "2 hours"), (4 * 3600, "4 hours"), (MAX_SHELVE, "8 hours")]


def also(others: list[Alert]) -> str:
    """The summary's line for the other alerts an act applies to."""
    if not others:
        return ""
    kinds = ", ".join(sorted({a.type_label for a in others}))
    return (f"<br><b>and {len(others)} more alert{'s' if len(others) > 1 else ''}</b> "
            f"({escape(kinds)}): the same is done to each, and each one's history records it")


class NoteDialog(QDialog):
    """A dialog about one alert with a required note; subclasses add their fields
    above the note (`fields`) and their own reasons to refuse (`problem`)."""

    def __init__(self, title: str, alert: Alert, wearer_ref: str, now: float, note_name: str,
                 placeholder: str, ok_text: str, fields: list[tuple[str, QWidget]] = (),
                 note_label: str = "&Note", limit: int = MAX_NOTE, others: list[Alert] = ()):
        """others: more alerts the same is done to (the rest of an incident)."""
        super().__init__()
        self.limit = limit
        self.note_word = note_label.replace("&", "").lower()
        self.setWindowTitle(title)
        # Backend texts go into rich text: escaped, so they cannot restyle the dialog.
        self.summary = QLabel(f"<b>{escape(alert.type_label)}</b> — {escape(wearer_ref)}<br>"
                              f"raised {uk_datetime(alert.raised_at)} "
                              f"({format_age(now - alert.raised_at)} ago), "
                              f"{escape(handling_text(alert, now))}" + also(others))
        self.summary.setAccessibleName("Alert summary")
        self.note = QPlainTextEdit()
        self.note.setAccessibleName(note_name)
        self.note.setPlaceholderText(placeholder)
        self.note.setTabChangesFocus(True)
        self.note.textChanged.connect(self._validate)
        self.reason = QLabel()
        self.reason.setAccessibleName(f"Why {ok_text} is unavailable")
        self.count = QLabel()
        self.count.setAccessibleName("Note length")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.Ok)
        self.ok.setText(ok_text)
        self.ok.setToolTip(f"{ok_text} (Ctrl+Return)")
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
        for label, widget in fields:
            layout.addWidget(QLabel(label, buddy=widget))
            layout.addWidget(widget)
        layout.addWidget(QLabel(note_label, buddy=self.note))
        layout.addWidget(self.note)
        layout.addLayout(status)
        layout.addWidget(self.buttons)

    def text(self) -> str:
        return self.note.toPlainText().strip()

    def problem(self) -> str:
        """Why the dialog cannot be accepted yet, besides the note; "" if nothing."""
        return ""

    def _validate(self) -> None:
        n = len(self.text())
        self.count.setText(f"{n} / {self.limit}")
        if n > self.limit:
            over = n - self.limit
            reason = f"Too long by {over:,} character{'s' if over > 1 else ''}"
        else:
            reason = self.problem() or ("" if n else f"Write a {self.note_word}")
        self.reason.setText(reason)
        self.ok.setEnabled(not reason)
        self.ok.setAccessibleDescription(reason)

    def _submit(self) -> None:
        if self.ok.isEnabled():
            self.accept()


class AcknowledgeDialog(NoteDialog):
    def __init__(self, alert: Alert, wearer_ref: str, now: float):
        super().__init__("Acknowledge alert", alert, wearer_ref, now, "Acknowledgement note",
                         "What you saw and what you will do (required)", "Acknowledge")
        self._validate()


class CloseDialog(NoteDialog):
    """Closing needs an outcome from the fixed list, so that breaches can be counted,
    and a note, so that the closing can be reviewed."""

    def __init__(self, alert: Alert, wearer_ref: str, now: float, others: list[Alert] = ()):
        self.outcome_box = QComboBox()
        self.outcome_box.setAccessibleName("Outcome")
        self.outcome_box.addItem("Choose an outcome…", None)
        for outcome in Outcome:
            self.outcome_box.addItem(outcome.label, outcome)
        super().__init__("Close alerts" if others else "Close alert", alert, wearer_ref, now,
                         "Closing note", "What was found and done (required)",
                         "Close alerts" if others else "Close alert",
                         [("&Outcome", self.outcome_box)], others=others)
        self.outcome_box.currentIndexChanged.connect(self._validate)
        self._validate()

    def outcome(self) -> Outcome | None:
        data = self.outcome_box.currentData()  # Qt hands a StrEnum back as a plain str
        return None if data is None else Outcome(data)

    def problem(self) -> str:
        return "" if self.outcome() is not None else "Choose an outcome"


class ShelveDialog(NoteDialog):
    """Shelving quiets an alert for a while, with a reason; it lifts itself."""

    def __init__(self, alert: Alert, wearer_ref: str, now: float, others: list[Alert] = ()):
        self.duration = QComboBox()
        self.duration.setAccessibleName("Shelve for")
        for seconds, label in SHELVE_FOR:
            self.duration.addItem(label, seconds)
        self.duration.setCurrentIndex(1)
        super().__init__("Shelve alert", alert, wearer_ref, now, "Reason for shelving",
                         "Why it may be quiet for a while (required)", "Shelve",
                         [("Shelve &for", self.duration)], "&Reason", MAX_SHELVE_REASON, others)
        self.note.setFocus()  # the reason is what is missing; the duration has a default
        self._validate()

    def seconds(self) -> float:
        return float(self.duration.currentData())
