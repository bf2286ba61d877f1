"""A trail fetched under a grant is kept in the cache for a day at most, then deleted;
each view and each deletion is in the cache's chained audit trail, which records
why and which window, never where anyone was (issue 12, section 4)."""

import json

from console.domain.clock import DAY
from console.domain.trails import (
    CACHE_LIFETIME,
    Purpose,
    ReferenceKind,
    RequestState,
    Source,
    Trail,
    TrailRequest,
)
from console.store import Store, verify_audit

T = 1_795_000_000.0
REQUEST = TrailRequest("R1", "W000001", Purpose.ABSCONDING, ReferenceKind.ALERT, "A00000042",
                       "left the address at night", T - DAY, T, RequestState.GRANTED, "Ann",
                       T, expires_at=T + DAY)
TRAIL = Trail("R1", "W000001", T - DAY, T, (T - 600, T - 540, T - 60), (51.512345, 51.5125, 51.6),
              (-0.131234, -0.1313, -0.2), (8.0, 35.0, 900.0), (Source.GPS, Source.WIFI, Source.CELL),
              home=(51.512345, -0.131234), skipped=2, purpose=Purpose.ABSCONDING, reference="A00000042")


def trail_entries(store: Store) -> list:
    return [e for e in store.audit() if e.kind == "trail"]


def test_a_fetched_trail_reads_back_as_fetched_until_its_day_is_over(tmp_path):
    store = Store(tmp_path / "cache.db")
    store.trail_viewed(REQUEST, TRAIL, "Ann", "ann", T)
    assert store.cached_trail("R1", T + 60) == TRAIL
    assert store.cached_trail("R1", T + CACHE_LIFETIME) is None
    assert store.cached_trail("R2", T + 60) is None
    store.close()


def test_each_view_is_audited_with_purpose_reference_and_window_but_no_location(tmp_path):
    store = Store(tmp_path / "cache.db")
    store.trail_viewed(REQUEST, TRAIL, "Ann", "ann", T)
    store.trail_viewed(REQUEST, None, "Ann", "ann", T + 60)  # opened again, from the cache
    views = trail_entries(store)
    assert [(e.event, e.operator, e.username, e.key) for e in views] == [
        ("trail viewed", "Ann", "ann", "R1")] * 2
    first, again = (json.loads(e.detail) for e in views)
    assert first == {"wearer_id": "W000001", "purpose": "absconding", "reference_kind": "alert",
                     "reference": "A00000042", "start": T - DAY, "end": T, "points": 3,
                     "from": "backend"}
    assert again["from"] == "cache" and again["points"] is None
    every_detail = " ".join(e.detail or "" for e in store.audit())
    assert "51.5" not in every_detail and "-0.13" not in every_detail
    store.close()


def test_a_trail_kept_a_day_is_deleted_and_the_deletion_audited_in_the_chain(tmp_path):
    path = tmp_path / "cache.db"
    store = Store(path)
    store.trail_viewed(REQUEST, TRAIL, "Ann", "ann", T)
    assert store.sweep_trails(T + CACHE_LIFETIME - 1) == 0
    assert store.sweep_trails(T + CACHE_LIFETIME) == 1
    assert store.conn.execute("SELECT count(*) FROM trails").fetchone() == (0,)
    deleted = trail_entries(store)[-1]
    assert deleted.event == "trail deleted" and deleted.key == "R1"
    assert json.loads(deleted.detail)["why"] == "kept 24 hours after fetching"
    assert store.sweep_trails(T + 2 * CACHE_LIFETIME) == 0  # once
    store.close()
    code, lines = verify_audit(path)
    assert code == 0, lines
