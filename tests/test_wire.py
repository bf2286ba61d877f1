"""Decoding what the backend sends: bad input is refused with a reason, never a crash."""

import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.domain import AlertState
from console.protocol.schema import BadEvent, decode_event
from console.protocol.sse import SSEParser, encode_frame

NOW = 1_795_000_000.0
STATUS = {"device_id": "D1", "ts": "2026-11-18T10:00:00Z", "battery": 55.5, "charging": False,
          "strap": "ok", "gps_fix": True, "at_home": None}
ALERT = {"id": "A1", "wearer_id": "W1", "device_id": "D1", "type": "battery",
         "raised_at": "2026-11-18T10:00:00+00:00", "state": "unacknowledged", "active": True,
         "history": [{"state": "unacknowledged", "at": "2026-11-18T10:00:00Z", "by": None,
                      "note": None}]}


def history_entry(**change) -> bytes:
    """ALERT with its history entry changed."""
    return orjson.dumps({**ALERT, "history": [{**ALERT["history"][0], **change}]})


def decode(body, type_="device.status", id_="7"):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode_event(id_, type_, data, NOW)


def test_a_good_status_and_alert_decode_and_unknown_fields_are_ignored():
    ev = decode({**STATUS, "firmware": "9.1", "extra": {"nested": 1}})
    assert ev.id == 7 and ev.payload.battery == 55.5 and ev.payload.gps_fix is True
    alert = decode(ALERT, "alert.raised").payload
    assert alert.state is AlertState.UNACKNOWLEDGED and alert.history[0].by is None


@pytest.mark.parametrize("change, reason", [
    ({"battery": -1}, "Expected `float` >= 0.0 - at `$.battery`"),
    ({"battery": 101}, "Expected `float` <= 100.0 - at `$.battery`"),
    ({"battery": True}, "Expected `float`, got `bool` - at `$.battery`"),
    ({"battery": "50"}, "Expected `float`, got `str` - at `$.battery`"),
    ({"ts": "1970-01-01T00:00:00Z"}, "is before 2000 - at `$.ts`"),
    ({"ts": "2100-01-01T00:00:00Z"}, "is in the future - at `$.ts`"),
    ({"ts": "yesterday"}, "Invalid RFC3339 encoded datetime - at `$.ts`"),
    ({"ts": "2026-11-18T10:00:00"}, "Expected `datetime` with a timezone component - at `$.ts`"),
    ({"device_id": None}, "Expected `str`, got `null` - at `$.device_id`"),
    ({"device_id": "x" * 5000}, "Expected `str` of length <= 200 - at `$.device_id`"),
    ({"strap": "cut"}, "Invalid enum value 'cut' - at `$.strap`"),
    ({"charging": 1}, "Expected `bool`, got `int` - at `$.charging`"),
])
def test_bad_status_values_are_refused_with_a_reason(change, reason):
    with pytest.raises(BadEvent, match=re.escape(reason)):
        decode({**STATUS, **change})


def test_a_missing_field_is_named():
    with pytest.raises(BadEvent, match="Object missing required field `device_id`"):
        decode({k: v for k, v in STATUS.items() if k != "device_id"})


@pytest.mark.parametrize("id_, type_, data, reason", [
    (None, "device.status", orjson.dumps(STATUS), "without an id"),
    ("-3", "device.status", orjson.dumps(STATUS), "not a positive integer"),
    ("7", "device.exploded", orjson.dumps(STATUS), "unknown event type"),
    ("7", "device.status", b"{not json", "not JSON"),
    ("7", "device.status", b'{"battery": NaN}', "not JSON"),
    ("7", "device.status", orjson.dumps({**STATUS, "device_id": "D\x001"}), "at `$.device_id`"),
    ("7", "device.status", b"\xff\xfe\x00", "not JSON"),
    ("7", "device.status", b'{"device_id": "\xff"}', "UTF-8"),
    ("7", "device.status", b"[1, 2]", "Expected `object`, got `array`"),
    ("7", "alert.cleared", orjson.dumps(ALERT), "alert.cleared with state unacknowledged"),
    ("7", "alert.raised", orjson.dumps({**ALERT, "state": "melted"}),
     "Invalid enum value 'melted' - at `$.state`"),
    ("7", "alert.raised", history_entry(note="x" * 2001),
     "Expected `str` of length <= 2000 - at `$.history[0].note`"),
    ("7", "alert.raised", history_entry(at="2100-01-01T00:00:00Z"),
     "is in the future - at `$.history[0].at`"),
])
def test_malformed_events_are_refused(id_, type_, data, reason):
    with pytest.raises(BadEvent, match=re.escape(reason)):
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


LINE = st.one_of(
    st.builds(lambda n: b"id: %d" % n, st.integers(0, 10**20)),
    st.sampled_from([b"id: 1", b"id:7", b"id: 0x1", b"id: \xc2\xb2", b"event: device.status",
                     b"event: alert.raised", b"event: Reset", b"event:", b": heartbeat",
                     b"data: {}", b"data:", b"data: x\xff", b"retry: 10", b"bogus: 1"]),
    st.binary(max_size=12).filter(lambda b: b"\n" not in b and b"\r" not in b))


@given(st.lists(st.lists(LINE, min_size=1, max_size=5), max_size=6))
def test_the_usual_events_quick_match_parses_as_the_line_by_line_parse(blocks):
    """Events in the protocol's own shape skip the line loop (sse._USUAL); whatever
    the block, the frames must be those the line loop alone gives."""
    stream = b"".join(b"\n".join(lines) + b"\n\n" for lines in blocks)
    reference = SSEParser()
    expected = [f for f in (reference._parse_block(b) for b in stream.split(b"\n\n")[:-1])
                if f is not None]
    assert SSEParser().feed(stream) == expected


def test_an_oversized_frame_is_dropped_and_the_stream_goes_on():
    parser = SSEParser()
    frames = parser.feed(b"id: 1\ndata: " + b"x" * (2 << 20))
    frames += parser.feed(b"still the same frame\n\n" + encode_frame(2, "device.status", b"{}"))
    assert [f.id for f in frames] == ["2"] and parser.framing_errors == 1


def test_framing_errors_are_counted():
    parser = SSEParser()
    frames = parser.feed(b"bogus: 1\nid: 5\n\nretry: soon\n\nid: 6\ndata: {}\n\n")
    assert [f.id for f in frames] == ["6"] and parser.framing_errors == 3
