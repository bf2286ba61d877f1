"""The offline cache (SQLite): `Store` and the errors of opening one.

- database: the lock (one console per cache), owner-only files, schema and migrations
- cache: `Store`, which opens the cache and composes the table groups
- fleet, alerts, outbox: one module per table group; rows: reading rows back safely
- audit: the audit trail's hash chain (the console's and the backend's); `verify_audit`
"""

from console.store.cache import Store, verify_audit  # noqa: F401 - the store's public names
from console.store.database import (  # noqa: F401
    SCHEMA_VERSION,
    CacheInUse,
    CacheUnusable,
    cache_in_use,
    connect,
)
