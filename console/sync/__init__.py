"""The sync engine: backend stream -> store -> coalesced change batches.

- engine: SyncEngine, its lifecycle and the stream loop (sign-in, snapshot, follow)
- writer: the thread that owns the store, and the ChangeFeed that publishes
- stream: the Cursor that follows event ids; outbox: the sender of queued actions
- clock: the server's clock and backoff; status: SyncStatus and SyncState
"""

from console.sync.clock import ServerClock, backoff_delay  # noqa: F401 - public names
from console.sync.engine import SyncEngine  # noqa: F401
from console.sync.status import SyncState, SyncStatus  # noqa: F401
from console.sync.writer import ChangeFeed  # noqa: F401
