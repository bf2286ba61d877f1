"""Offline map tiles: an MBTiles file (SQLite, `tiles(zoom_level, tile_column,
tile_row, tile_data)`, rows counted from the south as in TMS), and the download that
fills one from a tile server the centre is allowed to use.

A download is sized first (how many tiles, about how many megabytes) and runs only
once someone confirms that size. OpenStreetMap's public tile servers are refused:
their usage policy forbids bulk downloading. Qt-free: the CLI uses it too.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

OUTLINE_ONLY = "Basemap: UK outline only — no tiles downloaded"
ESTIMATED_TILE_BYTES = 20_000  # a typical 256-pixel PNG street-map tile
MAX_TILES = 250_000  # beyond this, a region is too big to take in one go: split it
USER_AGENT = "em-console offline basemap (explicit, sized download)"


class Refused(Exception):
    """A download that will not be made, and why."""


class DownloadFailed(Exception):
    """The tile server failed part-way; the tiles fetched so far are kept."""


def osm_public_server(url_template: str) -> bool:
    """A tile server run by OpenStreetMap or one of its national chapters
    (openstreetmap.org, .fr, .de...), however the host is written: their usage
    policies forbid bulk downloads."""
    host = (urlsplit(url_template.replace("{s}", "a")).hostname or "").lower().rstrip(".")
    return "openstreetmap" in host.split(".")


def tile_xy(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The slippy-map (XYZ, rows from the north) tile holding a point."""
    n = 2 ** zoom
    lat = max(-85.0511, min(85.0511, lat))
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(n - 1, max(0, x)), min(n - 1, max(0, y))


def tiles_in(bbox: tuple[float, float, float, float], zooms: range) -> Iterator[tuple[int, int, int]]:
    """Every (z, x, y) tile covering bbox (west, south, east, north) at each zoom."""
    west, south, east, north = bbox
    for z in zooms:
        x0, y0 = tile_xy(west, north, z)
        x1, y1 = tile_xy(east, south, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                yield z, x, y


def tile_url(url_template: str, z: int, x: int, y: int) -> str:
    return (url_template.replace("{s}", "a").replace("{z}", str(z)).replace("{x}", str(x))
            .replace("{y}", str(y)))


@dataclass(frozen=True)
class Job:
    """A sized download, to be confirmed before it runs."""

    bbox: tuple[float, float, float, float]
    zooms: range
    url_template: str
    tiles: int

    @property
    def estimated_mb(self) -> float:
        return self.tiles * ESTIMATED_TILE_BYTES / 1e6

    def __str__(self) -> str:
        return (f"{self.tiles:,} tiles at zoom {self.zooms.start}-{self.zooms.stop - 1}, "
                f"about {self.estimated_mb:,.0f} MB, from {urlsplit(self.url_template).hostname}")


def plan(bbox: tuple[float, float, float, float], zooms: range, url_template: str) -> Job:
    """Sizes a download, or refuses it with the reason."""
    if osm_public_server(url_template):
        raise Refused("OpenStreetMap's public tile servers forbid bulk downloading (their tile "
                      "usage policy): use a tile server the centre runs or has a licence for")
    if not all(k in url_template for k in ("{z}", "{x}", "{y}")):
        raise Refused("the URL template needs {z}, {x} and {y}")
    if urlsplit(url_template).scheme not in ("http", "https"):
        raise Refused("the URL template must be http:// or https://")
    west, south, east, north = bbox
    if not (-180 <= west < east <= 180 and -85.06 <= south < north <= 85.06):
        raise Refused("the region must be west,south,east,north in degrees, west < east, south < north")
    if not zooms:
        raise Refused("the zoom range is LOW-HIGH with LOW at most HIGH, e.g. 5-12")
    if zooms.start < 0 or zooms.stop > 20:
        raise Refused("zoom levels are 0 to 19")
    job = Job(bbox, zooms, url_template, sum(1 for _ in tiles_in(bbox, zooms)))
    if job.tiles > MAX_TILES:
        raise Refused(f"{job}: more than {MAX_TILES:,} tiles; take a smaller region or fewer zooms")
    return job


class MBTiles:
    """An MBTiles file. Read-only unless writable; readable from any thread (the
    scheme handler reads on the GUI thread, a tile at a time, from the page cache)."""

    def __init__(self, path: Path, writable: bool = False):
        self.path = path
        if writable:
            self.conn = sqlite3.connect(path, check_same_thread=False)
            self.conn.executescript(
                "CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value TEXT);"
                "CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER, tile_column INTEGER, "
                "tile_row INTEGER, tile_data BLOB, PRIMARY KEY (zoom_level, tile_column, tile_row));")
        else:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                        check_same_thread=False)

    @classmethod
    def open(cls, path: Path | None) -> MBTiles | None:
        """The store at path if it holds tiles, else None (the outline basemap)."""
        if path is None or not path.is_file():
            return None
        try:
            store = cls(path)
            return store if store.zooms() else None
        except sqlite3.DatabaseError:
            return None

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The tile at slippy-map (z, x, y); MBTiles counts rows from the south."""
        row = self.conn.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
            (z, x, (1 << z) - 1 - y)).fetchone()
        return row[0] if row else None

    def tile_at(self, name: str) -> bytes | None:
        """The tile named "z/x/y.png", as the page asks for it."""
        try:
            z, x, y = (int(p) for p in name.removesuffix(".png").split("/"))
        except ValueError:
            return None
        return self.tile(z, x, y)

    def put(self, z: int, x: int, y: int, data: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?)",
                          (z, x, (1 << z) - 1 - y, data))

    def has(self, z: int, x: int, y: int) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
            (z, x, (1 << z) - 1 - y)).fetchone() is not None

    def zooms(self) -> tuple[int, int] | None:
        low, high = self.conn.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        return None if low is None else (low, high)

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM tiles").fetchone()[0]

    def set_metadata(self, **values) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?)",
                              [(k, str(v)) for k, v in values.items()])

    def close(self) -> None:
        self.conn.close()


def describe(store: MBTiles | None) -> str:
    """What the map says about its basemap."""
    zooms = store.zooms() if store is not None else None
    if zooms is None:
        return OUTLINE_ONLY
    return f"Basemap: offline tiles, zoom {zooms[0]}-{zooms[1]}"


def download(bbox: tuple[float, float, float, float], zooms: range, url_template: str,
             path: Path, confirm: Callable[[Job], bool],
             progress: Callable[[int, int], None] | None = None) -> int:
    """Sizes the job, asks confirm(job), and only then fetches each tile the store
    lacks into the MBTiles file at path (so a stopped download resumes). Returns how
    many tiles were fetched; 0 if not confirmed. Raises Refused as plan() does."""
    import httpx

    job = plan(bbox, zooms, url_template)
    if not confirm(job):
        return 0
    store = MBTiles(path, writable=True)
    fetched = 0
    try:
        store.set_metadata(name="em-console offline basemap", format="png", type="baselayer",
                           minzoom=zooms.start, maxzoom=zooms.stop - 1,
                           bounds=",".join(str(v) for v in bbox))
        with httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=30) as client:
            for done, (z, x, y) in enumerate(tiles_in(bbox, zooms), 1):
                if not store.has(z, x, y):
                    try:
                        answer = client.get(tile_url(url_template, z, x, y))
                        answer.raise_for_status()
                    except httpx.HTTPError as e:
                        raise DownloadFailed(f"tile {z}/{x}/{y}: {e}") from None
                    store.put(z, x, y, answer.content)
                    fetched += 1
                    if fetched % 200 == 0:
                        store.conn.commit()
                if progress:
                    progress(done, job.tiles)
    finally:
        store.conn.commit()  # what was fetched is kept: a download run again resumes
        store.close()
    return fetched
