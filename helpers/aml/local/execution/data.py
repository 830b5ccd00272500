"""A dataset made local: a folder of verified files a run can read.

The four MNIST files go through the data layer (known SHA-256, mirrors, offline
sample); any other URL is fetched with its SHA-256 recorded at the first
download and checked on every later one; local files are copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

from helpers import data
from helpers.aml.local.records import datasets as dataset_records
from helpers.aml.local.store import LocalStore


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
    if all(is_url(p) for p in paths) and sorted(names) == sorted(data.FILE_NAMES):
        bases = list(dict.fromkeys(p[: -len(n)] for p, n in zip(paths, names, strict=True)))
        files = data.fetch_mnist(mirror_list=bases + [m for m in data.mirrors() if m not in bases], say=say)
        say(f"MNIST files: {files.source} in {files.folder}")
        return files.folder
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


def _fetch_recorded(store: LocalStore, url: str, folder: Path, say) -> Path:
    known = dataset_records.known_hash(store, url)
    path = data.fetch_file(url, folder, known, progressbar=False)
    if known is None:
        digest = data.sha256(path)
        dataset_records.record_hash(store, url, digest)
        say(f"Recorded SHA-256 {digest} for {url}")
    return path
