"""Case entries and suspensions over real HTTP (docs/protocol.md): recorded once
per idempotency key, refused with the reason when their rules are not met, listed
on the wearer's record, and kept across a restart of the backend."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from console.protocol.schema import API


def closed_breach(backend) -> dict:
    """Close an open alert as confirmed non-compliance; the alert as closed."""
    alert = next(a for a in backend.snapshot()["alerts"] if a["holder"] is None)
    for verb, body in (("claim", {}), ("close", {"outcome": "confirmed_non_compliance",
                                                  "note": "out all night, no excuse"})):
        r = backend.post(f"{API}/alerts/{alert['id']}/{verb}",
                         headers={"Idempotency-Key": str(uuid.uuid4())}, json=body)
        assert r.status_code == 200, r.text
    return r.json()


def record(backend, wearer_id, body, key=None):
    return backend.post(f"{API}/wearers/{wearer_id}/case", json=body,
                        headers={"Idempotency-Key": key or str(uuid.uuid4())})


def now_iso(backend) -> str:
    return backend.snapshot()["server_time"]


def test_an_entry_is_recorded_once_per_key_and_listed_on_the_record(start_backend):
    backend = start_backend(wearers=200, speed=1)
    breach = closed_breach(backend)
    body = {"kind": "breach_identified", "at": now_iso(backend), "alert_ids": [breach["id"]],
            "note": "curfew breach confirmed by the device"}
    first = record(backend, breach["wearer_id"], body, key="case-key-1")
    assert first.status_code == 200, first.text
    entry = first.json()
    assert entry["recorded_by"] == "Demo Operator" and entry["kind"] == "breach_identified"
    again = record(backend, breach["wearer_id"], body, key="case-key-1")
    assert again.json() == entry  # a retry: the same answer, nothing recorded twice
    case = backend.get(f"{API}/wearers/{breach['wearer_id']}").json()["case"]
    assert [e["id"] for e in case] == [entry["id"]]


@pytest.mark.parametrize("change, status, reason", [
    ({"kind": "decision", "sanction": "warning_letter", "note": "late again"}, 422,
     "names its decision maker"),
    ({"kind": "referral_for_prosecution", "decision_maker": "J. Patel"}, 422, "gives its reasons"),
    ({"kind": "warning_letter", "alert_ids": []}, 422, "names the breaches"),
    ({"kind": "mitigation_requested", "at": "2099-01-01T00:00:00+00:00"}, 422, "in the future"),
    ({"kind": "not_a_kind"}, 422, ""),
    ({"kind": "warning_letter", "alert_ids": ["A99999999"]}, 422, "not one of this wearer's"),
])
def test_an_entry_its_kinds_rules_refuse_is_a_422_that_says_why(start_backend, change, status,
                                                                  reason):
    backend = start_backend(wearers=200, speed=1)
    breach = closed_breach(backend)
    body = {"kind": "warning_letter", "at": now_iso(backend), "alert_ids": [breach["id"]],
            "note": ""} | change
    r = record(backend, breach["wearer_id"], body)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]
    assert backend.get(f"{API}/wearers/{breach['wearer_id']}").json()["case"] == []


def test_an_entry_for_an_unknown_wearer_is_a_404(start_backend):
    backend = start_backend(wearers=50, speed=1)
    r = record(backend, "W-nobody", {"kind": "authority_notified",
                                     "at": datetime.now(UTC).isoformat()})
    assert r.status_code == 404


def test_the_case_survives_a_restart_of_the_backend(start_backend):
    backend = start_backend(wearers=200, speed=1, state=True)
    breach = closed_breach(backend)
    body = {"kind": "decision", "at": now_iso(backend), "alert_ids": [breach["id"]],
            "decision_maker": "J. Patel", "sanction": "conditions_varied",
            "note": "second breach in a month: curfew moved to 19:00"}
    entry = record(backend, breach["wearer_id"], body, key="case-key-2").json()
    backend.stop()
    backend.start(speed=1)
    case = backend.get(f"{API}/wearers/{breach['wearer_id']}").json()["case"]
    assert case == [entry]
    assert record(backend, breach["wearer_id"], body, key="case-key-2").json() == entry


def test_a_recorded_suspension_is_listed_and_quiets_what_the_wearer_raises_while_it_holds(
        start_backend):
    backend = start_backend(wearers=200, speed=1, state=True)
    now = datetime.fromisoformat(now_iso(backend))
    wearer_id = backend.snapshot()["wearers"][7]["id"]
    body = {"reason": "hospital", "start": now.isoformat(),
            "end": (now + timedelta(hours=6)).isoformat()}
    r = backend.post(f"{API}/wearers/{wearer_id}/suspensions", json=body,
                     headers={"Idempotency-Key": "suspend-key-1"})
    assert r.status_code == 200, r.text
    backend.stop()
    backend.start(speed=1)  # kept across a restart
    listed = backend.get(f"{API}/wearers/{wearer_id}").json()["suspensions"]
    assert any(s["reason"] == "hospital" and datetime.fromisoformat(s["start"]) == now
               and datetime.fromisoformat(s["end"]) == now + timedelta(hours=6) for s in listed)


@pytest.mark.parametrize("hours_from, hours_to, every, reason", [
    (2, 1, None, "ends before it starts"),
    (0, 48, 1, "repeats before it ends"),
    (-10, -5, None, "ended already"),
])
def test_an_impossible_suspension_is_a_422_that_says_why(start_backend, hours_from, hours_to,
                                                         every, reason):
    backend = start_backend(wearers=50, speed=1)
    now = datetime.fromisoformat(now_iso(backend))
    body = {"reason": "custody", "start": (now + timedelta(hours=hours_from)).isoformat(),
            "end": (now + timedelta(hours=hours_to)).isoformat(), "every_days": every}
    wearer_id = backend.snapshot()["wearers"][0]["id"]
    r = backend.post(f"{API}/wearers/{wearer_id}/suspensions", json=body,
                     headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 422 and reason in r.json()["detail"], r.text
