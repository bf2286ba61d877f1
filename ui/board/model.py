"""The status board's model: one row per wearer, sorted and filtered inside."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import Qt

from console.changes import Changes
from console.domain import (
    LOCAL_TZ,
    Connection,
    CurfewState,
    Device,
    DeviceStatus,
    Span,
    Wearer,
    connection,
    curfew_state,
    format_age,
    lateness,
    local_time,
    low_battery,
    standing,
)
from ui.common.table import CAUTION, WARN, Clock, SelfSortingModel, uk_datetime

CONNECTION_TEXT = {Connection.ONLINE: "● online", Connection.STALE: "◐ stale",
                   Connection.OFFLINE: "○ offline"}
CURFEW_TEXT = {CurfewState.INSIDE: "⌂ inside", CurfewState.OUTSIDE: "✕ outside",
               CurfewState.NONE: "– no curfew now", CurfewState.UNKNOWN: "? unknown"}
LAST_KNOWN = " (last known)"


def device_text(device: Device | None) -> str:
    return device.kind.label if device else "no device"


@dataclass(slots=True)
class BoardRow:
    wearer: Wearer
    device: Device | None
    status: DeviceStatus | None = None
    open_alerts: int = 0
    battery: tuple[Span, ...] = ()  # the device's flat-battery spans (accumulated policy)
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

    def row_of(self, wearer_id: str) -> BoardRow | None:
        i = self._by_wearer.get(wearer_id)
        return None if i is None else self._rows[i]

    def find(self, text: str) -> BoardRow | None:
        """The row of the wearer with this reference or id (any case), if on the board."""
        wanted = text.strip().casefold()
        if (i := self._by_wearer.get(text.strip())) is not None:
            return self._rows[i]
        return next((r for r in self._rows if r.wearer.ref.casefold() == wanted), None)

    def position_of(self, wearer_id: str) -> int | None:
        """The wearer's display position; None while a filter hides them."""
        return self._pos.get(self._by_wearer.get(wearer_id, -1))

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
        if low_battery(s):
            battery_bg = CAUTION if s.charging else WARN
        backgrounds = (None, None, {Connection.OFFLINE: WARN, Connection.STALE: CAUTION}.get(conn),
                       battery_bg, WARN if s and s.strap == "open" else None,
                       WARN if curfew is CurfewState.OUTSIDE else None, None, None)
        return tuple(self._text(row, col, now, conn, curfew) for col in range(8)), backgrounds

    @staticmethod
    def _flat(row: BoardRow, now: float) -> str:
        """The device's flat time in 7 days, once there is any: how far towards the
        accumulated battery policy's breach (⚑ past it); the tooltip says the rest."""
        if not row.battery:
            return ""
        held = standing(row.battery, now)
        if not held.accumulated:
            return ""
        return f" · {'⚑ ' if held.breached else ''}{held.hours} flat"

    def _tooltip(self, row: BoardRow, col: int) -> str | None:
        tips = []
        if col == 3 and row.battery and standing(row.battery, self.clock()).accumulated:
            tips.append(f"Out of contact with a flat battery "
                        f"{standing(row.battery, self.clock()).describe()}; 12 hours is a breach "
                        "(the accumulated battery policy).")
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
            marks = " ⚡ charging" if s.charging else (" ▼ low" if low_battery(s) else "")
            return f"{s.battery:.0f}%{marks}{last_known}{self._flat(row, now)}"
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
            2: lambda r: lateness(r.device.kind, r.status.ts, now)
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
        if self.only_low_battery and not low_battery(row.status):
            return False
        if self.only_offline and self.connection_of(row, now) is Connection.ONLINE:
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
        for device_id, spans in changes.battery.items():
            i = self._by_device.get(device_id)
            if i is not None:
                self._rows[i].battery = spans
                touched.add(i)
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
        for device_id, spans in picture.battery.items():
            i = self._by_device.get(device_id)
            if i is not None:
                rows[i].battery = spans
        self._alert_wearer = {a.id: a.wearer_id for a in picture.alerts.values()}
        for wid in self._alert_wearer.values():
            i = self._by_wearer.get(wid)
            if i is not None:
                rows[i].open_alerts += 1
        self._reset(rows)
