"""Keyboard and text: reaching the selection, the note dialog, search, glyphs, times,
last-known values and the File menu (issue 8, item 12)."""

from pathlib import Path

import pytest
from PySide6.QtGui import QRawFont

from console.domain import (
    BREACH_TYPES,
    CurfewState,
    DeviceKind,
    Priority,
)

UI = Path(__file__).resolve().parent.parent / "ui"
DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def test_every_glyph_the_ui_shows_is_in_dejavu_sans(qapp):
    """A stock Debian desktop has DejaVu and no emoji font: a glyph DejaVu Sans
    lacks (such as ⏳) renders as an empty box."""
    if not DEJAVU_SANS.exists():
        pytest.skip("DejaVu Sans is not installed (apt-get install fonts-dejavu-core)")
    font = QRawFont(str(DEJAVU_SANS), 12)
    texts = [p.read_text() for p in UI.glob("*.py")]
    texts += [p.label for p in Priority] + [k.label for k in DeviceKind]
    texts += list(BREACH_TYPES.values()) + [c.value for c in CurfewState]
    glyphs = {ch for text in texts for ch in text if ord(ch) > 127}
    assert "●" in glyphs  # the scan sees the UI's texts
    assert sorted(ch for ch in glyphs if not font.supportsCharacter(ord(ch))) == []
