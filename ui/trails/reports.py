"""Reports on trails, as PDF (and CSV): a wearer's access report for an auditor or
a supervisor (every access with its purpose, reference and window, or a statement
that there was none in the period), and the evidence export of a trail (condensed
or full: each point's time, accuracy and source, the purpose and reference of the
access, and who exported it).

PDFs are drawn by Qt (a QPainter on a QPdfWriter): no other library, and
nothing leaves the workstation but the file the operator chose."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRect, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from console.domain.clock import DAY
from console.domain.trails import AccessLog, Trail, TrailRequest, compass, segments, steps, stops, totals
from ui.board.model import StatusBoardModel
from ui.bridge import when_done
from ui.common.dates import uk_edit
from ui.common.table import uk_datetime
from ui.trails.request import REFERENCE_LABELS

ACCESS_COLUMNS = ("When (UK time)", "Event", "Who", "Roles", "Purpose", "Reference",
                  "Window (UK time)", "Justification", "Detail", "Request")


def access_rows(log: AccessLog) -> list[tuple[str, ...]]:
    return [(uk_datetime(e.at), e.event.value, e.operator, ", ".join(e.roles), e.purpose.label,
             f"{REFERENCE_LABELS[e.reference_kind]} {e.reference}",
             f"{uk_datetime(e.start)} to {uk_datetime(e.end)}", e.justification, e.detail,
             e.request_id) for e in log.entries]


def none_statement(log: AccessLog, ref: str) -> str:
    return (f"The backend recorded no access to the trail of {ref} between "
            f"{uk_datetime(log.since)} and {uk_datetime(log.until)} (UK time).")


def write_csv(path: Path, columns: Sequence[str], rows: list[tuple[str, ...]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(columns)
        out.writerows(rows)


def write_pdf(path: Path, title: str, preamble: Sequence[str], columns: Sequence[str],
              rows: list[tuple[str, ...]], image: QImage | None = None) -> None:
    """A landscape A4 PDF: the title, the preamble's lines, the image if any (the map
    as shown) and the table, its header on every page, pages numbered. Drawn
    with a QPainter row by row: a month's points as a rich-text table took the
    GUI thread most of a minute."""
    writer = QPdfWriter(str(path))
    writer.setTitle(title)
    writer.setCreator("EM Console")
    writer.setResolution(PDF_DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Landscape,
                                     QMarginsF(12, 12, 12, 12), QPageLayout.Millimeter))
    page = writer.pageLayout().paintRectPixels(PDF_DPI)
    painter = QPainter(writer)
    try:
        _Pages(painter, page, title, columns, rows).draw(preamble, image)
    finally:
        painter.end()


PDF_DPI = 96  # point sizes then read as on screen


class _Pages:
    """Lays out one report on as many pages as it takes."""

    def __init__(self, painter: QPainter, page: QRect, title: str, columns: Sequence[str],
                 rows: list[tuple[str, ...]]):
        self.p, self.page, self.title, self.columns, self.rows = painter, page, title, columns, rows
        self.number = 1
        self.body = QFont("DejaVu Sans", 8)
        self.bold = QFont("DejaVu Sans", 8, QFont.Bold)
        self.line = QFontMetrics(self.body).height() + 4
        self.widths = self._widths()
        self.y = 0

    def _widths(self) -> list[int]:
        """Each column as wide as its widest cell (of the first 500 rows), scaled to the page."""
        body, bold = QFontMetrics(self.body), QFontMetrics(self.bold)
        want = [max(bold.horizontalAdvance(heading),
                    *(body.horizontalAdvance(str(row[k])) for row in self.rows[:500])) + 10
                for k, heading in enumerate(self.columns)]
        scale = min(1.0, self.page.width() / sum(want))
        return [int(w * scale) for w in want]

    def draw(self, preamble: Sequence[str], image: QImage | None) -> None:
        p, width = self.p, self.page.width()
        p.setFont(QFont("DejaVu Sans", 14, QFont.Bold))
        p.drawText(QRect(0, 0, width, 30), Qt.AlignLeft | Qt.AlignVCenter, self.title)
        self.y = 36
        p.setFont(QFont("DejaVu Sans", 9))
        for text in preamble:
            box = p.boundingRect(QRect(0, self.y, width, 1000), Qt.TextWordWrap, text)
            p.drawText(box, Qt.TextWordWrap, text)
            self.y = box.bottom() + 4
        if image is not None and not image.isNull():
            room = min(self.page.height() * 0.55, self.page.height() - self.y - 6 * self.line)
            scaled = image.scaled(width, int(room), Qt.KeepAspectRatio, Qt.SmoothTransformation)
            p.drawImage(0, self.y + 6, scaled)
            self.y += scaled.height() + 12
        self._header()
        for row in self.rows:
            if self.y + self.line > self.page.height() - self.line:
                self._new_page()
            self._row(row, self.body)
        self._footer()

    def _row(self, cells: Sequence[str], font: QFont) -> None:
        self.p.setFont(font)
        x = 0
        for text, w in zip(cells, self.widths, strict=False):
            self.p.drawText(QRect(x + 3, self.y, w - 6, self.line), Qt.AlignLeft | Qt.AlignVCenter,
                            QFontMetrics(font).elidedText(str(text), Qt.ElideRight, w - 6))
            x += w
        self.y += self.line
        self.p.setPen(QColor("#bbbbbb"))
        self.p.drawLine(0, self.y, sum(self.widths), self.y)
        self.p.setPen(QColor("black"))

    def _header(self) -> None:
        self.p.fillRect(QRect(0, self.y, sum(self.widths), self.line), QColor("#dddddd"))
        self._row(self.columns, self.bold)

    def _new_page(self) -> None:
        self._footer()
        self.p.device().newPage()
        self.number += 1
        self.y = 0
        self._header()

    def _footer(self) -> None:
        self.p.setFont(self.body)
        self.p.drawText(QRect(0, self.page.height() - self.line, self.page.width(), self.line),
                        Qt.AlignRight | Qt.AlignVCenter, f"{self.title} · page {self.number}")


EVIDENCE_COLUMNS = ("No.", "Time (UK)", "Latitude", "Longitude", "Accuracy (m)", "Located by",
                    "Speed (km/h)", "Direction", "Note")
CONDENSED_EVERY = 5 * 60  # a condensed report lists a moving wearer's point about this often


def _point_row(trail: Trail, i: int, speed: tuple, bearing: tuple, note: str = "") -> tuple:
    v = speed[i]
    return (str(i + 1), uk_datetime(trail.t[i]), f"{trail.lat[i]:.6f}", f"{trail.lon[i]:.6f}",
            f"{trail.accuracy[i]:.0f}", trail.source[i].label, "" if v != v else f"{v * 3.6:.1f}",
            compass(bearing[i]), note)


def evidence_rows(trail: Trail, condensed: bool) -> list[tuple[str, ...]]:
    """Every point (full), or (condensed) each stop as one row, the first and last
    point of each run between gaps, and a moving wearer's point every few minutes.
    Point numbers are the trail's, so a condensed and a full report agree."""
    _, speed, bearing = steps(trail.t, trail.lat, trail.lon)
    if not condensed:
        return [_point_row(trail, i, speed, bearing) for i in range(len(trail))]
    found = stops(trail.t, trail.lat, trail.lon, trail.accuracy)
    in_stop = {i: s for s in found for i in range(s.first, s.last + 1)}
    runs = segments(trail.t)
    notes = {first: f"signal back after {(trail.t[first] - trail.t[first - 1]) / 60:.0f} min"
             for first, _ in runs[1:]}
    notes |= {end - 1: "signal lost" for _, end in runs[:-1]}
    rows, last = [], -math.inf
    for i in range(len(trail)):
        stop = in_stop.get(i)
        if stop is not None:
            if i == stop.first:
                rows.append(_point_row(trail, i, speed, bearing, (
                    f"stopped {stop.dwell / 60:.0f} min until {uk_datetime(stop.left)} "
                    f"(points {stop.first + 1}-{stop.last + 1})")))
                last = stop.left
        elif i in notes or i in (0, len(trail) - 1) or trail.t[i] - last >= CONDENSED_EVERY:
            rows.append(_point_row(trail, i, speed, bearing, notes.get(i, "")))
            last = trail.t[i]
    return rows


def export_evidence(path: Path, trail: Trail, request: TrailRequest, ref: str, who: str,
                    now: float, condensed: bool, image: QImage | None) -> None:
    """The trail as evidence: the access it was seen under, who exported it and when,
    its totals, the map as shown, and its points."""
    t = totals(trail.t, trail.lat, trail.lon, stops(trail.t, trail.lat, trail.lon, trail.accuracy))
    granted = (f"approved by {request.decided_by}" if request.decided_by
               else "granted at once, within an operator's limit")
    preamble = [
        f"Purpose: {request.purpose.label} · {REFERENCE_LABELS[request.reference_kind]} "
        f"{request.reference} · request {request.id}, {granted}",
        f"Justification: {request.justification}",
        f"Window: {uk_datetime(trail.start)} to {uk_datetime(trail.end)} (UK time)",
        f"Exported by {who} at {uk_datetime(now)} (UK time) · "
        f"{'condensed' if condensed else 'full'} report",
        f"{t.points:,} points · {t.distance_m / 1000:.1f} km · moving {t.moving_s / 3600:.1f} h · "
        f"{t.stops} stops ({t.stopped_s / 3600:.1f} h) · {t.gaps} gaps in the signal"
        + (f" · {trail.skipped} unusable points left out" if trail.skipped else ""),
        "Accuracy is the radius in metres within which the device placed itself; points "
        "located by a cell tower are coarse. Times are UK local time."]
    write_pdf(path, f"Trail evidence — {ref}", preamble, EVIDENCE_COLUMNS,
              evidence_rows(trail, condensed), image)


class AccessReportDialog(QDialog):
    """Every access to one wearer's trail in a period, from the backend's log."""

    def __init__(self, service, board: StatusBoardModel, clock: Callable[[], float],
                 who: Callable[[], str], wearer_ref: str = ""):
        super().__init__()
        self.setWindowTitle("Trail access report")
        self.setAccessibleName("Trail access report")
        self._service, self._board, self._who = service, board, who
        self.log: AccessLog | None = None
        self.ref = ""
        self.wearer = QLineEdit()
        self.wearer.setAccessibleName("Wearer reference")
        self.wearer.setPlaceholderText("e.g. EM-100000")
        self.wearer.setText(wearer_ref)  # the wearer in view, if any
        self.since = uk_edit(clock() - 30 * DAY, "Period from (UK time)")
        self.until = uk_edit(clock(), "Period until (UK time)")
        self.show_button = QPushButton("&Show")
        self.show_button.setAccessibleName("Show the accesses in the period")
        self.show_button.clicked.connect(self.ask)
        self.wearer.returnPressed.connect(self.ask)
        self.status = QLabel(textFormat=Qt.PlainText)
        self.status.setAccessibleName("Report status")
        self.status.setWordWrap(True)
        self.table = QTreeWidget()
        self.table.setAccessibleName("Accesses to the wearer's trail")
        self.table.setHeaderLabels(list(ACCESS_COLUMNS))
        self.table.setRootIsDecorated(False)
        self.csv_button = QPushButton("Export &CSV…", enabled=False)
        self.csv_button.clicked.connect(lambda: self._export("csv"))
        self.pdf_button = QPushButton("Export &PDF…", enabled=False)
        self.pdf_button.clicked.connect(lambda: self._export("pdf"))
        form = QFormLayout()
        form.addRow("&Wearer", self.wearer)
        form.addRow("&From (UK time)", self.since)
        form.addRow("&Until (UK time)", self.until)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_button)
        buttons.addStretch(1)
        buttons.addWidget(self.csv_button)
        buttons.addWidget(self.pdf_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        self.resize(1100, 500)

    def _clear(self) -> None:
        """Nothing of an earlier answer stays to be exported as this one's."""
        self.log = None
        self.table.clear()
        self.csv_button.setEnabled(False)
        self.pdf_button.setEnabled(False)

    def ask(self) -> None:
        self._clear()
        row = self._board.find(self.wearer.text())
        if row is None:
            self.status.setText(f"No wearer {self.wearer.text().strip()!r} on the board.")
            return
        # The editors show minutes: the period runs from the start of the first
        # minute shown to the end of the last, whatever seconds they hold.
        since = float(self.since.dateTime().toSecsSinceEpoch() // 60 * 60)
        until = float(self.until.dateTime().toSecsSinceEpoch() // 60 * 60 + 59)
        if until <= since:
            self.status.setText("The period ends before it starts.")
            return
        self.status.setText("◷ Asking the backend…")
        ref = row.wearer.ref
        when_done(self._service.trail_access(row.wearer.id, since, until),
                  lambda fut: self._came(ref, fut))

    def _came(self, ref: str, fut: Future) -> None:
        if fut.exception() is not None:
            e = fut.exception()
            self.status.setText(f"⚠ The access log could not be had ({type(e).__name__}: {str(e)[:200]}).")
            return
        self.log, self.ref = fut.result(), ref
        self.table.clear()
        rows = access_rows(self.log)
        for row in rows:
            self.table.addTopLevelItem(QTreeWidgetItem(list(row)))
        for column in range(len(ACCESS_COLUMNS) - 1):  # the request id may be cut short
            self.table.resizeColumnToContents(column)
        self.status.setText(f"{len(rows)} access event(s) to the trail of {ref}." if rows
                            else none_statement(self.log, ref))
        self.csv_button.setEnabled(True)
        self.pdf_button.setEnabled(True)

    def _export(self, kind: str) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export the access report",
                                              f"trail-access-{self.ref}.{kind}", f"*.{kind}")
        if name:
            self.export(Path(name), kind)

    def export(self, path: Path, kind: str) -> None:
        rows = access_rows(self.log)
        if kind == "csv":
            write_csv(path, ACCESS_COLUMNS, rows or [(none_statement(self.log, self.ref),)])
        else:
            preamble = [f"Wearer {self.ref} · period {uk_datetime(self.log.since)} to "
                        f"{uk_datetime(self.log.until)} (UK time) · exported by {self._who()}"]
            if not rows:
                preamble.append(none_statement(self.log, self.ref))
            write_pdf(path, f"Trail access report — {self.ref}", preamble, ACCESS_COLUMNS, rows)
        self.status.setText(f"Exported to {path}.")
