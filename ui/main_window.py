"""The operator's main window: alert queue beside the status board."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.changes import Changes
from console.domain import Alert, Outcome
from console.domain.actions import (
    Acknowledge,
    ActionKind,
    Claim,
    Close,
    Payload,
    Shelve,
    StartWork,
    Unshelve,
    offered,
)
from console.domain.alarms import MUTE_CHOICES
from console.domain.battery import NOT_COUNTED
from console.sync import SyncStatus
from ui.access.lock import LOCK_AFTER, IdleWatch, LockPage
from ui.alerts.alarms import Annunciator
from ui.alerts.dialogs import AcknowledgeDialog, CloseDialog, ShelveDialog
from ui.alerts.model import AlertQueueModel
from ui.alerts.widget import LISTS, AlertQueue
from ui.board.model import StatusBoardModel
from ui.board.widget import StatusBoard
from ui.bridge import GuiBridge
from ui.cases.tab import CaseTab
from ui.common.status import ConnectionIndicator, StaleNotice, TrainingBanner
from ui.trails.menu import TrailsMenu
from ui.trails.tab import TrailTab
from ui.wearers.view import WearerView

CLOCK_REFRESH_MS = 5_000  # ages and connection states move on without events
STATUS_REFRESH_MS = 1_000


def focus_table(view: QTableView) -> None:
    """Focus a table and, if nothing in it is selected, its first row: the keys
    that act on the selection (Alt+A) must work straight after Alt+1."""
    view.setFocus()
    if not view.selectionModel().hasSelection() and view.model().rowCount():
        view.selectRow(0)


class MainWindow(QMainWindow):
    # The operator confirmed File ▸ Sign out; the window closes right after. Whoever
    # runs the window decides what follows (ui/app.py: the sign-in dialog again).
    sign_out_requested = Signal()
    locked_out = Signal()  # too many wrong passwords at the lock screen: signed out
    closed = Signal()  # the window closed: File ▸ Quit, its close button, or signing out

    def __init__(self, board: StatusBoardModel, alerts: AlertQueueModel, bridge: GuiBridge,
                 status: Callable[[], SyncStatus], act: Callable[[Payload], Future],
                 fetch_record: Callable[[str], Future], training: bool, version: str,
                 unlock: Callable[[str], Future] | None = None, lock_after: float = LOCK_AFTER,
                 trails=None, tiles: Path | None = None):
        """act: queue an operator's action (SyncEngine.act); the future resolves once
        it is durable, and the window shows it only from the Changes that follow.
        fetch_record: a wearer's record from the backend (SyncEngine.wearer_record).
        unlock: check the signed-in operator's password (SyncEngine.unlock); with it
        the session locks after lock_after seconds without input (0: never).
        trails: the engine's trail operations (SyncEngine.trail_requests, trail,
        trail_access); with them the wearer view has a Trail tab and the window a
        Trails menu; tiles: the trail map's offline basemap (maps/tiles.py)."""
        super().__init__()
        self.setWindowTitle("EM Console" + (" — TRAINING" if training else ""))
        self.board_model, self.alert_model = board, alerts
        self._status, self._act, self._bridge = status, act, bridge
        self.version = version
        bridge.changes.connect(self.apply)
        bridge.action_failed.connect(self._action_failed)

        self.board = StatusBoard(board)
        self.queue = AlertQueue(alerts, lambda: self._status().identity)
        self.queue.acknowledge_requested.connect(self.acknowledge)
        self.queue.transition_requested.connect(self.transition)
        self.queue.close_cleared_requested.connect(self.close_cleared)
        self.connection = ConnectionIndicator(status)
        self.stale = StaleNotice(status)
        # Plain text: they quote names and reasons a backend gave.
        self.counters = QLabel(textFormat=Qt.PlainText)
        self.counters.setAccessibleName("Sync counters")
        self.wearer = WearerView(board, alerts, fetch_record, alerts.clock,
                                 lambda: self._status().identity)
        self.case = CaseTab(alerts.clock, lambda entry: self._act_all([entry]),
                           lambda: self._status().identity)
        self.wearer.suspend_requested.connect(lambda payload: self._act_all([payload]))
        self.wearer.add_tab(self.case, "Case")
        self.trail = TrailTab(board, trails, lambda p: self._act_all([p]), alerts.clock,
                              lambda: self._status().identity, self.queue.selected,
                              tiles) if trails else None
        if self.trail:
            self.wearer.add_tab(self.trail, "Trail")
        self.alarms = Annunciator(alerts, self)
        self.alarm_status = QLabel(textFormat=Qt.PlainText)
        self.alarm_status.setAccessibleName("Alarms")
        self.alarms.changed.connect(self._show_alarms)
        self.alarms.announced.connect(lambda text, heard: self.statusBar().showMessage(
            ("♪ " if heard else "⊘ ") + text, 60_000))
        # Linked: an alert selects its wearer on the board; a board row shows its wearer.
        self.queue.view.selectionModel().selectionChanged.connect(self._alert_selected)
        self.board.view.selectionModel().selectionChanged.connect(self._board_selected)

        right = QSplitter(Qt.Vertical)
        right.addWidget(self.board)
        right.addWidget(self.wearer)
        right.setSizes([430, 330])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.queue)
        split.addWidget(right)
        split.setSizes([760, 740])  # the queue: each column readable at 1500 px wide
        self._areas = (split, right)
        self._sizes_before_trail: list[list[int]] | None = None
        if self.trail:
            self.trail.room_wanted.connect(self._make_room)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 0, 6, 6)
        self.banner = TrainingBanner() if training else None
        if self.banner:
            layout.addWidget(self.banner)
        layout.addWidget(self.connection)
        layout.addWidget(self.stale)
        # The work area, or, locked, a page that hides it (ui/access/lock.py).
        self.work = QStackedWidget()
        self.work.addWidget(split)
        self.lock_page = LockPage(unlock) if unlock else None
        if self.lock_page:
            self.work.addWidget(self.lock_page)
            self.lock_page.unlocked.connect(self.unlock)
            self.lock_page.give_up.connect(self.locked_out)
        layout.addWidget(self.work, 1)
        self.setCentralWidget(central)
        self.statusBar().addPermanentWidget(self.alarm_status)
        self.statusBar().addPermanentWidget(self.counters)
        self._menus()
        self.trails_menu = TrailsMenu(self, trails, lambda p: self._act_all([p]),
                                      lambda: self._status().identity, board, alerts.wearer_ref,
                                      alerts.clock, lambda: self.wearer.wearer_id) if trails else None
        if self.trails_menu:
            self._work_menus.append(self.trails_menu.menu)
        self._show_alarms()
        self.idle = IdleWatch(lock_after, self) if unlock and lock_after > 0 else None
        if self.idle:
            self.idle.idle.connect(self.lock)

        self._clock = QTimer(self, interval=CLOCK_REFRESH_MS)
        self._clock.timeout.connect(self._tick_clock)
        self._clock.start()
        self._status_timer = QTimer(self, interval=STATUS_REFRESH_MS)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()
        self._refresh_status()

    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        if self.lock_page:
            lock = QAction("&Lock", self, shortcut=QKeySequence("Ctrl+L"))
            lock.triggered.connect(self.lock)
            file_menu.addAction(lock)
            self.addAction(lock)
        sign_out = QAction("Sign &out…", self)
        sign_out.triggered.connect(self.sign_out)
        file_menu.addAction(sign_out)
        file_menu.addSeparator()
        # Closing the window ends the session: ui/app.py stops the engine and quits.
        quit_action = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"))
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        self.addAction(quit_action)
        view = self.menuBar().addMenu("&View")
        self._work_menus = [view]  # off while the session is locked
        for text, keys, target in (
            ("Alert &queue", "Alt+1", lambda: focus_table(self.queue.view)),
            ("Status &board", "Alt+2", lambda: focus_table(self.board.view)),
            ("&Search the board", QKeySequence.Find, lambda: self.board.search.setFocus()),
            ("&Actions needing attention", "Alt+3", self.show_problems),
            ("&Wearer view", "Alt+4", lambda: self.wearer.tabs.currentWidget().setFocus()),
        ):
            action = QAction(text, self, shortcut=QKeySequence(keys))
            action.triggered.connect(target)
            view.addAction(action)
            self.addAction(action)
        view.addSeparator()
        for i, work in enumerate(LISTS):
            action = QAction(f"{'All open alerts' if work is None else work.label} list", self,
                             shortcut=QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, w=work: self.queue.show_list(w))
            view.addAction(action)
            self.addAction(action)
        self._alarm_menu()
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About EM Console", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "About EM Console", f"EM Console {self.version}\nElectronic-monitoring centre console."))
        help_menu.addAction(about)

    def _alarm_menu(self) -> None:
        menu = self.menuBar().addMenu("Alar&ms")
        self._work_menus.append(menu)
        for seconds in MUTE_CHOICES:
            mute = QAction(f"Mute for {seconds // 60} minutes", self)
            if seconds == 15 * 60:
                mute.setShortcut(QKeySequence("Ctrl+M"))
                self.addAction(mute)
            mute.triggered.connect(
                lambda _=False, s=seconds: self.alarms.mute_for(s, self._status().operator))
            menu.addAction(mute)
        unmute = QAction("&Unmute", self, shortcut=QKeySequence("Ctrl+Shift+M"))
        unmute.triggered.connect(self.alarms.unmute)
        menu.addAction(unmute)
        self.addAction(unmute)
        menu.addSeparator()
        speak = QAction("&Speak urgent alerts", self, checkable=True,
                        checked=self.alarms.voice is not None,
                        enabled=self.alarms.voice is not None)
        if self.alarms.voice is None:
            speak.setText("Speak urgent alerts (no speech engine on this workstation)")
        speak.toggled.connect(lambda on: setattr(self.alarms, "speak", on))
        menu.addAction(speak)
        again = QAction("Say the last alarm &again", self, shortcut=QKeySequence("Ctrl+Shift+A"))
        again.triggered.connect(self.alarms.repeat)
        menu.addAction(again)
        self.addAction(again)

    def _show_alarms(self) -> None:
        state = self.alarms.mute.text() if self.alarms.muted() else "♪ alarms on (Ctrl+M mutes)"
        s = self._status()
        # With no picture at all, "no urgent alert" would be a claim nobody can make.
        summary = (self.alarms.summary() if s.last_event_at or s.synced_at
                   else "⚠ urgent alerts unknown: no data yet")
        self.alarm_status.setText(f"{summary} · {state}")

    def _make_room(self, wanted: bool) -> None:
        """A trail opened: the map takes most of the window (the queue keeps a
        column, the board gives way); closed: the areas as they were."""
        if wanted and self._sizes_before_trail is None:
            self._sizes_before_trail = [area.sizes() for area in self._areas]
            split, right = self._areas
            split.setSizes([380, max(600, sum(split.sizes()) - 380)])
            right.setSizes([120, max(400, sum(right.sizes()) - 120)])
        elif not wanted and self._sizes_before_trail is not None:
            for area, sizes in zip(self._areas, self._sizes_before_trail, strict=True):
                area.setSizes(sizes)
            self._sizes_before_trail = None

    # -- the session lock -------------------------------------------------------

    @property
    def locked(self) -> bool:
        return self.lock_page is not None and self.work.currentWidget() is self.lock_page

    def lock(self) -> None:
        """Hide every wearer's data until the signed-in operator's password is given
        again; syncing and queued actions go on. A dialog open over the work area
        is cancelled (what it would have done is not done)."""
        if self.lock_page is None or self.locked:
            return
        for window in QApplication.topLevelWidgets():
            if isinstance(window, QDialog) and window.isVisible():
                window.reject()
        if self.trail and self.trail.window_of_map:  # the map back into the hidden work area
            self.trail.window_of_map.close()
        self.work.setCurrentWidget(self.lock_page)
        self.lock_page.show_for(self._status().operator)
        self.alarms.private = True
        self.statusBar().clearMessage()  # it may quote an announcement naming a wearer
        # The queue's, the board's and the alarms' commands wait for the unlock.
        self._while_locked = [(a, a.isEnabled()) for menu in self._work_menus for a in menu.actions()]
        for action, _ in self._while_locked:
            action.setEnabled(False)

    def unlock(self) -> None:
        if not self.locked:
            return
        for action, enabled in self._while_locked:
            action.setEnabled(enabled)
        self.alarms.private = False
        self.work.setCurrentIndex(0)
        focus_table(self.queue.view)

    # -- live data --------------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        # A whole new picture (a new sync process, a snapshot) resets the tables:
        # the operator's selections are put back on the same alert and wearer.
        alert = self.queue.selected() if changes.picture is not None else None
        wearer = self.wearer.wearer_id
        self.board_model.apply(changes)
        self.alert_model.apply(changes)
        self.alarms.apply(changes)
        self.case.apply(changes)
        if self.trail:
            self.trail.apply(changes)
        self.wearer.apply(changes)
        if changes.picture is not None:
            self._reselect(alert.id if alert else None, wearer)
        self.wearer.refresh()

    def _reselect(self, alert_id: str | None, wearer_id: str | None) -> None:
        position = next((p for p in range(self.alert_model.rowCount())
                         if self.alert_model.alert_at(p).id == alert_id), None)
        if position is not None:
            self.queue.view.selectRow(position)
        elif wearer_id is not None and (row := self.board_model.position_of(wearer_id)) is not None:
            self.board.view.selectRow(row)

    def _alert_selected(self, *_) -> None:
        alert = self.queue.selected()
        if alert is None:
            return
        self.wearer.show_wearer(alert.wearer_id)
        position = self.board_model.position_of(alert.wearer_id)
        if position is None:  # a filter hides the wearer's row
            self.board.view.clearSelection()
        else:
            self.board.view.selectRow(position)
            self.board.view.scrollTo(self.board_model.index(position, 0))

    def _board_selected(self, *_) -> None:
        rows = self.board.view.selectionModel().selectedRows()
        if not rows:
            return
        wearer_id = self.board_model.row_at(rows[0].row()).wearer.id
        self.wearer.show_wearer(wearer_id)
        alert = self.queue.selected()
        if alert is None or alert.wearer_id != wearer_id:
            # The queue's buttons must never act on another wearer than the one shown:
            # the queue follows to this wearer's most urgent alert, showing its list if
            # another is shown, or lets go.
            theirs = self.alert_model.alerts_of(wearer_id)
            if not theirs:
                self.queue.view.clearSelection()
                return
            work = self.alert_model.list_of(theirs[0])
            if self.alert_model.list is not None and work not in (None, self.alert_model.list):
                self.queue.show_list(work)
            position = next((p for p in range(self.alert_model.rowCount())
                             if self.alert_model.alert_at(p).wearer_id == wearer_id), None)
            if position is None:
                self.queue.view.clearSelection()
            else:
                self.queue.view.selectRow(position)

    def _tick_clock(self) -> None:
        self.board_model.refresh_time()
        self.alert_model.refresh_time()
        self.alarms.tick()
        self.wearer.refresh()

    def _refresh_status(self) -> None:
        s = self._status()
        self.board_model.set_live(s.state == "live")
        self._show_alarms()
        if s.state == "live":
            self.wearer.retry()  # a record the link's loss kept from the view
        if self.trails_menu and not self.locked:
            self.trails_menu.refresh()
        self.connection.refresh()
        self.stale.refresh()
        problems = len(self._my_problems())
        self.counters.setText(
            f"events applied {s.applied:,} · rejected {s.rejected:,} · "
            f"actions queued {s.pending_actions}"
            + (f" · ⚠ {problems} need attention (Alt+3)" if problems else "")
            + (f" · signed in as {s.operator} ({', '.join(sorted(s.roles)) or 'no role'})"
               if s.operator else ""))
        if s.cache_notice and not getattr(self, "_told_cache", False):
            self._told_cache = True
            # open(), not exec(): no nested event loop from a timer (or a coroutine).
            box = QMessageBox(QMessageBox.Warning, "Offline cache replaced", s.cache_notice,
                              QMessageBox.Ok, self)
            box.setAttribute(Qt.WA_DeleteOnClose)
            box.open()

    # -- operator actions ---------------------------------------------------------

    def acknowledge(self, alert: Alert) -> None:
        ref = self.alert_model.wearer_ref(alert.wearer_id)
        dialog = AcknowledgeDialog(alert, ref, self.alert_model.clock())
        if dialog.exec():
            self._bridge.watch(self._act(Acknowledge(alert.id, dialog.text())))

    def transition(self, alerts: list[Alert], kind: ActionKind) -> None:
        """Claim, start work, close, shelve or unshelve the selected alert (alerts[0])
        and the rest of its incident, each as this console will see it once its
        queued actions arrive, asking once what the act needs. A member the rules
        do not offer the act on (someone else holds it) is left as it is."""
        now, me = self.alert_model.clock(), self._status().identity
        alert, *others = [a for a in alerts if not offered(a, me, now)[kind]] or alerts[:1]
        ref = self.alert_model.wearer_ref(alert.wearer_id)
        targets = [alert, *others]
        payloads: list[Payload] = []
        if kind is ActionKind.CLAIM:
            held = sorted({a.holder for a in targets if a.holder is not None})
            if not held or QMessageBox.question(
                    self, "Take over the alert",
                    f"{' and '.join(held)} hold{'s' if len(held) == 1 else ''} "
                    f"{'this alert' if not others else 'alerts of this incident'}. "
                    "Take over from them?\n\nThey and every other console will see that you took it.",
                    QMessageBox.Yes | QMessageBox.No, QMessageBox.No) == QMessageBox.Yes:
                payloads = [Claim(a.id, a.holder is not None) for a in targets]
        elif kind is ActionKind.START_WORK:
            payloads = [StartWork(a.id) for a in targets]
        elif kind is ActionKind.CLOSE:
            closing = CloseDialog(alert, ref, now, others)
            if closing.exec():
                payloads = [Close(a.id, closing.outcome(), closing.text()) for a in targets]
        elif kind is ActionKind.SHELVE:
            shelving = ShelveDialog(alert, ref, now, others)
            if shelving.exec():
                until = now + shelving.seconds()
                payloads = [Shelve(a.id, until, shelving.text()) for a in targets]
        elif kind is ActionKind.UNSHELVE:
            payloads = [Unshelve(a.id) for a in targets]
        if payloads:
            self._act_all(payloads)

    def close_cleared(self, alerts: list[Alert]) -> None:
        """Close battery alerts that cleared by themselves, with one outcome and note:
        each is claimed and closed through the outbox, so each one's history says so."""
        first, *others = alerts
        closing = CloseDialog(first, self.alert_model.wearer_ref(first.wearer_id),
                              self.alert_model.clock(), others)
        closing.setWindowTitle("Close cleared battery alerts")
        spent = ", ".join(o.label.lower() for o in Outcome if o in NOT_COUNTED)
        refs = sorted({self.alert_model.wearer_ref(a.wearer_id) for a in alerts})
        closing.summary.setText(closing.summary.text() + (
            f"<br><br>Wearers: {html.escape(', '.join(refs))}."
            "<br>Their flat time still counts towards the 12-hour battery policy, "
            f"unless they are closed as {spent}."))
        if closing.exec():
            self._act_all([p for a in alerts for p in (
                Claim(a.id), Close(a.id, closing.outcome(), closing.text()))])

    def _act_all(self, payloads: list[Payload]) -> None:
        """Queue the actions in this order: the engine's one writer makes each durable
        in turn, and the outbox sends them in the order they were queued."""
        for payload in payloads:
            self._bridge.watch(self._act(payload))

    def sign_out(self) -> None:
        answer = QMessageBox.question(
            self, "Sign out",
            "Sign out of EM Console?\n\nActions waiting to be sent: "
            f"{self._status().pending_actions}. Queued actions stay in this "
            "console's offline cache; each is sent once the operator who queued it is "
            "signed in here again.")
        if answer == QMessageBox.Yes:
            self.sign_out_requested.emit()
            self.close()

    def closeEvent(self, event) -> None:
        super().closeEvent(event)
        if event.isAccepted():
            self.closed.emit()

    def _action_failed(self, message: str) -> None:
        QMessageBox.critical(self, "Action not saved",
                             f"The action could not be saved and was not sent:\n{message}")

    def _my_problems(self) -> list:
        """The refused actions of the operator signed in: another operator's (a trail
        request names a wearer and why) are theirs to see when they sign in."""
        me = self._status().operator
        return [a for a in self.alert_model.problems.values() if a.operator == me]

    def show_problems(self) -> None:
        problems = self._my_problems()
        others = len(self.alert_model.problems) - len(problems)
        text = "\n\n".join(
            f"{self._about(a)}: your {a.what}, queued "
            f"{time.strftime('%H:%M', time.localtime(a.created_at))} by {a.operator}: {a.label}"
            for a in problems)
        if others:
            text += (f"\n\n{others} more queued on this console by other operators: they see "
                     "them when they sign in here.")
        QMessageBox.information(self, "Actions needing attention",
                                text.strip() or "Every action of yours was accepted by the backend.")

    def _about(self, action) -> str:
        """The alert an action is about, as the queue names it, where it still shows."""
        alert = next(iter(self.alert_model.alerts_where({action.alert_id})), None) \
            if action.alert_id else None
        if alert is None:
            wearer_id = getattr(action.payload, "wearer_id", None)
            return "An alert no longer open" if action.alert_id else (
                f"Wearer {self.alert_model.wearer_ref(wearer_id)}" if wearer_id else "A wearer")
        return f"{alert.type_label}, {self.alert_model.wearer_ref(alert.wearer_id)}"
