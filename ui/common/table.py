"""What every table of the console shares: a model that sorts and filters itself
and repaints in ranges, the view that shows it, and the colours of severity.

A model caches its rows, sorts and filters itself (QSortFilterProxyModel does not
scale to a national fleet) and turns a change batch into one dataChanged per
contiguous range, or one layout change when the order moved.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QHeaderView, QTableView, QVBoxLayout, QWidget

from console.domain import LOCAL_TZ

Clock = Callable[[], float]
MAX_RANGES = 32  # beyond this many separate ranges, one spanning range is cheaper
REORDER_MS = 1000

# Colour only repeats what a cell's words and symbols say (never colour alone).
WARN = QBrush(QColor("#fde2e1"))
CAUTION = QBrush(QColor("#fff4ce"))


def uk_datetime(ts: float) -> str:
    """A moment in full, unambiguous across days and clock changes."""
    return f"{datetime.fromtimestamp(ts, LOCAL_TZ):%a %d %b %Y %H:%M %Z}"


def ranges(positions: list[int]) -> list[tuple[int, int]]:
    """Sorted positions -> inclusive (first, last) runs."""
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and p == out[-1][1] + 1:
            out[-1] = (out[-1][0], p)
        elif not out or p != out[-1][1]:
            out.append((p, p))
    return out


TEXT_ROLES = frozenset({int(Qt.DisplayRole), int(Qt.AccessibleTextRole)})
ROLES = TEXT_ROLES | {int(Qt.BackgroundRole), int(Qt.TextAlignmentRole), int(Qt.ToolTipRole)}
RIGHT = int(Qt.AlignRight | Qt.AlignVCenter)


class SelfSortingModel(QAbstractTableModel):
    """Rows live in `_rows`; `_order` lists the visible ones in display order.

    A view asks data() for every role of every visible cell on each repaint, so a
    row is rendered once (texts and backgrounds) and kept until it or the clock
    changes; roles the console does not use are answered before any work."""

    HEADERS: tuple[str, ...] = ()
    RIGHT_ALIGNED: frozenset[int] = frozenset()

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock
        self._rows: list = []
        self._order: list[int] = []
        self._pos: dict[int, int] = {}  # row index -> display position
        self._rendered: dict[int, tuple[tuple, tuple]] = {}  # row index -> (texts, backgrounds)
        self._reorder_timer = QTimer(self, singleShot=True, interval=REORDER_MS)
        self._reorder_timer.timeout.connect(self._reorder)

    def _render(self, row, now: float) -> tuple[tuple[str, ...], tuple]:
        raise NotImplementedError

    def _tooltip(self, row, col: int) -> str | None:
        return None

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if role not in ROLES or not index.isValid():
            return None
        col = index.column()
        if role == Qt.TextAlignmentRole:
            return RIGHT if col in self.RIGHT_ALIGNED else None
        r = self._order[index.row()]
        if role == Qt.ToolTipRole:
            return self._tooltip(self._rows[r], col)
        cell = self._rendered.get(r)
        if cell is None:
            cell = self._rendered[r] = self._render(self._rows[r], self.clock())
        return cell[0][col] if role in TEXT_ROLES else cell[1][col]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role in (Qt.DisplayRole, Qt.AccessibleTextRole):
            return self.HEADERS[section]
        return None

    def row_at(self, position: int):
        return self._rows[self._order[position]]

    def _compute_order(self) -> list[int]:
        raise NotImplementedError

    def _reorder(self) -> None:
        """Recompute the visible order; tell the views with one layout change."""
        new = self._compute_order()
        if new != self._order:
            self._relayout(new)

    def _relayout(self, new_order: list[int], carry: Callable[[int], int | None] | None = None):
        """Switch to new_order, keeping selections on the same rows. `carry` maps an
        old row index to its new one when the rows themselves were rebuilt."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        held = [self._order[i.row()] if 0 <= i.row() < len(self._order) else None
                for i in persistent]
        self._order = new_order
        self._pos = {r: p for p, r in enumerate(new_order)}
        targets = []
        for idx, row in zip(persistent, held, strict=True):
            if row is not None and carry is not None:
                row = carry(row)
            pos = self._pos.get(row)
            targets.append(self.index(pos, idx.column()) if pos is not None else QModelIndex())
        self.changePersistentIndexList(persistent, targets)
        self.layoutChanged.emit()

    def _reset(self, rows: list) -> None:
        self.beginResetModel()
        self._rendered.clear()
        self._rows = rows
        self._order = self._compute_order()
        self._pos = {r: p for p, r in enumerate(self._order)}
        self.endResetModel()

    def _rows_changed(self, rows: set[int]) -> None:
        for r in rows:
            self._rendered.pop(r, None)
        positions = sorted(self._pos[r] for r in rows if r in self._pos)
        if not positions:
            return
        runs = ranges(positions)
        if len(runs) > MAX_RANGES:
            runs = [(positions[0], positions[-1])]
        last_col = self.columnCount() - 1
        for first, last in runs:
            self.dataChanged.emit(self.index(first, 0), self.index(last, last_col))

    def _order_depends_on_time(self) -> bool:
        return True

    def _reorder_soon(self) -> None:
        """Re-sort at most once a second while data churns; rows change in place
        meanwhile. A national board re-sorted ten times a second would starve the
        GUI thread."""
        if not self._reorder_timer.isActive():
            self._reorder_timer.start()

    def refresh_time(self) -> None:
        """Ages and time-derived states moved on; re-judge and repaint them."""
        self._rendered.clear()
        if self._order_depends_on_time():
            self._reorder()
        if self._order:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self._order) - 1, self.columnCount() - 1))


def table(model, name: str, widths: tuple[int, ...]) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setObjectName(name)
    view.setAccessibleName(name)
    view.setSelectionBehavior(QAbstractItemView.SelectRows)
    view.setSelectionMode(QAbstractItemView.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    # Fixed row heights and interactive column widths: ResizeToContents would
    # measure every row of a national fleet.
    view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
    view.verticalHeader().setDefaultSectionSize(24)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
    view.horizontalHeader().setStretchLastSection(True)
    view.setTabKeyNavigation(False)  # Tab leaves the table, arrows move inside it
    for col, width in enumerate(widths):
        view.setColumnWidth(col, width)
    return view


def stack(widget: QWidget, bar: QHBoxLayout, view: QTableView) -> None:
    """A tool bar above a table, edge to edge."""
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addLayout(bar)
    layout.addWidget(view)
