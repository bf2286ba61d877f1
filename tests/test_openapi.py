"""schemathesis against the simulator's own /openapi.json, with valid and invalid
requests: whatever it is sent, it never answers 500, and every answer matches the
documented schema."""

import itertools

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from console.embedded import EmbeddedSimulator
from console.protocol.schema import API

# What uvicorn answers, as plain text, to a request that is not valid HTTP (a random
# Content-Length on a GET): the HTTP server's refusal, not an answer of the API.
HTTP_PARSER_REFUSAL = "Invalid HTTP request received."


def sign_in(url: str) -> str:
    # The supervisor: every operation allows them, so the calls reach past the 403.
    return httpx.post(f"{url}{API}/session", json={"username": "super", "password": "super"},
                      timeout=30).json()["token"]


@pytest.fixture(scope="module")
def backend():
    sim = EmbeddedSimulator(None, wearers=50, speed=1)
    yield sim.url, sign_in(sim.url)
    sim.stop()


def test_no_500_and_every_answer_matches_the_schema(backend):
    url, token = backend
    # The event stream never ends; its behaviour is tested in test_protocol.py.
    api = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path=f"{API}/events")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 5
    calls = []
    for operation, mode in itertools.product(operations, GenerationMode):
        @settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def check(case):
            # Signing out ends the session it is sent with: that of its own.
            signs_out = (case.method, case.path) == ("DELETE", f"{API}/session")
            response = case.call(headers={"Authorization": f"Bearer {sign_in(url) if signs_out else token}"})
            calls.append(response)
            if response.status_code == 400 and response.text == HTTP_PARSER_REFUSAL:
                return  # uvicorn refused a header it cannot parse, before the API saw it
            case.validate_response(response)

        try:
            check()
        except Unsatisfiable:
            # Nothing of this operation can be made invalid (GET /snapshot has no input).
            assert mode is GenerationMode.NEGATIVE
    assert len(calls) > 100
    assert {r.status_code for r in calls} >= {200, 404, 422}  # it reached past validation


def test_every_answer_the_gate_gives_is_documented_as_a_problem(backend):
    url, _ = backend
    doc = httpx.get(f"{url}/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            codes = {"401", "413"} | ({"400"} if method == "post" else set())
            for code in codes:
                problem = op["responses"][code]["content"]
                assert list(problem) == ["application/problem+json"], (method, path, code)
                assert problem["application/problem+json"]["schema"]["required"] == [
                    "type", "title", "status", "detail"]
            open_ = (method, path) in {("post", f"{API}/session"), ("post", f"{API}/session/refresh")}
            assert ("security" in op) != open_, (method, path)
            # Every operation but signing in says what it needs, and documents its refusal.
            signs_out = (method, path) == ("delete", f"{API}/session")
            assert ("x-permission" in op) == (not open_ and not signs_out), (method, path)
            assert ("403" in op["responses"]) == ("x-permission" in op), (method, path)
