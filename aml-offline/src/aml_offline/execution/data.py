"""A dataset made local: a folder of verified files a run can read.

Web files are first offered to the installed *data sources*: a project can teach the twin where a well-known
dataset lives offline (its verified cache, a mirror, a bundled sample) with an entry point in the group
``aml_offline.data_sources``.  Each is a callable ``source(urls, say)`` that returns a folder holding files of
those names, or None when it does not know them; it may put a ``source.json`` beside them saying where they came
from, which ``download()`` copies with the files.  Any other URL is fetched (Pooch: a temporary file, moved in
once whole) with its SHA-256 recorded at the first download and checked on every later one; local files are
copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlparse

from aml_offline.records import datasets as dataset_records
from aml_offline.store import LocalStore

#: The entry-point group of data sources, and the file a source may leave beside its files
DATA_SOURCES = "aml_offline.data_sources"
SOURCE_FILE = "source.json"
_TIMEOUT_S = 30


class DataError(RuntimeError):
    """A dataset's file cannot be had; the message names it."""


def is_url(path: str) -> bool:
    return urlparse(path).scheme in ("http", "https")


def file_name(path: str) -> str:
    return urlparse(path).path.rsplit("/", 1)[-1] if is_url(path) else Path(path).name


def materialize(store: LocalStore, spec: dict, say=print) -> Path:
    """A local folder holding the dataset's files, fetched and verified."""
    paths = spec["paths"]
    names = [file_name(p) for p in paths]
    label = spec.get("name") or spec.get("input_name") or "dataset"
    if all(is_url(p) for p in paths):
        folder = from_data_sources(paths, say)
        if folder is not None:
            return folder
    if len(paths) == 1 and not is_url(paths[0]) and Path(paths[0]).is_dir():
        return Path(paths[0])
    key = hashlib.sha1(json.dumps(paths).encode()).hexdigest()[:16]
    folder = store.root / "datasets" / key
    folder.mkdir(parents=True, exist_ok=True)
    for path, name in zip(paths, names, strict=True):
        if is_url(path):
            _fetch_recorded(store, path, folder, say)
        elif not (folder / name).exists():
            source = Path(path)
            if not source.exists():
                raise DataError(
                    f"Dataset {label!r}: its file {source} no longer exists. Put it back, or register a new "
                    "version of the dataset with Dataset.File.from_files(...).register(..., create_new_version=True)."
                )
            tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.partial"  # one per copier: no races
            if source.is_dir():
                shutil.copytree(source, tmp, dirs_exist_ok=True)
                if (folder / name).exists():  # another copier finished first
                    shutil.rmtree(tmp)
                else:
                    os.replace(tmp, folder / name)
            else:
                shutil.copyfile(source, tmp)
                os.replace(tmp, folder / name)  # atomic: a reader sees the whole file or none
    return folder


def make_read_only(folder: Path) -> None:
    """Take the write bits off a folder's files and folders (a mounted input is read-only on Azure)."""
    for path in [*folder.rglob("*"), folder]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def remove_tree(folder: Path) -> None:
    """``shutil.rmtree`` that also removes read-only folders (mounted inputs) a run left."""

    def writable_then_again(function, path, _exc):
        parent = Path(path).parent
        parent.chmod(parent.stat().st_mode | 0o700)
        if Path(path).is_dir() and not Path(path).is_symlink():
            Path(path).chmod(Path(path).stat().st_mode | 0o700)
        function(path)

    shutil.rmtree(folder, onerror=writable_then_again)


def from_data_sources(urls: list[str], say=print) -> Path | None:
    """The folder the first installed data source that knows these URLs gives, or None."""
    for entry in entry_points(group=DATA_SOURCES):
        try:
            source = entry.load()
        except Exception as exc:  # noqa: BLE001  (a broken plug-in is named, not fatal: the URLs are still fetched)
            say(f"Warning: the data source {entry.name!r} ({entry.value}) cannot be loaded: {exc}")
            continue
        folder = source(list(urls), say)
        if folder is not None:
            return Path(folder)
    return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_recorded(store: LocalStore, url: str, folder: Path, say) -> Path:
    """Download ``url`` into ``folder`` once; its SHA-256 is recorded the first time and checked after."""
    import pooch  # here, not above: a supervisor whose inputs are local never loads it (nor paramiko)
    import requests

    known = dataset_records.known_hash(store, url)
    name = file_name(url)
    pooch.get_logger().setLevel("WARNING")
    try:
        path = Path(pooch.retrieve(url, known_hash=f"sha256:{known}" if known else None, fname=name, path=folder,
                                   downloader=pooch.HTTPDownloader(progressbar=False, timeout=_TIMEOUT_S)))  # fmt: skip
    except requests.RequestException as exc:
        raise DataError(f"Dataset file {url} cannot be downloaded ({type(exc).__name__}: {exc}).") from None
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        raise DataError(
            f"Dataset file {url}: its SHA-256 is not the one recorded at its first download ({known}); the copy was "
            "not kept. The file changed at its source: register it again as a new dataset version."
        ) from None
    if known is None:
        digest = sha256(path)
        dataset_records.record_hash(store, url, digest)
        say(f"Recorded SHA-256 {digest} for {url}")
    return path
