"""Who may do what: the roles and the permission matrix, written once.

The backend enforces it on every endpoint (the simulator answers 403 from this
table); the console uses the same table to offer only what the operator's roles
allow, and to say why a button is off. The console's check is a convenience; the
backend's is the safeguard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Role(StrEnum):
    OPERATOR = "operator"  # watches the picture, works alerts and breach cases
    COORDINATOR = "coordinator"  # plans field visits: sees the picture and wearers' records, no trails
    SUPERVISOR = "supervisor"  # an operator who also approves long trail windows and reads the audit
    AUDITOR = "auditor"  # reads the picture and the audit; changes nothing, sees no record


class Permission(StrEnum):
    """Each names what it lets a person do, for refusals and tooltips."""

    SEE_PICTURE = "see the live picture of devices and alerts"
    WORK_ALERTS = "work alerts"  # acknowledge, claim, start, close, shelve, unshelve
    SEE_WEARER = "see a wearer's record"
    RECORD_CASE = "record breach casework"
    SUSPEND = "suspend a wearer's monitoring"
    SEE_TRAIL = "ask to see a wearer's location trail, for a recorded purpose"
    APPROVE_TRAIL = "approve or refuse a trail window longer than 7 days"
    SEE_AUDIT = "read the audit of who did and saw what"
    SEE_GROUND_TRUTH = "read the simulator's ground truth"  # evaluation data, simulator only


P = Permission
MATRIX: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: frozenset({P.SEE_PICTURE, P.WORK_ALERTS, P.SEE_WEARER, P.RECORD_CASE, P.SUSPEND,
                              P.SEE_TRAIL}),
    Role.COORDINATOR: frozenset({P.SEE_PICTURE, P.SEE_WEARER}),
    Role.SUPERVISOR: frozenset({P.SEE_PICTURE, P.WORK_ALERTS, P.SEE_WEARER, P.RECORD_CASE,
                                P.SUSPEND, P.SEE_TRAIL, P.APPROVE_TRAIL, P.SEE_AUDIT,
                                P.SEE_GROUND_TRUTH}),
    Role.AUDITOR: frozenset({P.SEE_PICTURE, P.SEE_AUDIT, P.SEE_GROUND_TRUTH}),
}


def roles_of(names: Iterable[str]) -> frozenset[Role]:
    """The roles named; a name this console does not know grants nothing."""
    return frozenset(Role(n) for n in names if n in Role._value2member_map_)


@dataclass(frozen=True)
class Identity:
    """A signed-in person: the name the backend records them by, and their roles."""

    name: str
    roles: frozenset[Role]

    def may(self, permission: Permission) -> bool:
        return any(permission in MATRIX[r] for r in self.roles)

    def why_not(self, permission: Permission) -> str:
        """"" when allowed; else why not, in words for a tooltip or a 403."""
        if self.may(permission):
            return ""
        held = ", ".join(sorted(self.roles)) or "none"
        return f"Your roles ({held}) do not allow you to {permission.value}"


@dataclass(frozen=True)
class KnownOperator:
    """What a workstation remembers of an operator the backend accepted there."""

    name: str
    roles: frozenset[Role]
    verifier: str | None  # of the password last accepted here (verifier_of)

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.roles)


# Wrong passwords checked against a workstation's verifier (offline sign-in, unlock)
# in a row before it stops checking for a while, as the backend does (its lockout):
# otherwise, offline, anyone could guess for as long as they liked.
MAX_OFFLINE_TRIES = 5
OFFLINE_LOCKOUT = 5 * 60.0


def offline_wait(failures: int, last: float, now: float) -> float:
    """Seconds before a workstation checks another password for a username that has
    had `failures` wrong ones in a row, the last at `last`; 0 when it may now."""
    if failures < MAX_OFFLINE_TRIES:
        return 0.0
    return max(0.0, last + OFFLINE_LOCKOUT - now)


# A workstation checks an offline sign-in, or unlocks a locked session, against a
# verifier of the password the backend last accepted here: an argon2id hash
# (64 MiB, about 0.1 s), never the password itself.
_hasher = PasswordHasher()
# Checked when there is no verifier, so that the answer takes as long.
_NO_VERIFIER = _hasher.hash("no verifier")


def verifier_of(password: str) -> str:
    return _hasher.hash(password)


def verified(verifier: str | None, password: str) -> bool:
    try:
        return _hasher.verify(verifier or _NO_VERIFIER, password) and verifier is not None
    except (VerificationError, InvalidHashError):
        return False
