"""`make bundle-check`: runs a built bundle's --self-test the way a workstation would.

    python3 packaging/check_bundle.py dist/em-console dist/em-console-VERSION-linux-ARCH.cdx.json

It first checks what the bundle holds: QtWebEngine's helper, none of the Qt
translations, QML or locales build.spec leaves out, no broken links, and an SBOM
of this version that names Qt. It then copies the bundle to a fresh directory, so
that a path baked in at build time fails, and runs the self-test there without the
system's time-zone database, as on Windows. The report must be ok, carry
pyproject.toml's version, and have checked that the cache it wrote is encrypted
(SQLCipher inside the bundle, keyring's backend found). Run as root, it runs the
self-test again as an unprivileged user, where Chromium's sandbox must be on: that
shows nothing in the build turns the sandbox off."""

from __future__ import annotations

import json
import os
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
    encryption = report["checks"].get("encryption")
    if encryption is None:  # a bundle of a console from before the cache was encrypted
        sys.exit("--self-test did not check the cache's encryption")
    print(f"cache encryption: ok ({encryption['cipher']}; keyring: {encryption['keyring']})")
    return report


def check_contents(bundle: Path, sbom: Path, version: str) -> None:
    files = list(bundle.rglob("*"))
    problems = [f"broken link {p}" for p in files if p.is_symlink() and not p.exists()]
    if not any(p.name.startswith("QtWebEngineProcess") for p in files):
        problems.append("no QtWebEngineProcess")
    problems += [f"unshipped translation {p.name}" for p in files if p.suffix == ".qm"]
    problems += [f"unshipped locale {p.name}" for p in files
                 if p.parent.name == "qtwebengine_locales" and p.name != "en-US.pak"]
    problems += [f"unshipped QML {p}" for p in files if p.name == "qml" and p.is_dir()]
    bom = json.loads(sbom.read_text())
    names = {c["name"].lower() for c in bom["components"]}
    if bom["metadata"]["component"]["version"] != version:
        problems.append(f"the SBOM is of version {bom['metadata']['component']['version']}")
    problems += [f"the SBOM lacks {n}" for n in ("pyside6_addons", "cpython", "pyinstaller")
                 if n not in names]
    if problems:
        sys.exit("the bundle is not as build.spec means it: " + "; ".join(problems))
    size = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())
    print(f"contents ok: {len(files)} files, {size / 2**20:.0f} MiB, "
          f"{len(bom['components'])} components in the SBOM")


def main(bundle: str, sbom: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    check_contents(Path(bundle), Path(sbom), version)
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
            import pwd  # POSIX only, like the root check

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
