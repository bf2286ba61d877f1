"""The command line as an operator or a service manager runs it: real processes."""

import json
import os
import signal
import subprocess
import sys
import time

ENV_KEYS = ("PATH", "HOME", "LANG", "PYTHONPATH", "PYTHON_KEYRING_BACKEND",
            "KEYRING_PROPERTY_FILE_PATH")


def env(tmp_path):
    e = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    return {**e, "XDG_DATA_HOME": str(tmp_path / "data"), "QT_QPA_PLATFORM": "offscreen"}


def test_offscreen_run_writes_a_screenshot_and_a_json_summary(tmp_path):
    shot = tmp_path / "board.png"
    out = subprocess.run(
        [sys.executable, "-m", "ui.cli", "--offscreen-for", "6", "--screenshot", str(shot),
         "--wearers", "300"],
        capture_output=True, text=True, timeout=120, env=env(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["wearers"] == 300 and summary["events_applied"] > 0
    assert summary["open_alerts"] > 0 and summary["state"] == "live"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_headless_keeps_a_cache_in_sync_and_prints_status_lines(start_backend, tmp_path):
    backend = start_backend(wearers=100, speed=60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "--headless", "--backend", backend.url,
         "--cache", str(tmp_path / "c.db"), "--status-interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**env(tmp_path), "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo"})
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    lines = out.strip().splitlines()
    assert proc.returncode == 0 and len(lines) >= 4
    last = dict(part.split("=", 1) for part in lines[-1].split()[2:] if "=" in part)
    assert " live " in lines[-2] and int(last["applied"]) > 0 and last["wearers"] == "100"


def test_headless_with_a_refused_password_says_so_exits_1_and_does_not_lock_the_account(
        start_backend, tmp_path):
    """A sync service with a stale password must not sign in again and again: the
    backend locks a username after 5 wrong passwords, the operator's included."""
    import httpx

    from console.protocol.schema import API
    backend = start_backend(wearers=20, speed=60)
    out = subprocess.run(
        [sys.executable, "-m", "ui.cli", "--headless", "--backend", backend.url,
         "--cache", str(tmp_path / "c.db"), "--status-interval", "0.5"],
        capture_output=True, text=True, timeout=60,
        env={**env(tmp_path), "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "stale"})
    assert out.returncode == 1, out.stderr[-2000:]
    assert "sign-in refused: Wrong username or password" in out.stderr
    assert "EM_CONSOLE_PASSWORD" in out.stderr
    signed_in = httpx.post(f"{backend.url}{API}/session", json={"username": "demo", "password": "demo"})
    assert signed_in.status_code == 200  # tried once, not locked out


def test_headless_without_a_backend_is_refused_with_a_clear_message(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ui.cli", "--headless"], capture_output=True,
                         text=True, timeout=30, env=env(tmp_path))
    assert out.returncode == 2 and "--headless needs --backend" in out.stderr


def test_the_command_line_imports_no_qt_until_a_window_is_asked_for():
    """ui/cli.py reads arguments and dispatches; the headless console needs no Qt."""
    code = ("import sys, ui.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync') "
            "or m in ('ui.app', 'maps.web')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_offscreen_on_a_dead_backend_still_ends_on_time_with_a_summary(tmp_path):
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "ui.cli", "--offscreen-for", "3", "--backend", "http://127.0.0.1:9",
         "--cache", str(tmp_path / "c.db")],
        capture_output=True, text=True, timeout=120,
        env={**env(tmp_path), "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo"})
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["state"] == "reconnecting" and summary["wearers"] == 0
    assert time.monotonic() - started < 60
