"""Small helpers the package's test modules share."""

from __future__ import annotations

import textwrap
from pathlib import Path


def script_dir(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    """A source folder holding one script with ``body`` (dedented)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(body))
    return src
