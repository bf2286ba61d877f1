"""HTTP client for the monitoring backend (async httpx)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import msgspec
import orjson
from msgspec import Raw

from console.changes import Picture
from console.domain import Alert, CaseEntry, Outcome, Suspension, WearerRecord
from console.domain.trails import AccessLog, RequestState, Trail, TrailRequest
from console.protocol import schema, trails
from console.protocol.schema import API, BadEvent

# When the operator did what is being sent (server time): an action queued offline
# is sent later, and the backend records it at the time it was done. The outbox
# sender sets it around each delivery; every request made meanwhile says it.
ACTED_AT: ContextVar[float | None] = ContextVar("acted_at", default=None)

RENEW_BEFORE = 60.0  # seconds before a token expires that it is renewed
SIGN_OUT_TIMEOUT = 5.0  # a backend out of reach must not hold up signing out
MAX_HEARTBEAT = 15.0  # the protocol promises a heartbeat at least this often
# A 100,000-wearer snapshot with its open alerts is about 26 MB; a backend that
# sends far more is broken or hostile, and must not exhaust the workstation's memory.
MAX_SNAPSHOT_BYTES = 256 << 20
# A 31-day trail, one point a minute, is about 3 MB.
MAX_TRAIL_BYTES = 16 << 20


class ProtocolError(Exception):
    """The backend answered, but not as the protocol says."""


class AuthError(ProtocolError):
    pass


class ApiError(ProtocolError):
    def __init__(self, status: int, problem: dict):
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")

    def __reduce__(self):  # it crosses from the sync process to the window's
        return ApiError, (self.status, self.problem)


@dataclass
class Snapshot:
    stream_id: str
    server_time: float
    clock_rate: float
    last_event_id: int
    picture: Picture
    rejected: list[str]  # reasons for items that could not be used


@dataclass
class Stream:
    stream_id: str
    server_time: float | None
    chunks: AsyncIterator[bytes]


def _problem(resp: httpx.Response) -> dict:
    try:
        body = orjson.loads(resp.content)
        return body if isinstance(body, dict) else {"detail": str(body)}
    except orjson.JSONDecodeError:  # not an EM backend's answer: say so, not its page
        kind = resp.headers.get("Content-Type", "no content type").split(";")[0][:60]
        return {"title": resp.reason_phrase,
                "detail": f"the answer is not a problem document ({kind}); is this the EM backend?"}


class Client:
    def __init__(self, base_url: str, username: str, password: str,
                 read_timeout: float = 2 * MAX_HEARTBEAT, ca_bundle: str | None = None):
        # A centre's backend may have a certificate from its own CA: trust the PEM
        # bundle given, else the usual public CAs.
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            # The read timeout is the heartbeat watchdog: a frozen backend that
            # keeps the socket open is noticed after it.
            timeout=httpx.Timeout(10.0, read=read_timeout),
            limits=httpx.Limits(max_connections=4),
            verify=ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True,
        )
        self.username = username
        self._password = password
        self.token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = math.inf  # monotonic time the token stops working
        self._renewing = asyncio.Lock()  # the stream, the outbox and operations share a session
        self.operator: dict | None = None
        self._refused: str | None = None  # why the backend refused the credentials kept

    async def aclose(self) -> None:
        await self._http.aclose()

    def use_credentials(self, username: str, password: str) -> None:
        """Sign in as this operator from now on, unchecked (offline); a session
        opened as anyone else is forgotten."""
        if (username, password) != (self.username, self._password):
            self._forget_session()
            self._refused = None
        self.username, self._password = username, password

    async def sign_in(self, username: str | None = None, password: str | None = None) -> dict:
        """Open a session, as the operator kept or, given a name and password, as
        them: they are kept (to sign in again after a 401) once the backend
        accepts them, and a refused attempt leaves the client as it was."""
        kept = username is None
        if kept:
            if self._refused:  # asking again would only lock the account out
                raise AuthError(self._refused)
            username, password = self.username, self._password
        resp = await self._http.post(f"{API}/session", content=schema.encode(
            schema.SignIn(username, password)), headers={"Content-Type": "application/json"})
        if resp.status_code in (401, 429):  # wrong, or locked after too many wrong ones
            problem = _problem(resp)
            refused = problem.get("title", "sign-in refused") + (
                f" ({problem['detail']})" if resp.status_code == 429 and problem.get("detail") else "")
            if kept:
                self._refused = refused
            raise AuthError(refused)
        if resp.status_code != 200:
            raise ApiError(resp.status_code, _problem(resp))
        self._use(resp, "sign-in")
        self.username, self._password, self._refused = username, password, None
        return self.operator

    def _use(self, resp: httpx.Response, what: str) -> None:
        """Work in the session this answer opened."""
        asked_at = time.monotonic()
        try:
            session = schema.decode(resp.content, schema.Session)
        except BadEvent as e:
            raise ProtocolError(f"the answer to {what} is not a session: {e}") from None
        self.token, self.operator = session.token, msgspec.to_builtins(session.operator)
        self._refresh_token = session.refresh_token
        self._expires_at = asked_at + session.expires_in if session.expires_in else math.inf

    def _forget_session(self) -> None:
        self.token = self.operator = self._refresh_token = None
        self._expires_at = math.inf

    async def _renew(self, stale: str | None) -> None:
        """A live session again, in place of the `stale` token: refreshed with the
        refresh token if there is one and the backend still takes it, else signed
        in afresh (the backend may have forgotten the session)."""
        async with self._renewing:
            if self.token != stale:  # renewed meanwhile, for another request
                return
            await self._refresh_or_sign_in()

    async def _refresh_or_sign_in(self) -> None:
        if self._refresh_token is not None:
            resp = await self._http.post(
                f"{API}/session/refresh", content=schema.encode(schema.Refresh(self._refresh_token)),
                headers={"Content-Type": "application/json"})
            self._refresh_token = None  # it works once, answered or not
            if resp.status_code == 200:
                self._use(resp, "refreshing the session")
                return
        await self.sign_in()

    async def _live_token(self) -> None:
        # Renewed a little before it expires, so that no request is refused for it.
        if self.token is None or time.monotonic() > self._expires_at - RENEW_BEFORE:
            await self._renew(self.token)

    async def sign_out(self) -> None:
        """End the session on the backend (its tokens stop working at once), then forget it."""
        if self.token is not None:
            try:
                await self._http.delete(f"{API}/session", headers={"Authorization": f"Bearer {self.token}"},
                                        timeout=SIGN_OUT_TIMEOUT)
            finally:
                self._forget_session()

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", **(extra or {})}
        if (acted := ACTED_AT.get()) is not None:
            headers["Acted-At"] = schema.wire_time(acted).isoformat()
        return headers

    async def _request(self, method: str, path: str, **kw) -> httpx.Response:
        """One request; a 401 (the session expired, or the backend forgot it)
        renews the session once."""
        await self._live_token()
        headers, token = kw.pop("headers", None), self.token
        resp = await self._http.request(method, path, headers=self._headers(headers), **kw)
        if resp.status_code == 401:
            await self._renew(token)
            resp = await self._http.request(method, path, headers=self._headers(headers), **kw)
        return resp

    @contextlib.asynccontextmanager
    async def _stream(self, path: str, headers: dict | None = None,
                      params: dict | None = None) -> AsyncIterator[httpx.Response]:
        """A GET whose answer is read as it arrives, once it is a 200; a 401 (the
        session expired, or the backend forgot it) renews the session once."""
        await self._live_token()
        for attempt in range(2):
            token = self.token
            async with self._http.stream("GET", path, headers=self._headers(headers),
                                         params=params) as resp:
                if resp.status_code == 401 and attempt == 0:
                    await self._renew(token)
                    continue
                if resp.status_code != 200:
                    await resp.aread()
                    raise ApiError(resp.status_code, _problem(resp))
                yield resp
                return

    async def snapshot(self, max_bytes: int = MAX_SNAPSHOT_BYTES) -> Snapshot:
        """The whole picture, read in chunks so that an oversized answer is refused
        once it passes max_bytes, before it is all in memory."""
        async with self._stream(f"{API}/snapshot") as resp:
            body = await _read(resp, max_bytes, "snapshot")
        return decode_snapshot(body)

    async def wearer_record(self, wearer_id: str) -> WearerRecord:
        """One wearer's record for the wearer view: personal data, which the backend
        audits as viewed by the signed-in operator. ApiError 404 for an unknown id."""
        resp = await self._request("GET", f"{API}/wearers/{quote(wearer_id, safe='')}")
        return _answer(resp, schema.WearerRecord, "the wearer's record was refused")

    async def record_case_entry(self, wearer_id: str, entry: CaseEntry, key: str) -> CaseEntry:
        """An entry on the wearer's breach case, as the backend recorded it."""
        resp = await self._request(
            "POST", f"{API}/wearers/{quote(wearer_id, safe='')}/case",
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            content=schema.encode(schema.NewCaseEntry.from_domain(entry)))
        return _answer(resp, schema.CaseEntry, "the answer to a case entry is not one")

    async def suspend(self, suspension: Suspension, key: str) -> None:
        """Suspend a wearer's monitoring by design; ApiError with the backend's reason."""
        resp = await self._request(
            "POST", f"{API}/wearers/{quote(suspension.wearer_id, safe='')}/suspensions",
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            content=schema.encode(schema.Suspension.from_domain(suspension)))
        if resp.status_code != 200:
            raise ApiError(resp.status_code, _problem(resp))

    # -- the operators' transitions on an alert (docs/protocol.md) ----------------
    # Each answers the alert as it now stands, or raises ApiError with the backend's
    # problem document (a 409's carries the alert as it stands instead).

    async def acknowledge(self, alert_id: str, note: str, key: str) -> Alert:
        return await self._transition(alert_id, "acknowledge", key, schema.Acknowledgement(note))

    async def claim(self, alert_id: str, take_over: bool, key: str) -> Alert:
        return await self._transition(alert_id, "claim", key, schema.Claim(take_over))

    async def start_work(self, alert_id: str, key: str) -> Alert:
        return await self._transition(alert_id, "start", key)

    async def close(self, alert_id: str, outcome: Outcome, note: str, key: str) -> Alert:
        return await self._transition(alert_id, "close", key, schema.Closing(outcome, note))

    async def shelve(self, alert_id: str, until: float, reason: str, key: str) -> Alert:
        return await self._transition(alert_id, "shelve", key,
                                      schema.Shelving(schema.wire_time(until), reason))

    async def unshelve(self, alert_id: str, key: str) -> Alert:
        return await self._transition(alert_id, "unshelve", key)

    async def _transition(self, alert_id: str, verb: str, key: str,
                          body: msgspec.Struct | None = None) -> Alert:
        headers = {"Idempotency-Key": key}
        if body is not None:
            headers["Content-Type"] = "application/json"
        resp = await self._request("POST", f"{API}/alerts/{alert_id}/{verb}", headers=headers,
                                   content=b"" if body is None else schema.encode(body))
        return _answer(resp, schema.Alert, f"the answer to {verb} is not an alert")

    # -- trails behind the legal-purpose gate (docs/protocol.md, "Trails") ----------
    # The backend checks purpose, reference, window, grant and requester; each raises
    # ApiError with its problem document when it refuses (403, 404, 409, 422).

    async def request_trail(self, request: TrailRequest, key: str) -> TrailRequest:
        """Ask for a trail: the request as the backend holds it, granted or pending."""
        resp = await self._request(
            "POST", f"{API}/trail-requests",
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            content=schema.encode(trails.NewTrailRequest.from_domain(request)))
        return _answer(resp, trails.TrailRequest, "the answer to a trail request is not one",
                       trails.TrailRequest.to_domain)

    async def decide_trail_request(self, request_id: str, approve: bool, note: str,
                                   key: str) -> TrailRequest:
        """A supervisor's approval or refusal of another's pending request."""
        resp = await self._request(
            "POST", f"{API}/trail-requests/{quote(request_id, safe='')}/decision",
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            content=schema.encode(trails.Decision(approve, note)))
        return _answer(resp, trails.TrailRequest, "the answer to a decision is not a trail request",
                       trails.TrailRequest.to_domain)

    async def trail_requests(self, state: RequestState | None = None,
                             wearer_id: str | None = None) -> list[TrailRequest]:
        """One's own requests, and for a supervisor every pending one; newest first."""
        params = {k: v for k, v in (("state", state), ("wearer_id", wearer_id)) if v is not None}
        resp = await self._request("GET", f"{API}/trail-requests", params=params)
        return _answer(resp, list[trails.TrailRequest], "the trail requests are not a list of them",
                       lambda requests: [r.to_domain() for r in requests])

    async def trail_request(self, request_id: str) -> TrailRequest:
        resp = await self._request("GET", f"{API}/trail-requests/{quote(request_id, safe='')}")
        return _answer(resp, trails.TrailRequest, "the trail request is not one",
                       trails.TrailRequest.to_domain)

    async def trail(self, request_id: str, start: float | None = None,
                    end: float | None = None) -> Trail:
        """The points of a granted window (the whole grant unless told), its bad
        points skipped and counted; refused whole past MAX_TRAIL_BYTES."""
        params = {k: schema.wire_time(v).isoformat() for k, v in (("start", start), ("end", end))
                  if v is not None}
        async with self._stream(f"{API}/trail-requests/{quote(request_id, safe='')}/trail",
                                params=params) as resp:
            body = await _read(resp, MAX_TRAIL_BYTES, "trail")
        try:
            return schema.decode(body, trails.TrailPoints).to_domain()
        except BadEvent as e:
            raise ProtocolError(f"trail refused: {e}") from None

    async def trail_access(self, wearer_id: str, since: float | None = None,
                           until: float | None = None) -> AccessLog:
        """Who accessed the wearer's trail in the period, or an empty log that says none did."""
        params = {k: schema.wire_time(v).isoformat() for k, v in (("since", since), ("until", until))
                  if v is not None}
        resp = await self._request("GET", f"{API}/wearers/{quote(wearer_id, safe='')}/trail-access",
                                   params=params)
        return _answer(resp, trails.AccessLog, "the trail access log is not one",
                       trails.AccessLog.to_domain)

    @contextlib.asynccontextmanager
    async def events(self, last_event_id: int | None) -> AsyncIterator[Stream]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        async with self._stream(f"{API}/events", headers) as resp:
            server_time = resp.headers.get("X-Server-Time")
            yield Stream(
                stream_id=resp.headers.get("X-Stream-Id", ""),
                server_time=schema.timestamp(server_time) if server_time else None,
                chunks=resp.aiter_raw(),
            )


def _answer(resp: httpx.Response, type_: type, what: str,
            to_domain=lambda body: body.to_domain(None)):
    """A 200's body decoded as `type_`, then to_domain(it); ApiError with the backend's
    problem document otherwise, ProtocolError saying `what` and why if the body does
    not decode."""
    if resp.status_code != 200:
        raise ApiError(resp.status_code, _problem(resp))
    try:
        return to_domain(schema.decode(resp.content, type_))
    except BadEvent as e:
        raise ProtocolError(f"{what}: {e}") from None


async def _read(resp: httpx.Response, max_bytes: int, what: str) -> bytes:
    """A streamed answer's body, refused as soon as it is known to pass max_bytes
    (by its Content-Length, or as it arrives), before it is all in memory."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise ProtocolError(f"{what} of {int(declared):,} bytes refused: the limit is {max_bytes:,}")
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ProtocolError(f"{what} refused: larger than the limit of {max_bytes:,} bytes")
    return bytes(body)


def decode_snapshot(content: bytes) -> Snapshot:
    """Decode a snapshot. An item that cannot be used is left out and its reason
    kept; a snapshot whose shape is wrong (a list that is not a list, an id listed
    twice) raises ProtocolError and is refused whole, so the cache keeps its last
    good picture."""
    try:
        body = schema.decode(content, schema.SnapshotOf[Raw, Raw, Raw])
        server_time = schema.instant(body.server_time, None, "server_time")
    except BadEvent as e:
        raise ProtocolError(f"snapshot refused: {e}") from None
    rejected: list[str] = []

    def each(name: str, items: list[Raw], decode):
        for i, item in enumerate(items):
            try:
                yield decode(item)
            except BadEvent as e:
                rejected.append(f"{name}[{i}]: {e}")

    wearers = _unique("wearer", each(
        "wearers", body.wearers, lambda raw: schema.decode(raw, schema.Wearer).to_domain()))
    devices, statuses = [], {}
    for device, status in each("devices", body.devices,
                               lambda raw: schema.decode(raw, schema.Device).to_domain(server_time)):
        devices.append(device)
        if status is not None:
            statuses[device.id] = status
    devices = _unique("device", devices)
    alerts = {a.id: a for a in _unique("alert", each(
        "alerts", body.alerts, lambda raw: schema.decode(raw, schema.Alert).to_domain(server_time)))}
    return Snapshot(body.stream_id, server_time, body.clock_rate, body.last_event_id,
                    Picture(wearers, devices, statuses, alerts), rejected)


def _unique(what: str, items) -> list:
    """The items, refusing the snapshot if two share an id: which one is right is
    unknowable, and the cache's primary keys would refuse it anyway."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.id in seen:
            raise ProtocolError(f"snapshot lists {what} {item.id[:40]} twice")
        seen.add(item.id)
        out.append(item)
    return out
