"""The sync engine against real backends over loopback HTTP."""

import random
import time

from conftest import wait_until
from hostile import status

from console.changes import Changes
from console.domain import AlertState
from console.domain.actions import ActionState
from console.protocol.client import decode_snapshot
from console.protocol.sse import encode_frame
from console.store import Store
from console.sync import ChangeFeed, SyncEngine, backoff_delay


class Recorder:
    """Collects what the engine publishes, as a UI would receive it."""

    def __init__(self):
        self.batches: list[Changes] = []
        self.base_id = None  # last_event_id of the newest full picture

    def __call__(self, changes: Changes):
        self.batches.append(changes)
        if changes.picture is not None:
            self.base_id = changes.last_event_id


def engine_for(url, cache, recorder=None, **kw):
    engine = SyncEngine(url, "demo", "demo", str(cache), recorder or Recorder(), **kw)
    engine.start()
    return engine


def assert_cache_equals_backend(cache, snapshot_bytes):
    snap = decode_snapshot(snapshot_bytes)
    store = Store(cache)
    try:
        picture = store.load()
        assert store.last_event_id == snap.last_event_id
        assert picture.statuses == snap.picture.statuses
        assert picture.alerts == snap.picture.alerts
        assert [w.id for w in picture.wearers] == [w.id for w in snap.picture.wearers]
    finally:
        store.close()


def settle(engine, backend):
    """Wait until the engine has applied everything the (slowed) backend has."""
    def caught_up():
        return engine.status.last_event_id == backend.snapshot()["last_event_id"]
    wait_until(caught_up, timeout=60, interval=0.2)


def test_backoff_is_full_jitter_capped_at_sixty_seconds():
    rng = random.Random(1)
    delays = [backoff_delay(a, rng) for a in range(12) for _ in range(50)]
    assert all(0 <= d <= 60 for d in delays)
    assert max(backoff_delay(0, rng) for _ in range(200)) <= 1.0
    assert max(backoff_delay(10, rng) for _ in range(200)) > 30


def test_change_feed_coalesces_per_device_and_rate_limits():
    published = []
    feed = ChangeFeed(published.append, interval=60)
    from console.domain import DeviceStatus
    for battery in range(100):
        feed.add(Changes(statuses={"D1": DeviceStatus("D1", 1e9 + battery, battery, False,
                                                      None, None, None)}, applied=1))
        feed.flush()
    assert len(published) == 1  # the first flush went out; the rest wait for the interval
    feed.flush(force=True)
    assert len(published) == 2
    assert published[1].statuses["D1"].battery == 99 and published[1].applied == 99


def test_killing_and_restarting_the_backend_mid_stream_leaves_the_cache_equal(
        start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=120, state=True)
    port = backend.url.rsplit(":", 1)[1]
    recorder = Recorder()
    engine = engine_for(backend.url, tmp_path / "cache.db", recorder)
    rng = random.Random(5)
    try:
        for kill in range(4):
            # Each kill lands on a live stream, so each one costs a reconnect.
            applied = engine.status.applied
            wait_until(lambda a=applied: engine.status.applied > a + 300, timeout=30)
            time.sleep(rng.uniform(0, 1))
            backend.kill()
            speed = 120 if kill < 3 else 0.0001  # the last backend stands still to compare
            backend = start_backend(wearers=300, speed=speed, state=True, port=port)
        settle(engine, backend)
        assert engine.status.reconnects >= 4
    finally:
        engine.stop()
    snapshot = backend.get("/api/v1/snapshot").content
    assert_cache_equals_backend(tmp_path / "cache.db", snapshot)
    # One snapshot, then every event exactly once: the count of applied events is
    # exactly the distance between the snapshot's id and the last id.
    assert engine.status.snapshots == 1
    assert engine.status.applied == engine.status.last_event_id - recorder.base_id
    assert engine.status.rejected == 0


def test_a_backend_with_a_new_stream_identity_triggers_a_fresh_snapshot(start_backend, tmp_path):
    first = start_backend(wearers=50, speed=60)
    port = first.url.rsplit(":", 1)[1]
    engine = engine_for(first.url, tmp_path / "cache.db")
    try:
        wait_until(lambda: engine.status.state == "live")
        first.kill()
        # A different fleet under a new identity; its ids restart from zero.
        second = start_backend(wearers=80, speed=0.0001, extra=["--seed", "99"], port=port)
        wait_until(lambda: engine.status.snapshots == 2, timeout=60)
        settle(engine, second)
    finally:
        engine.stop()
    assert_cache_equals_backend(tmp_path / "cache.db", second.get("/api/v1/snapshot").content)


def test_acknowledgements_queued_offline_reach_the_backend_exactly_once(start_backend, tmp_path):
    backend = start_backend(wearers=400, speed=0.0001, state=True)
    port = backend.url.rsplit(":", 1)[1]
    targets = [a["id"] for a in backend.snapshot()["alerts"]
               if a["state"] == "unacknowledged"][:5]
    assert targets
    engine = engine_for(backend.url, tmp_path / "cache.db", read_timeout=16)
    try:
        wait_until(lambda: engine.status.state == "live")
        backend.kill()
        for alert_id in targets:
            queued = engine.acknowledge(alert_id, f"note for {alert_id}").result(5)
            assert queued.actions[next(iter(queued.actions))].state is ActionState.PENDING
        assert len(_pending(engine)) == len(targets)  # durable while offline
        backend = start_backend(wearers=400, speed=0.0001, state=True, port=port)
        wait_until(lambda: not _pending(engine), timeout=60, interval=0.3)
        settle(engine, backend)
    finally:
        engine.stop()
    for alert_id in targets:
        alert = backend.get(f"/api/v1/alerts/{alert_id}").json()
        acks = [h for h in alert["history"] if h["state"] == "acknowledged"]
        assert len(acks) == 1 and acks[0]["note"] == f"note for {alert_id}"
    snapshot = decode_snapshot(backend.get("/api/v1/snapshot").content)
    for alert_id in targets:
        assert alert_id not in snapshot.picture.alerts or \
            snapshot.picture.alerts[alert_id].state is AlertState.ACKNOWLEDGED


def test_acknowledgements_made_while_others_are_being_sent_are_sent_too(start_backend, tmp_path):
    # Once, a wake-up that arrived while the sender was busy was cleared after its
    # round: the acknowledgements behind it stayed pending until something else
    # woke the sender.
    backend = start_backend(wearers=3000, speed=0.0001)
    targets = [a["id"] for a in backend.snapshot()["alerts"]
               if a["state"] == "unacknowledged"][:40]
    assert len(targets) == 40
    engine = engine_for(backend.url, tmp_path / "cache.db")
    try:
        wait_until(lambda: engine.status.state == "live")
        for alert_id in targets:  # an operator working down the queue, fast
            engine.acknowledge(alert_id, f"note for {alert_id}").result(5)
        wait_until(lambda: not _pending(engine), timeout=20, interval=0.2)
    finally:
        engine.stop()
    for alert_id in targets:
        history = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"]
        assert [h["note"] for h in history if h["state"] == "acknowledged"] == [f"note for {alert_id}"]


def _pending(engine):
    return engine.query(lambda s: s.actions((ActionState.PENDING,))).result(5)


def test_bad_events_are_counted_and_skipped_and_good_ones_around_them_applied(tmp_path, hostile):
    backend = hostile(b"".join([
        encode_frame(1, "device.status", status("D2", 10)),
        encode_frame(2, "device.status", b"{broken json"),
        encode_frame(3, "device.status", status("D2", 101)),
        encode_frame(4, "device.status", status("D2", 50, "2100-01-01T00:00:00Z")),
        encode_frame(5, "device.teleported", b"{}"),
        encode_frame(6, "device.status", b"\xff\xfe not utf-8"),
        encode_frame(7, "device.status", status("D2", 42)),
    ]))
    engine = engine_for(backend.url, tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.last_event_id == 7)
    finally:
        engine.stop()
    assert engine.status.applied == 2 and engine.status.rejected == 5
    assert "event 6" in engine.status.last_rejected
    store = Store(tmp_path / "c.db")
    picture = store.load()
    assert picture.statuses["D2"].battery == 42
    # The snapshot's unusable items were left out; the usable ones kept.
    assert [w.id for w in picture.wearers] == ["W2"] and [d.id for d in picture.devices] == ["D2"]
    store.close()


def test_an_answer_that_is_not_an_alert_keeps_the_action_pending_and_the_sender_going(
        tmp_path, hostile):
    # The hostile backend answers every POST, acknowledgements too, with a session.
    engine = engine_for(hostile().url, tmp_path / "cache.db")
    try:
        engine.acknowledge("A1", "first").result(5)
        wait_until(lambda: _pending(engine)[0].attempts >= 1)
        engine.acknowledge("A1", "second").result(5)
        wait_until(lambda: _pending(engine)[0].attempts >= 2)  # still sending
        pending = _pending(engine)
    finally:
        engine.stop()
    assert [a.payload.note for a in pending] == ["first", "second"]  # kept, in order
    assert "not an alert: Object missing required field `id`" in pending[0].detail


def test_a_gap_in_event_ids_means_a_new_snapshot_and_is_not_hammered(tmp_path, hostile):
    backend = hostile(b"".join([
        encode_frame(1, "device.status", status("D2", 10)),
        encode_frame(2, "device.status", status("D2", 20)),
        encode_frame(5, "device.status", status("D2", 50)),  # 3 and 4 are missing
    ]))
    engine = engine_for(backend.url, tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.snapshots >= 2)
        time.sleep(3)
        # Each gap costs a snapshot, but paced by backoff: not hundreds in 3 s.
        assert engine.status.snapshots <= 6
    finally:
        engine.stop()
    store = Store(tmp_path / "c.db")
    assert store.load().statuses["D2"].battery in (10, 20)  # never the event after the gap
    store.close()


def test_resuming_from_beyond_the_replay_buffer_ends_in_a_fresh_snapshot(start_backend, tmp_path):
    backend = start_backend(wearers=300, speed=120, extra=["--replay", "200"])
    cache = tmp_path / "cache.db"
    first = engine_for(backend.url, cache)
    wait_until(lambda: first.status.applied > 0)
    first.stop()
    resume_from = first.status.last_event_id
    wait_until(lambda: backend.snapshot()["last_event_id"] > resume_from + 600)
    recorder = Recorder()
    second = engine_for(backend.url, cache, recorder)
    try:
        wait_until(lambda: second.status.snapshots == 1 and second.status.applied > 0)
    finally:
        second.stop()
    assert recorder.base_id > resume_from + 600


def test_an_unreachable_backend_is_retried_with_the_reason_shown(tmp_path):
    engine = engine_for("http://127.0.0.1:9", tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.state == "reconnecting")
        assert engine.status.retry_at is not None and engine.status.detail
    finally:
        engine.stop()
