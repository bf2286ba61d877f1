"""Reading rows back: each decoder checks every value it uses against what this
console writes, and raises ValueError (or TypeError) for anything else, so that
the caller skips that row instead of failing to start."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from console.domain import EARLIEST

log = logging.getLogger(__name__)

LATEST = datetime(2100, 1, 1).timestamp()  # with EARLIEST: a flipped exponent or sign bit
LOGGED_PER_LOAD = 20  # damaged rows logged one by one; a ruined table is not 100,000 lines


class Damaged(ValueError):
    """A stored value that this console does not write."""


def decoded(table: str, rows: Iterable[tuple], decode: Callable, damaged: list) -> Iterator:
    """Each row decoded; a damaged one is logged, added to `damaged` and skipped."""
    for row in rows:
        try:
            yield decode(row)
        except (ValueError, TypeError) as e:  # what the decoders raise for a bad value
            damaged.append((table, row[0]))
            if len(damaged) <= LOGGED_PER_LOAD:
                log.warning("skipped a damaged row of the cache: %s %r: %s", table, row[0], e)


def text(v: object) -> str:
    if not isinstance(v, str):
        raise Damaged(f"expected text, found {v!r:.40}")
    return v


def opt_text(v: object) -> str | None:
    return None if v is None else text(v)


def number(v: object, low: float = -math.inf, high: float = math.inf) -> float:
    # type(), not isinstance(): True is an int. NaN fails the range check.
    if type(v) not in (int, float) or not low <= v <= high:
        raise Damaged(f"expected a number from {low} to {high}, found {v!r:.40}")
    return float(v)


def moment(v: object) -> float:
    return number(v, EARLIEST, LATEST)


def flag(v: object) -> bool:
    if type(v) is not int or v not in (0, 1):
        raise Damaged(f"expected 0 or 1, found {v!r:.40}")
    return bool(v)


def opt_flag(v: object) -> bool | None:
    return None if v is None else flag(v)


def one_of(v: object, allowed: tuple) -> object:
    if v not in allowed:
        raise Damaged(f"expected one of {allowed}, found {v!r:.40}")
    return v


