"""The typed outbox (issue 9, point 3): every kind of action is queued, shown and
delivered through its own call, exactly once, and only by the operator who queued it.

Against the real simulator over loopback HTTP; the lost answer is a real cut
connection (tests/fault_suite.py's proxy), after the backend has the request."""

from pathlib import Path

import pytest
from conftest import wait_until
from fault_suite import DroppingProxy
from PySide6.QtCore import Qt
from test_sync import Recorder

from console.changes import Changes, Picture
from console.domain import Alert, AlertState
from console.domain.actions import (
    KINDS,
    Acknowledge,
    Action,
    ActionKind,
    ActionState,
    Kind,
    KindSpec,
    KindTexts,
    Payload,
)
from console.store import Store
from console.sync import SyncEngine
from console.sync.outbox import DELIVERIES
from ui.alerts.model import AlertQueueModel

DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class ExtraKind(Kind):
    """A kind only these tests have: the next issues add theirs the same way."""

    REMARK = "test-remark"


class Remark(Payload, frozen=True):
    alert_id: str
    remark: str


@pytest.fixture
def remark_kind():
    """Register the test's kind and its delivery, which acknowledges the alert under
    another name: the sender's loop and the store are not told anything about it."""
    KINDS[ExtraKind.REMARK] = KindSpec(Remark, KindTexts(
        queued="◷ remarking (queued)", sent="✓ remarked (sent)", what="remark on alert {alert_id}"))

    async def deliver(client, payload: Remark, key: str):
        return await client.acknowledge(payload.alert_id, payload.remark, key)

    DELIVERIES[ExtraKind.REMARK] = deliver
    yield ExtraKind.REMARK
    del KINDS[ExtraKind.REMARK], DELIVERIES[ExtraKind.REMARK]


class CutOnce:
    """The proxy's dice: cut the first answer to a POST after `armed` is set, and no other."""

    armed = False

    def random(self) -> float:
        if self.armed:
            self.armed = False
            return 0.0
        return 1.0


def unacknowledged(backend, n: int) -> list[str]:
    ids = [a["id"] for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged"][:n]
    assert len(ids) == n
    return ids


def acknowledgements(backend, alert_id: str) -> list[tuple[str, str]]:
    history = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"]
    return [(h["by"], h["note"]) for h in history if h["state"] == "acknowledged"]


def actions(engine: SyncEngine, *states: ActionState) -> list[Action]:
    return engine.query(lambda s: s.actions(states or tuple(ActionState))).result(5)


def test_every_kind_has_its_payload_its_delivery_and_a_text_for_every_state(qapp):
    for kind in ActionKind:
        assert kind in KINDS and kind in DELIVERIES, kind
        assert all(kind.text(state) for state in ActionState)
    ack = Action("k", ActionKind.ACKNOWLEDGE, Acknowledge("A1", "n"), 0.0, ActionState.PENDING)
    assert ack.label == "◷ acknowledging (queued)" and ack.what == "acknowledgement of alert A1"
    with pytest.raises(ValueError, match="carries a Acknowledge"):  # kind and payload agree
        Action("k", ActionKind.ACKNOWLEDGE, object(), 0.0, ActionState.PENDING)
    # A stock Debian desktop has DejaVu and no emoji font: every glyph must be in it.
    if not DEJAVU_SANS.exists():
        pytest.skip("DejaVu Sans is not installed (apt-get install fonts-dejavu-core)")
    from PySide6.QtGui import QRawFont

    font = QRawFont(str(DEJAVU_SANS), 12)
    texts = [kind.text(state) for kind in ActionKind for state in ActionState]
    assert sorted({ch for text in texts for ch in text
                   if ord(ch) > 127 and not font.supportsCharacter(ord(ch))}) == []


def test_a_second_kind_is_queued_loses_its_answer_is_retried_and_acts_exactly_once(
        start_backend, tmp_path, remark_kind):
    backend = start_backend(wearers=400, speed=0.0001)
    [alert_id] = unacknowledged(backend, 1)
    dice = CutOnce()
    proxy = DroppingProxy(backend.port, drop=0.5, rng=dice)
    cache = tmp_path / "cache.db"
    engine = SyncEngine(f"http://127.0.0.1:{proxy.port}", "demo", "demo", str(cache), Recorder())
    engine.start()
    try:
        wait_until(lambda: engine.status.state == "live")  # signed in: the next POST is ours
        dice.armed = True
        queued: Changes = engine.act(Remark(alert_id, "remarked once")).result(5)
        [action] = queued.actions.values()
        assert (action.kind, action.state, action.label) == \
            (remark_kind, ActionState.PENDING, "◷ remarking (queued)")
        wait_until(lambda: proxy.dropped == 1)
        wait_until(lambda: not actions(engine, ActionState.PENDING), timeout=30)
        [sent] = actions(engine, ActionState.DELIVERED)
    finally:
        engine.stop()
        proxy.close()
    # The first answer was cut after the backend had acted; the retry, under the same
    # key, was answered as the first time: one acknowledgement, with the remark.
    assert (sent.key, sent.payload, sent.attempts) == (action.key, Remark(alert_id, "remarked once"), 2)
    assert sent.label == "✓ remarked (sent)"
    assert acknowledgements(backend, alert_id) == [("Demo Operator", "remarked once")]
    store = Store(cache)
    try:
        assert store.conn.execute("SELECT kind, payload FROM outbox").fetchall() == \
            [("test-remark", f'{{"alert_id":"{alert_id}","remark":"remarked once"}}')]
        assert [(e.event, e.kind, e.alert_id, e.username) for e in store.audit()] == \
            [("queued", "test-remark", alert_id, "demo"),
             ("delivered", "test-remark", alert_id, "demo")]
    finally:
        store.close()


def test_only_the_operator_who_queued_an_action_delivers_it(start_backend, tmp_path):
    backend = start_backend(wearers=400, speed=0.0001)
    first, second, third = unacknowledged(backend, 3)
    cache = str(tmp_path / "cache.db")
    # demo acknowledges two alerts while the backend is out of reach, and signs out.
    offline = SyncEngine("http://127.0.0.1:9", "demo", "demo", cache, Recorder())
    offline.start()
    try:
        offline.acknowledge(first, "demo, first").result(5)
        offline.acknowledge(second, "demo, second").result(5)
    finally:
        offline.stop()
    # demo2 signs in on the same console: only their own action goes.
    engine = SyncEngine(backend.url, "demo2", "demo2", cache, Recorder())
    engine.start()
    try:
        engine.acknowledge(third, "demo2's").result(5)
        wait_until(lambda: acknowledgements(backend, third) == [("Second Operator", "demo2's")])
        wait_until(lambda: all(a.waiting for a in actions(engine, ActionState.PENDING)))
        waiting = actions(engine, ActionState.PENDING)
        wait_until(lambda: engine.status.pending_actions == 2)  # still queued, and counted
    finally:
        engine.stop()
    assert [(a.payload.alert_id, a.username, a.attempts, a.detail) for a in waiting] == [
        (first, "demo", 0, "waits for demo to sign in"),
        (second, "demo", 0, "waits for demo to sign in")]
    assert waiting[0].label == "◷ acknowledging (queued): waits for demo to sign in"
    assert acknowledgements(backend, first) == acknowledgements(backend, second) == []
    # demo signs in again: their actions go, in the order queued, under their own name.
    engine = SyncEngine(backend.url, "demo", "demo", cache, Recorder())
    engine.start()
    try:
        wait_until(lambda: not actions(engine, ActionState.PENDING), timeout=30)
    finally:
        engine.stop()
    assert acknowledgements(backend, first) == [("Demo Operator", "demo, first")]
    assert acknowledgements(backend, second) == [("Demo Operator", "demo, second")]
    assert acknowledgements(backend, third) == [("Second Operator", "demo2's")]
    store = Store(cache)
    try:
        delivered = [(e.username, e.alert_id) for e in store.audit() if e.event == "delivered"]
    finally:
        store.close()
    assert delivered == [("demo2", third), ("demo", first), ("demo", second)]


def test_the_queue_shows_each_action_by_its_kind_and_lists_those_needing_attention(qapp):
    alerts = {f"A{i}": Alert(f"A{i}", "W1", "D1", "battery", 1e9, AlertState.UNACKNOWLEDGED, True)
              for i in range(4)}
    model = AlertQueueModel(lambda: 1e9 + 60)
    model.show(None)  # every list: this is not about which list an alert is in
    model.apply(Changes(picture=Picture([], [], {}, alerts)))

    def ack(key, alert_id, state, detail=None, **kw):
        return Action(key, ActionKind.ACKNOWLEDGE, Acknowledge(alert_id, "n"), 1e9, state,
                      detail=detail, seq=int(key[1:]), **kw)

    mine = ack("k1", "A0", ActionState.PENDING, "ConnectError: refused", username="demo")
    theirs = ack("k2", "A1", ActionState.PENDING, "waits for demo2 to sign in", username="demo2")
    closed = ack("k3", "A2", ActionState.CONFLICT, "alert A2 is closed", username="demo")
    model.apply(Changes(actions={a.key: a for a in (mine, theirs, closed)}))
    shown = {model.alert_at(p).id: model.data(model.index(p, model.COL_STATE))
             for p in range(model.rowCount())}
    assert shown == {"A0": "◷ acknowledging (queued)",  # the connection line says why
                     "A1": "◷ acknowledging (queued): waits for demo2 to sign in",
                     "A2": "unacknowledged · ⚠ conflict", "A3": "unacknowledged"}
    # The refusal's reason is the first thing its tooltip says.
    refused_at = next(p for p in range(model.rowCount()) if model.alert_at(p).id == "A2")
    assert model.data(model.index(refused_at, model.COL_STATE), Qt.ToolTipRole).startswith(
        "Your acknowledgement of alert A2: ⚠ conflict: alert A2 is closed")
    assert sorted(model.problems) == ["k2", "k3"]
    # Delivered once demo2 signs in: it no longer needs attention.
    model.apply(Changes(actions={"k2": ack("k2", "A1", ActionState.DELIVERED, username="demo2")}))
    assert sorted(model.problems) == ["k3"]
    # An older action's news never hides the latest action on the same alert.
    model.apply(Changes(actions={"k4": ack("k4", "A2", ActionState.PENDING, username="demo")}))
    model.apply(Changes(actions={"k3": closed}))
    assert model.actions["A2"].key == "k4"
