"""The operators' transitions on an alert over real HTTP (docs/protocol.md): claim,
take over, start work, close with an outcome, shelve and unshelve; what each
refuses, and that each is done once per idempotency key."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from console.protocol import schema
from console.protocol.schema import API


@pytest.fixture
def backend(start_backend):
    return start_backend(wearers=300, speed=1)


def as_second_operator(backend):
    token = httpx.post(f"{backend.url}{API}/session",
                       json={"username": "demo2", "password": "demo2"}).json()["token"]

    def post(path, **kw):
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4()),
                   **kw.pop("headers", {})}
        return httpx.post(f"{backend.url}{path}", headers=headers, timeout=30, **kw)
    return post


def move(backend, alert_id, verb, body=None, key=None):
    kw = {} if body is None else {"json": body}
    return backend.post(f"{API}/alerts/{alert_id}/{verb}",
                        headers={"Idempotency-Key": key or str(uuid.uuid4())}, **kw)


def unacknowledged(backend) -> dict:
    return next(a for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged")


def server_now(backend) -> float:
    return datetime.fromisoformat(backend.snapshot()["server_time"]).timestamp()


def test_claim_start_and_close_with_an_outcome_each_answer_the_new_alert(backend):
    alert = unacknowledged(backend)
    claimed = move(backend, alert["id"], "claim", {})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["state"] == "claimed" and claimed.json()["holder"] == "Demo Operator"
    working = move(backend, alert["id"], "start")
    assert working.status_code == 200 and working.json()["state"] == "in_work"
    closed = move(backend, alert["id"], "close",
                  {"outcome": "resolved_by_contact", "note": "spoke to the wearer, home now"})
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["state"] == "closed" and body["outcome"] == "resolved_by_contact"
    assert "holder" not in body or body["holder"] is None
    last = body["history"][-1]
    assert (last["by"], last["outcome"], last["note"]) == (
        "Demo Operator", "resolved_by_contact", "spoke to the wearer, home now")
    # The answer is the alert the stream and GET show: one definition, decoded strictly.
    assert schema.decode(closed.content, schema.Alert).state.value == "closed"
    assert backend.get(f"{API}/alerts/{alert['id']}").json() == body


def test_what_another_operator_holds_is_taken_only_on_purpose(backend):
    alert = unacknowledged(backend)
    assert move(backend, alert["id"], "claim", {}).status_code == 200
    other = as_second_operator(backend)
    refused = other(f"{API}/alerts/{alert['id']}/close",
                    json={"outcome": "false_alarm", "note": "not mine to close"})
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert "held by Demo Operator" in problem["detail"]
    assert problem["alert"]["holder"] == "Demo Operator"  # the alert as it stands
    assert other(f"{API}/alerts/{alert['id']}/claim", json={}).status_code == 409
    taken = other(f"{API}/alerts/{alert['id']}/claim", json={"take_over": True})
    assert taken.status_code == 200, taken.text
    assert taken.json()["holder"] == "Second Operator"
    assert taken.json()["history"][-1]["note"] == "taken over from Demo Operator"
    # The first holder's stale close is now the one refused.
    stale = move(backend, alert["id"], "close", {"outcome": "false_alarm", "note": "x"})
    assert stale.status_code == 409 and stale.json()["alert"]["holder"] == "Second Operator"


@pytest.mark.parametrize("body, why", [
    ({"note": "no outcome"}, "outcome"),
    ({"outcome": "resolved_by_contact", "note": "  "}, "note"),
    ({"outcome": "resolved_by_contact"}, "note"),
    ({"outcome": "made_up", "note": "x"}, "outcome"),
])
def test_closing_without_an_outcome_and_a_note_is_422(backend, body, why):
    alert = unacknowledged(backend)
    assert move(backend, alert["id"], "claim", {}).status_code == 200
    resp = move(backend, alert["id"], "close", body)
    assert resp.status_code == 422 and why in resp.json()["detail"], resp.text
    assert backend.get(f"{API}/alerts/{alert['id']}").json()["state"] == "claimed"


@pytest.mark.parametrize("hours, reason", [(0, "known fault"), (-1, "known fault"),
                                           (8.1, "known fault"), (1, ""), (1, "   ")])
def test_shelving_for_no_time_past_8_hours_or_without_a_reason_is_422(backend, hours, reason):
    alert = unacknowledged(backend)
    until = datetime.fromtimestamp(server_now(backend) + hours * 3600, UTC).isoformat()
    resp = move(backend, alert["id"], "shelve", {"until": until, "reason": reason})
    assert resp.status_code == 422, resp.text
    assert backend.get(f"{API}/alerts/{alert['id']}").json().get("shelved_until") is None


def test_shelving_records_reason_and_expiry_and_unshelving_lifts_it(backend):
    alert = unacknowledged(backend)
    until = datetime.fromtimestamp(server_now(backend) + 2 * 3600, UTC).isoformat()
    shelved = move(backend, alert["id"], "shelve",
                   {"until": until, "reason": "engineer booked for the home unit"})
    assert shelved.status_code == 200, shelved.text
    assert shelved.json()["shelved_reason"] == "engineer booked for the home unit"
    assert shelved.json()["state"] == "unacknowledged"  # an overlay, not a handling state
    lifted = move(backend, alert["id"], "unshelve")
    assert lifted.status_code == 200 and lifted.json().get("shelved_until") is None
    notes = [h.get("note") for h in lifted.json()["history"]]
    assert notes[-2:] == ["shelved: engineer booked for the home unit", "unshelved"]


def test_each_transition_is_done_once_per_key_and_a_reused_key_is_refused(backend):
    alert = unacknowledged(backend)
    key = str(uuid.uuid4())
    first = move(backend, alert["id"], "claim", {}, key=key)
    again = move(backend, alert["id"], "claim", {}, key=key)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    history = backend.get(f"{API}/alerts/{alert['id']}").json()["history"]
    assert [h["state"] for h in history].count("claimed") == 1
    assert move(backend, alert["id"], "claim", {"take_over": True}, key=key).status_code == 422
    assert move(backend, alert["id"], "start", key=key).status_code == 422


def test_transitions_on_an_unknown_alert_are_404_and_a_missing_body_400(backend):
    for verb, body in [("claim", {}), ("start", None), ("unshelve", None),
                       ("close", {"outcome": "duplicate", "note": "x"})]:
        resp = move(backend, "NOPE", verb, body)
        assert resp.status_code == 404 and resp.json()["title"] == "No such alert", verb
    alert = unacknowledged(backend)
    resp = backend.post(f"{API}/alerts/{alert['id']}/claim",
                        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/problem+json"


def test_the_longest_shelving_reason_leaves_an_alert_every_console_can_read(backend):
    alert = unacknowledged(backend)
    until = datetime.fromtimestamp(server_now(backend) + 3600, UTC).isoformat()
    longest = "r" * schema.MAX_SHELVE_REASON
    too_long = move(backend, alert["id"], "shelve", {"until": until, "reason": longest + "r"})
    assert too_long.status_code == 422, too_long.text
    shelved = move(backend, alert["id"], "shelve", {"until": until, "reason": longest})
    assert shelved.status_code == 200, shelved.text
    # What the stream and the answer carry decodes under the same limits.
    assert schema.decode(shelved.content, schema.Alert).shelved_reason == longest

