"""How many operator actions a cache holds undelivered, and since when, in a small
plaintext file beside it (`cache.db.undelivered.json`).

It is the one thing about an encrypted cache that can be read without its key: a
cache whose key is lost can still say what it held that the backend does not have.
It holds a count and a time, no personal data and nothing of the actions themselves.
It is rewritten after each change to the outbox but not synced to disk with it: it
reports, the outbox decides."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

SUFFIX = ".undelivered.json"


class Undelivered(NamedTuple):
    count: int
    oldest: float | None  # when the oldest was queued, workstation time


def file_of(cache: Path) -> Path:
    return cache.with_name(cache.name + SUFFIX)


def record(cache: Path, undelivered: Undelivered) -> None:
    """Replace the file whole (a reader never sees half of it); a failure is logged,
    never the operator's action's: that is in the outbox already."""
    target = file_of(cache)
    staging = target.with_name(target.name + ".new")
    try:
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w") as f:
            json.dump(undelivered._asdict(), f)
        os.replace(staging, target)
    except OSError as e:
        log.warning("could not record beside the cache how many actions wait to be sent: %s", e)


def recorded(cache: Path) -> Undelivered | None:
    """What the file beside the cache says, or None if it is missing or unreadable."""
    try:
        data = json.loads(file_of(cache).read_text())
        return Undelivered(int(data["count"]), None if data["oldest"] is None else float(data["oldest"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
