"""Roles and sessions, over real HTTP against the simulator.

The role matrix is walked whole: every operation in the served /openapi.json, as
every role, with no token, with an expired token and with a signed-out one. What a
role may do is console/domain/access.py's MATRIX, the table the console offers
from; the backend must refuse the rest with a 403 problem document."""

from __future__ import annotations

import stat
import time
import uuid

import httpx
import pytest

from console.domain.access import MATRIX, Permission, Role
from console.protocol.schema import API
from console.simulator.accounts import MAX_FAILURES

USERS = {Role.OPERATOR: "demo", Role.COORDINATOR: "coord", Role.SUPERVISOR: "super",
         Role.AUDITOR: "audit"}
OPEN = {("POST", f"{API}/session"), ("POST", f"{API}/session/refresh")}
SIGN_OUT = ("DELETE", f"{API}/session")

# A request each operation accepts past its permission check, by (method, path).
BODIES = {
    f"{API}/alerts/{{alert_id}}/acknowledge": {"note": "checked the matrix"},
    f"{API}/alerts/{{alert_id}}/claim": {"take_over": True},
    f"{API}/alerts/{{alert_id}}/close": {"outcome": "false_alarm", "note": "matrix"},
    f"{API}/alerts/{{alert_id}}/shelve": {"reason": "matrix", "until": "{in_an_hour}"},
    f"{API}/wearers/{{wearer_id}}/case": {"kind": "breach_identified", "at": "{now}",
                                           "alert_ids": ["{alert_id}"]},
    f"{API}/wearers/{{wearer_id}}/suspensions": {"reason": "hospital", "start": "{now}",
                                                  "end": "{in_an_hour}"},
    f"{API}/trail-requests": {"id": "{new_id}", "wearer_id": "{gps_wearer_id}", "purpose": "breach",
                              "reference_kind": "external", "reference": "matrix",
                              "justification": "walking the matrix", "start": "{an_hour_ago}",
                              "end": "{now}"},
    f"{API}/trail-requests/{{request_id}}/decision": {"approve": True, "note": "matrix"},
}


def sign_in(url: str, user: str) -> httpx.Response:
    return httpx.post(f"{url}{API}/session", json={"username": user, "password": user}, timeout=30)


def operations(url: str) -> list[tuple[str, str, str | None]]:
    """(method, path template, permission name) of every operation the backend serves."""
    doc = httpx.get(f"{url}/openapi.json").json()
    return [(method.upper(), path, op.get("x-permission"))
            for path, ops in doc["paths"].items() for method, op in ops.items()]


def call(url: str, method: str, path: str, token: str | None, ids: dict) -> httpx.Response:
    """One request of the operation, filled in with real ids; the event stream is
    only opened, for its status."""
    server_now = time.time()  # the simulator at speed 1 keeps the workstation's time
    fill = {**ids, "now": _iso(server_now), "in_an_hour": _iso(server_now + 3600),
            "an_hour_ago": _iso(server_now - 3600), "new_id": uuid.uuid4().hex}
    body = BODIES.get(path)
    if body is not None:
        body = {k: ([x.format(**fill) for x in v] if isinstance(v, list) else
                    v.format(**fill) if isinstance(v, str) else v) for k, v in body.items()}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    target = url + path.format(**ids)
    with httpx.stream(method, target, json=body, headers=headers, timeout=30) as resp:
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            return resp  # a live stream: its status is all that is asked
        resp.read()
        return resp


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@pytest.fixture(scope="module")
def sim():
    from console.embedded import EmbeddedSimulator
    s = EmbeddedSimulator(None, wearers=30, speed=1)
    yield s.url
    s.stop()


@pytest.fixture(scope="module")
def ids(sim):
    snap = httpx.get(f"{sim}{API}/snapshot", timeout=30, headers={
        "Authorization": f"Bearer {sign_in(sim, 'super').json()['token']}"}).json()
    alert = snap["alerts"][0]
    gps = next(d["wearer_id"] for d in snap["devices"] if d["kind"] == "gps")
    ids = {"alert_id": alert["id"], "wearer_id": alert["wearer_id"], "gps_wearer_id": gps}
    # Trail requests are their requester's: each role reads and fetches one of its own
    # (granted), and a supervisor decides another's (pending).
    for name, user, days in (("request_id", "demo", 1), ("supervisors_request", "super", 1),
                             ("pending_request", "demo", 10)):
        now = time.time() - 60
        body = {**BODIES[f"{API}/trail-requests"], "id": uuid.uuid4().hex, "wearer_id": gps,
                "start": _iso(now - days * 86400), "end": _iso(now)}
        created = httpx.post(f"{sim}{API}/trail-requests", json=body, timeout=30, headers={
            "Authorization": f"Bearer {sign_in(sim, user).json()['token']}",
            "Idempotency-Key": uuid.uuid4().hex})
        ids[name] = created.json()["id"]
    return ids


def ids_for(role: Role, path: str, ids: dict) -> dict:
    if path.endswith("/decision"):
        return {**ids, "request_id": ids["pending_request"]}
    return {**ids, "request_id": ids["supervisors_request"]} if role is Role.SUPERVISOR else ids


def test_every_operation_as_every_role_is_allowed_or_refused_as_the_matrix_says(sim, ids):
    ops = operations(sim)
    assert len(ops) >= 15
    for method, path, needs in ops:
        if (method, path) in OPEN or (method, path) == SIGN_OUT:
            continue
        assert needs is not None, f"{method} {path} names no permission"
    tokens = {role: sign_in(sim, user).json()["token"] for role, user in USERS.items()}
    walked = 0
    for role, token in tokens.items():
        for method, path, needs in ops:
            if needs is None:
                continue
            resp = call(sim, method, path, token, ids_for(role, path, ids))
            permission = Permission[needs]
            if permission in MATRIX[role]:
                # Done, or refused by the alert's own rules (a closed alert is not shelved).
                assert resp.status_code in (200, 204, 409), (role, method, path, resp.text)
            else:
                assert resp.status_code == 403, (role, method, path, resp.status_code)
                assert resp.headers["content-type"] == "application/problem+json"
                problem = resp.json()
                assert problem["title"] == "Not allowed"
                assert permission.value in problem["detail"] and role.value in problem["detail"]
            walked += 1
    assert walked == len(USERS) * sum(1 for *_, needs in ops if needs)


def test_no_token_and_a_token_from_another_backend_get_401_everywhere(sim, ids):
    foreign = "a" * 43  # the shape of this backend's tokens, issued by none of its sessions
    for method, path, _ in operations(sim):
        if (method, path) in OPEN:
            continue
        for token in (None, foreign):
            resp = call(sim, method, path, token, ids)
            assert resp.status_code == 401, (method, path, token)
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert resp.headers["content-type"] == "application/problem+json"


def test_an_expired_token_gets_401_everywhere_and_its_refresh_token_renews_it_once(start_backend):
    backend = start_backend(wearers=10, speed=1, extra=["--token-ttl", "1"])
    session = sign_in(backend.url, "super").json()
    assert session["expires_in"] == 1 and session["refresh_token"]
    snap = httpx.get(f"{backend.url}{API}/snapshot", timeout=30,
                     headers={"Authorization": f"Bearer {session['token']}"})
    alert = snap.json()["alerts"][0]
    ids = {"alert_id": alert["id"], "wearer_id": alert["wearer_id"],
           "gps_wearer_id": alert["wearer_id"], "request_id": "R-any"}
    time.sleep(1.5)
    for method, path, _ in operations(backend.url):
        if (method, path) in OPEN:
            continue
        resp = call(backend.url, method, path, session["token"], ids)
        assert resp.status_code == 401, (method, path)
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    refresh = {"refresh_token": session["refresh_token"]}
    renewed = httpx.post(f"{backend.url}{API}/session/refresh", json=refresh, timeout=30)
    assert renewed.status_code == 200 and renewed.json()["token"] != session["token"]
    assert renewed.json()["operator"]["roles"] == ["supervisor"]
    again = httpx.post(f"{backend.url}{API}/session/refresh", json=refresh, timeout=30)
    assert again.status_code == 401  # a refresh token works once


def test_signing_out_revokes_the_session_and_ends_its_event_stream(sim):
    session = sign_in(sim, "demo").json()
    auth = {"Authorization": f"Bearer {session['token']}"}
    with httpx.stream("GET", f"{sim}{API}/events", headers=auth,
                      timeout=httpx.Timeout(30, read=30)) as stream:
        assert stream.status_code == 200
        out = httpx.delete(f"{sim}{API}/session", headers=auth, timeout=30)
        assert out.status_code == 204
        started = time.monotonic()
        for _ in stream.iter_raw():  # ends within a heartbeat
            pass
        assert time.monotonic() - started < 20
    assert httpx.get(f"{sim}{API}/snapshot", headers=auth, timeout=30).status_code == 401
    refresh = httpx.post(f"{sim}{API}/session/refresh", timeout=30,
                         json={"refresh_token": session["refresh_token"]})
    assert refresh.status_code == 401


def test_a_wrong_password_is_answered_alike_for_unknown_users_and_locks_after_repeats(sim):
    def attempt(user: str, password: str) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        resp = httpx.post(f"{sim}{API}/session", json={"username": user, "password": password},
                          timeout=30)
        return resp, time.perf_counter() - started

    known, t_known = attempt("coord", "wrong")
    unknown, t_unknown = attempt("nobody-" + uuid.uuid4().hex[:6], "wrong")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    # Both verify an argon2 hash (about 0.1 s); an unknown name is not answered at once.
    assert t_unknown > 0.3 * t_known
    for user in ("coord", "nobody-locked"):
        for _ in range(MAX_FAILURES):
            attempt(user, "wrong")
        locked, _ = attempt(user, user)  # even the right password, while locked
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert locked.headers["content-type"] == "application/problem+json"


def test_the_state_file_keeps_only_hashes_of_tokens(start_backend, tmp_path):
    backend = start_backend(wearers=10, state=True)
    session = sign_in(backend.url, "demo").json()
    assert httpx.get(f"{backend.url}{API}/snapshot", timeout=30,
                     headers={"Authorization": f"Bearer {session['token']}"}).status_code == 200
    backend.stop()
    assert stat.S_IMODE((tmp_path / "backend.db").stat().st_mode) == 0o600  # owner-only
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("backend.db*"))
    assert stored  # the state is there
    for secret in (session["token"], session["refresh_token"]):
        assert secret.encode() not in stored
    # ...and still works after a restart: the hashes are what the backend checks.
    backend.start(1)
    assert httpx.get(f"{backend.url}{API}/snapshot", timeout=30,
                     headers={"Authorization": f"Bearer {session['token']}"}).status_code == 200


def test_sign_ins_refusals_and_sign_outs_are_in_the_backends_chained_trail(start_backend, tmp_path):
    import sqlite3
    import subprocess
    import sys

    backend = start_backend(wearers=10, state=True)
    sign_in(backend.url, "coord")
    session = sign_in(backend.url, "audit").json()
    refused = httpx.post(f"{backend.url}{API}/session", json={"username": "coord", "password": "x"})
    assert refused.status_code == 401
    auth = {"Authorization": f"Bearer {session['token']}"}
    snap = httpx.get(f"{backend.url}{API}/snapshot", headers=auth, timeout=30).json()
    wearer = snap["wearers"][0]["id"]
    assert httpx.get(f"{backend.url}{API}/wearers/{wearer}", headers=auth).status_code == 403
    assert httpx.delete(f"{backend.url}{API}/session", headers=auth).status_code == 204
    backend.stop()
    with sqlite3.connect(tmp_path / "backend.db") as db:
        trail = db.execute("SELECT operator, event, subject, detail FROM audit ORDER BY seq").fetchall()
    assert ("Demo Coordinator", "signed in", "coord", None) in trail
    assert ("coord", "sign-in refused", "coord", None) in trail
    assert ("Demo Auditor", "not allowed", f"{API}/wearers/{wearer}", "SEE_WEARER") in trail
    assert [e for e in trail if e[1] == "signed out"][0][0] == "Demo Auditor"
    verify = subprocess.run([sys.executable, "-m", "console.simulator", "audit", "verify",
                             "--state", str(tmp_path / "backend.db")], capture_output=True, text=True)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
