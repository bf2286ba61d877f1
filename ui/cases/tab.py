"""The wearer view's Case tab: the breach history in numbers, the case timeline,
what the written rule says is due next (console/domain/cases.py), and recording
an entry, which goes through the outbox like every other action."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.changes import Changes
from console.domain import LOCAL_TZ, Alert, WearerRecord
from console.domain.access import Identity, Permission
from console.domain.actions import Action, ActionKind, ActionState, RecordCaseEntry
from console.domain.cases import (
    WARNING_RULE,
    CaseEntry,
    EntryKind,
    Sanction,
    breach_counts,
    confirmed_breaches,
    next_steps,
    problem,
)
from console.protocol.schema import MAX_NOTE
from ui.common.dates import uk_edit
from ui.common.table import uk_datetime


def format_clock_day(ts: float) -> str:
    """A breach's time as a list names it: 30 Nov 03:47, UK time."""
    return f"{datetime.fromtimestamp(ts, LOCAL_TZ):%d %b %H:%M}"


class CaseTab(QWidget):
    def __init__(self, clock: Callable[[], float], record: Callable[[RecordCaseEntry], None],
                 me: Callable[[], Identity | None]):
        """record: queue an entry through the outbox. Once it has reached the backend
        the wearer view asks for the record again, which then lists it. me: who is
        signed in, whose roles say whether they may record one."""
        super().__init__()
        self._clock, self._record, self._me = clock, record, me
        self.wearer_id: str | None = None
        self.record: WearerRecord | None = None
        self.mine: dict[str, Action] = {}  # this console's case entries not yet in a record
        self.counts = QLabel(textFormat=Qt.RichText, wordWrap=True)
        self.counts.setAccessibleName("Breach history")
        self.steps = QLabel(textFormat=Qt.RichText, wordWrap=True)
        self.steps.setAccessibleName("Due next on the case")
        self.steps.setToolTip(WARNING_RULE)
        self.timeline = QTreeWidget()
        self.timeline.setAccessibleName("Case timeline")
        self.timeline.setHeaderLabels(["When (UK time)", "Entry", "Breaches", "By", "Note"])
        for col, width in enumerate((200, 170, 220, 150)):
            self.timeline.setColumnWidth(col, width)
        self.add = QPushButton("Record a case entry…", enabled=False)
        self.add.setAccessibleName("Record an entry on the wearer's case")
        self.add.clicked.connect(self._add)
        layout = QVBoxLayout(self)
        layout.addWidget(self.counts)
        layout.addWidget(self.steps)
        layout.addWidget(self.timeline, 1)
        layout.addWidget(self.add)

    def show_wearer(self, wearer_id: str | None, record: WearerRecord | None) -> None:
        self.wearer_id, self.record = wearer_id, record
        me = self._me()
        why = ("Not signed in" if me is None else me.why_not(Permission.RECORD_CASE)) or (
            "" if record is not None else
            "Off until the record comes: an entry names breaches of the wearer's record, "
            "which the backend gives (offline, or still loading, it has not)")
        self.add.setEnabled(not why)
        self.add.setToolTip(why)
        self.add.setAccessibleDescription(why)
        if record is not None:  # what the record lists is no longer only this console's
            self.mine = {k: a for k, a in self.mine.items() if a.state is not ActionState.DELIVERED}
        self._show()

    def apply(self, changes: Changes) -> None:
        """This console's case entries, as the outbox reports them."""
        mine = {k: a for k, a in changes.actions.items() if a.kind is ActionKind.CASE_ENTRY}
        if mine:
            self.mine.update(mine)
            self._show()

    def _show(self) -> None:
        self.timeline.clear()
        if self.record is None:
            self.counts.setText("" if self.wearer_id is None
                                else "The case comes with the record from the backend.")
            self.steps.setText("")
            return
        e, now = html.escape, self._clock()
        counts = breach_counts(self.record.alerts)
        self.counts.setText(
            f"<b>Confirmed breaches:</b> {sum(counts.values())}"
            + "".join(f" · {e(kind)} {n}" for kind, n in counts.most_common())
            + f" &nbsp; (of {len(self.record.alerts)} alert"
            f"{'' if len(self.record.alerts) == 1 else 's'} on the record)")
        steps = next_steps(self.record.case, self.record.alerts, now)
        self.steps.setText("<b>Due next</b> (hover for the rule): " + (
            "<ul>" + "".join(f"<li>{e(s)}</li>" for s in steps) + "</ul>" if steps else "nothing"))
        for entry in sorted(self.record.case, key=lambda x: x.at):
            self.timeline.addTopLevelItem(self._item(entry, entry.recorded_by, self.record))
        for action in self.mine.values():
            if action.payload.wearer_id == self.wearer_id:
                item = self._item(action.payload.entry, action.label, self.record)
                item.setToolTip(1, action.label)
                self.timeline.addTopLevelItem(item)
        if not self.timeline.topLevelItemCount():
            self.timeline.addTopLevelItem(QTreeWidgetItem(["", "No entries on the case"]))

    @staticmethod
    def _item(entry: CaseEntry, by: str, record: WearerRecord) -> QTreeWidgetItem:
        what = entry.kind.label + (f": {entry.sanction.label.lower()}" if entry.sanction else "")
        who = f"{entry.decision_maker} (decided); {by}" if entry.decision_maker else by
        alerts = {a.id: a for a in record.alerts}
        # The breaches by what and when, as operators know them; an id the record no
        # longer lists (past its 500 newest) by its id.
        breaches = "; ".join(f"{alerts[i].type_label}, {format_clock_day(alerts[i].raised_at)}"
                             if i in alerts else i for i in entry.alert_ids)
        item = QTreeWidgetItem([uk_datetime(entry.at), what, breaches, who, entry.note])
        item.setToolTip(2, breaches)
        item.setToolTip(4, entry.note)
        return item

    def _add(self) -> None:
        if self.record is None or self.wearer_id is None:
            return
        dialog = CaseEntryDialog(self.record, self._clock())
        if dialog.exec():
            self._record(dialog.payload(self.wearer_id))


class CaseEntryDialog(QDialog):
    """An entry with what its kind needs; the OK button says why it is off."""

    def __init__(self, record: WearerRecord, now: float):
        super().__init__()
        self.setWindowTitle(f"Case entry — {record.wearer.ref}")
        self._now = now
        self.kind = QComboBox()
        self.kind.setAccessibleName("Entry")
        for kind in EntryKind:
            self.kind.addItem(kind.label, kind)
        self.when = uk_edit(now, "When it happened (UK time)")
        self.breaches = QListWidget()
        self.breaches.setAccessibleName("Breaches it concerns")
        confirmed = {a.id for a in confirmed_breaches(record.alerts)}
        for alert in sorted(record.alerts, key=lambda a: (a.id not in confirmed, -a.raised_at)):
            item = QListWidgetItem(self._alert_text(alert, alert.id in confirmed))
            item.setData(Qt.UserRole, alert.id)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked)
            self.breaches.addItem(item)
        self.decision_maker = QLineEdit()
        self.decision_maker.setAccessibleName("Decision maker")
        self.decision_maker.setPlaceholderText("Name of who decided (decisions and referrals)")
        self.sanction = QComboBox()
        self.sanction.setAccessibleName("Sanction decided")
        self.sanction.addItem("(choose, for a decision)", None)
        for sanction in Sanction:
            self.sanction.addItem(sanction.label, sanction)
        self.note = QPlainTextEdit()
        self.note.setAccessibleName("Note or reasons")
        self.note.setPlaceholderText("What happened; for a decision, its reasons")
        self.note.setTabChangesFocus(True)
        self.reason = QLabel()
        self.reason.setAccessibleName("Why recording is unavailable")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.Ok)
        self.ok.setText("Record")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("&Entry", self.kind)
        form.addRow("&When (UK time)", self.when)
        form.addRow("&Breaches", self.breaches)
        form.addRow("&Decision maker", self.decision_maker)
        form.addRow("S&anction", self.sanction)
        form.addRow("&Note", self.note)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.reason)
        layout.addWidget(self.buttons)
        for signal in (self.kind.currentIndexChanged, self.when.dateTimeChanged,
                       self.breaches.itemChanged, self.decision_maker.textChanged,
                       self.sanction.currentIndexChanged, self.note.textChanged):
            signal.connect(self._validate)
        self._validate()

    @staticmethod
    def _alert_text(alert: Alert, confirmed: bool) -> str:
        mark = "● confirmed breach" if confirmed else (
            alert.outcome.label.lower() if alert.outcome else alert.state.label)
        return f"{alert.type_label}, {uk_datetime(alert.raised_at)} ({mark}) — {alert.id}"

    def entry(self) -> CaseEntry:
        ids = tuple(self.breaches.item(i).data(Qt.UserRole) for i in range(self.breaches.count())
                    if self.breaches.item(i).checkState() == Qt.Checked)
        sanction = self.sanction.currentData()
        return CaseEntry(EntryKind(self.kind.currentData()), self.when.dateTime().toSecsSinceEpoch(),
                         ids, self.note.toPlainText().strip(),
                         self.decision_maker.text().strip() or None,
                         None if sanction is None else Sanction(sanction))

    def payload(self, wearer_id: str) -> RecordCaseEntry:
        e = self.entry()
        return RecordCaseEntry(wearer_id, e.kind, e.at, e.alert_ids, e.note, e.decision_maker,
                               e.sanction)

    def _validate(self, *_) -> None:
        entry = self.entry()
        why = problem(entry, self._now + 60)  # a minute's grace: the clock ran on meanwhile
        if why is None and len(entry.note) > MAX_NOTE:
            why = f"the note is too long by {len(entry.note) - MAX_NOTE:,} characters"
        self.reason.setText(f"Cannot record: {why}" if why else "")
        self.ok.setEnabled(why is None)
        self.ok.setAccessibleDescription(why or "")
