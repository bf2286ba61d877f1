"""Entering a moment: in UK time whatever the workstation's zone (monitoring runs
on UK time), with the zone shown, GMT or BST."""

from __future__ import annotations

from PySide6.QtCore import QDateTime, QTimeZone
from PySide6.QtWidgets import QDateTimeEdit

from console.domain import LOCAL_TZ

UK = QTimeZone(str(LOCAL_TZ).encode())


def uk_edit(ts: float, name: str) -> QDateTimeEdit:
    """An editor for a moment, set to `ts`; `name` is its accessible name."""
    edit = QDateTimeEdit()
    edit.setTimeZone(UK)
    edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(ts), UK))
    edit.setDisplayFormat("dd MMM yyyy HH:mm t")
    edit.setCalendarPopup(True)
    edit.setAccessibleName(name)
    return edit
