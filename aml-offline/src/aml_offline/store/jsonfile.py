"""JSON files that are never seen half-written, survive a crash once written, and are readable by their owner only.

A write goes to a temporary file beside the target (created 0600), is flushed to the disk, then renamed over the
target, and the folder is flushed too: a reader sees the old file or the new one, never half of either, and a
write that fails (a full disk) leaves the old file and no temporary one.  A file that exists but cannot be read as
JSON is an error that names it: a damaged record is never taken for a missing one (which would, say, give an
endpoint new keys and forget the servers it runs).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class DamagedFile(RuntimeError):
    """A JSON file of the workspace exists but cannot be read; the message names it and says what to do."""


def read_json(path: Path, default=None):
    """The file's value, or ``default`` when it does not exist; :class:`DamagedFile` when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} cannot be read ({exc}). Fix its permissions, or restore it from a backup.") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DamagedFile(
            f"{path} is damaged (not complete JSON: {exc}). Nothing was changed. Restore it, or delete it and "
            "create what it described again (a run, a service or an endpoint of the local workspace)."
        ) from None


def write_json(path: Path, value) -> None:
    """Write JSON atomically and durably; the file is readable and writable by its owner only."""
    path = Path(path)
    text = json.dumps(value, indent=2, default=str)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot flush a folder: the rename is still atomic
    finally:
        os.close(fd)
