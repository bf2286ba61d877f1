"""HTTP client for the monitoring backend (async httpx)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson

from console.domain import Alert
from console.protocol.wire import (
    API,
    BadEvent,
    decode_alert,
    decode_device,
    decode_status,
    decode_wearer,
    parse_ts,
)

MAX_HEARTBEAT = 15.0  # the protocol promises a heartbeat at least this often


class ProtocolError(Exception):
    """The backend answered, but not as the protocol says."""


class AuthError(ProtocolError):
    pass


class ApiError(ProtocolError):
    def __init__(self, status: int, problem: dict):
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


@dataclass
class Snapshot:
    stream_id: str
    server_time: float
    clock_rate: float
    last_event_id: int
    wearers: list
    devices: list
    statuses: dict
    alerts: dict
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
    except orjson.JSONDecodeError:
        return {"title": resp.reason_phrase, "detail": resp.text[:200]}


class Client:
    def __init__(self, base_url: str, username: str, password: str,
                 read_timeout: float = 2 * MAX_HEARTBEAT):
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            # The read timeout is the heartbeat watchdog: a frozen backend that
            # keeps the socket open is noticed after it.
            timeout=httpx.Timeout(10.0, read=read_timeout),
            limits=httpx.Limits(max_connections=4),
        )
        self.username = username
        self._password = password
        self.token: str | None = None
        self.operator: dict | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def sign_in(self) -> dict:
        resp = await self._http.post(f"{API}/session",
                                     json={"username": self.username, "password": self._password})
        if resp.status_code == 401:
            raise AuthError(_problem(resp).get("title", "sign-in refused"))
        if resp.status_code != 200:
            raise ApiError(resp.status_code, _problem(resp))
        body = orjson.loads(resp.content)
        self.token, self.operator = body["token"], body["operator"]
        return self.operator

    def _headers(self, extra: dict | None = None) -> dict:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    async def _request(self, method: str, path: str, **kw) -> httpx.Response:
        """One request; a 401 (the backend forgot our session) signs in once more."""
        if self.token is None:
            await self.sign_in()
        headers = kw.pop("headers", None)
        resp = await self._http.request(method, path, headers=self._headers(headers), **kw)
        if resp.status_code == 401:
            await self.sign_in()
            resp = await self._http.request(method, path, headers=self._headers(headers), **kw)
        return resp

    async def snapshot(self) -> Snapshot:
        resp = await self._request("GET", f"{API}/snapshot")
        if resp.status_code != 200:
            raise ApiError(resp.status_code, _problem(resp))
        return decode_snapshot(resp.content)

    async def acknowledge(self, alert_id: str, note: str, key: str) -> Alert:
        resp = await self._request("POST", f"{API}/alerts/{alert_id}/acknowledge",
                                   json={"note": note}, headers={"Idempotency-Key": key})
        if resp.status_code != 200:
            raise ApiError(resp.status_code, _problem(resp))
        try:
            return decode_alert(orjson.loads(resp.content), None)
        except ValueError as e:  # bad JSON or not an alert
            raise ProtocolError(f"the answer to an acknowledgement is not an alert: {e}") from e

    @contextlib.asynccontextmanager
    async def events(self, last_event_id: int | None) -> AsyncIterator[Stream]:
        if self.token is None:
            await self.sign_in()
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        for attempt in range(2):
            async with self._http.stream("GET", f"{API}/events",
                                         headers=self._headers(headers)) as resp:
                if resp.status_code == 401 and attempt == 0:
                    await self.sign_in()
                    continue
                if resp.status_code != 200:
                    await resp.aread()
                    raise ApiError(resp.status_code, _problem(resp))
                server_time = resp.headers.get("X-Server-Time")
                yield Stream(
                    stream_id=resp.headers.get("X-Stream-Id", ""),
                    server_time=parse_ts(server_time, None) if server_time else None,
                    chunks=resp.aiter_raw(),
                )
                return


def decode_snapshot(content: bytes) -> Snapshot:
    """Decode a snapshot; an item that cannot be used is left out and its reason kept."""
    body = orjson.loads(content)
    if not isinstance(body, dict):
        raise ProtocolError("snapshot is not a JSON object")
    try:
        last_id = body["last_event_id"]
        if not isinstance(last_id, int) or last_id < 0:
            raise ProtocolError(f"snapshot last_event_id is not an id: {last_id!r:.40}")
        head = (str(body["stream_id"]), parse_ts(body["server_time"], None),
                float(body.get("clock_rate", 1.0)), last_id)
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"snapshot header unusable: {e}") from None
    rejected: list[str] = []

    def each(items, decode):
        for item in items if isinstance(items, list) else []:
            try:
                yield decode(item)
            except BadEvent as e:
                rejected.append(str(e))

    wearers = list(each(body.get("wearers"), decode_wearer))
    devices, statuses = [], {}
    for item in body.get("devices") or []:
        try:
            dev = decode_device(item)
            status = item.get("status")
            if status is not None:
                statuses[dev.id] = decode_status(status, head[1])
            devices.append(dev)
        except (BadEvent, AttributeError) as e:
            rejected.append(str(e))
    alerts = {a.id: a for a in each(body.get("alerts"), lambda d: decode_alert(d, head[1]))}
    return Snapshot(*head, wearers, devices, statuses, alerts, rejected)
