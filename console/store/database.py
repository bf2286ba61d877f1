"""The cache's database: one console per cache (the lock), owner-only files, the
encrypted connection, and opening with the migrations (migrations.py). Opening
refuses a file that is not as this console made it, so that the caller can move it
aside."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import socket
import time
from pathlib import Path

import msgspec
import sqlcipher3
import sqlite_utils

from console.store import undelivered
from console.store.keys import KEYRING, CacheKeyMissing, CacheKeys, sync_folder
from console.store.migrations import MIGRATIONS, SCHEMA_VERSION, columns_made_by_migrations

if os.name == "nt":
    import msvcrt
else:
    import fcntl

log = logging.getLogger(__name__)

PLAINTEXT_HEADER = b"SQLite format 3\0"
# A cache's files: the database, SQLite's two, and what it holds undelivered.
CACHE_FILES = ("", "-wal", "-shm", undelivered.SUFFIX)


class CacheUnusable(Exception):
    pass


class CacheInUse(Exception):
    """Another console holds the cache. Two consoles on one outbox would each send
    the other's queued actions while it still shows them as queued."""

    def __init__(self, path: Path, holder: str):
        self._args = (path, holder)
        pid, _, host = holder.strip().partition(" ")
        self.pid = int(pid) if pid.isdigit() else None
        self.host = host or None
        who = f"process {self.pid} on {self.host}" if self.pid else "a process that has not said which"
        super().__init__(f"The offline cache {path} is in use by another console ({who}). "
                         "Only one console may use a cache at a time.")

    def __reduce__(self):  # it crosses from the sync process to the window's
        return CacheInUse, self._args


class CacheLock:
    """One console per cache: an exclusive OS lock on `<cache>.lock`, which names the
    holder's pid and host. The OS lets go when the process ends, even by kill -9, so
    a crash leaves no stale lock; the file itself stays (deleting it would race)."""

    def __init__(self, cache: Path):
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(cache.with_name(cache.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        self._file = open(fd, "r+b")  # a file object: a Store dropped unclosed still lets go
        if not _try_lock(self._file):
            holder = self._file.read(300).decode(errors="replace")
            self._file.close()
            raise CacheInUse(cache, holder)
        self._file.truncate()
        self._file.write(f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._file.flush()

    def release(self) -> None:
        self._file.close()  # closing lets go of the lock


if os.name == "nt":
    def _try_lock(f) -> bool:
        # One byte far past the holder's pid and host, which others must still read.
        f.seek(1 << 20)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
        finally:
            f.seek(0)
else:
    def _try_lock(f) -> bool:
        # flock, not lockf: it also refuses a second Store in the same process.
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False


def cache_in_use(path: str | os.PathLike) -> CacheInUse | None:
    """Why the cache at `path` cannot be opened now (another console holds it), or
    None. Takes the lock and lets go at once: the window asks before it starts."""
    try:
        CacheLock(Path(path)).release()
    except CacheInUse as e:
        return e
    return None


def owner_only(cache: Path) -> None:
    """The cache holds personal data: make its files owner-only, whatever an older
    version or the umask left (new ones are created so, see connect). POSIX only:
    on Windows the ACL of the user's profile folder applies."""
    if os.name != "posix":
        return
    files = [cache.with_name(cache.name + s) for s in CACHE_FILES]
    for f in files + list(cache.parent.glob(glob.escape(cache.name) + ".unusable-*")):
        try:
            f.chmod(0o600)
        except FileNotFoundError:
            pass
        except PermissionError as e:  # another user's file: say so, but still start
            log.warning("could not make %s owner-only: %s", f, e)


def text_or_bytes(data: bytes) -> str | bytes:
    """SQLite does not check that TEXT is UTF-8, and sqlite3's own decoding raises on
    such a row again at every fetch: one bad byte would block every read of its
    table. Text that is not UTF-8 comes back as bytes, which the row decoders refuse."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def connect(path: str | os.PathLike, keys: CacheKeys = KEYRING,
            read_only: bool = False) -> sqlcipher3.Connection:
    """The one place a cache connection is opened: encrypted at rest with the cache's
    key (console/store/keys.py). A new cache gets a key; an older console's plaintext
    cache is encrypted first. Raises CacheKeyMissing for a file no key we have opens,
    CacheUnusable (or sqlcipher3.DatabaseError) for a damaged one. `read_only` opens
    an existing cache as it is, creating, encrypting and writing nothing (the audit
    trail's verifier, beside a console that may hold it)."""
    path = Path(path)
    header = file_header(path)
    plaintext = header == PLAINTEXT_HEADER
    if read_only and not path.is_file():
        raise FileNotFoundError(f"no cache at {path}")
    key = None if read_only and plaintext else keys.key(
        path, create=not read_only and header in (b"", PLAINTEXT_HEADER))  # b"": a new cache
    if key is None and not (read_only and plaintext):
        raise CacheKeyMissing(path, keys.where, False, undelivered.recorded(path))
    if plaintext and not read_only:
        encrypt_plaintext(path, key)
    if not read_only:
        # Created owner-only before SQLite opens it: SQLite would create it 0644, and
        # gives the -wal and -shm files the database file's mode. Not a umask: that is
        # the whole process's, and other threads create files meanwhile.
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    conn = open_file(path, key, read_only)
    try:
        if key is None:  # read as it is, plaintext: damage shows on the first read
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        else:
            _check_key(conn, path, keys)
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # 64 MB of page cache (SQLite's default is 2 MB): the status table of 100,000
        # devices and its index stay in memory, and a catch-up's upserts ran 1.5x faster.
        conn.execute("PRAGMA cache_size=-65536")
    except BaseException:
        conn.close()  # a damaged file fails here; it is then moved aside, even on Windows
        raise
    return conn


def open_file(file: Path, key: bytes | None, read_only: bool = False) -> sqlcipher3.Connection:
    """A connection to one cache file as it is: encrypted with `key`, or plaintext
    (key None: an older console's file, to encrypt or to carry actions over from).
    `read_only` is for readers beside the console (the fault suite)."""
    target = f"{Path(file).absolute().as_uri()}?mode=ro" if read_only else str(file)
    conn = sqlcipher3.connect(target, uri=read_only, isolation_level=None,
                              check_same_thread=False)
    conn.text_factory = text_or_bytes
    # SQLCipher writes its own errors to stderr; the console says what they mean.
    conn.execute("PRAGMA cipher_log_level = NONE")
    if key is not None:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")  # raw key and salt: no derivation
        # SQLCipher 4's format, whatever a later SQLCipher defaults to: an upgrade
        # must not make every cache unreadable. cipher_memory_security stays off
        # (SQLCipher's default): wiping each freed buffer costs every write, and the
        # key is in this process's memory while it runs anyway.
        conn.execute("PRAGMA cipher_compatibility = 4")
    return conn


def file_header(path: Path) -> bytes:
    """The file's first bytes: SQLite's header if it is plaintext, b"" if it is new."""
    try:
        with open(path, "rb") as f:
            return f.read(len(PLAINTEXT_HEADER))
    except FileNotFoundError:
        return b""


def _check_key(conn: sqlcipher3.Connection, path: Path, keys: CacheKeys) -> None:
    """The first read decrypts page 1, and fails the same way for a wrong key, a file
    that is no cache and a damaged first page. Each page carries its own HMAC: if
    any page of the file checks out under this key, the key is right and the file
    is damaged; if none does, the key is not this file's."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as e:
        pages = path.stat().st_size // int(conn.execute("PRAGMA cipher_page_size").fetchone()[0])
        failed = sum(str(r).startswith("HMAC verification failed")
                     for (r,) in conn.execute("PRAGMA cipher_integrity_check"))
        if pages and failed < pages:
            raise CacheUnusable(f"{failed} of its {pages} pages are damaged ({e})") from None
        raise CacheKeyMissing(path, keys.where, True, undelivered.recorded(path)) from None


def encrypt_plaintext(path: Path, key: bytes) -> None:
    """An older console's plaintext cache, encrypted in place: the whole database,
    outbox and all, is exported into an encrypted file beside it, which then replaces
    it. Whenever it stops, one whole copy is at `path`: the plaintext one until the
    rename, the encrypted one after it."""
    staging = path.with_name(path.name + ".encrypting")
    staging.unlink(missing_ok=True)  # left by a migration that stopped
    os.close(os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    plain = open_file(path, None)
    try:
        # Everything into the main file (an older console killed leaves a WAL), so
        # that no plaintext WAL is left to be replayed into the encrypted file.
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = plain.execute("PRAGMA user_version").fetchone()[0]
        plain.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(staging), f"x'{key.hex()}'"))
        plain.execute("SELECT sqlcipher_export('encrypted')")
        plain.execute(f"PRAGMA encrypted.user_version = {int(version)}")  # not exported
        plain.execute("DETACH DATABASE encrypted")
    except BaseException:
        plain.close()
        staging.unlink(missing_ok=True)
        raise
    plain.close()
    with open(staging, "rb+") as f:
        os.fsync(f.fileno())
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    os.replace(staging, path)
    sync_folder(path.parent)
    log.warning("the offline cache %s was not encrypted (an older console's); it now is", path)


def insert_rows(conn: sqlcipher3.Connection, insert: str, width: int, rows: list[tuple],
                conflict: str = "") -> None:
    """`insert` ("INSERT INTO t", "INSERT OR REPLACE INTO t") the rows, `width` values
    each, in ONE statement that reads them from one JSON array (json_each).

    Not executemany: it steps SQLite once per row and gives up the GIL around each
    step; with another thread busy in Python, taking the GIL back waited for the
    interpreter's 5 ms switch interval, row after row (160 rows/s measured beside
    one busy thread, against 124,000 this way). One statement gives up the GIL once
    for the whole batch, and the window and the network thread run meanwhile.
    msgspec writes floats that SQLite reads back bit for bit (tests/test_store.py)
    between about 1e-90 and 1e110: SQLite 3.51's text-to-double conversion (the one
    SQLCipher brings) rounds some beyond those by an ulp or so, in every path. The
    cache's floats (batteries, epoch seconds) lie far inside."""
    if not rows:
        return
    values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(width))
    # As text: SQLite 3.45 and later read a BLOB argument as its binary JSONB.
    conn.execute(f"{insert} SELECT {values} FROM json_each(?) WHERE true {conflict}",
                 (msgspec.json.encode(rows).decode(),))


def open_database(path: Path, keys: CacheKeys) -> sqlcipher3.Connection:
    """Connect, check and migrate; raises CacheUnusable (or sqlcipher3.DatabaseError)
    for a file this console cannot use as it is, CacheKeyMissing for one it cannot
    open without a key it does not have."""
    conn = connect(path, keys)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CacheUnusable(f"its schema version {version} is newer than this "
                                f"console's {SCHEMA_VERSION}")
        if version:
            # integrity_check, not quick_check: it also compares each index with its
            # table, and a damaged index fails reads that quick_check passed (80 ms
            # for 100,000 wearers, against 25).
            check = conn.execute("PRAGMA integrity_check(1)").fetchone()[0]
            if check != "ok":
                raise CacheUnusable(f"integrity check failed: {check}")
        db = sqlite_utils.Database(conn)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with conn:
                conn.execute("BEGIN")
                MIGRATIONS[target](db)
                conn.execute(f"PRAGMA user_version={target}")
        # A flipped byte in the schema's text can rename a column and still pass
        # the integrity check; every later query on that table would then fail.
        for table, columns in columns_made_by_migrations().items():
            if conn.execute(f"PRAGMA table_info([{table}])").fetchall() != columns:
                raise CacheUnusable(f"its {table} table is not as this console made it")
        return conn
    except BaseException:
        conn.close()
        raise


def move_aside(path: Path) -> Path:
    """Rename an unusable cache (and its -wal, -shm and what it held undelivered) out
    of the way; returns the new name. The key stays the path's: the fresh cache
    gets the same one, so that a damaged file moved aside can still be opened."""
    aside = path.with_name(f"{path.name}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in CACHE_FILES:
        src = Path(str(path) + suffix)
        if src.exists():
            src.replace(Path(str(aside) + suffix))
    return aside


def move_unreadable_aside(path: str | os.PathLike) -> Path:
    """The operator's choice for a cache no key opens (CacheKeyMissing): rebuild
    from the backend. The file is moved aside and kept, as an unusable cache is,
    under the lock, so that no console opens it meanwhile; returns its new name."""
    path = Path(path)
    lock = CacheLock(path)
    try:
        aside = move_aside(path)
    finally:
        lock.release()
    log.warning("the offline cache %s could not be opened without its key; moved to %s and "
                "kept for an administrator, and a fresh cache is built", path, aside.name)
    return aside


@contextlib.contextmanager
def durable(c: sqlcipher3.Connection):
    """A transaction that is on disk when it returns (synchronous=FULL), for
    operators' actions and their audit trail; the cache itself runs NORMAL."""
    c.execute("PRAGMA synchronous=FULL")
    try:
        with c:
            c.execute("BEGIN")
            yield c
    finally:
        c.execute("PRAGMA synchronous=NORMAL")
