"""The sync engine never dies silently: hostile snapshots and streams, a full disk,
a hung backend. Each over real loopback HTTP against tests/hostile.py or the simulator."""

import asyncio
import logging
import socket
import threading
import time

from conftest import wait_until
from hostile import snapshot, status
from test_sync import Recorder, engine_for

from console.protocol.sse import encode_frame
from console.store import Store
from console.sync import SyncEngine


def test_a_snapshot_with_a_duplicate_wearer_after_a_reset_is_refused_and_retried(
        tmp_path, hostile):
    backend = hostile(encode_frame(1, "device.status", status("D2", 10))
                      + encode_frame(1, "reset", b"{}"))
    cache = tmp_path / "c.db"
    engine = engine_for(backend.url, cache)
    try:
        wait_until(lambda: engine.status.snapshots >= 1)
        good = engine.status.snapshots
        duplicate = [{"id": "W2", "ref": "EM-2", "curfew": None}] * 2
        backend.snapshot = snapshot(wearers=duplicate)
        wait_until(lambda: "lists wearer W2 twice" in engine.status.detail)
        asked = backend.requests["snapshot"]
        wait_until(lambda: backend.requests["snapshot"] > asked + 1)  # still trying
        assert engine.status.state == "reconnecting"
        good = engine.status.snapshots
        # the last good picture is kept
        assert engine.query(lambda s: [w.id for w in s.load().wearers]).result(5) == ["W2"]
        backend.snapshot = snapshot()  # the backend is mended
        wait_until(lambda: engine.status.snapshots > good, timeout=90)
    finally:
        engine.stop()


def test_a_first_snapshot_of_the_wrong_shape_is_reported_and_retried_until_mended(
        tmp_path, hostile):
    backend = hostile(snapshot_body=snapshot(devices=5))
    engine = engine_for(backend.url, tmp_path / "c.db")
    try:
        wait_until(lambda: "Expected `array`, got `int` - at `$.devices`" in engine.status.detail)
        assert engine.status.state == "reconnecting"
        backend.snapshot = snapshot()
        wait_until(lambda: engine.status.snapshots == 1, timeout=90)
    finally:
        engine.stop()


def test_a_full_disk_while_storing_a_snapshot_is_shown_and_retried(tmp_path, hostile):
    backend = hostile(snapshot_body=snapshot(devices=5))  # refused until the disk is "full"
    cache = tmp_path / "c.db"
    engine = engine_for(backend.url, cache)

    def page_limit(pages):  # SQLite's page limit refuses growth as a full disk would
        engine.query(lambda s: s.conn.execute(f"PRAGMA max_page_count = {pages}")).result(5)

    try:
        wait_until(lambda: "Expected `array`, got `int` - at `$.devices`" in engine.status.detail)
        page_limit(1)  # no more pages than it has now
        backend.snapshot = snapshot(wearers=[{"id": f"W{i}", "ref": f"EM-{i}", "curfew": None}
                                             for i in range(5000)])
        wait_until(lambda: "full" in engine.status.detail, timeout=90)
        assert engine.status.state == "reconnecting" and engine.status.snapshots == 0
        page_limit(1_000_000)
        wait_until(lambda: engine.status.snapshots == 1, timeout=90)
    finally:
        engine.stop()


def test_a_sign_in_answer_without_a_token_is_a_protocol_error_not_a_dead_task(
        tmp_path, hostile, monkeypatch):
    monkeypatch.setattr("hostile.SESSION", b'{"operator": {}}')
    engine = engine_for(hostile().url, tmp_path / "c.db")
    try:
        wait_until(lambda: "not a session" in engine.status.detail)
    finally:
        engine.stop()


def test_the_supervisor_restarts_a_task_that_ends_and_says_so(tmp_path):
    engine = SyncEngine("http://127.0.0.1:9", "demo", "demo", str(tmp_path / "c.db"), Recorder())
    runs = []

    async def flaky():
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise RuntimeError("a bug")
        if len(runs) == 2:
            return  # ended without being asked to
        await asyncio.Event().wait()

    async def main():
        task = asyncio.create_task(engine._supervise("test", flaky))
        async with asyncio.timeout(10):
            while len(runs) < 3:
                await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(main())
    assert len(runs) == 3 and "internal error in the test task" in engine.status.detail


def test_an_event_id_that_is_not_ascii_is_skipped_and_counted_without_reconnecting(
        tmp_path, hostile):
    backend = hostile(b"".join([
        encode_frame(1, "device.status", status("D2", 10)),
        b"id: \xc2\xb2\nevent: device.status\ndata: " + status("D2", 99) + b"\n\n",  # "²"
        encode_frame(2, "device.status", status("D2", 20)),
    ]))
    backend.hold_stream = 30
    engine = engine_for(backend.url, tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.last_event_id == 2)
        time.sleep(1)
        assert backend.requests["events"] == 1  # the stream was never dropped
        assert engine.status.applied == 2 and engine.status.rejected == 1
        assert "not a positive integer" in engine.status.last_rejected
    finally:
        engine.stop()


def test_a_closed_stream_that_brought_nothing_does_not_reset_the_backoff(tmp_path, hostile):
    backend = hostile(b": heartbeat\n\n")
    backend.hold_stream = 0
    engine = engine_for(backend.url, tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.reconnects >= 4, timeout=60)
        assert engine._attempt >= 4
    finally:
        engine.stop()


def test_an_oversized_event_is_counted_logged_by_id_and_shown(tmp_path, hostile, caplog):
    backend = hostile(b"".join([
        encode_frame(1, "device.status", status("D2", 10)),
        encode_frame(2, "device.status", b'{"pad": "' + b"x" * (5 << 20) + b'"}'),
    ]))
    backend.hold_stream = 30
    with caplog.at_level(logging.WARNING, logger="console.sync"):
        engine = engine_for(backend.url, tmp_path / "c.db")
        try:
            wait_until(lambda: engine.status.rejected == 1)
            assert "event 2: larger than 1 MiB" in engine.status.last_rejected
        finally:
            engine.stop()
    assert any("event 2: larger than 1 MiB" in r.getMessage() for r in caplog.records)


def test_a_snapshot_over_the_limit_is_refused_before_it_is_all_read(tmp_path, hostile):
    backend = hostile(snapshot_body=snapshot(padding="x" * 200_000))
    cache = tmp_path / "c.db"
    for with_length in (True, False):
        backend.snapshot_length = with_length
        engine = engine_for(backend.url, cache, max_snapshot_bytes=100_000)
        try:
            wait_until(lambda e=engine: "limit of 100,000 bytes" in e.status.detail
                       or "the limit is 100,000" in e.status.detail)
            assert engine.status.snapshots == 0
        finally:
            engine.stop()
    engine = engine_for(backend.url, cache)  # the default limit is generous
    try:
        wait_until(lambda: engine.status.snapshots == 1)
    finally:
        engine.stop()


def test_stop_returns_within_about_a_second_even_against_a_backend_that_hangs(tmp_path):
    # Accepts connections and never answers.
    listener = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(20)],
                     daemon=True).start()
    engine = engine_for(f"http://127.0.0.1:{listener.getsockname()[1]}", tmp_path / "c.db")
    try:
        wait_until(lambda: held)
        engine.acknowledge("A1", "queued while the backend hangs").result(5)
        time.sleep(0.3)
        started = time.monotonic()
        engine.stop()
        assert time.monotonic() - started < 2.0
        assert engine.status.state == "stopped"
    finally:
        listener.close()


def test_the_queued_count_drops_as_soon_as_an_action_is_delivered(start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=60)
    alert = next(a for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged")
    engine = engine_for(backend.url, tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.state == "live")
        engine.acknowledge(alert["id"], "seen").result(5)
        wait_until(lambda: engine.status.pending_actions == 1 or
                   backend.get(f"/api/v1/alerts/{alert['id']}").json()["state"] != "unacknowledged")
        wait_until(lambda: engine.status.pending_actions == 0, timeout=5)
    finally:
        engine.stop()


def test_while_the_link_is_down_devices_are_judged_at_the_last_server_time_heard(
        start_backend, tmp_path):
    backend = start_backend(wearers=100, speed=600)
    engine = engine_for(backend.url, tmp_path / "c.db", read_timeout=2)
    try:
        wait_until(lambda: engine.status.state == "live" and engine.status.applied > 0)
        assert abs(engine.picture_time() - engine.clock.now()) < 60  # live: now
        backend.kill()
        wait_until(lambda: engine.status.state == "reconnecting")
        held = engine.picture_time()
        time.sleep(1)  # ten simulated minutes
        assert engine.picture_time() == held
        assert engine.clock.now() > held + 500  # the server's clock went on meanwhile
    finally:
        engine.stop()


def test_a_restarted_console_judges_its_cached_picture_as_of_its_newest_report(
        start_backend, tmp_path):
    backend = start_backend(wearers=100, speed=600)
    cache = tmp_path / "c.db"
    engine = engine_for(backend.url, cache)
    wait_until(lambda: engine.status.applied > 0)
    engine.stop()
    backend.kill()
    store = Store(cache)
    newest = max(s.ts for s in store.load().statuses.values())
    store.close()
    offline = engine_for(backend.url, cache)
    try:
        time.sleep(0.5)
        assert offline.status.state != "live" and offline.picture_time() == newest
    finally:
        offline.stop()
