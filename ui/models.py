"""Table models for the status board and the alert queue.

Each model caches its rows, sorts and filters itself (QSortFilterProxyModel does
not scale to a national fleet) and turns a change batch into one dataChanged per
contiguous range, or one layout change when the order moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor

from console.changes import Changes
from console.domain import (
    EXPECTED_INTERVAL,
    LOCAL_TZ,
    LOW_BATTERY,
    STALE_AFTER_INTERVALS,
    Alert,
    AlertState,
    Connection,
    CurfewState,
    Device,
    DeviceStatus,
    Priority,
    Wearer,
    connection,
    curfew_state,
    format_age,
    local_time,
    priority,
    queue_key,
)
from console.domain.actions import Action

Clock = Callable[[], float]
MAX_RANGES = 32  # beyond this many separate ranges, one spanning range is cheaper
REORDER_MS = 1000

WARN = QBrush(QColor("#fde2e1"))
CAUTION = QBrush(QColor("#fff4ce"))
CONNECTION_TEXT = {Connection.ONLINE: "● online", Connection.STALE: "◐ stale",
                   Connection.OFFLINE: "○ offline"}
CURFEW_TEXT = {CurfewState.INSIDE: "⌂ inside", CurfewState.OUTSIDE: "✕ outside",
               CurfewState.NONE: "– no curfew now", CurfewState.UNKNOWN: "? unknown"}
LAST_KNOWN = " (last known)"


def device_text(device: Device | None) -> str:
    return device.kind.label if device else "no device"


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


@dataclass(slots=True)
class BoardRow:
    wearer: Wearer
    device: Device | None
    status: DeviceStatus | None = None
    open_alerts: int = 0
    # What search matches: the row's identifying texts as shown, lowercased once at
    # load rather than per keystroke per row. Hidden ids are left out on purpose.
    haystack: str = ""


class StatusBoardModel(SelfSortingModel):
    HEADERS = ("Reference", "Device", "Connection", "Battery", "Strap", "Curfew",
               "Last contact", "Open alerts")
    RIGHT_ALIGNED = frozenset({3, 7})

    AS_OF = (2, 6)  # the columns judged by the clock, which holds while the link is down

    def __init__(self, clock: Clock):
        """`clock` is the engine's picture time: it stops at the last server time
        heard while the link is down, so devices are not blamed for that silence."""
        super().__init__(clock)
        self.held = False  # the link is down and the clock holds
        self._by_device: dict[str, int] = {}
        self._by_wearer: dict[str, int] = {}
        self._alert_wearer: dict[str, str] = {}  # open alert id -> wearer id
        self.sort_column, self.sort_order = 0, Qt.AscendingOrder
        self.search = ""
        self.only_offline = self.only_low_battery = self.only_alerts = False

    def set_live(self, live: bool) -> None:
        """Told once a second by the window: while not live the clock-judged
        columns say as of when, and that nothing is known since."""
        if live != self.held:
            return
        self.held = not live
        self.headerDataChanged.emit(Qt.Horizontal, min(self.AS_OF), max(self.AS_OF))
        self.refresh_time()

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if not (self.held and orientation == Qt.Horizontal and section in self.AS_OF):
            return super().headerData(section, orientation, role)
        at = f"{datetime.fromtimestamp(self.clock(), LOCAL_TZ):%H:%M}"
        if role in (Qt.DisplayRole, Qt.AccessibleTextRole):
            return f"{self.HEADERS[section]} as of {at}"
        if role == Qt.ToolTipRole:
            return (f"The link to the backend was lost at {at} (UK time). Each device is shown "
                    "as it was then; whether it has made contact since is unknown.")
        return None

    # -- what a row says ------------------------------------------------------

    def connection_of(self, row: BoardRow, now: float) -> Connection:
        if row.device is None:
            return Connection.OFFLINE
        return connection(row.device.kind, row.status.ts if row.status else None, now)

    def _curfew(self, row: BoardRow, now: float) -> CurfewState:
        at_home = row.status.at_home if row.status else None
        return curfew_state(row.wearer.curfew, at_home, local_time(now))

    def _render(self, row: BoardRow, now: float) -> tuple[tuple[str, ...], tuple]:
        s = row.status
        conn = self.connection_of(row, now)
        curfew = self._curfew(row, now)
        battery_bg = None
        if s and s.battery < LOW_BATTERY:
            battery_bg = CAUTION if s.charging else WARN
        backgrounds = (None, None, {Connection.OFFLINE: WARN, Connection.STALE: CAUTION}.get(conn),
                       battery_bg, WARN if s and s.strap == "open" else None,
                       WARN if curfew is CurfewState.OUTSIDE else None, None, None)
        return tuple(self._text(row, col, now, conn, curfew) for col in range(8)), backgrounds

    def _tooltip(self, row: BoardRow, col: int) -> str | None:
        tips = []
        if col == 5 and row.wearer.curfew:
            tips.append(f"Curfew {row.wearer.curfew} (UK time)")
        now = self.clock()
        # Hovered cells only: re-deriving the text is cheap and keeps one rule for the marker.
        if self._text(row, col, now, self.connection_of(row, now),
                      self._curfew(row, now)).endswith(LAST_KNOWN):
            tips.append(f"Last known: as the device reported at {uk_datetime(row.status.ts)}; "
                        "it has not made contact since.")
        return "\n".join(tips) or None

    def _text(self, row: BoardRow, col: int, now: float, conn: Connection,
              curfew: CurfewState) -> str:
        s = row.status
        if col == 0:
            return row.wearer.ref
        if col == 1:
            return device_text(row.device)
        if col == 2:
            age = f" {format_age(now - s.ts)}" if s and conn is not Connection.ONLINE else ""
            return CONNECTION_TEXT[conn] + age
        # A device not online reports nothing new: what it last said may no longer hold.
        last_known = "" if conn is Connection.ONLINE else LAST_KNOWN
        if col == 3:
            if s is None:
                return "–"
            marks = " ⚡ charging" if s.charging else (" ▼ low" if s.battery < LOW_BATTERY else "")
            return f"{s.battery:.0f}%{marks}{last_known}"
        if col == 4:
            if s is None or s.strap is None:
                return "–"
            return ("✕ open" if s.strap == "open" else "ok") + last_known
        if col == 5:
            # Inside or outside comes from the device; "no curfew now" from the schedule.
            tracked = curfew in (CurfewState.INSIDE, CurfewState.OUTSIDE)
            return CURFEW_TEXT[curfew] + (last_known if tracked else "")
        if col == 6:
            return f"{format_age(now - s.ts)} ago" if s else "never"
        return str(row.open_alerts) if row.open_alerts else ""

    # -- sorting and filtering, inside the model ------------------------------

    def _sort_key(self, col: int, now: float) -> Callable[[BoardRow], object]:
        never = float("-inf")
        local = local_time(now)
        covering: dict = {}  # a fleet has a handful of distinct curfews: judge each once

        def curfew_rank(r: BoardRow) -> int:
            """Outside first, then unknown, inside, and no curfew now."""
            key = id(r.wearer.curfew)  # Curfew.parse shares equal curfews: few distinct ids
            if key not in covering:
                covering[key] = r.wearer.curfew is not None and r.wearer.curfew.covers(local)
            if not covering[key]:
                return 3
            at_home = r.status.at_home if r.status else None
            return 1 if at_home is None else (2 if at_home else 0)

        keys = {
            0: lambda r: r.wearer.ref,
            1: lambda r: r.device.kind.value if r.device else "",
            # Lateness against the kind's reporting interval orders the connection
            # states (online < stale < offline) and, within each, the most overdue last.
            2: lambda r: (now - r.status.ts) / EXPECTED_INTERVAL[r.device.kind]
            if r.status and r.device else float("inf"),
            3: lambda r: r.status.battery if r.status else -1.0,
            4: lambda r: (r.status.strap or "") if r.status else "",
            5: curfew_rank,
            6: lambda r: r.status.ts if r.status else never,
            7: lambda r: r.open_alerts,
        }
        return keys[col]

    def _accepts(self, row: BoardRow, now: float) -> bool:
        if self.only_alerts and not row.open_alerts:
            return False
        if self.only_low_battery and not (row.status and row.status.battery < LOW_BATTERY):
            return False
        if self.only_offline and row.status and row.device and (
                now - row.status.ts < STALE_AFTER_INTERVALS * EXPECTED_INTERVAL[row.device.kind]):
            return False
        if self.search:
            return self.search in row.haystack
        return True

    def _compute_order(self) -> list[int]:
        now = self.clock()
        rows = self._rows
        filtering = self.search or self.only_offline or self.only_low_battery or self.only_alerts
        visible = ([i for i, r in enumerate(rows) if self._accepts(r, now)] if filtering
                   else range(len(rows)))
        key = self._sort_key(self.sort_column, now)
        keys = [key(rows[i]) for i in visible]
        order = sorted(range(len(keys)), key=keys.__getitem__,
                       reverse=self.sort_order == Qt.DescendingOrder)
        return [visible[k] for k in order]

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        self.sort_column, self.sort_order = column, order
        self._reorder()

    def set_filter(self, search: str | None = None, offline: bool | None = None,
                   low_battery: bool | None = None, alerts: bool | None = None) -> None:
        if search is not None:
            self.search = search.strip().lower()
        if offline is not None:
            self.only_offline = offline
        if low_battery is not None:
            self.only_low_battery = low_battery
        if alerts is not None:
            self.only_alerts = alerts
        self._reorder()

    @property
    def total(self) -> int:
        return len(self._rows)

    # -- change batches -------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        if changes.picture is not None:
            self._load(changes.picture)
        touched: set[int] = set()
        for device_id, status in changes.statuses.items():
            i = self._by_device.get(device_id)
            if i is not None:
                self._rows[i].status = status
                touched.add(i)
        for alert_id in changes.closed:
            touched |= self._count_alert(alert_id, None)
        for alert in changes.alerts.values():
            touched |= self._count_alert(alert.id, alert.wearer_id)
        if not touched:
            return
        filtering = self.only_offline or self.only_low_battery or self.only_alerts
        if filtering or self.sort_column in (2, 3, 6, 7):
            self._reorder_soon()
        self._rows_changed(touched)

    def _order_depends_on_time(self) -> bool:
        # Connection and curfew states change with the clock alone; the rest do not.
        return self.sort_column in (2, 5) or self.only_offline

    def _count_alert(self, alert_id: str, wearer_id: str | None) -> set[int]:
        """Move one open alert's count to its wearer (None: it closed)."""
        before = self._alert_wearer.pop(alert_id, None)
        if wearer_id is not None:
            self._alert_wearer[alert_id] = wearer_id
        touched = set()
        for wid, delta in ((before, -1), (wearer_id, 1)):
            i = self._by_wearer.get(wid)
            if i is not None:
                self._rows[i].open_alerts += delta
                touched.add(i)
        return touched

    def _load(self, picture) -> None:
        devices = {d.wearer_id: d for d in picture.devices}
        rows = [BoardRow(w, devices.get(w.id)) for w in picture.wearers]
        for r in rows:
            # Newline-separated so a search cannot match across two columns.
            r.haystack = f"{r.wearer.ref}\n{device_text(r.device)}".lower()
        self._by_wearer = {r.wearer.id: i for i, r in enumerate(rows)}
        self._by_device = {r.device.id: i for i, r in enumerate(rows) if r.device}
        for device_id, status in picture.statuses.items():
            i = self._by_device.get(device_id)
            if i is not None:
                rows[i].status = status
        self._alert_wearer = {a.id: a.wearer_id for a in picture.alerts.values()}
        for wid in self._alert_wearer.values():
            i = self._by_wearer.get(wid)
            if i is not None:
                rows[i].open_alerts += 1
        self._reset(rows)


# Only glyphs DejaVu Sans has: a stock Debian desktop has no emoji font (tests/test_ui_keyboard.py).
ACTION_TEXT = {"pending": "◷ acknowledging (queued)", "delivered": "✓ acknowledged (sent)",
               "conflict": "⚠ conflict", "rejected": "⚠ refused"}


class AlertQueueModel(SelfSortingModel):
    """Open alerts, most urgent first, then oldest first (ICIBI §5.14)."""

    HEADERS = ("Priority", "Type", "Wearer", "State", "Age", "Raised (UK time)")
    COL_STATE = 3
    COL_RAISED = 5

    def __init__(self, clock: Clock, device_clock: Clock | None = None):
        """Ages run on `clock`; the out-of-contact rule of priority runs on
        `device_clock` (the engine's picture time), which holds while the link is down."""
        super().__init__(clock)
        self.device_clock = device_clock or clock
        self._index: dict[str, int] = {}
        self._refs: dict[str, str] = {}
        self._last_contact: dict[str, float] = {}
        self.actions: dict[str, Action] = {}  # latest action per alert id
        self.problems: dict[str, Action] = {}  # actions the backend did not accept, by key

    def alert_at(self, position: int) -> Alert:
        return self.row_at(position)

    def wearer_ref(self, wearer_id: str) -> str:
        return self._refs.get(wearer_id, wearer_id)

    def priority_of(self, alert: Alert) -> Priority:
        return priority(alert, self._last_contact.get(alert.device_id), self.device_clock())

    def _render(self, alert: Alert, now: float) -> tuple[tuple[str, ...], tuple]:
        p = self.priority_of(alert)
        texts = tuple(self._text(alert, col, now) for col in range(len(self.HEADERS)))
        return texts, ({Priority.URGENT: WARN, Priority.HIGH: CAUTION}.get(p),) + (None,) * 5

    def _tooltip(self, alert: Alert, col: int) -> str | None:
        if col == self.COL_RAISED:
            return f"Raised {uk_datetime(alert.raised_at)}"
        if col != self.COL_STATE:
            return None
        return "\n".join(f"{h.state.value} {format_age(self.clock() - h.at)} ago"
                         + (f" by {h.by}" if h.by else "") + (f": {h.note}" if h.note else "")
                         for h in alert.history)

    def _text(self, alert: Alert, col: int, now: float) -> str:
        if col == 0:
            return self.priority_of(alert).label
        if col == 1:
            return alert.type_label
        if col == 2:
            return self.wearer_ref(alert.wearer_id)
        if col == 4:
            return format_age(now - alert.raised_at)
        if col == self.COL_RAISED:
            # The time alone is ambiguous once the UK day has turned: then say which day.
            raised = datetime.fromtimestamp(alert.raised_at, LOCAL_TZ)
            if raised.date() == datetime.fromtimestamp(now, LOCAL_TZ).date():
                return f"{raised:%H:%M}"
            return f"{raised:%a %d %b %H:%M}"
        action = self.actions.get(alert.id)
        if action is not None and not (action.state == "delivered"
                                       and alert.state is not AlertState.UNACKNOWLEDGED):
            text = ACTION_TEXT[action.state]
            return f"{text}: {action.detail}" if action.detail and action.state != "pending" else text
        state = alert.state.value
        return state if alert.active else f"{state}, cleared"

    def _compute_order(self) -> list[int]:
        now = self.device_clock()
        rows = self._rows
        return sorted(range(len(rows)),
                      key=lambda i: queue_key(rows[i], self._last_contact.get(rows[i].device_id), now))

    def apply(self, changes: Changes) -> None:
        for device_id, status in changes.statuses.items():
            self._last_contact[device_id] = status.ts
        for key, action in changes.actions.items():
            self.actions[action.alert_id] = action
            if action.state in ("conflict", "rejected"):
                self.problems[key] = action
        if changes.picture is not None:
            p = changes.picture
            self._refs = {w.id: w.ref for w in p.wearers}
            self._last_contact = {d: s.ts for d, s in p.statuses.items()}
            rows = list(p.alerts.values())
            self._index = {a.id: i for i, a in enumerate(rows)}
            self._reset(rows)
            return
        if changes.closed or any(a not in self._index for a in changes.alerts):
            rows = [a for a in self._rows if a.id not in changes.closed]
            known = {a.id: i for i, a in enumerate(rows)}
            for alert in changes.alerts.values():
                if alert.id in known:
                    rows[known[alert.id]] = alert
                else:
                    known[alert.id] = len(rows)
                    rows.append(alert)
            self._replace_rows(rows, known)
            return
        touched = set()
        for alert in changes.alerts.values():
            i = self._index[alert.id]
            self._rows[i] = alert
            touched.add(i)
        touched |= {self._index[a] for a in (x.alert_id for x in changes.actions.values())
                    if a in self._index}
        self._rows_changed(touched)

    def _replace_rows(self, rows: list[Alert], index: dict[str, int]) -> None:
        """Alerts came or went: rebuild, keeping the selection on the same alerts."""
        old = self._rows
        self._rows, self._index = rows, index
        self._rendered.clear()
        self._relayout(self._compute_order(), carry=lambda r: index.get(old[r].id))
