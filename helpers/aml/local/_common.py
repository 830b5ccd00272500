"""Small shared pieces of the local workspace."""

from __future__ import annotations

import os
import signal
import warnings


class LocalWorkspaceWarning(UserWarning):
    """An argument the local workspace accepts for parity with Azure but cannot honour."""


def warn_ignored(where: str, argument: str, why: str = "") -> None:
    """Say, once per place and argument, that the local workspace ignores an argument."""
    text = f"{where}: the local workspace ignores '{argument}'"
    warnings.warn(f"{text} ({why})." if why else f"{text}.", LocalWorkspaceWarning, stacklevel=3)


def stop_process_group(pid: int, grace: float = 5) -> None:
    """SIGTERM the process group led by ``pid`` (a run's script, a server and its workers), then SIGKILL what
    is left after ``grace`` seconds, children that left the group included."""
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
