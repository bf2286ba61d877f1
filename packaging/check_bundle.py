"""`make bundle-check`: runs a built bundle's --self-test the way a workstation would.

    python3 packaging/check_bundle.py dist/em-console

The bundle is copied to a fresh directory first, so a path baked in at build time
fails here, and it runs without the system's time-zone database, as on Windows.
Its report must be ok and carry pyproject.toml's version. Run as root, it runs the
self-test again as an unprivileged user, where Chromium's sandbox must be on: that
shows nothing in the build turns the sandbox off."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNPRIVILEGED = "nobody"


def self_test(executable: Path, *prefix: str, env: dict) -> dict:
    started = time.monotonic()
    done = subprocess.run([*prefix, str(executable), "--self-test"], capture_output=True,
                          text=True, timeout=300, env={**env, "PYTHONTZPATH": ""})
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        sys.exit(f"--self-test printed no JSON report (exit {done.returncode}):\n"
                 f"{done.stdout}\n{done.stderr[-3000:]}")
    if done.returncode != 0 or not report["ok"]:
        sys.exit(f"--self-test failed (exit {done.returncode}): {', '.join(report['failed'])}\n"
                 f"{done.stderr[-3000:]}")
    if len(lines) != 1:
        sys.exit(f"--self-test printed {len(lines)} lines, not one:\n{done.stdout}")
    print(f"self-test ok in {time.monotonic() - started:.1f} s: {lines[0]}")
    return report


def main(bundle: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with tempfile.TemporaryDirectory(prefix="em-console-bundle-") as tmp:
        os.chmod(tmp, 0o755)  # readable by the unprivileged user below
        copy = Path(tmp) / "em-console"
        shutil.copytree(bundle, copy, symlinks=True)
        executable = copy / ("em-console-cli.exe" if sys.platform == "win32" else "em-console")
        report = self_test(executable, env=dict(os.environ))
        if report["version"] != version or not report["frozen"]:
            sys.exit(f"the bundle says version {report['version']} (frozen: {report['frozen']}); "
                     f"pyproject.toml says {version}")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            home = Path(tmp) / "home"
            home.mkdir()
            os.chown(home, user.pw_uid, user.pw_gid)
            env = {"PATH": os.environ["PATH"], "HOME": str(home)}
            report = self_test(executable, "setpriv", f"--reuid={user.pw_uid}",
                               f"--regid={user.pw_gid}", "--clear-groups", env=env)
            if report["checks"]["sandbox"]["sandbox"] != "on":
                sys.exit(f"Chromium's sandbox is off for an unprivileged user: {report['checks']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
