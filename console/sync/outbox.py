"""The outbox sender: delivers queued actions to the backend, oldest first,
exactly once (idempotency keys), retrying with backoff.

Each kind of action is delivered by its own function, registered in DELIVERIES
with `delivers(kind)`; the loop below takes any registered kind. An action is the
act of the operator who queued it: only they deliver it, under their own session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from console.domain.actions import (
    Acknowledge,
    Action,
    ActionKind,
    ActionState,
    Claim,
    Close,
    DecideTrailRequest,
    Kind,
    RecordCaseEntry,
    RequestTrail,
    Shelve,
    StartWork,
    Suspend,
    Unshelve,
)
from console.protocol.client import ACTED_AT, ApiError, Client, ProtocolError
from console.store import Store
from console.sync.clock import ServerClock, backoff_delay

log = logging.getLogger(__name__)

# kind -> async fn(client, payload, idempotency key). It returns once the backend
# has accepted the action, and raises ApiError for the backend's refusal, or an
# httpx, protocol or OS error when the outcome is unknown.
Delivery = Callable[[Client, Any, str], Awaitable[object]]
DELIVERIES: dict[Kind, Delivery] = {}


def delivers(kind: Kind) -> Callable[[Delivery], Delivery]:
    """Register the function that delivers actions of `kind`."""
    def register(fn: Delivery) -> Delivery:
        DELIVERIES[kind] = fn
        return fn
    return register


@delivers(ActionKind.ACKNOWLEDGE)
async def _acknowledge(client: Client, payload: Acknowledge, key: str) -> object:
    return await client.acknowledge(payload.alert_id, payload.note, key)


@delivers(ActionKind.CLAIM)
async def _claim(client: Client, payload: Claim, key: str) -> object:
    return await client.claim(payload.alert_id, payload.take_over, key)


@delivers(ActionKind.START_WORK)
async def _start_work(client: Client, payload: StartWork, key: str) -> object:
    return await client.start_work(payload.alert_id, key)


@delivers(ActionKind.CLOSE)
async def _close(client: Client, payload: Close, key: str) -> object:
    return await client.close(payload.alert_id, payload.outcome, payload.note, key)


@delivers(ActionKind.SHELVE)
async def _shelve(client: Client, payload: Shelve, key: str) -> object:
    return await client.shelve(payload.alert_id, payload.until, payload.reason, key)


@delivers(ActionKind.UNSHELVE)
async def _unshelve(client: Client, payload: Unshelve, key: str) -> object:
    return await client.unshelve(payload.alert_id, key)


@delivers(ActionKind.SUSPEND)
async def _suspend(client: Client, payload: Suspend, key: str) -> object:
    return await client.suspend(payload.suspension, key)


@delivers(ActionKind.CASE_ENTRY)
async def _case_entry(client: Client, payload: RecordCaseEntry, key: str) -> object:
    return await client.record_case_entry(payload.wearer_id, payload.entry, key)


@delivers(ActionKind.REQUEST_TRAIL)
async def _request_trail(client: Client, payload: RequestTrail, key: str) -> object:
    return await client.request_trail(payload.request, key)


@delivers(ActionKind.DECIDE_TRAIL)
async def _decide_trail(client: Client, payload: DecideTrailRequest, key: str) -> object:
    return await client.decide_trail_request(payload.request_id, payload.approve, payload.note, key)


class OutboxSender:
    def __init__(self, client: Client, writer_call: Callable[[Callable[[Store], object]], Awaitable],
                 pending_count: Callable[[int], None], clock: ServerClock):
        self._client = client
        self._clock = clock
        self._writer_call = writer_call
        self._pending_count = pending_count
        self.kick = asyncio.Event()  # set when there may be something to send

    def _signed_in(self) -> tuple[str | None, str | None]:
        """Who is signed in: the sign-in name the client's session was opened with,
        and the name the backend gave; (None, None) without a session. The stream
        signs in, and kicks the sender once it is live."""
        if self._client.token is None:
            return None, None
        operator = self._client.operator or {}
        name = operator.get("name")
        return self._client.username, name if isinstance(name, str) else None

    async def run(self) -> None:
        """Deliver the signed-in operator's queued actions oldest first; stop at the
        first that cannot be delivered now, so that their actions on one alert never
        overtake each other. Other operators' actions stay queued, saying whom they
        wait for."""
        failures = 0  # consecutive rounds that delivered nothing
        while True:
            # Cleared before reading, not after the round: an action queued while
            # this round is sending sets it again and gets a round of its own.
            self.kick.clear()
            delivered, blocked = 0, False
            try:
                pending: list[Action] = await self._writer_call(
                    lambda s: s.actions((ActionState.PENDING,)))
                self._pending_count(len(pending))
                who = self._signed_in()
                mine, others = [], []
                for action in pending:
                    (mine if action.queued_by(*who) else others).append(action)
                if who[0] is None:
                    # Nobody is signed in yet: look again after a while, even if the
                    # stream, which kicks the sender once live, does not get that far.
                    blocked = bool(pending)
                else:
                    await self._say_who_they_wait_for(others)
                for action in mine:
                    if not action.queued_by(*self._signed_in()):  # signed out meanwhile
                        blocked = True  # a round of its own, for whoever is signed in now
                        break
                    state, detail = await self._deliver(action)
                    await self._writer_call(lambda s, a=action, st=state, d=detail:
                                            s.settle(a.key, st, d, a.attempts + 1))
                    if state is ActionState.PENDING:
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

    async def _say_who_they_wait_for(self, others: list[Action]) -> None:
        """Another operator's queued actions are theirs to deliver: each says whom it
        waits for (written once, not at every round; not an outcome, so not audited)."""
        for action in others:
            if action.detail != action.waiting_detail:
                await self._writer_call(lambda s, a=action: s.settle(
                    a.key, ActionState.PENDING, a.waiting_detail, a.attempts))

    async def _deliver(self, action: Action) -> tuple[ActionState, str | None]:
        """Send one action through its kind's delivery. A repeated key is answered
        as the first time, so a retry after an unknown outcome cannot act twice."""
        delivery = DELIVERIES.get(action.kind)
        if delivery is None:  # a kind registered without a delivery: a bug, told
            log.error("no delivery for actions of kind %r", action.kind.value)
            return ActionState.PENDING, f"this console cannot send a {action.kind.value} action"
        token = ACTED_AT.set(self.acted_at(action))
        try:
            await delivery(self._client, action.payload, action.key)
            return ActionState.DELIVERED, None
        except ApiError as e:
            if e.status == 409:
                return ActionState.CONFLICT, str(e.problem.get("detail", e))
            if 400 <= e.status < 500 and e.status not in (401, 408, 429):
                return ActionState.REJECTED, str(e.problem.get("detail", e))
            return ActionState.PENDING, str(e)
        except (httpx.HTTPError, ProtocolError, OSError) as e:
            return ActionState.PENDING, f"{type(e).__name__}: {e}"
        finally:
            ACTED_AT.reset(token)

    def acted_at(self, action: Action) -> float:
        """When the operator acted, in the backend's time: the time queued, as far
        before the backend's now as it was before the workstation's (at the
        backend's clock rate: a training backend runs faster)."""
        now = self._clock.now()
        return now - max(0.0, time.time() - action.created_at) * self._clock.rate
