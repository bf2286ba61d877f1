"""Run the simulator: `python -m console.simulator --port 8765 --wearers 5000 --speed 60 --seed 7`.

The first line on stdout is JSON naming the URL it listens on, so that a parent
process can start it on port 0 and find it. `python -m console.simulator audit verify
--state FILE` checks the audit trail of a stopped backend's state file instead.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading

import msgspec
import uvicorn

from console.protocol.schema import MAX_CLOCK_RATE
from console.simulator.accounts import TOKEN_TTL, TRAINING_USERS, users_from
from console.simulator.app import create_app
from console.simulator.backend import Backend, StateInUse, verify_audit

DEFAULT_WEARERS = 1732  # people subject to EM in March 2022 (ICIBI §1.11)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="em-console simulator", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; loopback unless told otherwise")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--wearers", type=int, default=DEFAULT_WEARERS,
                   help=f"fleet size, 1 to 100000 (default {DEFAULT_WEARERS})")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--state", help="file keeping the backend's state and event log across restarts")
    p.add_argument("--token-ttl", type=float, default=TOKEN_TTL,
                   help="seconds an access token lasts before it must be refreshed")
    p.add_argument("--users", metavar="FILE",
                   help="JSON list of users ({username, password_hash (argon2id), id, name, "
                        "roles}) instead of the training users")
    p.add_argument("--replay", type=int, default=200_000, help="events kept for resuming clients")
    p.add_argument("--heartbeat", type=float, default=10.0,
                   help="seconds between stream heartbeats")
    p.add_argument("--tls-cert", help="PEM certificate (chain) to serve https with; needs --tls-key")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="exit when standard input closes (the parent that started us is gone)")
    args = p.parse_args(argv)
    if not 1 <= args.wearers <= 100_000:
        p.error("--wearers must be between 1 and 100000")
    if not 0 < args.speed <= MAX_CLOCK_RATE:
        p.error(f"--speed must be above 0 and at most {MAX_CLOCK_RATE:g}")
    if not 0.1 <= args.heartbeat <= 15:
        p.error("--heartbeat must be between 0.1 and 15 seconds")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def _exit_on_eof() -> None:
    sys.stdin.buffer.read()
    # Every tick is committed before it is served, so stopping at once loses nothing.
    os._exit(0)


def audit(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="em-console simulator audit",
                                description="Check the backend's own audit trail.")
    p.add_argument("command", choices=["verify"],
                   help="verify: check the hash chain of the state file's audit trail")
    p.add_argument("--state", required=True, help="the state file of a stopped backend")
    code, line = verify_audit(p.parse_args(argv).state)
    print(line, file=sys.stdout if code < 2 else sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:
        return audit(argv[1:])
    args = parse_args(argv)
    try:
        users = users_from(args.users) if args.users else TRAINING_USERS
    except (OSError, msgspec.DecodeError) as e:  # ValidationError is a DecodeError
        print(f"simulator: the users file {args.users} cannot be used: {e}", file=sys.stderr)
        return 2
    try:
        backend = Backend(args.wearers, args.seed, args.speed, args.replay, args.state,
                          args.token_ttl, users)
    except StateInUse as e:
        print(f"simulator: {e}", file=sys.stderr)
        return 3
    if args.exit_with_parent:
        threading.Thread(target=_exit_on_eof, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)  # connections queue from now on, before uvicorn's loop runs
    host, port = sock.getsockname()[:2]
    scheme = "https" if args.tls_cert else "http"
    config = uvicorn.Config(create_app(backend, args.heartbeat), log_level="warning",
                            timeout_graceful_shutdown=1,
                            ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    config.load()  # an unusable certificate fails here, before we say where we listen
    print(json.dumps({"url": f"{scheme}://{host}:{port}", "wearers": len(backend.fleet.wearers),
                      "last_event_id": backend.last_id}), flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
