"""The wearer view's Trail tab: the operator's trail requests for the wearer, and
the trail of a granted one on a map, with the purpose and reference in a banner for
as long as it is open.

Asking goes through the outbox like every action (console/domain/actions.py,
RequestTrail); the tab then follows the request on the backend until it is
granted (a window over 7 days waits for a supervisor) and opens it. Fetching is
the engine's (SyncEngine.trail): the backend refuses without a grant, and the
console keeps a trail a day at most. The map is made when first needed: a
QtWebEngine page costs a renderer process."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.changes import Changes
from console.domain import Alert, DeviceKind, WearerRecord
from console.domain.access import Identity, Permission
from console.domain.actions import ActionKind, ActionState, Payload
from console.domain.trails import RequestState, Trail, TrailRequest
from ui.board.model import StatusBoardModel
from ui.bridge import when_done
from ui.common.table import uk_datetime
from ui.trails.replay import ReplayBar
from ui.trails.reports import export_evidence
from ui.trails.request import REFERENCE_LABELS, TrailRequestDialog, selected_request

log = logging.getLogger(__name__)
# Evidence reports are written here, one at a time, off the GUI thread.
_writer = ThreadPoolExecutor(1, thread_name_prefix="evidence")

FOLLOW_MS = 10_000  # how often a request awaiting a decision is asked after
REPORTS = {"Condensed: stops, gaps and a point every 5 minutes": True, "Full: every point": False}
STATE_TEXT = {RequestState.PENDING: "⚑ waits for a supervisor", RequestState.GRANTED: "✓ granted",
              RequestState.REFUSED: "✗ refused", RequestState.EXPIRED: "⊘ expired"}


def window_text(r: TrailRequest) -> str:
    return f"{uk_datetime(r.start)} to {uk_datetime(r.end)}"


class TrailTab(QWidget):
    room_wanted = Signal(bool)  # a trail opened (the map wants room) or closed

    def __init__(self, board: StatusBoardModel, service, act: Callable[[Payload], None],
                 clock: Callable[[], float], me: Callable[[], Identity | None],
                 alert_in_hand: Callable[[], Alert | None], tiles: Path | None = None):
        """service: the engine's trail operations (trail_requests, trail); act: queue
        an action through the outbox; alert_in_hand: the alert selected in the queue,
        whose id a new request refers to; tiles: the offline basemap."""
        super().__init__()
        self._board, self._service, self._act, self._clock, self._me = board, service, act, clock, me
        self._alert_in_hand = alert_in_hand
        self._tiles = tiles
        self.wearer_id: str | None = None
        self.requests: list[TrailRequest] = []
        self.shown: TrailRequest | None = None  # the request whose trail is open
        self.trail: Trail | None = None
        self._opening: str | None = None  # a request asked for here: opened once granted
        self.map = None  # maps.trail_map.TrailMap, made at the first trail
        self.status = QLabel(textFormat=Qt.PlainText)  # it quotes the backend's reasons
        self.status.setAccessibleName("Trail status")
        self.status.setWordWrap(True)
        self.ask = QPushButton("Ask for a trail…")
        self.ask.setAccessibleName("Ask to see the wearer's trail for a purpose")
        self.ask.clicked.connect(self._ask)
        self.open_button = QPushButton("Open")
        self.open_button.setAccessibleName("Open the selected granted request's trail")
        self.open_button.clicked.connect(self._open_selected)
        self.close_button = QPushButton("Close")
        self.close_button.setAccessibleName("Close the trail")
        self.close_button.clicked.connect(self.close_trail)
        self.export_button = QPushButton("Evidence PDF…")
        self.export_button.setAccessibleName("Export the trail shown as a PDF report")
        self.export_button.clicked.connect(self._export)
        self.larger = QPushButton("Larger map")
        self.larger.setAccessibleName("Show the map in a window of its own")
        self.larger.clicked.connect(self.pop_out)
        self.window_of_map: QWidget | None = None  # the map's own window, while it has one
        self.list = QTreeWidget()
        self.list.setAccessibleName("Your trail requests for this wearer")
        self.list.setHeaderLabels(["State", "Purpose", "Reference", "Window (UK time)"])
        self.list.setRootIsDecorated(False)
        self.list.itemActivated.connect(lambda *_: self._open_selected())
        self.list.itemSelectionChanged.connect(self._enable)
        self.banner = QLabel()
        self.banner.setAccessibleName("Purpose of the trail shown")
        self.banner.setObjectName("trailBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.replay = ReplayBar()
        self.totals = QLabel(textFormat=Qt.PlainText)
        self.totals.setAccessibleName("Trail totals")
        self.totals.setWordWrap(True)
        self.map_area = QWidget()
        self.map_layout = QVBoxLayout(self.map_area)
        self.map_layout.setContentsMargins(0, 0, 0, 0)
        self.map_layout.addWidget(self.banner)
        self.map_layout.addWidget(self.replay)
        self.map_layout.addWidget(self.totals)
        buttons = QHBoxLayout()
        for button in (self.ask, self.open_button, self.close_button, self.export_button,
                       self.larger):
            buttons.addWidget(button)
        buttons.addStretch(1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.status)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.list)
        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(top)
        self.split.addWidget(self.map_area)
        self.split.setSizes([160, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.split)
        self._follow = QTimer(self, interval=FOLLOW_MS)
        self._follow.timeout.connect(self._reload)
        self._enable()

    # -- the wearer ---------------------------------------------------------------

    def show_wearer(self, wearer_id: str | None, record: WearerRecord | None) -> None:
        if wearer_id == self.wearer_id:
            return
        # Another wearer: nothing of this one's trail stays on screen.
        self.close_trail()
        self.wearer_id, self.requests, self._opening = wearer_id, [], None
        self._fill()
        why = self._why_not()
        self.status.setText(why)
        if not why:
            self._reload()

    def _why_not(self) -> str:
        """Why this wearer's trail cannot be asked for here, or ""."""
        if self.wearer_id is None:
            return ""
        me = self._me()
        if me is None or not me.may(Permission.SEE_TRAIL):
            return "Not signed in" if me is None else me.why_not(Permission.SEE_TRAIL)
        row = self._board.row_of(self.wearer_id)
        if row is None:
            return "The wearer is not on the board."
        if row.device.kind is not DeviceKind.GPS:
            return f"This wearer's device ({row.device.kind.label}) records no locations."
        return ""

    def apply(self, changes: Changes) -> None:
        """A request of this console's reached the backend, or was refused."""
        mine = [a for a in changes.actions.values()
                if a.kind is ActionKind.REQUEST_TRAIL and a.payload.wearer_id == self.wearer_id]
        for action in mine:
            if action.state is ActionState.DELIVERED:
                self._reload()
            elif action.state.refused and action.payload.request_id == self._opening:
                self._opening = None
                self.status.setText(f"⚠ The backend refused the request: {action.detail}")
            elif action.state is ActionState.PENDING and action.payload.request_id == self._opening:
                self.status.setText("◷ The request is queued: it is sent when the backend can be "
                                    "reached, and the trail opens once it is granted.")

    # -- asking ---------------------------------------------------------------------

    def _ask(self) -> None:
        row = self._board.row_of(self.wearer_id) if self.wearer_id else None
        if row is None or self._why_not():
            return
        dialog = TrailRequestDialog(row.wearer, self._alert_in_hand(), self._clock())
        if dialog.exec():
            payload = dialog.payload()
            self._opening = payload.request_id
            self.status.setText("◷ Asking the backend…")
            self._act(payload)

    def _reload(self) -> None:
        if self.wearer_id is None or self._why_not():
            return
        wearer_id = self.wearer_id
        when_done(self._service.trail_requests(None, wearer_id),
                  lambda fut: self._requests_came(wearer_id, fut))

    def _requests_came(self, wearer_id: str, fut: Future) -> None:
        if wearer_id != self.wearer_id:
            return
        if fut.exception() is not None:
            e = fut.exception()
            self.status.setText(f"⚠ Your trail requests could not be had ({type(e).__name__}: "
                                f"{str(e)[:160]}).")
            return
        self.requests = sorted(fut.result(), key=lambda r: r.requested_at, reverse=True)
        self._fill()
        waiting = [r for r in self.requests if r.state is RequestState.PENDING]
        opening = next((r for r in self.requests if r.id == self._opening), None)
        if opening is not None and opening.state is RequestState.GRANTED:
            self._opening = None
            self.open(opening)
        elif opening is not None and opening.state is RequestState.REFUSED:
            self._opening = None
            self.status.setText(f"✗ A supervisor refused the request: {opening.decision_note}")
        elif waiting:
            self.status.setText(f"⚑ {len(waiting)} request(s) wait for a supervisor's approval; "
                                "this tab looks again every few seconds.")
        elif self.shown is None:
            self.status.setText("A trail is seen only for a recorded purpose. Open a granted "
                                "request, or ask for one." if self.requests else
                                "No trail requests of yours for this wearer.")
        # Followed while a request waits, or one asked here has not yet arrived.
        if waiting or self._opening:
            self._follow.start()
        else:
            self._follow.stop()

    def _fill(self) -> None:
        self.list.clear()
        for r in self.requests:
            state = STATE_TEXT[r.state]
            if r.state is RequestState.GRANTED and r.expires_at:
                state += f" until {uk_datetime(r.expires_at)}"
            elif r.state is RequestState.REFUSED and r.decision_note:
                state += f": {r.decision_note}"
            item = QTreeWidgetItem([state, r.purpose.label, f"{REFERENCE_LABELS[r.reference_kind]} "
                                    f"{r.reference}", window_text(r)])
            item.setData(0, Qt.UserRole, r.id)
            item.setToolTip(1, r.justification)
            self.list.addTopLevelItem(item)
        for column in range(3):
            self.list.resizeColumnToContents(column)
        self._enable()

    def _selected(self) -> TrailRequest | None:
        return selected_request(self.list, self.requests)

    def _enable(self) -> None:
        allowed = self.wearer_id is not None and not self._why_not()
        self.ask.setEnabled(allowed)
        self.ask.setToolTip(self._why_not())
        chosen = self._selected()
        self.open_button.setEnabled(allowed and chosen is not None
                                    and chosen.state is RequestState.GRANTED)
        self.close_button.setEnabled(self.shown is not None)
        self.export_button.setEnabled(self.shown is not None and self.trail is not None
                                      and len(self.trail) > 0)
        self.larger.setEnabled(self.shown is not None and self.window_of_map is None)

    def _open_selected(self) -> None:
        chosen = self._selected()
        if chosen is not None and chosen.state is RequestState.GRANTED:
            self.open(chosen)

    # -- the trail --------------------------------------------------------------------

    def open(self, request: TrailRequest) -> None:
        self.status.setText("◷ Fetching the trail…")
        when_done(self._service.trail(request), lambda fut: self._trail_came(request, fut))

    def _trail_came(self, request: TrailRequest, fut: Future) -> None:
        if request.wearer_id != self.wearer_id:
            return  # the operator moved on to another wearer meanwhile
        if fut.exception() is not None:
            e = fut.exception()
            self.status.setText(f"⚠ The trail could not be had ({type(e).__name__}: {str(e)[:200]}).")
            return
        self.show_trail(request, fut.result())

    def show_trail(self, request: TrailRequest, trail: Trail) -> None:
        self.shown, self.trail = request, trail
        self.banner.setText(
            f"<b>Viewing for:</b> {html.escape(request.purpose.label)} · "
            f"<b>{REFERENCE_LABELS[request.reference_kind]}</b> {html.escape(request.reference)} · "
            f"<b>Window</b> {window_text(request)} (UK time) · this view is audited")
        self.banner.show()
        skipped = f" · {trail.skipped} unusable point(s) skipped" if trail.skipped else ""
        self.status.setText(f"Trail of {len(trail):,} points{skipped}.")
        self.replay.show_window(trail.start, trail.end, trail.curfew)
        self._map().show_trail(trail)
        self.split.setSizes([60, 600])
        self._enable()
        self.room_wanted.emit(True)

    def pop_out(self) -> None:
        """The map, its banner and replay in a window of their own, as large as the
        screen allows; closing that window puts them back in the tab."""
        if self.window_of_map is not None:
            return
        window = MapWindow(self)
        window.setWindowTitle(f"Trail of {self._ref()} — EM Console")
        window.layout().addWidget(self.map_area)
        window.closed.connect(self._pop_in)
        self.window_of_map = window
        window.resize(1400, 900)
        window.show()
        if self.map is not None:  # fitted again to the larger map, once it is laid out
            QTimer.singleShot(300, self.map.zoom_to_trail)
        self._enable()

    def _pop_in(self) -> None:
        self.split.addWidget(self.map_area)
        self.window_of_map = None
        self._enable()

    def _ref(self) -> str:
        row = self._board.row_of(self.wearer_id) if self.wearer_id else None
        return row.wearer.ref if row else (self.wearer_id or "")

    def close_trail(self) -> None:
        if self.window_of_map is not None:
            self.window_of_map.close()
        if self.shown is not None:
            self.room_wanted.emit(False)
        self.shown, self.trail = None, None
        self.banner.hide()
        self.replay.setEnabled(False)
        self.totals.clear()
        if self.map is not None:
            self.map.clear()
        self._enable()

    def _painted(self, vertices: int, zoom: int) -> None:
        t = self.map.totals
        if self.trail is None:
            return
        if t is None:  # the first frame is drawn; the totals follow it (TrailMap.refined)
            self.totals.setText(f"Drawn: {vertices:,} vertices at zoom {zoom} · {self.map.basemap}")
            return
        self.totals.setText(
            f"{t.points:,} points · {t.distance_m / 1000:.1f} km · moving {t.moving_s / 3600:.1f} h · "
            f"{t.stops} stops ({t.stopped_s / 3600:.1f} h) · {t.gaps} gaps in the signal · "
            f"{self.map.basemap} · drawn: {vertices:,} vertices at zoom {zoom}")

    def _export(self) -> None:
        request, trail = self.shown, self.trail
        if request is None or trail is None:
            return
        report, ok = QInputDialog.getItem(self, "Export evidence", "Report:", list(REPORTS), 0, False)
        if not ok:
            return
        name, _ = QFileDialog.getSaveFileName(self, "Export evidence",
                                              f"trail-{self._ref()}-{request.id[:8]}.pdf", "PDF (*.pdf)")
        if name:
            self.export(Path(name), REPORTS[report])

    def export(self, path: Path, condensed: bool) -> Future:
        """Write the evidence report of the trail shown, off the GUI thread (a month's
        full report is a thousand pages), and audit it here; the future is done once
        both are."""
        me, request = self._me(), self.shown
        image = self.map.grab().toImage() if self.map else None  # on the GUI thread
        self.status.setText(f"◷ Writing the evidence report to {path}…")
        written = _writer.submit(export_evidence, path, self.trail, request, self._ref(),
                                 me.name if me else "unknown", self._clock(), condensed, image)
        done: Future = Future()

        def audited(fut: Future) -> None:
            self.status.setText(
                f"Evidence exported to {path}; the export is in this console's audit trail."
                if fut.exception() is None else
                f"⚠ Evidence exported to {path}, but the export could not be audited here: "
                f"{fut.exception()}")
            done.set_result(None)

        def written_out(fut: Future) -> None:
            if fut.exception() is not None:
                self.status.setText(f"⚠ The evidence report could not be written: {fut.exception()}")
                done.set_exception(fut.exception())
                return
            when_done(self._service.trail_exported(request, "condensed" if condensed else "full"),
                      audited)

        when_done(written, written_out)
        return done

    def _map(self):
        if self.map is None:
            from maps.trail_map import TrailMap  # a QtWebEngine page: made when first needed

            self.map = TrailMap(self._tiles)
            self.map_layout.insertWidget(1, self.map, 1)
            self.replay.seek.connect(self.map.seek)
            self.replay.play.connect(self.map.play)
            self.replay.pause.connect(self.map.pause)
            self.replay.follow.connect(self.map.set_follow)
            self.replay.numbers.connect(self.map.set_numbers)
            self.map.replay_moved.connect(self.replay.moved)
            self.map.failed.connect(lambda why: self.status.setText(f"⚠ The map failed: {why}"))
            self.map.painted.connect(self._painted)
            # The page starts with neither: it follows the boxes as they stand.
            self.map.set_follow(self.replay.follow_box.isChecked())
            self.map.set_numbers(self.replay.numbers_box.isChecked())
            self.map.refined.connect(lambda: self._painted(self.map.drawn["vertices"],
                                                           round(self.map.drawn["zoom"] or 0)))
        return self.map


class MapWindow(QWidget):
    """The trail map's own window (Larger map); it stays on top of the console's."""

    closed = Signal()

    def __init__(self, parent: QWidget):
        super().__init__(parent, Qt.Window)
        self.setAccessibleName("Trail map window")
        QVBoxLayout(self)
        for keys in (QKeySequence(Qt.Key_Escape), QKeySequence.Close):
            QShortcut(keys, self, self.close)

    def closeEvent(self, event) -> None:
        super().closeEvent(event)
        self.closed.emit()
