"""Secrets never reach a log: a full run of the console, headless and windowed,
against a backend whose tokens expire every few seconds (so that sessions are
refreshed and renewed during the run), and a refused sign-in; then every line
either printed is searched for the passwords and for every token the backend
issued (the backend keeps only their hashes, so each token-shaped string in the
logs is hashed and looked up)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid

from argon2 import PasswordHasher

from console.embedded import simulator_command

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def console(args: list[str], password: str, tmp_path, seconds: float) -> str:
    """Run the console as a user would, stop it as a service manager does, and
    return everything it printed."""
    env = {**os.environ, "EM_CONSOLE_USER": "ops1", "EM_CONSOLE_PASSWORD": password,
           "XDG_DATA_HOME": str(tmp_path / "data"), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    return out


def test_no_password_or_token_is_ever_logged(tmp_path):
    password, wrong = f"Pw-{uuid.uuid4().hex}", f"Wrong-{uuid.uuid4().hex}"
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"username": "ops1", "password_hash": PasswordHasher().hash(password),
                                  "id": "op-1", "name": "Olive Smith", "roles": ["operator"]}]))
    state, backend_log = tmp_path / "backend.db", tmp_path / "backend.log"
    # Tokens renewed a minute before they expire: every 5 s. A slow simulator, so that
    # the stream falls silent between heartbeats.
    with open(backend_log, "w") as log:
        sim = subprocess.Popen(simulator_command(
            ["--port", "0", "--wearers", "20", "--speed", "1", "--state", str(state),
             "--users", str(users), "--token-ttl", "65", "--heartbeat", "10"]),
            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = json.loads(sim.stdout.readline())["url"]
        logs = [
            # A read timeout under the heartbeat: the stream reconnects every 3 s, and
            # each reconnection after the token's renewal time refreshes the session.
            console(["--headless", "--backend", url, "--cache", str(tmp_path / "a.db"),
                     "--read-timeout", "3"], password, tmp_path, 16),
            console(["--backend", url, "--cache", str(tmp_path / "b.db"), "--offscreen-for", "8"],
                    password, tmp_path, 60),
            console(["--headless", "--backend", url, "--cache", str(tmp_path / "c.db")],
                    wrong, tmp_path, 8),
        ]
    finally:
        sim.terminate()
        sim.wait(30)
    # It signed in, renewed its session as its tokens expired, and signed out.
    assert '/session "HTTP/1.1 200' in logs[0] and '/session/refresh "HTTP/1.1 200' in logs[0]
    assert 'DELETE' in logs[0], logs[0][-2000:]
    assert "refused" in logs[2], logs[2][-2000:]
    with sqlite3.connect(state) as db:
        issued = {h for (h,) in db.execute("SELECT hash FROM tokens")}
        refreshed = db.execute("SELECT count(*) FROM audit WHERE event = 'session refreshed'").fetchone()[0]
    assert refreshed >= 1  # a token expired during the headless run, and was renewed
    everything = "\n".join(logs) + backend_log.read_text()
    assert password not in everything and wrong not in everything
    leaked = [t for t in TOKEN_SHAPE.findall(everything)
              if hashlib.sha256(t.encode()).hexdigest() in issued]
    assert not leaked
