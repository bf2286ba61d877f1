"""Server-sent events framing (WHATWG HTML §9.2), incremental and byte-based.

We parse SSE ourselves rather than through httpx-sse so that invalid UTF-8 and
broken framing cost one bad event, not the stream, and so that a burst of
thousands of events is split in a few bytes operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from msgspec import Struct

MAX_FRAME = 1 << 20
_ID_LINE = re.compile(rb"(?:^|\n)id: ?([^\n]{0,40})")
# The shape of every event the protocol sends (encode_frame), matched in one C call;
# any other block goes through the line by line parse. A third of the network
# thread's time during a catch-up was that loop.
_USUAL = re.compile(rb"id: ([0-9]{1,18})\nevent: ([a-z.]{1,40})\ndata: ([^\n]*)").fullmatch


class Frame(Struct, gc=False):
    """One event as framed. Not tracked by the garbage collector (it refers to no
    object that could refer back): a catch-up makes 100,000 at a time, and each
    young-generation collection walked them all, with the GIL held."""

    id: str | None
    event: str
    data: bytes


@dataclass
class SSEParser:
    retry_ms: int | None = None
    heartbeats: int = 0
    framing_errors: int = 0
    # Why each framing error happened, naming the event id where there is one; the
    # sync engine takes these (take_problems) to count, log and show them.
    problems: list[str] = field(default_factory=list)
    _buf: bytes = b""
    _discarding: bool = False
    _pending: list[Frame] = field(default_factory=list)

    def feed(self, chunk: bytes) -> list[Frame]:
        buf = self._buf + chunk
        if b"\r" in buf:
            # CRLF and lone CR end lines too; keep a trailing CR in case LF follows.
            tail = b"\r" if buf.endswith(b"\r") else b""
            buf = buf[: len(buf) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        if self._discarding:
            end = buf.find(b"\n\n")
            if end < 0:
                self._buf = b""
                return []
            buf = buf[end + 2 :]
            self._discarding = False
        *blocks, self._buf = buf.split(b"\n\n")
        if len(self._buf) > MAX_FRAME:
            found = _ID_LINE.search(self._buf, 0, 4096)
            name = found[1].decode("utf-8", "replace") if found else "without an id"
            self._problem(f"event {name}: larger than {MAX_FRAME >> 20} MiB, dropped")
            self._buf = b""
            self._discarding = True
        frames = []
        for block in blocks:
            usual = _USUAL(block)
            if usual is not None:
                frames.append(Frame(usual[1].decode(), usual[2].decode(), usual[3]))
                continue
            frame = self._parse_block(block)
            if frame is not None:
                frames.append(frame)
        return frames

    def _parse_block(self, block: bytes) -> Frame | None:
        event_id = None
        event = "message"
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line:
                continue
            if line[0] == 0x3A:  # ":" comment, which the protocol uses as heartbeat
                self.heartbeats += 1
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"id":
                event_id = value.decode("utf-8", "replace")
            elif name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"retry":
                if value.isascii() and value.isdigit():
                    self.retry_ms = int(value)
                else:
                    self._problem(f"retry is not a number: {value[:40]!r}")
            else:
                self._problem(f"unknown field {name[:40]!r}")
        if not data:
            if event_id is not None or event != "message":
                # an event with no data cannot be dispatched
                self._problem(f"event {str(event_id)[:40]}: no data")
            return None
        return Frame(event_id, event, b"\n".join(data))

    def _problem(self, reason: str) -> None:
        self.framing_errors += 1
        self.problems.append(reason)

    def take_problems(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


def encode_frame(event_id: int, event: str, data: bytes) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event.encode(), data)
