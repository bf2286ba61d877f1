"""Where the console's own files are, in a source checkout or a bundle."""

import sys
from pathlib import Path

ROOT = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))


def resource(name: str) -> Path:
    return ROOT / "resources" / name
