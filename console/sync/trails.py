"""The sync engine's trail operations (console/domain/trails.py), a room of their
own: trails are asked for through the outbox (RequestTrail, DecideTrailRequest),
read under a grant that the backend checks and audits, kept in the cache a day at
most, each view, export and deletion audited here too. SyncEngine takes them in;
they use its one HTTP client, its writer and its clock."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future
from dataclasses import replace

from console.domain.trails import AccessLog, RequestState, Trail, TrailRequest
from console.protocol.client import Client

log = logging.getLogger(__name__)

TRAIL_SWEEP_SECONDS = 300.0  # how often trails kept a day are looked for and deleted


class TrailOperations:
    def trail_requests(self, state: RequestState | None = None,
                       wearer_id: str | None = None) -> Future[list[TrailRequest]]:
        """The operator's own trail requests, and for a supervisor those awaiting one."""
        return self.operation(lambda client: client.trail_requests(state, wearer_id))

    def trail_request(self, request_id: str) -> Future[TrailRequest]:
        return self.operation(lambda client: client.trail_request(request_id))

    def trail(self, request: TrailRequest) -> Future[Trail]:
        """The trail of a granted request: from this cache if fetched here in the last
        day and the grant still holds, else from the backend (which refuses without
        a grant, and audits the fetch), and then kept."""
        async def view(client: Client) -> Trail:
            now = time.time()
            kept = None
            if request.refuses_fetch(request.start, request.end, self.clock.now()) is None:
                kept = await self._writer_call(lambda s: s.cached_trail(request.id, now))
            trail = kept or replace(await client.trail(request.id), purpose=request.purpose,
                                    reference=request.reference)
            await self._writer_call(lambda s: s.trail_viewed(
                request, None if kept else trail, self.status.operator, client.username, now))
            return trail
        return self.operation(view)

    def trail_exported(self, request: TrailRequest, report: str) -> Future[None]:
        """Audit here an evidence export of a trail (the backend saw the fetch)."""
        return self._writer.call(lambda s: s.trail_exported(request, report, self.status.operator,
                                                            self._client.username))

    def trail_access(self, wearer_id: str, since: float | None = None,
                     until: float | None = None) -> Future[AccessLog]:
        """Every access to a wearer's trail in a period (supervisors and auditors)."""
        return self.operation(lambda client: client.trail_access(wearer_id, since, until))

    async def _sweep_trails(self) -> None:
        while True:
            deleted = await self._writer_call(lambda s: s.sweep_trails(time.time()))
            if deleted:
                log.info("deleted %d trail(s) kept a day", deleted)
            await asyncio.sleep(TRAIL_SWEEP_SECONDS)
