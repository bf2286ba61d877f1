"""The offline cache's key: where it is kept, and made on first use.

The cache is encrypted with SQLCipher under a random 256-bit raw key and salt: no
password, so no key derivation to slow the start. Each cache file has its own key, kept in the
operating system's keyring (Secret Service on Linux, Credential Manager on Windows,
the Keychain on macOS) under the service "em-console" and the cache's absolute
path. Where there is no keyring, an administrator may allow a key file instead
(`--key-file`), which must be the user's own and owner-only; without either the
console refuses to open a cache rather than keep one unencrypted.

`CacheKeys` says where the keys are, never what they are: it crosses to the sync
process, which fetches its key itself. A key goes only to SQLite: never into a log,
an exception, the command line, the environment or the pipe."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.errors
from keyring.backends import chainer, fail

from console.store.undelivered import Undelivered

log = logging.getLogger(__name__)

SERVICE = "em-console"
# A 256-bit key and the file's 128-bit salt, which SQLCipher otherwise reads from the
# file's first 16 bytes: a flipped bit there would fail every page's check, as a
# wrong key does, and the cache would be taken for one this console cannot open.
KEY_BYTES = 32 + 16


class KeyUnavailable(Exception):
    """The cache's key cannot be had; the message says why and what mends it."""


class NoKeyring(KeyUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "No keyring is available to keep the offline cache's key, and the console does not "
            "keep the cache unencrypted. Start the desktop's keyring (a Secret Service such as "
            "GNOME Keyring or KWallet; Windows and macOS have theirs built in), or have an "
            "administrator allow a key file: --key-file PATH (or EM_CONSOLE_KEY_FILE), a file "
            "only this user can read.")

    def __reduce__(self):  # it crosses from the sync process to the window's
        return NoKeyring, ()


class KeyFileRefused(KeyUnavailable):
    pass


class CacheKeyMissing(KeyUnavailable):
    """An encrypted cache that no key this console has opens: its key is not where
    keys are kept, or the key there is not its own (or the file is no cache at all).
    The operator chooses: rebuild from the backend (the file is moved aside and kept)
    or keep the file for an administrator. What it holds undelivered is told from
    the file beside it (console/store/undelivered.py), the one thing readable."""

    def __init__(self, path: Path, where: str, found: bool, undelivered: Undelivered | None):
        self._args = (path, where, found, undelivered)
        self.path, self.undelivered = path, undelivered
        if found:
            why = (f"The offline cache {path} cannot be opened with the key in {where}: it was "
                   "encrypted with another key, or it is not a cache.")
        else:
            why = f"The offline cache {path} is encrypted, and its key is not in {where}."
        if undelivered is None:
            held = "Whether it holds operator actions not yet sent is not known."
        elif undelivered.count == 0:
            held = "It holds no operator actions waiting to be sent."
        else:
            n, oldest = undelivered
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(oldest)) if oldest else "?"
            held = (f"It holds {n} operator {'action' if n == 1 else 'actions'} not yet sent, "
                    f"the oldest queued {when} (workstation time), which cannot be read or sent "
                    "without its key.")
        super().__init__(f"{why} {held}")

    def __reduce__(self):  # it crosses from the sync process to the window's
        return CacheKeyMissing, self._args


@dataclass(frozen=True)
class CacheKeys:
    """Where caches' keys are kept: the keyring, or the key file an administrator
    allowed (`key_file`), which then holds the one key of every cache this console opens."""

    key_file: Path | None = None

    @property
    def where(self) -> str:
        return f"the key file {self.key_file}" if self.key_file else f"the keyring (service {SERVICE!r})"

    def key(self, cache: Path, create: bool) -> bytes | None:
        """The cache's key, or None if there is none. `create` (a new cache, or a
        plaintext one to encrypt): make one and keep it first."""
        found = self._read(cache)
        if found is None and create:
            found = self._create(cache)
        if found is not None:
            log.info("the offline cache's key is in %s", self._described())
        return found

    def _described(self) -> str:
        return self.where if self.key_file else f"{self.where}: {usable_keyring().name}"

    def _read(self, cache: Path) -> bytes | None:
        if self.key_file:
            return _read_key_file(self.key_file)
        try:
            text = usable_keyring().get_password(SERVICE, _entry(cache))
        except keyring.errors.KeyringError as e:
            raise KeyUnavailable(f"The keyring could not be read ({type(e).__name__}: {e}).") from None
        return None if text is None else _parsed(text, f"The keyring's entry for {cache}")

    def _create(self, cache: Path) -> bytes:
        key = secrets.token_bytes(KEY_BYTES)
        if self.key_file:
            return _create_key_file(self.key_file, key)
        try:
            usable_keyring().set_password(SERVICE, _entry(cache), key.hex())
        except keyring.errors.KeyringError as e:
            raise KeyUnavailable(f"The keyring could not keep the offline cache's key "
                                 f"({type(e).__name__}: {e}).") from None
        # A cache whose key was not kept could never be opened again: ask it back first.
        if self._read(cache) != key:
            raise KeyUnavailable("The keyring did not keep the offline cache's key.")
        log.info("made a new key for the offline cache %s", cache)
        return key


KEYRING = CacheKeys()


def usable_keyring() -> keyring.backend.KeyringBackend:
    """The keyring backend keyring chose; raises NoKeyring where it found none
    (its `fail` backend, or a chainer with nothing to chain), or found only one that
    keeps secrets in clear. keyring ranks backends by priority, and one under 1 is
    not recommended (keyrings.alt's plaintext file, which a developer's virtualenv
    may hold): such a one counts only when configured on purpose
    (PYTHON_KEYRING_BACKEND, keyringrc.cfg), as the tests' own keyring is."""
    backend = keyring.get_keyring()
    chained = backend.backends if isinstance(backend, chainer.ChainerBackend) else [backend]
    if isinstance(backend, fail.Keyring) or not chained:
        raise NoKeyring()
    if chained[0].priority < 1 and not (keyring.core.load_env() or keyring.core.load_config()):
        raise NoKeyring()
    return backend


def keyring_available() -> bool:
    try:
        usable_keyring()
    except NoKeyring:
        return False
    return True


def _entry(cache: Path) -> str:
    """The keyring's user name for a cache: its absolute path, so that each cache
    (cache.db, cache-2.db, training-cache.db) has its own key."""
    return str(Path(cache).resolve())


def _parsed(text: str, what: str, refused: type[KeyUnavailable] = KeyUnavailable) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:  # never say what it held instead: it may be a secret
        raise refused(f"{what} does not hold a key of this console "
                      f"({KEY_BYTES * 2} hexadecimal digits).")
    return key


def _read_key_file(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            _check_owner_only(path, os.fstat(f.fileno()))
            text = f.read(4 * KEY_BYTES)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KeyFileRefused(f"The key file {path} could not be read: {e.strerror}.") from None
    return _parsed(text.decode(errors="replace"), f"The key file {path}", KeyFileRefused)


def _check_owner_only(path: Path, st: os.stat_result) -> None:
    """A key file anyone else can read is no protection; one someone else owns may
    have been put there for us to use. POSIX only: on Windows the file's ACL applies
    (keep it in the user's profile)."""
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileRefused(f"The key file {path} is not a regular file.")
    if os.name != "posix":
        return
    if st.st_uid != os.geteuid():
        raise KeyFileRefused(f"The key file {path} belongs to user {st.st_uid}, not to this "
                             f"user ({os.geteuid()}); it must be this user's own.")
    if st.st_mode & 0o077:
        raise KeyFileRefused(f"The key file {path} can be read or written by others (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}); make it owner-only: chmod 600 {path}")


def _create_key_file(path: Path, key: bytes) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another console made it meanwhile: theirs is the key
        return _read_key_file(path)
    except OSError as e:
        raise KeyFileRefused(f"The key file {path} could not be made: {e.strerror}.") from None
    with open(fd, "wb") as f:
        f.write(key.hex().encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    sync_folder(path.parent)
    log.info("made the key file %s, owner-only", path)
    return key


def sync_folder(folder: Path) -> None:
    """A new or renamed file survives a power cut once its folder is on disk (POSIX)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
