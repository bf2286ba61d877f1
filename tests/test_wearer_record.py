"""A wearer's record over real HTTP (GET /wearers/{id}): personal data beyond the
board, given on request, each view audited by the backend; and what the console's
decoder refuses in one."""

import asyncio

import msgspec
import pytest

from console.domain import DAY, SuspensionReason
from console.protocol import schema
from console.protocol.client import ApiError, Client
from console.protocol.schema import API, BadEvent


@pytest.fixture
def backend(start_backend):
    return start_backend(wearers=300, speed=1)


def fetch(backend, wearer_id: str):
    async def run():
        client = Client(backend.url, "demo", "demo")
        try:
            return await client.wearer_record(wearer_id)
        finally:
            await client.aclose()
    return asyncio.run(run())


def test_the_record_comes_whole_and_its_view_is_audited(backend):
    wearer = backend.snapshot()["wearers"][7]
    assert backend.get("/sim/audit", user="audit").json() == []
    record = fetch(backend, wearer["id"])
    assert record.wearer.ref == wearer["ref"]
    assert record.language and record.devices[0].serial
    assert record.conditions[0].endswith("electronic monitoring")
    assert all(a.wearer_id == wearer["id"] for a in record.alerts)
    viewed = backend.get("/sim/audit", user="audit").json()
    assert [(v["operator"], v["wearer_id"]) for v in viewed] == [("Demo Operator", wearer["id"])]


def test_missing_phones_and_suspensions_occur_in_a_fleet(backend):
    records = [backend.get(f"{API}/wearers/{w['id']}").json()
               for w in backend.snapshot()["wearers"][:300]]
    assert any(r["phone"] is None for r in records)  # not recorded: the view flags it
    assert any(r["suspensions"] for r in records)
    assert len(backend.get("/sim/audit", user="audit").json()) == 300


def test_an_unknown_wearer_is_a_404_and_is_not_audited(backend):
    with pytest.raises(ApiError) as refused:
        fetch(backend, "W-nobody")
    assert refused.value.status == 404
    assert backend.get("/sim/audit", user="audit").json() == []


def record_json(**changes) -> bytes:
    body = {"wearer": {"id": "W1", "ref": "EM-1"}, "devices": [], "language": "Polish",
            "interpreter": True, **changes}
    return msgspec.json.encode(body)


def test_a_suspension_ending_before_it_starts_is_refused_naming_it():
    bad = record_json(suspensions=[{"reason": "hospital", "start": "2026-01-02T00:00:00Z",
                                    "end": "2026-01-01T00:00:00Z"}])
    with pytest.raises(BadEvent, match=r"suspensions\[0\]: it ends before it starts"):
        schema.decode(bad, schema.WearerRecord).to_domain(None)


def test_a_repeating_suspension_and_a_missing_phone_decode_as_the_domain_says():
    good = record_json(suspensions=[{"reason": "approved_absence", "start": "2026-01-01T13:00:00Z",
                                     "end": "2026-01-01T17:00:00Z", "every_days": 7}])
    record = schema.decode(good, schema.WearerRecord).to_domain(None)
    (s,) = record.suspensions
    assert (s.reason, s.every, s.end - s.start) == (SuspensionReason.APPROVED_ABSENCE, 7 * DAY,
                                                    4 * 3600)
    assert record.phone is None
    assert record.suspended(s.start + 7 * DAY + 60) is s
    assert record.suspended(s.start + 7 * DAY + 5 * 3600) is None


def test_a_phone_that_is_not_a_number_is_refused():
    with pytest.raises(BadEvent, match="phone"):
        schema.decode(record_json(phone="call me <script>"), schema.WearerRecord)
