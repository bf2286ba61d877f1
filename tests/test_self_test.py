"""`em-console --self-test` and the web page it shares with the maps.

The bundle itself is built and self-tested by `make bundle-check` (CI's second step);
these run the same self-test from the source tree, and break it on purpose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import wait_until

import ui.resources
from maps.web import LocalPage, sandbox_off_reason
from ui.self_test import OUR_RESOURCES, Failed, check_resources, check_sandbox

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def self_test(**env) -> tuple[int, dict, list[str]]:
    done = subprocess.run([sys.executable, "-m", "ui.cli", "--self-test"], capture_output=True,
                          text=True, timeout=240, env={**os.environ, **env})
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]), lines


def test_the_self_test_passes_here_and_reports_each_check_on_one_line():
    code, report, lines = self_test()
    assert code == 0, report["failed"]
    assert len(lines) == 1
    assert report["ok"] and report["failed"] == []
    assert report["version"] == VERSION and report["frozen"] is False
    checks = report["checks"]
    assert set(checks) == {"resources", "sandbox", "simulator", "stream", "encryption",
                           "webengine"}
    assert all(c["ok"] for c in checks.values())
    assert checks["stream"]["wearers"] == 100 and checks["stream"]["events_applied"] >= 20
    assert checks["encryption"]["cipher"].startswith("SQLCipher 4.")
    assert checks["webengine"] == {"ok": True, "script": True, "drawn": True,
                                   "trail_vertices": checks["webengine"]["trail_vertices"],
                                   "basemap": "Basemap: UK outline only — no tiles downloaded",
                                   "seconds": checks["webengine"]["seconds"]}
    assert checks["webengine"]["trail_vertices"] > 0


def test_a_webengine_crash_is_reported_by_name_not_fatal():
    # QtWebEngine aborts its process when it cannot find its helper; the report survives.
    code, report, _ = self_test(QTWEBENGINEPROCESS_PATH="/nonexistent/QtWebEngineProcess")
    assert code == 1 and not report["ok"]
    assert report["checks"]["stream"]["ok"]  # the other checks still ran
    assert len(report["failed"]) == 1
    assert report["failed"][0].startswith("webengine: QtWebEngine's process ended with signal SIGABRT")


def test_missing_resources_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(ui.resources, "ROOT", tmp_path)
    (tmp_path / "resources").mkdir()
    with pytest.raises(Failed, match="missing style.qss, icons/em-console.png, web/self-test.html, "
                                     "web/leaflet/leaflet.js, web/trail.js, web/basemap/uk-outline.geojson"):
        check_resources(VERSION)
    for name in OUR_RESOURCES:
        (tmp_path / "resources" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "resources" / name, tmp_path / "resources" / name)
    assert check_resources(VERSION)["files"] == len(OUR_RESOURCES) + 3
    with pytest.raises(Failed, match="version stamp"):
        check_resources("unknown")


def test_only_root_may_run_with_the_sandbox_off(monkeypatch):
    assert check_sandbox(None) == {"sandbox": "on"}
    assert check_sandbox("running as root") == {"sandbox": "off (running as root)"}
    with pytest.raises(Failed, match="QTWEBENGINE_DISABLE_SANDBOX"):
        check_sandbox("QTWEBENGINE_DISABLE_SANDBOX is set")

    monkeypatch.delenv("QTWEBENGINE_DISABLE_SANDBOX", raising=False)
    monkeypatch.delenv("QTWEBENGINE_CHROMIUM_FLAGS", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert sandbox_off_reason() is None
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu --no-sandbox")
    assert sandbox_off_reason() == "QTWEBENGINE_CHROMIUM_FLAGS has --no-sandbox"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert sandbox_off_reason() == "running as root"
    assert os.environ["QTWEBENGINE_DISABLE_SANDBOX"] == "1"


def test_a_local_page_runs_calls_made_before_it_loaded_in_order(qtbot):
    page = LocalPage(ROOT / "resources" / "web" / "self-test.html")
    qtbot.addWidget(page)
    assert not page.ready
    answers = []
    page.call("window.order = []")
    page.call("order.push(1)")
    page.call("order.push(2); order.join()", answers.append)
    wait_until(lambda: answers, qtbot=qtbot)
    assert page.ready and answers == ["1,2"]
    page.call("order.push(3); order.join()", answers.append)  # loaded: runs at once
    wait_until(lambda: len(answers) == 2, qtbot=qtbot)
    assert answers[1] == "1,2,3"
