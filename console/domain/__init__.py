"""The domain: pure rules, one module per concept. No I/O and no clocks: every
rule that needs the time takes `now` (epoch seconds), so the same rules serve the
live console, the offline cache and the simulator.

- clock: UK wall-clock time, ISO 8601, ages
- fleet: wearers, devices, device status; connection, curfew, low battery
- alerts: breach types, the alert lifecycle (claim, work, close with an outcome; latching,
  shelving, suspensions), the queue's priority
- battery: the accumulated battery policy (flat-battery time in 7 days, one breach)
- cases: breach casework, the case timeline and its written warning-letter rule
"""

from console.domain import cases  # noqa: F401
from console.domain.alerts import (  # noqa: F401 - the domain's public names
    BREACH_TYPES,
    MAX_SHELVE,
    SHELVED,
    URGENT_OUT_OF_CONTACT,
    URGENT_TYPES,
    Alert,
    AlertState,
    Evidence,
    HistoryEntry,
    LifecycleError,
    Outcome,
    OutOfBounds,
    Priority,
    Suspension,
    SuspensionReason,
    acknowledge,
    claim,
    close,
    condition_text,
    handling_text,
    notifies,
    priority,
    queue_key,
    return_to_normal,
    shelve,
    start_work,
    suppression,
    unshelve,
)
from console.domain.battery import (  # noqa: F401 - the domain's public names
    BREACH_AFTER,
    WINDOW,
    BatteryStanding,
    Span,
    accumulated,
    merged,
    standing,
)
from console.domain.cases import CaseEntry  # noqa: F401
from console.domain.clock import (  # noqa: F401 - the domain's public names
    DAY,
    EARLIEST,
    LOCAL_TZ,
    format_age,
    iso,
    local_time,
)
from console.domain.fleet import (  # noqa: F401 - the domain's public names
    EXPECTED_INTERVAL,
    LOW_BATTERY,
    OFFLINE_AFTER_INTERVALS,
    STALE_AFTER_INTERVALS,
    Connection,
    Curfew,
    CurfewState,
    Device,
    DeviceKind,
    DeviceStatus,
    Wearer,
    connection,
    curfew_state,
    lateness,
    low_battery,
)
from console.domain.wearers import DeviceRecord, WearerRecord  # noqa: F401
