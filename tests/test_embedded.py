"""The embedded training backend: a real child process, kept alive for the console."""

import time

from conftest import wait_until
from test_sync import engine_for

from console.embedded import EmbeddedSimulator


def test_a_dead_training_backend_is_restarted_on_its_port_and_state_and_the_console_resumes(
        tmp_path):
    told = []
    sim = EmbeddedSimulator(tmp_path / "backend.db", 100, keep_alive=True, on_restart=told.append)
    engine = engine_for(sim.url, tmp_path / "c.db")
    try:
        wait_until(lambda: engine.status.state == "live" and engine.status.applied > 0)
        first = sim.process.pid
        sim.process.kill()
        wait_until(lambda: told, timeout=30)
        assert sim.process.pid != first and sim.restarts == 1
        assert "restarted" in told[0] and "exit code -9" in told[0]
        last = engine.status.last_event_id
        wait_until(lambda: engine.status.state == "live" and engine.status.last_event_id > last,
                   timeout=60)
        assert engine.status.snapshots == 1  # the same stream resumed: no new snapshot
    finally:
        engine.stop()
        sim.stop()


def test_a_stopped_training_backend_stays_stopped(tmp_path):
    sim = EmbeddedSimulator(tmp_path / "backend.db", 50, keep_alive=True)
    sim.stop()
    time.sleep(1)
    assert sim.process.poll() is not None and sim.restarts == 0
