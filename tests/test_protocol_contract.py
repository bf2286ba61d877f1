"""The protocol holds its own contract, over real HTTP: a stranger is refused before
the backend reads anything, bodies are bounded, 400 and 422 mean what
docs/protocol.md says, nothing is loaded from a CDN, idempotency keys belong to one
operator, and the console never guesses a password or sends one in clear."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from test_cli import env

from console.embedded import EmbeddedSimulator
from console.protocol.client import Client
from console.protocol.schema import API
from ui.cli import parse_args

PROBLEM = "application/problem+json"
MAX_BODY = 64 << 10  # docs/protocol.md
HUNDRED_MB = 100 << 20


@pytest.fixture
def backend(start_backend):
    return start_backend(wearers=200, speed=60)


def ack_path(backend, nth: int = 0) -> str:
    alerts = [a for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged"]
    return f"{API}/alerts/{alerts[nth]['id']}/acknowledge"


def sign_in(url: str, user: str) -> dict:
    token = httpx.post(f"{url}{API}/session", json={"username": user, "password": user}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def head_only(url: str, head: str, timeout: float = 5.0) -> bytes:
    """Send a request's head but none of its body, and read the answer's head: only
    a backend that decides without the body answers at all."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


# -- 13: the token before the body, and bodies bounded --------------------------


@pytest.mark.parametrize("body", [b"{", b'{"note": 5}', b"not json", b""])
def test_without_a_token_the_answer_is_401_whatever_the_body(backend, body):
    resp = httpx.post(f"{backend.url}{ack_path(backend)}", content=body,
                      headers={"Idempotency-Key": "k" * 10, "Content-Type": "application/json"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == PROBLEM and resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["status"] == 401


def test_a_body_the_backend_will_refuse_is_refused_before_it_is_sent(backend):
    stranger = head_only(backend.url, f"POST {ack_path(backend)} HTTP/1.1\nHost: x\n"
                                      f"Content-Type: application/json\n"
                                      f"Content-Length: {HUNDRED_MB}\n")
    assert stranger.startswith(b"HTTP/1.1 401 ")
    too_big = head_only(backend.url, f"POST {ack_path(backend)} HTTP/1.1\nHost: x\n"
                                     f"Authorization: Bearer {backend.token}\n"
                                     f"Idempotency-Key: {uuid.uuid4()}\n"
                                     f"Content-Type: application/json\n"
                                     f"Content-Length: {MAX_BODY + 1}\n")
    assert too_big.startswith(b"HTTP/1.1 413 ") and PROBLEM.encode() in too_big
    sign_in_too_big = head_only(backend.url, f"POST {API}/session HTTP/1.1\nHost: x\n"
                                             f"Content-Type: application/json\n"
                                             f"Content-Length: {HUNDRED_MB}\n")
    assert sign_in_too_big.startswith(b"HTTP/1.1 413 ")


def test_a_strangers_100_MB_body_does_not_grow_the_backend(backend):
    path = ack_path(backend)
    before = peak_rss_mb(backend.process.pid)

    def body():  # chunked: no Content-Length to refuse it by
        for _ in range(HUNDRED_MB >> 20):
            yield b" " * (1 << 20)

    resp = httpx.post(f"{backend.url}{path}", content=body(), timeout=60,
                      headers={"Idempotency-Key": "k" * 10, "Content-Type": "application/json"})
    assert peak_rss_mb(backend.process.pid) - before < 20
    assert resp.status_code == 401


def test_a_body_over_the_limit_is_413_even_without_a_length(backend):
    path = ack_path(backend)
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}

    def body():
        yield b'{"note": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"x" * 1000
        yield b'"}'

    for content in (body(), b"".join(body())):  # chunked, then with a Content-Length
        resp = backend.post(path, content=content, headers=headers)
        assert resp.status_code == 413, resp.text
        assert resp.headers["content-type"] == PROBLEM and resp.json()["status"] == 413
    # The largest valid note, every character escaped as a surrogate pair, still fits.
    longest = '{"note": "' + "\\ud83d\\ude00" * 2000 + '"}'
    resp = backend.post(path, content=longest.encode(), headers=headers)
    assert resp.status_code == 200, resp.text


# -- 14: 400 for what is not JSON, 422 for JSON that is not valid ------------------


@pytest.mark.parametrize("content_type, body, status", [
    ("application/json", b"{", 400),
    ("application/json", b"\xff\xfe", 400),
    ("application/json", b"", 400),
    ("text/plain", b'{"note": "x"}', 400),
    (None, b'{"note": "x"}', 400),
    ("application/json", b'{"note": 5}', 422),
    ("application/json", b'"a note"', 422),
    ("application/json", b"{}", 422),
])
def test_a_body_that_is_not_json_is_400_and_invalid_json_is_422(backend, content_type, body, status):
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if content_type:
        headers["Content-Type"] = content_type
    resp = backend.post(ack_path(backend), content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM and resp.json()["status"] == status
    session = httpx.post(f"{backend.url}{API}/session", content=body,
                         headers={"Content-Type": content_type} if content_type else {})
    assert session.status_code == status, session.text


# -- 15: no interactive docs, nothing from a CDN ---------------------------------


def test_no_interactive_docs_and_no_page_loads_anything_from_elsewhere(backend):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert backend.get(path).status_code == 404, path
    pages = [httpx.get(f"{backend.url}/openapi.json")] + [
        backend.get(path) for path in ("/", "/docs", "/redoc", "/docs/oauth2-redirect")]
    assert pages[0].status_code == 200  # the machine-readable contract needs no sign-in
    for page in pages:
        assert not re.search(r"https?://", page.text), (page.url, page.text[:200])


# -- 17: idempotency keys belong to one operator ---------------------------------


def test_an_idempotency_key_belongs_to_the_operator_who_sent_it(start_backend):
    first = start_backend(wearers=200, speed=60, state=True)
    demo, demo2 = sign_in(first.url, "demo"), sign_in(first.url, "demo2")
    paths = [ack_path(first, n) for n in range(3)]
    key, other_key = str(uuid.uuid4()), str(uuid.uuid4())

    def ack(url, who, path, k):
        return httpx.post(f"{url}{path}", json={"note": "called"},
                          headers={**who, "Idempotency-Key": k})

    mine = ack(first.url, demo, paths[0], key)
    assert mine.status_code == 200 and mine.json()["history"][-1]["by"] == "Demo Operator"
    # Another operator's identical request is new, not a replay of demo's answer.
    theirs = ack(first.url, demo2, paths[0], key)
    assert theirs.status_code == 409, theirs.text
    # Nor is another operator's key taken as reused for a different request.
    assert ack(first.url, demo, paths[1], other_key).status_code == 200
    theirs_too = ack(first.url, demo2, paths[2], other_key)
    assert theirs_too.status_code == 200, theirs_too.text
    assert theirs_too.json()["history"][-1]["by"] == "Second Operator"

    first.kill()
    second = start_backend(wearers=200, speed=60, state=True)
    assert ack(second.url, demo, paths[0], key).content == mine.content
    assert ack(second.url, demo2, paths[0], key).content == theirs.content
    assert ack(second.url, demo2, paths[2], other_key).content == theirs_too.content


def test_keys_in_a_state_file_from_before_they_were_scoped_still_answer(start_backend, tmp_path):
    first = start_backend(wearers=50, speed=60, state=True)
    path, key = ack_path(first), str(uuid.uuid4())
    mine = first.post(path, json={"note": "called"}, headers={"Idempotency-Key": key})
    assert mine.status_code == 200
    first.kill()
    with contextlib.closing(sqlite3.connect(tmp_path / "backend.db")) as db:  # the table as it was
        db.executescript("""
            CREATE TABLE old (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
                              status INTEGER NOT NULL, body BLOB NOT NULL);
            INSERT INTO old SELECT key, fingerprint, status, body FROM idempotency;
            DROP TABLE idempotency;
            ALTER TABLE old RENAME TO idempotency;""")
    second = start_backend(wearers=50, speed=60, state=True)
    again = second.post(path, json={"note": "called"}, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.content == mine.content


# -- 16: the console's credentials ----------------------------------------------


def cli_env(tmp_path, **extra) -> dict:
    return {**env(tmp_path), **extra}  # with the tests' own keyring


def headless(backend_url: str, tmp_path, *options, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "--headless", "--backend", backend_url,
         "--cache", str(tmp_path / "c.db"), "--status-interval", "0.5", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_headless_on_a_real_backend_without_a_password_says_so_and_exits(backend, tmp_path):
    proc = headless(backend.url, tmp_path, env=cli_env(tmp_path, EM_CONSOLE_USER="demo"))
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2 and "EM_CONSOLE_PASSWORD" in err, err


@pytest.mark.parametrize("url, refused", [
    ("http://monitoring.example.internal", True),
    ("http://192.0.2.1:8765", True),
    ("http://127.0.0.1:8765", False),
    ("http://127.3.2.1:8765", False),
    ("http://[::1]:8765", False),
    ("http://localhost:8765/", False),
    ("https://monitoring.example.internal", False),
])
def test_plain_http_is_refused_beyond_this_machine(url, refused, capsys):
    if refused:
        with pytest.raises(SystemExit) as exit:
            parse_args(["--backend", url])
        assert exit.value.code == 2
        assert "--allow-insecure-http" in capsys.readouterr().err
    else:
        assert parse_args(["--backend", url]).backend == url
    assert parse_args(["--backend", url, "--allow-insecure-http"]).allow_insecure_http


@pytest.mark.parametrize("url", ["ftp://monitoring.example.internal", "monitoring.example.internal"])
def test_a_backend_that_is_not_an_http_url_is_refused(url, capsys):
    with pytest.raises(SystemExit) as exit:
        parse_args(["--backend", url])
    assert exit.value.code == 2 and "https://" in capsys.readouterr().err


def test_plain_http_in_clear_is_refused_or_allowed_with_a_warning(tmp_path):
    env = cli_env(tmp_path, EM_CONSOLE_USER="demo", EM_CONSOLE_PASSWORD="demo")
    refused = headless("http://192.0.2.1:9", tmp_path, env=env)
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 2 and "--allow-insecure-http" in err, err
    allowed = headless("http://192.0.2.1:9", tmp_path, "--allow-insecure-http", env=env)
    try:
        assert allowed.stdout.readline()  # the first status line: it runs
    finally:
        allowed.send_signal(signal.SIGTERM)
        _, err = allowed.communicate(timeout=30)
    assert allowed.returncode == 0
    assert "WARNING root: the password and token travel in clear to http://192.0.2.1:9" in err, err


@pytest.fixture
def tls_backend(tmp_path):
    """The simulator on https with a certificate from a CA of our own, as a centre's
    closed network has: (url, path of the CA's certificate)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")
    sim = EmbeddedSimulator(None, 50, 60, ["--tls-cert", str(tmp_path / "server.pem"),
                                           "--tls-key", str(tmp_path / "server.key")])
    yield sim.url, str(tmp_path / "ca.pem")
    sim.stop()


def test_the_client_trusts_the_ca_bundle_it_is_given(tls_backend):
    url, ca = tls_backend
    assert url.startswith("https://")

    async def sign_in_with(**kw):
        client = Client(url, "demo", "demo", **kw)
        try:
            return await client.sign_in()
        finally:
            await client.aclose()

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(sign_in_with())
    assert asyncio.run(sign_in_with(ca_bundle=ca))["name"] == "Demo Operator"


def test_headless_syncs_over_https_with_ca_bundle(tls_backend, tmp_path):
    url, ca = tls_backend
    env = cli_env(tmp_path, EM_CONSOLE_USER="demo", EM_CONSOLE_PASSWORD="demo")
    proc = headless(url, tmp_path, "--ca-bundle", ca, env=env)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and " live " in out, err[-2000:]
    missing = headless(url, tmp_path, "--ca-bundle", str(tmp_path / "nope.pem"), env=env)
    _, err = missing.communicate(timeout=30)
    assert missing.returncode == 2 and "--ca-bundle" in err, err
