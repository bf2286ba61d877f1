"""QtWebEngine set-up, the emmap: URL scheme, and a local page that takes JavaScript
calls before it is ready.

Importing this module imports QtWebEngine and registers the emmap: scheme, both of
which must happen before the QApplication exists: import it first.

emmap://app/NAME serves resources/web/NAME (Leaflet, the trail page's code, the
basemap outline) and the map page folium builds (maps/page.py); emmap://tiles/Z/X/Y.png
serves the offline tiles of an MBTiles file (maps/tiles.py). A custom scheme rather
than file:// because the page is built in memory (setHtml fails above 2 MB, and a
file would need a place on disk) and because tiles come out of SQLite.
"""

from __future__ import annotations

import json
import mimetypes
import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QUrl, Signal
from PySide6.QtWebEngineCore import (
    QWebEnginePage,
    QWebEngineProfile,
    QWebEngineUrlRequestJob,
    QWebEngineUrlScheme,
    QWebEngineUrlSchemeHandler,
)
from PySide6.QtWebEngineWidgets import QWebEngineView

SCHEME = b"emmap"
# Where our web files are, in a source checkout or a bundle (maps may not import ui.resources).
WEB_ROOT = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent)) / "resources" / "web"


def _register_scheme() -> None:
    scheme = QWebEngineUrlScheme(SCHEME)
    scheme.setSyntax(QWebEngineUrlScheme.Syntax.Host)
    flags = (QWebEngineUrlScheme.Flag.SecureScheme | QWebEngineUrlScheme.Flag.LocalScheme
             | QWebEngineUrlScheme.Flag.CorsEnabled
             | QWebEngineUrlScheme.Flag.ContentSecurityPolicyIgnored)
    if hasattr(QWebEngineUrlScheme.Flag, "FetchApiAllowed"):  # Qt 6.6+: fetch() of the outline
        flags |= QWebEngineUrlScheme.Flag.FetchApiAllowed
    scheme.setFlags(flags)
    QWebEngineUrlScheme.registerScheme(scheme)


_register_scheme()


def sandbox_off_reason() -> str | None:
    """Call before the QApplication exists. Returns why Chromium's sandbox is off,
    or None when it is on."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start as root with its sandbox on. This is the only
        # case where the console turns it off itself, and it says so.
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
        return "running as root"
    if os.environ.get("QTWEBENGINE_DISABLE_SANDBOX"):
        return "QTWEBENGINE_DISABLE_SANDBOX is set"
    if "--no-sandbox" in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", ""):
        return "QTWEBENGINE_CHROMIUM_FLAGS has --no-sandbox"
    return None


class SchemeHandler(QWebEngineUrlSchemeHandler):
    """Answers emmap: requests. One per process, on the default profile: `pages` maps
    a name under emmap://app/ to a function that makes its bytes (built pages), and
    `tiles` is the MBTiles store the console reads, or None."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pages: dict[str, Callable[[], bytes]] = {}
        self.tiles = None  # maps.tiles.MBTiles

    def requestStarted(self, job: QWebEngineUrlRequestJob) -> None:  # noqa: N802 (Qt's name)
        url = job.requestUrl()
        name = url.path().lstrip("/")
        data, mime = None, "application/octet-stream"
        if url.host() == "tiles" and self.tiles is not None:
            data, mime = self.tiles.tile_at(name), "image/png"
        elif url.host() == "app" and name in self.pages:
            data, mime = self.pages[name](), "text/html"
        elif url.host() == "app" and ".." not in Path(name).parts:
            path = WEB_ROOT / name
            if path.is_file():
                data = path.read_bytes()
                mime = mimetypes.guess_type(name)[0] or mime
        if data is None:
            job.fail(QWebEngineUrlRequestJob.Error.UrlNotFound)
            return
        buffer = QBuffer(job)  # freed with the job, after Chromium has read it
        buffer.setData(QByteArray(data))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        job.reply(mime.encode(), buffer)


_handler: SchemeHandler | None = None


def scheme_handler() -> SchemeHandler:
    """The process's emmap: handler, installed on the default profile at first use
    (a QApplication must exist by then)."""
    global _handler
    if _handler is None:
        profile = QWebEngineProfile.defaultProfile()
        _handler = SchemeHandler(profile)
        profile.installUrlSchemeHandler(SCHEME, _handler)
    return _handler


class ReportingPage(QWebEnginePage):
    """A page whose scripts talk back through console.debug("emmap:" + JSON): one way
    for every event and for the page's own errors, with no handshake to miss early
    messages on (QWebChannel's) and no script of its own to serve. Each becomes
    `message`, the JSON text."""

    PREFIX = "emmap:"
    message = Signal(str)

    def javaScriptConsoleMessage(self, level, message: str, line: int, source: str) -> None:  # noqa: N802
        if message.startswith(self.PREFIX):
            self.message.emit(message[len(self.PREFIX):])
        elif message.startswith("Uncaught"):  # an exception no script caught: the page is broken
            self.message.emit(json.dumps({"event": "error", "detail": f"{message} ({source}:{line})"}))


class LocalPage(QWebEngineView):
    """A page from a local file or an emmap: URL (setHtml fails above 2 MB). Calls
    made before the page has loaded wait for it, in order."""

    def __init__(self, source: Path | QUrl, parent=None, page: QWebEnginePage | None = None):
        super().__init__(parent)
        if page is not None:
            page.setParent(self)  # deleted with the view, before the profile
            self.setPage(page)
        self.ready = False
        self.load_failed = False
        self._queue: list[tuple[str, Callable | None]] = []
        self.loadFinished.connect(self._loaded)
        self.load(source if isinstance(source, QUrl) else QUrl.fromLocalFile(str(source.resolve())))

    def call(self, script: str, done: Callable | None = None) -> None:
        """Runs script in the page; done, if given, receives its result."""
        if self.ready:
            self._run(script, done)
        else:
            self._queue.append((script, done))

    def _run(self, script: str, done: Callable | None) -> None:
        if done is None:
            self.page().runJavaScript(script)
        else:
            self.page().runJavaScript(script, 0, done)

    def _loaded(self, ok: bool) -> None:
        self.ready, self.load_failed = ok, not ok
        if ok:
            queue, self._queue = self._queue, []
            for script, done in queue:
                self._run(script, done)
