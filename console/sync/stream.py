"""Following one event stream: which frames to apply, and when a snapshot is needed."""

from __future__ import annotations

import logging

from console.protocol.schema import event_id_of
from console.protocol.sse import Frame

log = logging.getLogger(__name__)


class Cursor:
    """Follows the ids of one stream. Ids are consecutive (docs/protocol.md): an id
    already seen is dropped, and a jump or a reset means a snapshot is needed."""

    def __init__(self, last_id: int):
        self.last_id = last_id

    def accept(self, frames: list[Frame]) -> tuple[list[Frame], bool]:
        """The frames to apply, in order, and whether to stop for a new snapshot."""
        good: list[Frame] = []
        for frame in frames:
            if frame.event == "reset":
                log.warning("backend reset the stream: new snapshot")
                return good, True
            n = event_id_of(frame.id)
            if n is not None:
                if n <= self.last_id:
                    continue
                if n != self.last_id + 1:
                    log.warning("gap in event ids (%d after %d): new snapshot", n, self.last_id)
                    return good, True
                self.last_id = n
            good.append(frame)  # a frame without a usable id is rejected by decode_frames
        return good, False
