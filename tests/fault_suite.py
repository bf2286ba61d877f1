"""Fault injection with real processes on loopback.

    python tests/fault_suite.py --kills 200 --acks 1000 --report docs/reliability.md

Runs the simulator (with --state) and the headless console as child processes,
kills them with SIGKILL at random moments, freezes the backend with SIGSTOP, drops
connections while requests are in flight, and resumes from beyond the replay
buffer. After every scenario the console's cache must equal the backend's snapshot
and its applied-event count must equal the distance between the snapshot's id and
the last id: no event lost, none applied twice. `tests/test_faults.py` runs a short
version in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlcipher3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backends import Backend, keyring_in, read_cache, wait_until  # noqa: E402

from console.domain import Outcome  # noqa: E402
from console.domain.actions import Claim, Close, Shelve, StartWork, Unshelve  # noqa: E402
from console.protocol.client import decode_snapshot  # noqa: E402
from console.protocol.schema import API  # noqa: E402
from console.store import Store  # noqa: E402
from console.sync import SyncEngine  # noqa: E402
from console.sync.process import EngineProcess  # noqa: E402

HEARTBEAT = "0.5"
READ_TIMEOUT = 3.0
# The simulator is a real backend to the console, which guesses no password for one.
# Added to the environment as it is when a console starts (its keyring is set in main).
CONSOLE_ENV = {"EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo"}
BUSY, QUIET = 120, 0.0001  # simulator speeds: a busy stream, and one that has stopped


def fault_backend(workdir: Path, wearers: int, extra: list[str] = ()) -> Backend:
    """The simulator with a state file, restartable on it, and quick heartbeats."""
    return Backend(workdir / "backend.db", wearers, ["--heartbeat", HEARTBEAT, *extra])


class Console:
    """`em-console --headless` as a process."""

    def __init__(self, workdir: Path, backend_url: str):
        self.cache = workdir / "cache.db"
        self.log = workdir / "console.log"
        self.url = backend_url
        self.proc: subprocess.Popen | None = None

    def start(self) -> Console:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "--headless", "--backend", self.url,
             "--cache", str(self.cache), "--status-interval", "0.5",
             "--read-timeout", str(READ_TIMEOUT)],
            cwd=ROOT, stdout=self.log.open("a"), stderr=subprocess.DEVNULL, env={**os.environ, **CONSOLE_ENV})
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def status(self) -> dict[str, str]:
        """The last status line, as key=value pairs."""
        lines = [ln for ln in self.log.read_text().splitlines() if "last_event_id=" in ln]
        if not lines:
            return {}
        parts = lines[-1].split()
        return {"state": parts[1], **dict(p.split("=", 1) for p in parts[2:] if "=" in p)}


def cache_meta(cache: Path) -> dict[str, str]:
    if not cache.exists():
        return {}
    conn = read_cache(cache)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlcipher3.OperationalError:
        return {}
    finally:
        conn.close()


def cache_last_id(cache: Path) -> int:
    return int(cache_meta(cache).get("last_event_id", 0))


def settle(backend: Backend, cache: Path, timeout: float = 90) -> None:
    """Quiet the backend (restart it slowed down) and wait for the cache to catch up."""
    backend.kill()
    backend.start(QUIET)
    target = backend.last_event_id()
    wait_until(lambda: cache_last_id(cache) == target, timeout, what=f"the cache to reach event {target}")


def compare(cache: Path, backend: Backend) -> list[str]:
    """Everything in which the cache differs from the backend's snapshot."""
    snap = decode_snapshot(backend.get(f"{API}/snapshot").content)
    store = Store(cache)
    try:
        picture, meta = store.load(), store.meta()
    finally:
        store.close()
    problems = []
    if int(meta["last_event_id"]) != snap.last_event_id:
        problems.append(f"last event id {meta['last_event_id']} != {snap.last_event_id}")
    stale = [d for d, s in snap.picture.statuses.items() if picture.statuses.get(d) != s]
    if stale:
        problems.append(f"{len(stale)} device statuses differ, e.g. {stale[0]}")
    if picture.alerts != snap.picture.alerts:
        diff = set(picture.alerts.items()) ^ set(snap.picture.alerts.items())
        problems.append(f"{len(diff)} open alerts differ")
    applied = int(meta["applied_since_snapshot"])
    span = int(meta["last_event_id"]) - int(meta["snapshot_event_id"])
    if applied != span:
        problems.append(f"applied {applied} events for {span} ids: "
                        + ("some twice" if applied > span else "some lost"))
    return problems


def conclude(result: Result, backend: Backend, console: Console, first: int = 0) -> None:
    """Quiet the backend, let the console catch up, stop it, and compare."""
    settle(backend, console.cache)
    console.stop()
    result.problems = compare(console.cache, backend)
    result.events = cache_last_id(console.cache) - first


@dataclass
class Result:
    scenario: str
    iterations: int
    seconds: float = 0.0
    events: int = 0
    problems: list[str] = field(default_factory=list)
    notes: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def backend_kills(workdir: Path, kills: int, rng: random.Random) -> Result:
    result = Result("kill -9 the backend mid-stream, restart on its state", kills)
    backend = fault_backend(workdir, 500).start(BUSY)
    console = Console(workdir, backend.url).start()
    try:
        wait_until(lambda: cache_last_id(console.cache) > 0, 60, what="the first events")
        first = int(cache_meta(console.cache)["snapshot_event_id"])
        for _ in range(kills):
            time.sleep(rng.uniform(0.05, 1.0))
            backend.kill()
            backend.start(BUSY)
        conclude(result, backend, console, first)
        result.notes = f"console reconnected {console.status().get('reconnects', '?')} times"
    finally:
        console.stop()
        backend.stop()
    return result


def console_kills(workdir: Path, kills: int, rng: random.Random) -> Result:
    result = Result("kill -9 the headless console mid-batch, restart on its cache", kills)
    backend = fault_backend(workdir, 500).start(BUSY)
    console = Console(workdir, backend.url)
    try:
        for i in range(kills):
            console.start()
            if i == 0:
                wait_until(lambda: cache_last_id(console.cache) > 0, 60, what="the first events")
            time.sleep(rng.uniform(0.3, 1.5))
            console.kill()
        first = int(cache_meta(console.cache)["snapshot_event_id"])
        console.start()
        conclude(result, backend, console, first)
    finally:
        console.stop()
        backend.stop()
    return result


def freezes(workdir: Path, count: int, rng: random.Random) -> Result:
    result = Result("SIGSTOP the backend (socket open), then SIGCONT", count)
    backend = fault_backend(workdir, 300).start(BUSY)
    console = Console(workdir, backend.url).start()
    try:
        wait_until(lambda: console.status().get("state") == "live", 60, what="a live console")
        for _ in range(count):
            before = int(console.status()["reconnects"])
            backend.signal(signal.SIGSTOP)
            time.sleep(READ_TIMEOUT + rng.uniform(1, 2))
            backend.signal(signal.SIGCONT)
            wait_until(lambda b=before: int(console.status().get("reconnects", 0)) > b, 30,
                       what="the read timeout to notice the frozen backend")
        conclude(result, backend, console)
        result.notes = f"read timeout {READ_TIMEOUT:g} s, heartbeat {HEARTBEAT} s"
    finally:
        console.stop()
        backend.stop()
    return result


class DroppingProxy:
    """A TCP proxy that, with some probability, cuts a connection after a POST has
    reached the backend and before its answer reaches the client: the client cannot
    know whether the backend applied it."""

    def __init__(self, upstream_port: str, drop: float, rng: random.Random):
        self.upstream_port, self.drop, self.rng = int(upstream_port), drop, rng
        self.dropped = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        last_request = [b""]

        async def client_to_backend():
            while data := await reader.read(65536):
                # A request's body may come in a read of its own: keep its method.
                if data.split(b" ", 1)[0] in (b"GET", b"POST"):
                    last_request[0] = data[:8]
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def backend_to_client():
            while data := await up_reader.read(65536):
                if last_request[0].startswith(b"POST") and self.rng.random() < self.drop:
                    self.dropped += 1
                    writer.transport.abort()
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(client_to_backend(), backend_to_client(), return_exceptions=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def _acknowledge_all(engine: SyncEngine, plan: list[tuple[str, str]]) -> None:
    for alert_id, note in plan:
        engine.acknowledge(alert_id, note).result(10)  # returns once durable


def _outbox(cache: Path) -> Counter:
    conn = read_cache(cache)
    try:
        return Counter(state for (state,) in conn.execute("SELECT state FROM outbox"))
    finally:
        conn.close()


def _check_acks(backend: Backend, plan: list[tuple[str, str]], outbox: Counter) -> list[str]:
    """Each alert acknowledged exactly once, with the note queued first for it."""
    first_note: dict[str, str] = {}
    for alert_id, note in plan:
        first_note.setdefault(alert_id, note)
    problems = []
    for alert_id, note in first_note.items():
        history = backend.get(f"{API}/alerts/{alert_id}").json()["history"]
        acks = [h["note"] for h in history if h["state"] == "acknowledged"]
        if acks != [note]:
            problems.append(f"{alert_id} acknowledged as {acks}, expected [{note!r}]")
    expected = Counter(delivered=len(first_note), conflict=len(plan) - len(first_note))
    if outbox != expected:
        problems.append(f"outbox {dict(outbox)}, expected {dict(expected)}")
    return problems[:5]


def _plan(backend: Backend, count: int) -> list[tuple[str, str]]:
    """count acknowledgements: one for each of about 60% as many alerts, then a
    second for the first ones, which must lose (in order per alert)."""
    open_ids = [a["id"] for a in backend.get(f"{API}/snapshot").json()["alerts"]
                if a["state"] == "unacknowledged"]
    distinct = open_ids[:max(1, int(count * 0.6))]
    plan = [(a, f"first note for {a}") for a in distinct]
    plan += [(a, f"second note for {a}") for a in distinct[:count - len(plan)]]
    return plan


def offline_acks(workdir: Path, count: int, rng: random.Random) -> Result:
    result = Result("queue acknowledgements offline, then reconnect", count)
    backend = fault_backend(workdir, max(3000, count * 50)).start(QUIET)
    plan = _plan(backend, count)
    cache = workdir / "cache.db"
    engine = SyncEngine(backend.url, "demo", "demo", str(cache), lambda c: None, READ_TIMEOUT)
    engine.start()
    try:
        wait_until(lambda: engine.status.state == "live", 60, what="a live engine")
        backend.kill()
        _acknowledge_all(engine, plan)
        queued = _outbox(cache)
        backend.start(QUIET)
        wait_until(lambda: "pending" not in _outbox(cache), 300, 0.5, what="the outbox to drain")
        result.problems = _check_acks(backend, plan, _outbox(cache))
        if queued != Counter(pending=len(plan)):
            result.problems.append(f"while offline the outbox held {dict(queued)}")
        wait_until(lambda: cache_last_id(cache) == backend.last_event_id(), 60, what="the cache")
        engine.stop()
        result.problems += compare(cache, backend)
    finally:
        engine.stop()
        backend.stop()
    result.events = len(plan)
    result.notes = f"{len(set(a for a, _ in plan))} alerts; repeats must end in conflict"
    return result


def inflight_drops(workdir: Path, count: int, rng: random.Random) -> Result:
    result = Result("cut the connection while an acknowledgement is in flight", count)
    backend = fault_backend(workdir, max(3000, count * 50)).start(QUIET)
    proxy = DroppingProxy(backend.port, drop=0.3, rng=rng)
    plan = _plan(backend, count)
    cache = workdir / "cache.db"
    engine = SyncEngine(f"http://127.0.0.1:{proxy.port}", "demo", "demo", str(cache),
                        lambda c: None, READ_TIMEOUT)
    engine.start()
    try:
        _acknowledge_all(engine, plan)
        wait_until(lambda: "pending" not in _outbox(cache), 600, 0.5, what="the outbox to drain")
        result.problems = _check_acks(backend, plan, _outbox(cache))
        if proxy.dropped == 0:
            result.problems.append("the proxy never cut a request: the fault did not happen")
    finally:
        engine.stop()
        proxy.close()
        backend.stop()
    result.events = len(plan)
    result.notes = f"{proxy.dropped} answers cut after the backend had the request"
    return result


def _handling(alert_id: str, now: float) -> list:
    """What an operator does to one alert, in order: every transition once."""
    return [Claim(alert_id), Shelve(alert_id, now + 3600, f"engineer booked for {alert_id}"),
            Unshelve(alert_id), StartWork(alert_id),
            Close(alert_id, Outcome.EQUIPMENT_FAULT, f"strap replaced on {alert_id}")]


def _check_handling(backend: Backend, alert_ids: list[str], outbox: Counter) -> list[str]:
    """Each transition of each alert at the backend exactly once, in order, by the
    operator who queued it."""
    expected = [("claimed", None), ("claimed", "shelved: engineer booked for {}"),
                ("claimed", "unshelved"), ("in_work", None),
                ("closed", "strap replaced on {}")]
    problems = []
    for alert_id in alert_ids:
        body = backend.get(f"{API}/alerts/{alert_id}").json()
        done = [(h["state"], h["note"]) for h in body["history"] if h.get("by") == "Demo Operator"]
        want = [(state, note and note.format(alert_id)) for state, note in expected]
        if done != want or body["outcome"] != "equipment_fault":
            problems.append(f"{alert_id}: {done}, outcome {body['outcome']}")
    if outbox != Counter(delivered=len(alert_ids) * len(expected)):
        problems.append(f"outbox {dict(outbox)}")
    return problems[:5]


def handling_kills(workdir: Path, kills: int, rng: random.Random) -> Result:
    result = Result("kill -9 either side while claims, shelvings and closes are delivered", kills)
    count = max(5, kills // 2)
    backend = fault_backend(workdir, count * 50).start(QUIET)
    alert_ids = [a["id"] for a in backend.get(f"{API}/snapshot").json()["alerts"]
                 if a["state"] == "unacknowledged"][:count]
    console = Console(workdir, backend.url)
    # Queued offline by the operator, durable in the cache's outbox...
    engine = SyncEngine(backend.url, "demo", "demo", str(console.cache), lambda c: None,
                        READ_TIMEOUT)
    engine.start()
    try:
        wait_until(lambda: engine.status.state == "live", 60, what="a live engine")
        backend.kill()
        now = engine.clock.now()
        for alert_id in alert_ids:
            for payload in _handling(alert_id, now):
                engine.act(payload).result(10)
    finally:
        engine.stop()
    # ...then delivered by the headless console, while one side or the other dies.
    backend.start(QUIET)
    console.start()
    done = {"console": 0, "backend": 0}
    try:
        while sum(done.values()) < kills and "pending" in _outbox(console.cache):
            time.sleep(rng.uniform(0.05, 0.6))
            victim = rng.choice(["console", "backend"])
            if victim == "console":
                console.kill()
                console.start()
            else:
                backend.kill()
                backend.start(QUIET)
            done[victim] += 1
        wait_until(lambda: "pending" not in _outbox(console.cache), 300, 0.5,
                   what="the outbox to drain")
        conclude(result, backend, console)  # the cache against the backend
        result.problems = _check_handling(backend, alert_ids, _outbox(console.cache)) \
            + result.problems
    finally:
        console.stop()
        backend.stop()
    result.iterations = sum(done.values())
    result.events = len(alert_ids) * 5
    result.notes = (f"{len(alert_ids)} alerts, 5 transitions each; killed the console "
                    f"{done['console']} times and the backend {done['backend']} times "
                    "before the outbox drained")
    return result


def sync_process_kills(workdir: Path, kills: int, rng: random.Random) -> Result:
    """The window runs its engine in a child process (console/sync/process.py): this
    process plays the window, and its sync process is killed mid-batch."""
    result = Result("kill -9 the window's sync process mid-batch; it is replaced on its cache",
                    kills)
    backend = fault_backend(workdir, 500).start(BUSY)
    cache = workdir / "cache.db"
    engine = EngineProcess(backend.url, "demo", "demo", str(cache), lambda c: None,
                           read_timeout=READ_TIMEOUT)
    pids = set()
    try:
        engine.launch().result(60)
        wait_until(lambda: cache_last_id(cache) > 0, 60, what="the first events")
        first = int(cache_meta(cache)["snapshot_event_id"])
        for _ in range(kills):
            wait_until(lambda: engine.status.state == "live", 60, what="a live replacement")
            time.sleep(rng.uniform(0.2, 1.0))
            pids.add(engine._child.pid)
            os.kill(engine._child.pid, signal.SIGKILL)
            wait_until(lambda: engine._child.pid not in pids, 60, what="a replacement")
        wait_until(lambda: engine.status.state == "live", 60, what="a live replacement")
        settle(backend, cache)
    finally:
        engine.stop()
    try:
        result.problems = compare(cache, backend)
        result.events = cache_last_id(cache) - first
    finally:
        backend.stop()
    result.notes = f"{len(pids)} sync processes killed, each replaced"
    return result


def replay_reset(workdir: Path, rounds: int, rng: random.Random) -> Result:
    result = Result("resume from an id older than the replay buffer", rounds)
    backend = fault_backend(workdir, 500, ["--replay", "300"]).start(BUSY)
    console = Console(workdir, backend.url)
    try:
        for _ in range(rounds):
            console.start()
            wait_until(lambda: console.status().get("state") == "live", 60, what="a live console")
            console.stop()
            left_at = cache_last_id(console.cache)
            wait_until(lambda left=left_at: backend.last_event_id() > left + 600, 60,
                       what="the buffer to move on")
        console.start()
        wait_until(lambda: int(cache_meta(console.cache).get("snapshot_event_id", 0)) > left_at + 600,
                   60, what="a fresh snapshot after the reset")
        conclude(result, backend, console)
    finally:
        console.stop()
        backend.stop()
    return result


SCENARIOS = [backend_kills, console_kills, freezes, offline_acks, inflight_drops,
             handling_kills, sync_process_kills, replay_reset]


def run_all(kills: int, acks: int, freezes_n: int, seed: int = 1) -> list[Result]:
    rng = random.Random(seed)
    sizes = {backend_kills: kills, console_kills: kills, freezes: freezes_n,
             offline_acks: acks, inflight_drops: max(50, acks // 5), handling_kills: kills,
             sync_process_kills: max(5, kills // 4), replay_reset: 2}
    results = []
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="em-faults-") as tmp:
            started = time.monotonic()
            try:
                result = scenario(Path(tmp), sizes[scenario], rng)
            except (TimeoutError, OSError, RuntimeError, httpx.HTTPError) as e:
                result = Result(scenario.__name__, sizes[scenario], problems=[f"{e}"])
            result.seconds = time.monotonic() - started
            results.append(result)
            print(row(result), flush=True)
    return results


HEADER = ("| scenario | faults | seconds | events or actions | consistent | notes |\n"
          "|---|---|---|---|---|---|")


def row(r: Result) -> str:
    verdict = "yes" if r.ok else "NO: " + "; ".join(r.problems)
    return f"| {r.scenario} | {r.iterations} | {r.seconds:.0f} | {r.events:,} | {verdict} | {r.notes} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--acks", type=int, default=1000)
    p.add_argument("--freezes", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--report", help="write the summary as Markdown to this file")
    args = p.parse_args()
    print(HEADER, flush=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="em-faults-keyring-") as keys:
        keyring_in(Path(keys))
        results = run_all(args.kills, args.acks, args.freezes, args.seed)
    if args.report:
        report = Path(args.report)
        # The measured part is rewritten; what the hand-written sections below it say stays.
        kept = report.read_text().partition(MEASURED_END)[2] if report.exists() else ""
        report.write_text(REPORT.format(
            started=started, command=" ".join(["python tests/fault_suite.py", *sys.argv[1:]]),
            table="\n".join([HEADER, *map(row, results)])) + MEASURED_END + kept)
    return 0 if all(r.ok for r in results) else 1


REPORT = """# Reliability

Written by `make faults` ({started}): `{command}`. Real processes on loopback:
the simulator with `--state` and `em-console --headless`, killed with SIGKILL at
random moments, frozen with SIGSTOP, and a TCP proxy that cuts connections after a
request reached the backend. Every cache is encrypted (SQLCipher, its key in a keyring
of the run's own). After every scenario the console's cache is compared
with the backend's snapshot (every device's latest status, every open alert with
its history, the last event id), and its count of applied events must equal the
span of ids since its snapshot: nothing lost, nothing applied twice.
Acknowledgements are checked at the backend: each alert acknowledged exactly once,
with the note queued first, and every later one for the same alert a conflict.
So is the handling of an alert: claim, shelve, unshelve, start work and close, each
exactly once and in order, while the headless console delivering them and the
backend are killed in turn. The window's engine runs in a process of its own; that
process is killed too, and the window's side must replace it on the same cache.

{table}

Machine: 2 vCPU, the same one that runs CI. `make test` runs the same scenarios
with a few faults each (`tests/test_faults.py`).
"""
MEASURED_END = "<!-- make faults rewrites everything above this line -->\n"


if __name__ == "__main__":
    sys.exit(main())
