"""The wearer view: one wearer, whoever selected them (a board row, an alert).

What this console holds (reference, device, curfew, status, open alerts) shows at
once. The record beyond it (language, phone, order conditions, suspensions, past
alerts) is personal data: it is asked of the backend, which audits each view,
once the selection has rested for a moment, and it is never cached here.

Each tab shows the same wearer: a tab is a widget with `show_wearer(wearer_id,
record)`, called with record None while the record is loading or out of reach.
Later capabilities (battery, trail, calls, visits) add their own with `add_tab`."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from concurrent.futures import Future

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.changes import Changes
from console.domain import Alert, WearerRecord, format_age
from console.domain.access import Identity, Permission
from console.domain.actions import ActionState
from console.protocol.client import ApiError, ProtocolError
from ui.alerts.model import AlertQueueModel
from ui.board.model import StatusBoardModel, device_text
from ui.bridge import result_of
from ui.common.table import uk_datetime
from ui.wearers.suspend import SuspendDialog

log = logging.getLogger(__name__)

# Arrowing through a board must not ask (and audit) a record per row passed.
SETTLE_MS = 400

SUSPEND_TIP = ("Hospital, custody, an approved absence, a device not yet fitted: alerts "
               "raised meanwhile are recorded and never notify")


class WearerView(QWidget):
    suspend_requested = Signal(object)  # a Suspend payload, for the outbox

    def __init__(self, board: StatusBoardModel, alerts: AlertQueueModel,
                 fetch: Callable[[str], Future], clock: Callable[[], float],
                 me: Callable[[], Identity | None]):
        """fetch(wearer_id): the backend's record, as a future (SyncEngine.wearer_record);
        me: who is signed in, whose roles say what the view offers."""
        super().__init__()
        self.setAccessibleName("Wearer view")
        self._board, self._alerts, self._fetch, self._clock = board, alerts, fetch, clock
        self._me = me
        self.wearer_id: str | None = None
        self.record: WearerRecord | None = None
        self._failed = False  # the last ask for the record failed
        self._loading: asyncio.Task | None = None
        self.header = QLabel("Select an alert or a wearer to see them here.")
        self.header.setAccessibleName("Wearer")
        self.header.setWordWrap(True)
        self.source = QLabel(textFormat=Qt.PlainText)  # it quotes a backend's errors
        self.source.setAccessibleName("Where the wearer's record comes from")
        self.source.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Wearer tabs")
        self.summary = SummaryTab(clock)
        self.history = AlertsTab(alerts)
        # No mnemonics: Alt+S and Alt+R belong to the queue and the board.
        self.add_tab(self.summary, "Summary")
        self.add_tab(self.history, "Alerts")
        self.suspend = QPushButton("Suspend monitoring…", enabled=False)
        self.suspend.setAccessibleName("Suspend the wearer's monitoring for a reason and a time")
        self.suspend.clicked.connect(self._suspend)
        top = QHBoxLayout()
        top.addWidget(self.source, 1)
        top.addWidget(self.suspend)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.header)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        self._settle = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle.timeout.connect(self._ask)

    def add_tab(self, tab: QWidget, title: str) -> None:
        self.tabs.addTab(tab, title)
        tab.setAccessibleName(f"{title} of the wearer")

    def show_wearer(self, wearer_id: str | None) -> None:
        if wearer_id == self.wearer_id:
            return
        self.wearer_id, self.record = wearer_id, None
        if self._loading is not None:
            self._loading.cancel()
        self._refresh_header()
        self.source.setText("Loading the record…" if wearer_id else "")
        self._show_tabs()
        if wearer_id is not None:
            self._settle.start()

    def reload(self) -> None:
        """Ask for the shown wearer's record again; the tabs keep showing the last
        one meanwhile."""
        if self.wearer_id is not None:
            self._settle.start()

    def apply(self, changes: Changes) -> None:
        """An action of this console's on the shown wearer or one of their alerts (a
        close, a case entry, a suspension) reached the backend: the record as it
        now stands shows it, and the Case tab's counts and steps follow."""
        delivered = [a for a in changes.actions.values() if a.state is ActionState.DELIVERED]
        if self.wearer_id is None or not delivered:  # most batches: nothing of this console's
            return
        theirs = {a.id for a in self._alerts.alerts_of(self.wearer_id)}
        theirs |= {a.id for a in self.record.alerts} if self.record else set()
        if any(getattr(a.payload, "wearer_id", None) == self.wearer_id or a.alert_id in theirs
               for a in delivered):
            self.reload()

    def retry(self) -> None:
        """The link is back: ask again for a record that could not be had."""
        if self._failed and self.wearer_id is not None and not self._settle.isActive():
            self._failed = False
            self.source.setText("Loading the record…")
            self._settle.start()

    def _suspend(self) -> None:
        row = self._board.row_of(self.wearer_id) if self.wearer_id else None
        if row is None:
            return
        dialog = SuspendDialog(row.wearer, self._clock())
        if dialog.exec():
            self.suspend_requested.emit(dialog.payload())

    def refresh(self) -> None:
        """The picture changed, or time passed: the header and the alerts may have."""
        if self.wearer_id is not None:
            self._refresh_header()
            self.history.show_wearer(self.wearer_id, self.record)

    def _show_tabs(self) -> None:
        # Suspending needs only the wearer: offline it is queued like any action.
        why = self._why_not(Permission.SUSPEND)
        self.suspend.setEnabled(not why and self.wearer_id is not None
                                and self._board.row_of(self.wearer_id) is not None)
        self.suspend.setToolTip(why or SUSPEND_TIP)
        for i in range(self.tabs.count()):
            self.tabs.widget(i).show_wearer(self.wearer_id, self.record)

    def _refresh_header(self) -> None:
        row = self._board.row_of(self.wearer_id) if self.wearer_id else None
        if row is None:
            self.header.setText("Select an alert or a wearer to see them here." if not self.wearer_id
                                else f"Wearer {html.escape(self.wearer_id)} is not on the board.")
            return
        parts = [f"<b>{html.escape(row.wearer.ref)}</b>", html.escape(device_text(row.device))]
        if row.wearer.curfew:
            parts.append(f"curfew {row.wearer.curfew} (UK time)")
        if row.status is not None:
            parts.append(f"battery {row.status.battery:.0f}%"
                         + (" charging" if row.status.charging else "")
                         + f", last contact {format_age(self._clock() - row.status.ts)} ago")
        parts.append(f"{row.open_alerts} open alert{'s' if row.open_alerts != 1 else ''}")
        self.header.setText(" · ".join(parts))

    def _why_not(self, permission: Permission) -> str:
        me = self._me()
        return "Not signed in" if me is None else me.why_not(permission)

    def _ask(self) -> None:
        if why := self._why_not(Permission.SEE_WEARER):  # the backend would refuse it
            self.source.setText(f"{why}: showing what this console holds.")
            return
        # The console runs Qt's event loop as an asyncio loop (qasync, ui/app.py);
        # a window driven by Qt alone (pytest-qt's tests) has none to ask with.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.source.setText("The record cannot be asked for here: no asyncio loop runs "
                                "this window.")
            return
        self._loading = loop.create_task(self._load(self.wearer_id))

    async def _load(self, wearer_id: str) -> None:
        try:
            record = await result_of(self._fetch(wearer_id))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # offline, refused, or a record that did not decode
            log.info("the record of %s could not be had: %s", wearer_id, e)
            if wearer_id == self.wearer_id:
                # Out of reach: asked again once the link is back. A refusal or a record
                # that did not decode would only be refused again.
                self._failed = not isinstance(e, (ApiError, ProtocolError))
                why = type(e).__name__ + (f": {str(e)[:160]}" if str(e) else "")
                self.source.setText(
                    f"⚠ No record from the backend ({why}). "
                    "Showing what this console holds: reference, device, curfew, open alerts.")
            return
        if wearer_id != self.wearer_id:
            return
        self._failed = False
        self.record = record
        self.source.setText(f"Record from the backend at {uk_datetime(self._clock())} (UK time); "
                            "your view of it is in the backend's audit trail.")
        self._show_tabs()


class SummaryTab(QTextBrowser):
    def __init__(self, clock: Callable[[], float]):
        super().__init__()
        self._clock = clock

    def show_wearer(self, wearer_id: str | None, record: WearerRecord | None) -> None:
        if record is None:
            self.setHtml("" if wearer_id is None else
                         "<p>Language, phone, order conditions and suspensions come with the "
                         "record from the backend.</p>")
            return
        self.setHtml(self._summary(record))

    def _summary(self, record: WearerRecord) -> str:
        in_force = record.suspended(self._clock())
        e = html.escape
        devices = "".join(f"<li>{e(d.kind.label)} {e(d.id)}, serial {e(d.serial)}"
                          + (f", fitted {uk_datetime(d.fitted_at)}" if d.fitted_at else "")
                          + "</li>" for d in record.devices) or "<li>none fitted</li>"
        phone = (e(record.phone) if record.phone else
                 "<b>⚠ not recorded</b> (a data-quality flag: the wearer cannot be called)")
        language = e(record.language) + (" — <b>interpreter needed</b>" if record.interpreter
                                         else "")
        conditions = "".join(f"<li>{e(c)}</li>" for c in record.conditions) or "<li>none</li>"
        suspensions = "".join(
            f"<li>{'<b>in force now:</b> ' if s is in_force else ''}{e(s.reason.label)}, "
            f"{uk_datetime(s.start)} to {uk_datetime(s.end)}"
            + (f", every {s.every / 86400:.0f} days" if s.every else "") + "</li>"
            for s in record.suspensions) or "<li>none</li>"
        return (
            f"<p><b>Reference</b> {e(record.wearer.ref)}<br><b>Curfew</b> "
            f"{e(str(record.wearer.curfew)) + ' (UK time)' if record.wearer.curfew else 'none'}"
            f"<br><b>Language</b> {language}<br><b>Phone</b> {phone}</p>"
            f"<p><b>Devices</b></p><ul>{devices}</ul>"
            f"<p><b>Order conditions</b></p><ul>{conditions}</ul>"
            f"<p><b>Suspensions</b> (alerts raise no notification while one is in force)</p>"
            f"<ul>{suspensions}</ul>")


class AlertsTab(QTreeWidget):
    """The wearer's alerts, each with its history: open and past from the record,
    or the open ones this console holds until the record comes."""

    def __init__(self, alerts: AlertQueueModel):
        super().__init__()
        self._alerts = alerts
        self.shown: tuple[Alert, ...] = ()
        self.setHeaderLabels(["Alert", "State", "Raised (UK time)", "Outcome"])
        self.setColumnWidth(0, 220)
        self.setColumnWidth(1, 170)
        self.setColumnWidth(2, 150)

    def show_wearer(self, wearer_id: str | None, record: WearerRecord | None) -> None:
        # The open alerts as this console sees them now, over the record's (which is
        # as of its fetching), then the record's past ones.
        live = {} if wearer_id is None else {a.id: a for a in self._alerts.alerts_of(wearer_id)}
        past = () if record is None else tuple(a for a in record.alerts if a.id not in live)
        alerts = (*live.values(), *past)
        if alerts == self.shown and self.topLevelItemCount():
            return  # unchanged: keep what the operator expanded and where they scrolled
        self.shown = alerts
        self.clear()
        for alert in alerts:
            self.addTopLevelItem(self._item(alert))
        if wearer_id is not None and not alerts:
            self.addTopLevelItem(QTreeWidgetItem(["No alerts for this wearer"]))

    @staticmethod
    def _item(alert: Alert) -> QTreeWidgetItem:
        state = alert.state.label + (f" by {alert.holder}" if alert.holder else "")
        if alert.is_open:
            state += " · active" if alert.active else " · cleared"
        item = QTreeWidgetItem([alert.type_label, state, uk_datetime(alert.raised_at),
                                alert.outcome.label if alert.outcome else ""])
        for h in alert.history:
            what = h.what + (f" by {h.by}" if h.by else "")
            item.addChild(QTreeWidgetItem([what, h.note or "", uk_datetime(h.at),
                                           h.outcome.label if h.outcome else ""]))
        return item
