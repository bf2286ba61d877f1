"""The outbox sender: delivers queued actions to the backend, oldest first,
exactly once (idempotency keys), retrying with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from console.domain.actions import Action
from console.protocol.client import ApiError, Client, ProtocolError
from console.store import Store
from console.sync.clock import backoff_delay

log = logging.getLogger(__name__)


class OutboxSender:
    def __init__(self, client: Client, writer_call: Callable[[Callable[[Store], object]], Awaitable],
                 pending_count: Callable[[int], None]):
        self._client = client
        self._writer_call = writer_call
        self._pending_count = pending_count
        self.kick = asyncio.Event()  # set when there may be something to send

    async def run(self) -> None:
        """Deliver queued actions oldest first; stop at the first that cannot be
        delivered now, so that actions on one alert never overtake each other."""
        failures = 0  # consecutive rounds that delivered nothing
        while True:
            # Cleared before reading, not after the round: an action queued while
            # this round is sending sets it again and gets a round of its own.
            self.kick.clear()
            delivered, blocked = 0, False
            try:
                pending: list[Action] = await self._writer_call(lambda s: s.actions(("pending",)))
                self._pending_count(len(pending))
                for action in pending:
                    state, detail = await self._deliver(action)
                    await self._writer_call(lambda s, a=action, st=state, d=detail:
                                            s.settle(a.key, st, d, a.attempts + 1))
                    if state == "pending":
                        blocked = True
                        break
                    delivered += 1
                    self._pending_count(len(pending) - delivered)
            except Exception:  # e.g. a full disk: the actions stay queued; try again later
                log.exception("the outbox could not be sent")
                blocked = True
            failures = 0 if delivered or not blocked else failures + 1
            if not blocked:
                await self.kick.wait()
                continue
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the wait ends, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff_delay(failures)):
                    await self.kick.wait()

    async def _deliver(self, action: Action) -> tuple[str, str | None]:
        """Send one action. A repeated key is answered as the first time, so a
        retry after an unknown outcome cannot act twice."""
        try:
            await self._client.acknowledge(action.alert_id, action.note, action.key)
            return "delivered", None
        except ApiError as e:
            if e.status == 409:
                return "conflict", str(e.problem.get("detail", e))
            if 400 <= e.status < 500 and e.status not in (401, 408, 429):
                return "rejected", str(e.problem.get("detail", e))
            return "pending", str(e)
        except (httpx.HTTPError, ProtocolError, OSError) as e:
            return "pending", f"{type(e).__name__}: {e}"
