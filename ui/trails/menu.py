"""The window's Trails menu: a supervisor's approvals (with a count of those
waiting, in the status bar) and the access report, each offered as the signed-in
person's roles allow."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow

from console.domain.access import Identity, Permission
from console.domain.actions import Payload
from console.domain.trails import RequestState
from ui.board.model import StatusBoardModel
from ui.bridge import when_done
from ui.trails.approvals import ApprovalsDialog, awaiting
from ui.trails.reports import AccessReportDialog

COUNT_MS = 30_000  # how often a supervisor's console asks how many requests wait


class TrailsMenu(QObject):
    def __init__(self, window: QMainWindow, service, act: Callable[[Payload], None],
                 me: Callable[[], Identity | None], board: StatusBoardModel,
                 wearer_ref: Callable[[str], str], clock: Callable[[], float],
                 wearer_in_view: Callable[[], str | None]):
        super().__init__(window)
        self._window, self._service, self._act, self._me = window, service, act, me
        self._board, self._ref, self._clock = board, wearer_ref, clock
        self._in_view = wearer_in_view
        bar = window.menuBar()
        self.menu = bar.addMenu("&Trails")
        bar.insertMenu(bar.actions()[-2], self.menu)  # before Help, which stays last
        self.approvals = QAction("Requests awaiting &approval…", window)
        self.approvals.triggered.connect(self.show_approvals)
        self.report = QAction("Trail &access report…", window)
        self.report.triggered.connect(self.show_report)
        self.menu.addAction(self.approvals)
        self.menu.addAction(self.report)
        self.waiting = QLabel(textFormat=Qt.PlainText)
        self.waiting.setAccessibleName("Trail requests awaiting approval")
        window.statusBar().addPermanentWidget(self.waiting)
        self._count = QTimer(self, interval=COUNT_MS)
        self._count.timeout.connect(self.recount)
        self._count.start()
        self._me_before: Identity | None = None
        self.refresh()

    def refresh(self) -> None:
        """Offer what the signed-in person's roles allow."""
        me = self._me()
        for action, permission in ((self.approvals, Permission.APPROVE_TRAIL),
                                   (self.report, Permission.SEE_AUDIT)):
            why = "Not signed in" if me is None else me.why_not(permission)
            action.setEnabled(not why)
            action.setToolTip(why)
        if me != self._me_before:  # signed in (or as someone else): count at once
            self._me_before = me
            self.recount()

    def recount(self) -> None:
        me = self._me()
        if me is None or not me.may(Permission.APPROVE_TRAIL):
            self.waiting.clear()
            return
        when_done(self._service.trail_requests(RequestState.PENDING, None), self._counted)

    def _counted(self, fut: Future) -> None:
        if fut.exception() is not None:
            return  # the connection line says why the backend cannot be asked
        n = len(awaiting(fut.result(), self._me()))
        self.waiting.setText(f"⚑ {n} trail request{'s await' if n != 1 else ' awaits'} approval "
                             "(Trails menu)" if n else "")

    def show_approvals(self) -> None:
        self._open(ApprovalsDialog(self._service, self._act, self._me, self._ref))

    def show_report(self) -> None:
        me = self._me()
        shown = self._in_view()
        self._open(AccessReportDialog(self._service, self._board, self._clock,
                                      lambda: me.name if me else "unknown",
                                      self._ref(shown) if shown else ""))

    def _open(self, dialog) -> None:
        dialog.setParent(self._window, dialog.windowFlags())
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        if hasattr(dialog, "decided"):
            dialog.decided.connect(self.recount)
