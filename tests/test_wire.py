"""Decoding what the backend sends: bad input is refused with a reason, never a crash."""

import orjson
import pytest

from console.domain import AlertState
from console.protocol.sse import SSEParser, encode_frame
from console.protocol.wire import BadEvent, decode_event

NOW = 1_795_000_000.0
STATUS = {"device_id": "D1", "ts": "2026-11-18T10:00:00Z", "battery": 55.5, "charging": False,
          "strap": "ok", "gps_fix": True, "at_home": None}
ALERT = {"id": "A1", "wearer_id": "W1", "device_id": "D1", "type": "battery",
         "raised_at": "2026-11-18T10:00:00+00:00", "state": "unacknowledged", "active": True,
         "history": [{"state": "unacknowledged", "at": "2026-11-18T10:00:00Z", "by": None,
                      "note": None}]}


def decode(body, type_="device.status", id_="7"):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode_event(id_, type_, data, NOW)


def test_a_good_status_and_alert_decode_and_unknown_fields_are_ignored():
    ev = decode({**STATUS, "firmware": "9.1", "extra": {"nested": 1}})
    assert ev.id == 7 and ev.payload.battery == 55.5 and ev.payload.gps_fix is True
    alert = decode(ALERT, "alert.raised").payload
    assert alert.state is AlertState.UNACKNOWLEDGED and alert.history[0].by is None


@pytest.mark.parametrize("change, reason", [
    ({"battery": -1}, "battery outside"),
    ({"battery": 101}, "battery outside"),
    ({"battery": True}, "got bool"),
    ({"battery": "50"}, "battery"),
    ({"ts": "1970-01-01T00:00:00Z"}, "before 2000"),
    ({"ts": "2100-01-01T00:00:00Z"}, "in the future"),
    ({"ts": "yesterday"}, "does not parse"),
    ({"ts": "2026-11-18T10:00:00"}, "without a time zone"),
    ({"device_id": None}, "missing device_id"),
    ({"device_id": "x" * 5000}, "longer than"),
    ({"strap": "cut"}, "strap"),
    ({"charging": 1}, "charging"),
])
def test_bad_status_values_are_refused_with_a_reason(change, reason):
    with pytest.raises(BadEvent, match=reason):
        decode({**STATUS, **change})


@pytest.mark.parametrize("id_, type_, data, reason", [
    (None, "device.status", orjson.dumps(STATUS), "without an id"),
    ("-3", "device.status", orjson.dumps(STATUS), "not a positive integer"),
    ("7", "device.exploded", orjson.dumps(STATUS), "unknown event type"),
    ("7", "device.status", b"{not json", "not JSON"),
    ("7", "device.status", b'{"battery": NaN}', "not JSON"),
    ("7", "device.status", b"\xff\xfe\x00", "not JSON"),
    ("7", "device.status", b"[1, 2]", "expected an object"),
    ("7", "alert.cleared", orjson.dumps(ALERT), "alert.cleared with state unacknowledged"),
    ("7", "alert.raised", orjson.dumps({**ALERT, "state": "melted"}), "unknown alert state"),
])
def test_malformed_events_are_refused(id_, type_, data, reason):
    with pytest.raises(BadEvent, match=reason):
        decode_event(id_, type_, data, NOW)


def test_sse_frames_split_anywhere_still_parse():
    stream = (b"retry: 2000\n\n: heartbeat\n\n" + encode_frame(1, "device.status", b'{"a":1}')
              + b"id: 2\r\nevent: reset\r\ndata: {}\r\n\r\n" + encode_frame(3, "x", b"{}"))
    for cut in range(1, len(stream)):
        parser = SSEParser()
        frames = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [(f.id, f.event) for f in frames] == [("1", "device.status"), ("2", "reset"),
                                                      ("3", "x")], cut
        assert parser.retry_ms == 2000 and parser.heartbeats == 1


def test_an_oversized_frame_is_dropped_and_the_stream_goes_on():
    parser = SSEParser()
    frames = parser.feed(b"id: 1\ndata: " + b"x" * (2 << 20))
    frames += parser.feed(b"still the same frame\n\n" + encode_frame(2, "device.status", b"{}"))
    assert [f.id for f in frames] == ["2"] and parser.framing_errors == 1


def test_framing_errors_are_counted():
    parser = SSEParser()
    frames = parser.feed(b"bogus: 1\nid: 5\n\nretry: soon\n\nid: 6\ndata: {}\n\n")
    assert [f.id for f in frames] == ["6"] and parser.framing_errors == 3
