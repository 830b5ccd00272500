"""JSON files that are never seen half-written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def read_json(path: Path, default=None):
    """The file's value, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return default


def write_json(path: Path, value) -> None:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)
