"""The bundle's software bill of materials (CycloneDX 1.6 JSON), for `make bundle`.

    BUILD_VENV/bin/python packaging/sbom.py BUNDLED_JSON OUTPUT

Run it with the build environment's Python. cyclonedx-py lists that environment,
which also holds the build tools; this keeps the distributions PyInstaller put in
the bundle (build.spec wrote their names to BUNDLED_JSON) and adds what else ships:
the Python runtime, PyInstaller's bootloader and, on Debian-like systems, the
system libraries copied in."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import PyInstaller
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

ROOT = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_environment() -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", "environment", sys.executable, "--sv", "1.6",
         "--pyproject", str(ROOT / "pyproject.toml"), "--output-reproducible", "-o", "-"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def runtime_components() -> list[dict]:
    impl, version = platform.python_implementation().lower(), platform.python_version()
    return [
        {"type": "framework", "bom-ref": f"{impl}=={version}", "name": impl, "version": version,
         "purl": f"pkg:generic/{impl}@{version}",
         "description": "The Python runtime and standard library"},
        {"type": "application", "bom-ref": f"pyinstaller-bootloader=={PyInstaller.__version__}",
         "name": "pyinstaller", "version": PyInstaller.__version__,
         "purl": f"pkg:pypi/pyinstaller@{PyInstaller.__version__}",
         "description": "PyInstaller's bootloader, the bundle's executable"},
    ]


def debian_owners(paths: list[str]) -> dict[str, str | None]:
    """Each path's Debian package, from one dpkg-query for all of them."""
    names = {}
    for path in paths:
        # With merged /usr, dpkg may know a file by its /lib or /usr/lib name, and
        # by the link or the file it points to.
        ends = (path, str(Path(path).resolve()))
        names[path] = dict.fromkeys([n for p in ends for n in (
            p, p.replace("/usr/lib/", "/lib/", 1), p.replace("/lib/", "/usr/lib/", 1))])
    # It exits 1 when some names are unknown, and lists the known ones all the same.
    listing = subprocess.run(["dpkg-query", "-S", *{n for ns in names.values() for n in ns}],
                             capture_output=True, text=True).stdout
    owner = {}
    for line in listing.splitlines():  # "libfoo1:amd64, libfoo-dev: /usr/lib/..."
        packages, sep, name = line.partition(": ")
        if sep and not line.startswith("diversion"):
            owner[name] = packages.split(",")[0].split(":")[0]
    return {p: next((owner[n] for n in ns if n in owner), None) for p, ns in names.items()}


def system_components(binaries: list[str]) -> list[dict]:
    """The Debian packages whose shared libraries the bundle carries."""
    if shutil.which("dpkg-query") is None:
        return []
    system = [f for f in binaries if "site-packages" not in Path(f).parts]
    packages: dict[str, list[str]] = {}
    for f, package in debian_owners(system).items():
        if package:
            packages.setdefault(package, []).append(Path(f).name)
        elif not Path(f).is_relative_to(sys.base_prefix):  # the Python runtime's own
            raise SystemExit(f"nothing known ships {f}: the SBOM would be incomplete")
    components = []
    for package, names in sorted(packages.items()):
        version, arch = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version} ${Architecture}", package],
            check=True, capture_output=True, text=True).stdout.split()
        components.append({
            "type": "library", "bom-ref": f"deb:{package}=={version}", "name": package,
            "version": version, "purl": f"pkg:deb/debian/{package}@{version}?arch={arch}",
            "properties": [{"name": "em-console:bundled-file", "value": n} for n in sorted(names)]})
    return components


def main(bundled_json: str, output: str) -> None:
    bundled = json.loads(Path(bundled_json).read_text())
    keep = {canonical(n) for n in bundled["distributions"]}
    bom = python_environment()
    if bom["metadata"]["component"]["version"] != bundled["version"]:
        raise SystemExit("the build environment's em-console is not the version being bundled")
    bom["components"] = [c for c in bom["components"] if canonical(c["name"]) in keep]
    refs = {c["bom-ref"] for c in bom["components"]}
    bom["dependencies"] = [
        {**d, "dependsOn": [r for r in d.get("dependsOn", []) if r in refs]}
        for d in bom["dependencies"] if d["ref"] in refs or d["ref"] == "root-component"]
    extra = runtime_components() + system_components(bundled["binaries"])
    bom["components"] += extra
    bom["dependencies"] += [{"ref": c["bom-ref"]} for c in extra]
    root = next(d for d in bom["dependencies"] if d["ref"] == "root-component")
    root["dependsOn"] = sorted(set(root.get("dependsOn", [])) | {c["bom-ref"] for c in extra})
    text = json.dumps(bom, indent=1, sort_keys=True)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error:
        raise SystemExit(f"the SBOM is not valid CycloneDX 1.6: {error}")
    Path(output).write_text(text + "\n")
    print(f"{output}: {len(bom['components'])} components")


if __name__ == "__main__":
    main(*sys.argv[1:])
