"""Small shared pieces of the local workspace."""

from __future__ import annotations

import warnings


class LocalWorkspaceWarning(UserWarning):
    """An argument the local workspace accepts for parity with Azure but cannot honour."""


def warn_ignored(where: str, argument: str, why: str = "") -> None:
    """Say, once per place and argument, that the local workspace ignores an argument."""
    text = f"{where}: the local workspace ignores '{argument}'"
    warnings.warn(f"{text} ({why})." if why else f"{text}.", LocalWorkspaceWarning, stacklevel=3)
