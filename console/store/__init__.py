"""The offline cache (SQLite): `Store` and the errors of opening one.

- database: the lock (one console per cache), owner-only files, the encrypted
  connection, schema and migrations
- keys: where each cache's key is kept (the keyring, or a key file an administrator
  allowed); undelivered: what a cache holds unsent, readable without its key
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
    move_unreadable_aside,
)
from console.store.keys import (  # noqa: F401
    KEYRING,
    CacheKeyMissing,
    CacheKeys,
    KeyFileRefused,
    KeyUnavailable,
    NoKeyring,
    keyring_available,
)
