"""`em-console`: the console's command line.

    em-console                          the console on the embedded training simulator
    em-console --backend URL            the console on a real backend
    em-console --headless --backend URL --cache PATH
    em-console --offscreen-for 20 --screenshot board.png
    em-console --self-test              check an installed console works (one line of JSON)
    em-console audit verify [--cache PATH]   whether the cache's audit trail holds
    em-console tiles download|info [...]     the offline basemap's tiles (maps/tiles.py)
    em-console simulator [...]          the reference backend (see --help there)

This module reads the arguments and the environment and hands on to what runs:
the simulator, the audit trail's verifier, the self-test, the headless engine
(console/headless.py) or the window (ui/app.py). It imports no Qt, so that the
headless console needs none.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import ssl
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import platformdirs

from console.protocol.client import MAX_SNAPSHOT_BYTES

if TYPE_CHECKING:
    from console.store import CacheKeys

try:
    VERSION = version("em-console")
except PackageNotFoundError:  # a bundle without metadata
    VERSION = "unknown"

TRAINING_PASSWORD = "demo"  # the embedded training backend's operator: demo / demo


def lock_minutes(text: str) -> float:
    """--lock-after: minutes, 0 (never) to a day; anything else is refused, not
    taken to mean never."""
    minutes = float(text)
    if not 0 <= minutes <= 24 * 60:  # also false for nan
        raise argparse.ArgumentTypeError(f"{text}: give minutes from 0 (never lock) to 1440")
    return minutes


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="em-console", description="Electronic-monitoring centre console.",
        epilog="em-console audit verify [--cache PATH] [--key-file PATH]: whether the offline "
               "cache's audit trail holds (exit 0), where it breaks (1), or why it cannot be read (2). "
               "em-console tiles download|info: the offline map tiles (see its --help).")
    p.add_argument("--backend", help="backend URL; without it the training simulator is started")
    p.add_argument("--user", default=os.environ.get("EM_CONSOLE_USER"),
                   help="operator name for --headless and --offscreen-for, whose password is "
                        "$EM_CONSOLE_PASSWORD (default $EM_CONSOLE_USER; the window asks)")
    p.add_argument("--allow-insecure-http", action="store_true",
                   help="allow a plain http:// backend beyond this machine, though the password "
                        "and token then cross the network in clear")
    p.add_argument("--ca-bundle", default=os.environ.get("EM_CONSOLE_CA_BUNDLE"), metavar="PATH",
                   help="PEM file of the CAs to trust for an https:// backend, such as the "
                        "centre's own (default $EM_CONSOLE_CA_BUNDLE, else the public CAs)")
    p.add_argument("--cache", help="offline cache file (default: in the user data directory)")
    p.add_argument("--tiles", metavar="PATH",
                   help="the offline map tiles (MBTiles) the trail map reads (default: "
                        "tiles.mbtiles in the user data directory; `em-console tiles download` "
                        "fills it; without it the map draws the UK's outline)")
    p.add_argument("--key-file", default=os.environ.get("EM_CONSOLE_KEY_FILE"), metavar="PATH",
                   help="an administrator's setting, for a workstation with no keyring: keep the "
                        "offline cache's key in this file, made owner-only if it does not exist "
                        "(default $EM_CONSOLE_KEY_FILE; else the keyring)")
    p.add_argument("--rebuild-cache", action="store_true",
                   help="with --headless: a cache that no key opens is moved aside (kept) and a "
                        "fresh one built from the backend, instead of exiting")
    p.add_argument("--headless", action="store_true", help="keep the cache in sync without a UI")
    p.add_argument("--lock-after", type=lock_minutes, default=10.0, metavar="MINUTES",
                   help="lock the window after this long without input, hiding wearers' data "
                        "until the password is given again (default %(default)s; 0: never)")
    p.add_argument("--status-interval", type=float, default=5.0, help="headless status line period")
    p.add_argument("--read-timeout", type=float, default=30.0,
                   help="seconds of stream silence before reconnecting; keep it above the "
                        "backend's heartbeat interval (at most 15 s by the protocol)")
    p.add_argument("--max-snapshot-mb", type=int, default=MAX_SNAPSHOT_BYTES >> 20,
                   help="refuse a snapshot larger than this (default %(default)s MB; "
                        "100,000 wearers take about 26)")
    p.add_argument("--offscreen-for", type=float, metavar="SECONDS",
                   help="run the real window offscreen this long, then print a JSON summary")
    p.add_argument("--screenshot", help="with --offscreen-for: write the window to this PNG")
    p.add_argument("--warm-up", type=float, default=0.0, metavar="SECONDS",
                   help="with --offscreen-for: leave the first seconds out of the stall and "
                        "lag figures (start-up is measured on its own)")
    p.add_argument("--wearers", type=int, help="training simulator fleet size")
    p.add_argument("--version", action="version", version=f"em-console {VERSION}")
    p.add_argument("--self-test", action="store_true",
                   help="check offscreen that this installation works; prints one line of JSON")
    p.add_argument("--self-test-webengine", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.headless and not args.backend:
        p.error("--headless needs --backend")
    if args.screenshot and not args.offscreen_for:
        p.error("--screenshot goes with --offscreen-for")
    if args.rebuild_cache and not args.headless:
        p.error("--rebuild-cache goes with --headless (the window asks)")
    if not 0 < args.read_timeout <= 600:
        p.error("--read-timeout must be between 0 and 600 seconds")
    if not 1 <= args.max_snapshot_mb <= 16_384:
        p.error("--max-snapshot-mb must be between 1 and 16384")
    if args.backend is None:
        args.user = args.user or "demo"  # the training backend's operator
    else:
        url = urlsplit(args.backend)
        if url.scheme not in ("http", "https") or not url.hostname:
            p.error(f"--backend {args.backend}: give an https:// URL, "
                    "e.g. https://monitoring.example.internal")
        if in_clear(args.backend) and not args.allow_insecure_http:
            p.error(f"--backend {args.backend}: plain http:// beyond this machine sends the "
                    "password and token in clear; use https://, or --allow-insecure-http on a "
                    "network you trust")
        # Only the training backend's password may be guessed; with no window to ask in,
        # a real backend's must be given.
        if (args.headless or args.offscreen_for) and not (
                args.user and os.environ.get("EM_CONSOLE_PASSWORD")):
            p.error("a real --backend with no window to ask in needs EM_CONSOLE_USER (or --user) "
                    "and EM_CONSOLE_PASSWORD in the environment")
    if args.ca_bundle:
        try:
            ssl.create_default_context(cafile=args.ca_bundle)
        except (OSError, ssl.SSLError) as e:
            p.error(f"--ca-bundle {args.ca_bundle}: not a readable PEM file of CA certificates ({e})")
    return args


def in_clear(url: str) -> bool:
    """Whether url is plain http to anything but this machine (127.0.0.0/8, ::1,
    localhost), so that a password sent there crosses a network unencrypted."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname == "localhost":
        return False
    try:
        return not ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return True


def engine_options(args: argparse.Namespace, training: bool) -> dict:
    """The sync engine's keyword arguments that come from the command line."""
    return {"read_timeout": args.read_timeout, "max_snapshot_bytes": args.max_snapshot_mb << 20,
            "ca_bundle": args.ca_bundle, "cache_keys": cache_keys(args, training)}


def cache_keys(args: argparse.Namespace, training: bool) -> CacheKeys:
    """Where the cache's key is kept: the key file an administrator allowed, else the
    keyring. The training cache holds simulated data only: where there is no keyring,
    its key is kept in a file beside it, so that training works on any workstation."""
    # Not at the top: the store's imports would hold up prestart, and the sync process.
    from console.store import KEYRING, CacheKeys, keyring_available

    if args.key_file:
        return CacheKeys(Path(args.key_file))
    if training and not keyring_available():
        key_file = Path(args.cache + ".key")
        logging.warning("no keyring: the training cache's key is kept in %s", key_file)
        return CacheKeys(key_file)
    return KEYRING


def data_dir() -> Path:
    path = Path(platformdirs.user_data_dir("em-console", appauthor=False))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":  # its caches hold personal data; older versions made it 0755
        path.chmod(0o700)
    return path


def default_cache(training: bool) -> str:
    """Training data never mixes with a real cache: its own file."""
    return str(data_dir() / ("training-cache.db" if training else "cache.db"))


def default_tiles() -> Path:
    """The offline basemap's tiles, beside the caches. Not data_dir(): reading creates nothing."""
    return Path(platformdirs.user_data_dir("em-console", appauthor=False)) / "tiles.mbtiles"


def tiles(argv: list[str]) -> int:
    """`em-console tiles download|info`: fills or describes the offline basemap's tiles."""
    from maps import tiles as store

    p = argparse.ArgumentParser(prog="em-console tiles", description="The offline map tiles.")
    p.add_argument("command", choices=["download", "info"],
                   help="download: a region and zoom range from a tile server, sized and "
                        "confirmed first; info: what the tiles file holds")
    p.add_argument("--mbtiles", "--tiles", type=Path, default=None, metavar="PATH",
                   help="the tiles file, as the console's --tiles (default: tiles.mbtiles in "
                        "the user data directory)")
    p.add_argument("--url", metavar="TEMPLATE",
                   help="download: a tile server the centre may bulk-download from, "
                        "e.g. https://tiles.example.internal/{z}/{x}/{y}.png")
    p.add_argument("--bbox", metavar="W,S,E,N", help="download: the region, in degrees")
    p.add_argument("--zoom", default="5-12", metavar="LOW-HIGH", help="download: zoom levels")
    p.add_argument("--yes", action="store_true", help="download without asking to confirm its size")
    if "--bbox" in argv[:-1]:  # "--bbox -8.7,...": argparse would take the minus for an option
        at = argv.index("--bbox")
        argv = [*argv[:at], f"--bbox={argv[at + 1]}", *argv[at + 2:]]
    args = p.parse_args(argv)
    path = args.mbtiles or default_tiles()
    if args.command == "info":
        found = store.MBTiles.open(path)
        if found is None and path.is_file():
            print(f"{path}: not a tiles file (MBTiles) with tiles in it", file=sys.stderr)
            return 1
        print(f"{path}: {store.describe(found)}"
              + (f" ({found.count():,} tiles)" if found else ""))
        return 0
    if not (args.url and args.bbox):
        p.error("download needs --url and --bbox")
    try:
        bbox = tuple(float(v) for v in args.bbox.split(","))
        low, high = (int(v) for v in args.zoom.split("-"))
        if len(bbox) != 4:
            raise ValueError
    except ValueError:
        p.error("--bbox is W,S,E,N in degrees and --zoom LOW-HIGH, "
                "e.g. --bbox -8.7,49.8,1.8,60.9 --zoom 5-12")

    confirmed = []

    def confirm(job) -> bool:
        print(f"To download: {job}")
        try:
            answer = "yes" if args.yes else input("Download? [y/N] ")
        except EOFError:  # nobody to ask: no answer is no
            print("\nNo answer (no terminal to ask in): use --yes to download without asking.")
            answer = ""
        confirmed.append(answer.strip().lower() in ("y", "yes"))
        return confirmed[0]

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fetched = store.download(bbox, range(low, high + 1), args.url, path, confirm)
    except store.Refused as e:
        print(f"Refused: {e}", file=sys.stderr)
        return 2
    except store.DownloadFailed as e:  # what was fetched is kept: running it again resumes
        print(f"The download stopped: {e}", file=sys.stderr)
        return 1
    if not confirmed[0]:
        print("Nothing downloaded.")
        return 1
    print(f"{fetched:,} tiles fetched into {path}")
    return 0


def audit(argv: list[str]) -> int:
    """`em-console audit verify`: prints whether the audit trail holds; exits 0 when
    it does, 1 when it is broken, 2 when the cache cannot be read."""
    from console.store import KEYRING, CacheKeys, verify_audit

    p = argparse.ArgumentParser(prog="em-console audit",
                                description="Check the offline cache's audit trail.")
    p.add_argument("command", choices=["verify"],
                   help="verify: check the hash chain of the cache's audit trail")
    p.add_argument("--cache", help="the cache file (default: the live cache in the user data "
                                    "directory; the training one is training-cache.db beside it)")
    p.add_argument("--key-file", default=os.environ.get("EM_CONSOLE_KEY_FILE"), metavar="PATH",
                   help="the key file the console keeps the cache's key in, where an "
                        "administrator allowed one (default $EM_CONSOLE_KEY_FILE, else the keyring)")
    args = p.parse_args(argv)
    # Not data_dir(): a check creates nothing.
    cache = Path(args.cache or Path(platformdirs.user_data_dir("em-console", appauthor=False))
                 / "cache.db")
    # A training cache on a workstation without a keyring keeps its key beside it.
    beside = cache.with_name(cache.name + ".key")
    keys = (CacheKeys(Path(args.key_file)) if args.key_file else
            CacheKeys(beside) if beside.is_file() else KEYRING)
    code, lines = verify_audit(cache, keys)
    print("\n".join(lines), file=sys.stdout if code < 2 else sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulator"]:
        from console.simulator.server import main as simulator

        return simulator(argv[1:])
    if argv[:1] == ["audit"]:
        return audit(argv[1:])
    if argv[:1] == ["tiles"]:
        return tiles(argv[1:])
    args = parse_args(argv)
    if args.self_test or args.self_test_webengine:
        from ui import self_test

        return self_test.run(VERSION) if args.self_test else self_test.run_webengine()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.backend and in_clear(args.backend):  # parse_args allowed it: --allow-insecure-http
        logging.warning("the password and token travel in clear to %s", args.backend)
    training = args.backend is None
    args.cache = args.cache or default_cache(training)
    args.tiles = Path(args.tiles) if args.tiles else default_tiles()
    # parse_args made sure a real backend with no window to ask in has a password.
    password = os.environ.get("EM_CONSOLE_PASSWORD") or (TRAINING_PASSWORD if training else "")
    if args.headless:
        from console.headless import run

        return run(args.backend, args.user, password, args.cache, args.status_interval,
                   args.rebuild_cache, **engine_options(args, training))
    if args.offscreen_for:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from console.sync.process import prestart

    prestart()  # the sync process starts while Qt is imported
    from ui.app import run_window

    # The window asks for the name and password, except offscreen, with nobody to ask.
    credentials = (args.user, password) if args.offscreen_for else None
    return run_window(args, credentials, engine_options(args, training), VERSION)


if __name__ == "__main__":
    sys.exit(main())
