"""Hostile input, generated: over 10,000 events through the engine's stream path.

Each example is a byte stream of good and bad events, cut into random chunks and
run through the real parser, id cursor, decoder and store, as the sync engine runs
them. Whatever the input: nothing raises, every bad event is rejected with its id,
and the good events around it are applied exactly as an independent model says.
"""

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.changes import Picture
from console.domain import Device, DeviceKind, Wearer, iso
from console.protocol.sse import SSEParser, encode_frame
from console.store import Store
from console.sync.stream import Cursor
from console.sync.writer import decode_frames

NOW = 1_795_000_000.0
DEVICES = [f"D{i}" for i in range(5)]
EXAMPLES = 260
EVENTS_PER_EXAMPLE = 40  # at least; 260 x 40 > 10,000


GOOD_STATUS = st.fixed_dictionaries({
    "device_id": st.sampled_from(DEVICES),
    "ts": st.floats(NOW - 86_400, NOW).map(iso),
    "battery": st.floats(0, 100, allow_nan=False),
    "charging": st.booleans(),
    "strap": st.sampled_from(["ok", "open", None]),
    "gps_fix": st.sampled_from([True, False, None]),
    "at_home": st.sampled_from([True, False, None]),
})

BAD_BODIES = st.one_of(
    GOOD_STATUS.map(lambda d: {**d, "battery": -1}),
    GOOD_STATUS.map(lambda d: {**d, "battery": 101}),
    GOOD_STATUS.map(lambda d: orjson.dumps(d).replace(b'"battery":', b'"battery":NaN,"x":')),
    GOOD_STATUS.map(lambda d: {**d, "battery": str(d["battery"])}),
    GOOD_STATUS.map(lambda d: {**d, "charging": "yes"}),
    GOOD_STATUS.map(lambda d: {**d, "ts": "1970-01-01T00:00:00Z"}),
    GOOD_STATUS.map(lambda d: {**d, "ts": "2100-01-01T00:00:00Z"}),
    GOOD_STATUS.map(lambda d: {**d, "ts": "not a time"}),
    GOOD_STATUS.map(lambda d: {k: v for k, v in d.items() if k != "device_id"}),
    GOOD_STATUS.map(lambda d: {**d, "device_id": "x" * 100_000}),
    GOOD_STATUS.map(lambda d: {**d, "device_id": "x" * 201}),  # just over the limit
    GOOD_STATUS.map(lambda d: {**d, "ts": d["ts"].removesuffix("Z")}),  # no zone
    GOOD_STATUS.map(lambda d: {**d, "strap": "cut"}),
    GOOD_STATUS.map(lambda d: orjson.dumps(d).replace(b'"D', b'"\xffD')),  # a used string not UTF-8
    st.binary(max_size=50).map(lambda b: b"\xff\xfe" + b),  # invalid UTF-8
    st.text(max_size=30).map(lambda t: ("{" + t).encode()),  # broken JSON
    st.sampled_from([b"[]", b"null", b"42", b'"text"']),  # JSON, but not an object
)

# A good event, or a bad body that still carries a proper id and type.
ITEM = st.one_of(
    GOOD_STATUS.map(lambda d: ("good", "device.status", orjson.dumps(d))),
    GOOD_STATUS.map(lambda d: ("good", "device.status",  # fields it does not know are ignored
                               orjson.dumps({**d, "firmware": "9.1", "extra": [{"x": None}]}))),
    BAD_BODIES.map(lambda b: ("bad", "device.status",
                              b if isinstance(b, bytes) else orjson.dumps(b))),
    GOOD_STATUS.map(lambda d: ("bad", "device.melted", orjson.dumps(d))),  # unknown type
)

# SSE noise that must not disturb the events around it.
NOISE = st.sampled_from([b": heartbeat\n\n", b"retry: soon\n\n", b"bogus line\n\n",
                         b"retry: 1000\n\n", b"\n\n"])


@st.composite
def streams(draw):
    items = draw(st.lists(ITEM, min_size=EVENTS_PER_EXAMPLE, max_size=2 * EVENTS_PER_EXAMPLE))
    body, expected_bad, good = [], [], []
    for n, (kind, event_type, data) in enumerate(items, start=1):
        if draw(st.booleans()) and draw(st.booleans()):
            body.append(draw(NOISE))
        frame = encode_frame(n, event_type, data)
        if draw(st.integers(0, 9)) == 0:
            frame = frame.replace(b"\n", b"\r\n")  # CRLF framing is legal too
        body.append(frame)
        if draw(st.integers(0, 9)) == 0:  # a duplicate of an earlier event
            body.append(encode_frame(draw(st.integers(1, n)), event_type, data))
        (expected_bad if kind == "bad" else good).append((n, data))
    stream = b"".join(body)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return chunks, [n for n, _ in expected_bad], good, len(items)


def expected_statuses(good: list[tuple[int, bytes]]) -> dict[str, tuple]:
    """An independent model of the store: each device's newest status by time."""
    latest: dict[str, dict] = {}
    for _, data in good:
        d = orjson.loads(data)
        prior = latest.get(d["device_id"])
        if prior is None or d["ts"] >= prior["ts"]:
            latest[d["device_id"]] = d
    return {k: (round(v["battery"], 6), v["charging"], v["strap"]) for k, v in latest.items()}


def fresh(store: Store) -> None:
    store.replace_all(Picture([Wearer(f"W{d}", d) for d in DEVICES],
                              [Device(d, f"W{d}", DeviceKind.GPS) for d in DEVICES], {}, {}), 0)


def test_the_stream_path_survives_anything_and_applies_the_good_events(tmp_path):
    store = Store(tmp_path / "c.db")
    fed: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(stream=streams())
    def run(stream):
        chunks, bad_ids, good, total = stream
        fresh(store)
        parser, cursor = SSEParser(), Cursor(0)
        rejected: list[str] = []
        for chunk in chunks:
            frames, resync = cursor.accept(parser.feed(chunk))
            assert not resync  # ids run on: nothing here should look like a gap
            events, reasons = decode_frames(frames, NOW)
            rejected += reasons
            store.apply(events)
        fed.append(total)
        # Every bad event was rejected, naming its id; nothing else was.
        assert sorted(int(r.split()[1].rstrip(":")) for r in rejected) == bad_ids
        assert store.last_event_id == max([n for n, _ in good], default=0)
        applied = {k: (round(s.battery, 6), s.charging, s.strap)
                   for k, s in store.load().statuses.items()}
        assert applied == expected_statuses(good)

    run()
    store.close()
    assert sum(fed) >= 10_000, f"only {sum(fed)} events were generated"
