"""The benchmark suite behind `make bench`: targets P1-P7 of docs/perf.md.

    python tests/bench_suite.py --minutes 10 --runs 3 --report docs/perf.md
    python tests/bench_suite.py --only P7 --report docs/perf.md   (the trail map alone)

Benchmarks, not tests: they print and record what they measure, against targets,
and never fail a build. Each number is a median over --runs runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlcipher3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backends import keyring_in, read_cache  # noqa: E402

from console.embedded import EmbeddedSimulator  # noqa: E402
from console.protocol.client import decode_snapshot  # noqa: E402
from console.protocol.schema import API  # noqa: E402
from console.store import Store  # noqa: E402
from console.store.fleet import status_row  # noqa: E402

GPS_SHARE = 0.8  # of the simulated fleet (console/simulator/fleet.py)
# Start-up (a 100,000-wearer snapshot, the first model load) is P5's business; the
# sustained figures start this many seconds in. Start-up's worst stall is reported too.
WARM_UP = 15
# The simulator is a real backend to the console, which guesses no password for one.
# Added to the environment as it is when a console starts (its keyring is set in main).
CONSOLE_ENV = {"QT_QPA_PLATFORM": "offscreen", "EM_CONSOLE_USER": "demo", "EM_CONSOLE_PASSWORD": "demo"}


def speed_for(wearers: int, events_per_s: float) -> float:
    """Simulator speed giving about this many device reports a second."""
    return events_per_s * 60 / (wearers * GPS_SHARE)


def offscreen(backend: str, cache: Path, seconds: float, warm_up: float = 0.0) -> dict:
    """Run the real window offscreen against a backend; its JSON summary."""
    out = subprocess.run(
        [sys.executable, "-m", "ui.cli", "--backend", backend, "--cache", str(cache),
         "--offscreen-for", str(seconds), "--warm-up", str(warm_up)],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300, env={**os.environ, **CONSOLE_ENV})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def backend_last_id(url: str) -> int:
    token = httpx.post(f"{url}{API}/session", json={"username": "demo", "password": "demo"}
                       ).json()["token"]
    return httpx.get(f"{url}{API}/snapshot", headers={"Authorization": f"Bearer {token}"},
                     timeout=60).json()["last_event_id"]


def raw_executemany_rate(rows: list[tuple]) -> float:
    """Rows per second of a plain sqlite3 executemany of these rows, one transaction."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE s (device_id TEXT PRIMARY KEY, ts REAL, battery REAL, "
                     "charging INTEGER, strap TEXT, gps_fix INTEGER, at_home INTEGER, "
                     "event_id INTEGER)")
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO s VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        return len(rows) / (time.perf_counter() - started)


def sustained(minutes: float, wearers: int, rate: float) -> dict:
    """P1, P2, P6: the whole pipe at a rate for a while, with the window up."""
    sim = EmbeddedSimulator(None, wearers, speed_for(wearers, rate), ["--replay", "2000000"])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = offscreen(sim.url, Path(tmp) / "cache.db", minutes * 60, WARM_UP)
            produced = backend_last_id(sim.url)
            store = Store(Path(tmp) / "cache.db")
            meta = store.meta()
            rows = [status_row(s, 0) for s in store.load().statuses.values()]
            store.close()
    finally:
        sim.stop()
    applied = int(meta["applied_since_snapshot"])  # what the cache holds, at the very end
    span = int(meta["last_event_id"]) - int(meta["snapshot_event_id"])
    rows = (rows * (applied // max(1, len(rows)) + 1))[:applied]  # as many rows as events
    raw = raw_executemany_rate([(f"{r[0]}-{i}", *r[1:]) for i, r in enumerate(rows)])
    per_s = summary["events_applied"] / (minutes * 60)
    return {"events_per_s": per_s, "applied": applied, "lost": span - applied,
            "backend_ahead_at_end": produced - int(meta["last_event_id"]),
            "raw_rows_per_s": raw, "ratio": per_s / raw, **summary}


def board_at_scale(wearers: int) -> dict:
    """P3: sorting and filtering a board of 100,000 wearers; process RSS."""
    code = f"""
import json, os, resource, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, {str(ROOT)!r})
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from console.embedded import EmbeddedSimulator
from console.protocol.client import decode_snapshot
from console.changes import Changes
from tests.bench_suite import snapshot_bytes
from ui.board.model import StatusBoardModel
from ui.board.widget import StatusBoard
app = QApplication([])
sim = EmbeddedSimulator(None, {wearers}, 1)
snap = decode_snapshot(snapshot_bytes(sim.url))
sim.stop()
model = StatusBoardModel(lambda: snap.server_time)
board = StatusBoard(model)
board.resize(1400, 900)
board.show()
model.apply(Changes(picture=snap.picture))
app.processEvents()
times = {{}}
def timed(name, fn):
    t = time.perf_counter(); fn(); app.processEvents(); times[name] = (time.perf_counter() - t) * 1000
for col, title in enumerate(model.HEADERS):
    timed("sort " + title, lambda c=col: model.sort(c, Qt.DescendingOrder))
model.sort(0)
timed("filter offline", lambda: model.set_filter(offline=True))
timed("filter off", lambda: model.set_filter(offline=False))
timed("filter low battery", lambda: model.set_filter(low_battery=True))
timed("filter off 2", lambda: model.set_filter(low_battery=False))
timed("search", lambda: model.set_filter(search="em-12"))
timed("search cleared", lambda: model.set_filter(search=""))
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) * 1024
print(json.dumps({{"rows": model.total, "times_ms": times, "rss_bytes": rss}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def snapshot_bytes(url: str) -> bytes:
    token = httpx.post(f"{url}{API}/session", json={"username": "demo", "password": "demo"}
                       ).json()["token"]
    return httpx.get(f"{url}{API}/snapshot", headers={"Authorization": f"Bearer {token}"},
                     timeout=120).content


def catch_up(outage_events: int, live_rate: float, wearers: int) -> dict:
    """P4: a console that was away while `outage_events` piled up drains them while
    the backend goes on at `live_rate`, with the window up (stalls measured)."""
    with tempfile.TemporaryDirectory() as tmp:
        state, cache = Path(tmp) / "backend.db", Path(tmp) / "cache.db"
        extra = ["--replay", str(outage_events * 2)]
        # Build the outage fast: a busy backend while the console is away...
        sim = EmbeddedSimulator(state, wearers, speed_for(wearers, 15_000), extra)
        offscreen(sim.url, cache, 10)  # the console's last look before the outage
        left_at = _last_id(cache)
        while backend_last_id(sim.url) < left_at + outage_events:
            time.sleep(1)
        sim.process.kill()
        sim.process.wait()
        # ...then the backend carries on at the live rate, and the console returns.
        port = sim.url.rsplit(":", 1)[1]
        sim = EmbeddedSimulator(state, wearers, speed_for(wearers, live_rate),
                                [*extra, "--port", port])
        try:
            target = backend_last_id(sim.url)
            started = time.time()
            window = subprocess.Popen(
                [sys.executable, "-m", "ui.cli", "--backend", sim.url, "--cache", str(cache),
                 "--offscreen-for", "120", "--warm-up", "5"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env={**os.environ, **CONSOLE_ENV})
            drained_in = drained_at = None
            while window.poll() is None:
                if drained_in is None and _last_id(cache) >= target:
                    drained_at = time.time()
                    drained_in = drained_at - started
                time.sleep(0.25)
            summary = json.loads(window.stdout.read().strip().splitlines()[-1])
            store = Store(cache)
            rows = [status_row(s, 0) for s in store.load().statuses.values()]
            store.close()
        finally:
            sim.stop()
    # Capacity: the rate the console drains a backlog at, against a plain executemany
    # of as many status rows measured now, on the same machine and load.
    backlog = target - left_at
    rows = (rows * (backlog // max(1, len(rows)) + 1))[:backlog]
    raw = raw_executemany_rate([(f"{r[0]}-{i}", *r[1:]) for i, r in enumerate(rows)])
    # The rate is timed from the window showing its cached board: the launch before
    # that is a fixed cost, whatever the backlog, and P5 times it.
    draining = drained_at - summary["ready_at"] if drained_in else None
    drain_rate = backlog / draining if draining else 0.0
    return {"backlog": backlog, "drained_in_s": drained_in, "draining_s": draining,
            "drain_rate": drain_rate,
            "raw_rows_per_s": raw, "capacity": drain_rate / raw, **summary}


def _last_id(cache: Path) -> int:
    conn = read_cache(cache)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_event_id'").fetchone()
        return int(row[0]) if row else 0
    except sqlcipher3.OperationalError:
        return 0
    finally:
        conn.close()


def cold_start(wearers: int) -> dict:
    """P5: from launch to an interactive window showing a cached board of `wearers`."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.db"
        sim = EmbeddedSimulator(None, wearers, 1)
        try:
            snap = decode_snapshot(snapshot_bytes(sim.url))
        finally:
            sim.stop()

        store = Store(cache)
        store.replace_all(snap.picture,
                          snap.last_event_id, stream_id=snap.stream_id)
        store.close()
        started = time.time()
        # No backend answers on port 9: the window must come up from the cache alone.
        summary = offscreen("http://127.0.0.1:9", cache, 8)
    return {"ready_s": summary["ready_at"] - started, "rows": summary["wearers"]}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine() -> str:
    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").exists():
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else cpu
    return (f"{os.cpu_count()} vCPU {cpu}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10, help="length of the sustained run (P1)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rate", type=float, default=11_000, help="events/s offered in P1")
    p.add_argument("--report", help="write the results into this Markdown file")
    p.add_argument("--only", choices=["P7"], help="run only this benchmark")
    args = p.parse_args()
    if args.only != "P7":
        p1_to_p6(args)
    # P7, the trail map (tests/bench_trails.py): one run, its own table.
    import bench_trails

    print("P7", flush=True)
    block = bench_trails.table(bench_trails.measure())
    print(block)
    if args.report:
        bench_trails.write_report(Path(args.report), block, machine())
    return 0


def p1_to_p6(args) -> None:
    results: dict[str, list] = {k: [] for k in ("p1", "p3", "p4", "p5")}
    keyring = tempfile.TemporaryDirectory(prefix="em-bench-keyring-")
    keyring_in(Path(keyring.name))
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", flush=True)
        results["p1"].append(sustained(args.minutes, 100_000, args.rate))
        print("  P1/P2/P6", results["p1"][-1], flush=True)
        results["p3"].append(board_at_scale(100_000))
        print("  P3", results["p3"][-1], flush=True)
        results["p4"].append(catch_up(600_000, 1_000, 60_000))
        print("  P4", results["p4"][-1], flush=True)
        results["p5"].append(cold_start(100_000))
        print("  P5", results["p5"][-1], flush=True)
    table = summarise(results, args)
    print(table)
    if args.report:
        write_report(Path(args.report), table, args)


def summarise(results: dict, args) -> str:
    p1, p3, p4, p5 = (results[k] for k in ("p1", "p3", "p4", "p5"))
    worst_sort = [max(r["times_ms"].values()) for r in p3]
    rows = [
        ("P1", f"sustained ingest, {args.minutes:g} min, SSE → sync → store → Qt model",
         "≥ 10,000 events/s, 0 lost, ≥ 50% of raw executemany",
         f"{median([r['events_per_s'] for r in p1]):,.0f} events/s, "
         f"lost {max(r['lost'] for r in p1)}, "
         f"{median([r['ratio'] for r in p1]):.1%} of raw executemany "
         f"({median([r['raw_rows_per_s'] for r in p1]):,.0f} rows/s)"),
        ("P2", "GUI-thread stalls during P1", "p99 ≤ 50 ms, max ≤ 200 ms",
         f"p99 {median([r['gui_stall_p99_ms'] for r in p1])} ms, "
         f"max {median([r['gui_stall_max_ms'] for r in p1])} ms after the first "
         f"{WARM_UP} s ({median([r['gui_stall_max_with_warm_up_ms'] for r in p1])} ms "
         f"with start-up)"),
        ("P3", "board of 100,000 wearers: slowest sort or filter; RSS",
         "≤ 100 ms; ≤ 1 GB",
         f"{median(worst_sort):.0f} ms; {median([r['rss_bytes'] for r in p3]) / 2**20:,.0f} MiB"),
        ("P4", "catch-up of a 10-minute outage at 1,000 events/s", "600,000 drained ≤ 60 s, P2 holds",
         f"{median([r['backlog'] for r in p4]):,.0f} drained in "
         f"{median([r['drained_in_s'] for r in p4]):.1f} s from launch "
         f"({median([r['draining_s'] for r in p4]):.1f} s from the cached board); stalls p99 "
         f"{median([r['gui_stall_p99_ms'] for r in p4])} ms, max "
         f"{median([r['gui_stall_max_ms'] for r in p4])} ms after the first 5 s "
         f"({median([r['gui_stall_max_with_warm_up_ms'] for r in p4])} ms with the cached "
         f"picture's load)"),
        ("P4c", "capacity: P4's drain rate, timed from the window showing its cached board, "
                "against a raw executemany of as many rows, same run",
         "≥ 25% of raw",
         f"{median([r['drain_rate'] for r in p4]):,.0f} events/s, "
         f"{median([r['capacity'] for r in p4]):.1%} of raw executemany "
         f"({median([r['raw_rows_per_s'] for r in p4]):,.0f} rows/s)"),
        ("P5", "cold start, 100,000 wearers cached, to an interactive window", "≤ 2 s",
         f"{median([r['ready_s'] for r in p5]):.2f} s"),
        ("P6", "event arrival to visible row, during P1", "p99 ≤ 1 s",
         f"p99 {median([r['event_to_row_p99_s'] for r in p1])} s"),
    ]
    lines = ["| # | what | target (2 cores) | measured (median) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def write_report(path: Path, table: str, args) -> None:
    replace_marked(path, "bench", (
        f"## Benchmarks (`make bench`)\n\nMachine: {machine()}. Measured "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {args.runs} runs, medians. Command: "
        f"`python tests/bench_suite.py --minutes {args.minutes:g} --runs {args.runs}`.\n\n{table}"))


def replace_marked(path: Path, name: str, block: str) -> None:
    """Put `block` between the `name` markers of a Markdown file (appended with its
    markers the first time); what is outside the markers is hand-written and stays."""
    text = path.read_text() if path.exists() else "# Performance\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    marked = f"{start}\n{block}\n{end}"
    if start in text:
        text = re.sub(f"{re.escape(start)}.*{re.escape(end)}", lambda _: marked, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + marked + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
