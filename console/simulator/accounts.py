"""Who may use the simulated backend: the training users, their argon2 password
hashes, and sessions.

A session is an access token (short-lived: TOKEN_TTL) and a refresh token (one
shift: REFRESH_TTL), each kept only as its SHA-256 hash, in memory and in the
state file; a refresh rotates both. Signing out revokes the session. After
MAX_FAILURES wrong passwords in a row a username is locked for LOCKOUT seconds,
known or not, so that neither the answer nor its timing says whether it exists.
Token lifetimes are wall-clock time, not the simulation's.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from console.domain.access import Role
from console.protocol import schema
from console.protocol.schema import encode

TOKEN_TTL = 15 * 60.0
REFRESH_TTL = 12 * 3600.0
MAX_FAILURES = 5
LOCKOUT = 5 * 60.0
MAX_TRACKED = 10_000  # usernames with recent failures, oldest forgotten first

# One training user per role (README), each password its username. Only the
# argon2id hashes are kept (argon2-cffi's defaults: 64 MiB, t=3, p=4).
TRAINING_USERS: dict[str, tuple[str, schema.Operator]] = {
    "demo": ("$argon2id$v=19$m=65536,t=3,p=4$U/rEur9NvgFg+xzEMIdv6g$"
             "fb7MqOCqAwhfUYNWk0K93KbFWOfH9g/Ea/KwZLAPZbE",
             schema.Operator("op-demo", "Demo Operator", [Role.OPERATOR])),
    "demo2": ("$argon2id$v=19$m=65536,t=3,p=4$qLzfkF4Sqm8SGx9SQY5d/w$"
              "egfmoseIL8B1wdUGTG8i08RmldqH9Yg4FndNMboZViY",
              schema.Operator("op-demo2", "Second Operator", [Role.OPERATOR])),
    "coord": ("$argon2id$v=19$m=65536,t=3,p=4$fEoCm7lkBCyyFIfRmzVHHQ$"
              "8M+rZU3C0Fn17ccJIY0a5HvD0AvUNAdxXFVRldNSsxA",
              schema.Operator("op-coord", "Demo Coordinator", [Role.COORDINATOR])),
    "super": ("$argon2id$v=19$m=65536,t=3,p=4$6ceDkOfpfu5I72Z2mSGO/A$"
              "2V3/ZoQ0vF57b8fhOuhWV3zGlbwSLiv1afvqy8clS0A",
              schema.Operator("op-super", "Demo Supervisor", [Role.SUPERVISOR])),
    "audit": ("$argon2id$v=19$m=65536,t=3,p=4$P6UMgm3pHUuibzI5coe85Q$"
              "+4FCmIBoQBcQiBnvOiFJxtZ+97+vrvxDrBZkVJdt1Po",
              schema.Operator("op-audit", "Demo Auditor", [Role.AUDITOR])),
}
# Verified for an unknown username, so that it costs what a known one does.
NOBODY = ("$argon2id$v=19$m=65536,t=3,p=4$KN16dy4CVE9oY3IaZXlnZw$"
          "n+NzmFcY6n72y8+Uty/Ud3SUXSPZIJhl7hNOj14+6+g")

# What the backend's audit trail records of sessions (Backend.access).
SIGNED_IN, SIGN_IN_REFUSED, LOCKED_OUT = "signed in", "sign-in refused", "locked out"
REFRESHED, SIGNED_OUT, NOT_ALLOWED = "session refreshed", "signed out", "not allowed"
# A refresh token used twice: one of the two was stolen, so the session ends.
REFRESH_REUSED = "refresh token used again"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, session TEXT NOT NULL,
                                   operator BLOB NOT NULL, expires REAL NOT NULL,
                                   revoked INTEGER NOT NULL DEFAULT 0);
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    kind: str  # "access" or "refresh"
    session: str  # both tokens of one session name it; revoking revokes both
    operator: schema.Operator
    expires: float
    # Kept, revoked, until it would have expired: a revoked refresh token used again
    # is a sign of theft, not a mistake.
    revoked: bool = False


class User(msgspec.Struct, forbid_unknown_fields=True):
    """One entry of a --users file: a backend's own users instead of the training ones."""

    username: str
    password_hash: str  # argon2id, e.g. argon2.PasswordHasher().hash(password)
    id: str
    name: str
    roles: list[Role]


def users_from(path: str) -> dict[str, tuple[str, schema.Operator]]:
    """The users of a --users file (a JSON list of User), as TRAINING_USERS is."""
    with open(path, "rb") as f:
        users = msgspec.json.decode(f.read(), type=list[User])
    return {u.username: (u.password_hash, schema.Operator(u.id, u.name, list(u.roles)))
            for u in users}


@dataclass(frozen=True)
class Locked:
    retry_after: float


class Accounts:
    def __init__(self, db: sqlite3.Connection | None, audit: Callable[[str, str, str], None],
                 token_ttl: float = TOKEN_TTL,
                 users: dict[str, tuple[str, schema.Operator]] = TRAINING_USERS):
        """audit(event, who, subject): record a session's event in the backend's trail;
        users: username: (argon2 hash, operator)."""
        self.db = db
        self._audit = audit
        self.users = users
        self.token_ttl = token_ttl
        self._hasher = PasswordHasher()
        self._tokens: dict[str, Token] = {}  # by the token's hash
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # name: (count, last)
        if db is not None:
            # Tokens were once kept in clear; overwrite, not just unlink, their pages.
            db.execute("PRAGMA secure_delete=ON")
            db.executescript(SCHEMA + "DROP TABLE IF EXISTS sessions;")
            for h, kind, session, operator, expires, revoked in db.execute("SELECT * FROM tokens"):
                self._tokens[h] = Token(kind, session, schema.decode(operator, schema.Operator),
                                        expires, bool(revoked))

    # -- signing in -----------------------------------------------------------

    async def sign_in(self, username: str, password: str) -> schema.Session | Locked | None:
        """A new session, None for a wrong name or password, or Locked."""
        now = time.time()
        count, last = self._failures.get(username, (0, 0.0))
        if count >= MAX_FAILURES and now - last < LOCKOUT:
            self._audit(LOCKED_OUT, username, username)
            return Locked(LOCKOUT - (now - last))
        known = self.users.get(username)
        # Off the event loop: a verification takes about 0.1 s of CPU.
        if not await asyncio.to_thread(self._verify, known[0] if known else NOBODY, password) \
                or known is None:
            self._failed(username, count if now - last < LOCKOUT else 0, now)
            self._audit(SIGN_IN_REFUSED, username, username)
            return None
        self._failures.pop(username, None)
        self._audit(SIGNED_IN, known[1].name, username)
        return self._open(known[1])

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def _failed(self, username: str, count: int, now: float) -> None:
        self._failures[username] = (count + 1, now)
        self._failures.move_to_end(username)
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)

    def refresh(self, refresh_token: str) -> schema.Session | None:
        """New tokens for the session of a live refresh token, whose own tokens are
        then revoked: a stolen refresh token works once, and its theft shows when the
        rightful console's next refresh fails. The session (and its event stream)
        goes on."""
        found = self._tokens.get(digest(refresh_token))
        if found is None or found.kind != "refresh" or found.expires < time.time():
            return None
        if found.revoked:
            if self.live(found.session):  # refreshed before: by the thief, or from the thief
                self._audit(REFRESH_REUSED, found.operator.name, found.session)
                self._revoke(found.session)
            return None
        self._revoke(found.session)
        self._audit(REFRESHED, found.operator.name, found.session)
        return self._open(found.operator, found.session)

    def sign_out(self, session: str) -> None:
        names = {t.operator.name for t in self._tokens.values() if t.session == session}
        self._revoke(session)
        for name in names:
            self._audit(SIGNED_OUT, name, session)

    # -- checking ---------------------------------------------------------------

    def operator(self, access_token: str) -> schema.Operator | None:
        """Whose live access token this is; None for an unknown, expired or revoked one."""
        found = self._tokens.get(digest(access_token))
        if found is None or found.kind != "access" or found.revoked or found.expires < time.time():
            return None
        return found.operator

    def session_of(self, access_token: str) -> str | None:
        found = self._tokens.get(digest(access_token))
        return found.session if found else None

    def live(self, session: str) -> bool:
        """Whether the session has not been signed out or refreshed away (an open
        event stream ends when it has)."""
        return any(t.session == session and not t.revoked for t in self._tokens.values())

    # -- sessions -----------------------------------------------------------------

    def _open(self, operator: schema.Operator, session: str | None = None) -> schema.Session:
        now, session = time.time(), session or secrets.token_hex(8)
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        new = {digest(access): Token("access", session, operator, now + self.token_ttl),
               digest(refresh): Token("refresh", session, operator, now + REFRESH_TTL)}
        self._forget_expired(now)
        self._tokens.update(new)
        if self.db is not None:
            with self.db:
                self.db.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, 0)", [
                    (h, t.kind, t.session, encode(t.operator), t.expires) for h, t in new.items()])
        return schema.Session(access, operator, expires_in=round(self.token_ttl),
                              refresh_token=refresh)

    def _revoke(self, session: str) -> None:
        for h, t in self._tokens.items():
            if t.session == session:
                self._tokens[h] = replace(t, revoked=True)
        if self.db is not None:
            with self.db:
                self.db.execute("UPDATE tokens SET revoked = 1 WHERE session = ?", (session,))

    def _forget_expired(self, now: float) -> None:
        for h in [h for h, t in self._tokens.items() if t.expires < now]:
            del self._tokens[h]
        if self.db is not None:
            with self.db:
                self.db.execute("DELETE FROM tokens WHERE expires < ?", (now,))
