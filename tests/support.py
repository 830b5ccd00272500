"""Small helpers the test modules share."""

from __future__ import annotations

import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def script_dir(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    """A source folder holding one script with ``body`` (dedented)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(body))
    return src


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals ``(start, end)`` that were open at the same moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def stop_process_group(pid: int, grace: float = 5) -> None:
    """SIGTERM the process group led by ``pid`` (a server this test started, and what it started), then SIGKILL
    what is left after ``grace`` seconds."""
    import os
    import signal

    import psutil

    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(family, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
