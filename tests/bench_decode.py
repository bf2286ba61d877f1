"""How fast the writer decodes device reports: 100,000 device.status frames through
console/sync/writer.decode_frames, the console's hot path while catching up.

    .venv/bin/python tests/bench_decode.py [--frames 100000] [--runs 7]

Prints the median and best run of frames per second. A measurement, not a test."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from console.domain import iso  # noqa: E402
from console.protocol.sse import Frame  # noqa: E402
from console.sync.writer import decode_frames  # noqa: E402

NOW = 1_795_000_000.0


def frames(n: int) -> list[Frame]:
    """Reports as the simulator writes them, for 100,000 devices."""
    rng = random.Random(7)
    return [Frame(str(i), "device.status", orjson.dumps({
        "device_id": f"D{rng.randrange(100_000):06d}", "ts": iso(NOW - rng.random() * 3600),
        "battery": round(rng.uniform(0, 100), 1), "charging": rng.random() < 0.1,
        "strap": rng.choice(["ok", "ok", "open", None]), "gps_fix": rng.choice([True, False, None]),
        "at_home": rng.choice([True, False, None])})) for i in range(1, n + 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    batch = frames(args.frames)
    rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        events, rejected = decode_frames(batch, NOW)
        rates.append(args.frames / (time.perf_counter() - started))
        assert len(events) == args.frames and not rejected, rejected[:3]
    print(f"{args.frames:,} device.status frames: median {statistics.median(rates):,.0f} frames/s, "
          f"best {max(rates):,.0f} ({1e6 / statistics.median(rates):.2f} µs a frame)")


if __name__ == "__main__":
    main()
