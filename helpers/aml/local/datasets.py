"""File datasets of the local workspace (twins of ``azureml.core.Dataset`` / ``FileDataset``).

A dataset is a list of web or local paths, registered under a name with
versions.  When a run uses it (``as_mount()`` / ``as_download()``) or
``download()`` is called, its files are fetched into a local folder and
verified: the four MNIST files through the data layer (known SHA-256, mirrors,
offline sample), any other URL with the hash recorded at its first download
and checked on every later one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

from azureml.exceptions import UserErrorException

from helpers import data
from helpers.aml.local._common import warn_ignored


def _is_url(path: str) -> bool:
    return urlparse(path).scheme in ("http", "https")


class FileDataset:
    """A set of file references (twin of ``azureml.data.FileDataset``)."""

    def __init__(self, paths: list[str], name=None, version=None, description=None, tags=None, workspace=None):
        self._paths = paths
        self.name = name
        self.version = version
        self.description = description
        self.tags = tags or {}
        self._workspace = workspace

    @property
    def id(self) -> str:
        return hashlib.sha1(json.dumps(self._paths).encode()).hexdigest()[:32]

    def register(self, workspace, name, description=None, tags=None, create_new_version=False):
        """Register under ``name``: version 1, or the next version with ``create_new_version``.

        As on Azure, registering the same files again returns the existing latest version.
        """
        store = workspace._store
        with store.write_lock(), store.db() as db:
            row = db.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
            if row is not None:
                if json.loads(row["paths"]) == self._paths:
                    return _from_row(row, workspace)
                if not create_new_version:
                    raise UserErrorException(
                        f"A dataset named {name!r} is already registered with other files; "
                        "pass create_new_version=True to add a version."
                    )
            version = 1 if row is None else row["version"] + 1
            db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, 'file', ?, ?, ?)",
                (name, version, description, json.dumps(self._paths), json.dumps(tags or {}), time.time()),
            )
        return FileDataset(self._paths, name, version, description, tags, workspace)

    def to_path(self) -> list[str]:
        """The files' paths as a run sees them (relative to the mount point)."""
        out = []
        for p in self._paths:
            if _is_url(p):
                out.append("/" + urlparse(p).path.rsplit("/", 1)[-1])
            elif Path(p).is_dir():
                out.extend("/" + f.relative_to(p).as_posix() for f in sorted(Path(p).rglob("*")) if f.is_file())
            else:
                out.append("/" + Path(p).name)
        return out

    def download(self, target_path=None, overwrite=False, ignore_not_found=False) -> list[str]:
        """Fetch the files (verified) and copy them into ``target_path``."""
        from helpers.aml.local.store import LocalStore

        store = self._workspace._store if self._workspace else LocalStore.get()
        folder = materialize(store, self._to_spec_dict("download", self.name or "dataset"))
        target = Path(target_path or ".")
        written = []
        for rel in self.to_path():
            src, dst = folder / rel.lstrip("/"), target / rel.lstrip("/")
            if dst.exists() and not overwrite:
                raise UserErrorException(f"{dst} already exists; pass overwrite=True to replace it.")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(str(dst))
        marker = folder / data.mnist_idx.SOURCE_FILE
        if marker.is_file():  # local only: keep "full MNIST or offline sample" visible to the notebooks
            shutil.copyfile(marker, target / marker.name)
        return written

    # --- use in a run -------------------------------------------------------------------
    def as_named_input(self, name):
        return DatasetConsumptionConfig(name, self)

    def as_mount(self, path_on_compute=None):
        return self.as_named_input(self.name or f"input_{self.id[:8]}").as_mount(path_on_compute)

    def as_download(self, path_on_compute=None):
        return self.as_named_input(self.name or f"input_{self.id[:8]}").as_download(path_on_compute)

    def _to_spec_dict(self, mode: str, input_name: str) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "paths": self._paths,
            "mode": mode,
            "input_name": input_name,
        }

    def __repr__(self):
        return json.dumps(
            {
                "source": self._paths,
                "definition": ["GetFiles"],
                "registration": {"name": self.name, "version": self.version, "description": self.description}
                if self.name
                else None,
            },
            indent=2,
        )


class DatasetConsumptionConfig:
    """How a run consumes a dataset (twin of ``azureml.data.dataset_consumption_config``)."""

    def __init__(self, name, dataset, mode="direct", path_on_compute=None):
        self.name = name
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self, path_on_compute=None):
        if path_on_compute:
            warn_ignored("as_mount", "path_on_compute", "the run gets a local folder")
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute=None):
        if path_on_compute:
            warn_ignored("as_download", "path_on_compute", "the run gets a local folder")
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def _to_spec(self) -> dict:
        if self.mode == "direct":
            raise UserErrorException(
                f"Dataset input {self.name!r}: a file dataset argument must be .as_mount() or .as_download()."
            )
        return self.dataset._to_spec_dict(self.mode, self.name)

    def __str__(self):
        return f"DatasetConsumptionConfig:{self.name}"


def _from_row(row, workspace) -> FileDataset:
    return FileDataset(
        json.loads(row["paths"]),
        row["name"],
        row["version"],
        row["description"],
        json.loads(row["tags"]),
        workspace,
    )


class FileDatasetFactory:
    """``Dataset.File``: create file datasets."""

    @staticmethod
    def from_files(path, validate=True, partition_format=None, is_file=False):
        paths = [path] if isinstance(path, str | Path) else list(path)
        out = []
        for p in paths:
            if isinstance(p, tuple):
                raise UserErrorException(
                    "Datastore paths are an Azure feature: in local mode pass URLs or local paths."
                )
            p = str(p)
            if not _is_url(p):
                p = str(Path(p).resolve())
                if validate and not Path(p).exists():
                    raise UserErrorException(f"Dataset path {p} does not exist.")
            out.append(p)
        if not out:
            raise UserErrorException("Dataset.File.from_files needs at least one path.")
        if partition_format is not None:
            warn_ignored("Dataset.File.from_files", "partition_format")
        return FileDataset(out)


class Dataset:
    """Twin of ``azureml.core.Dataset``: ``Dataset.File.from_files`` and the registry look-ups."""

    File = FileDatasetFactory

    @staticmethod
    def get_by_name(workspace, name, version="latest", **kwargs):
        with workspace._store.db() as db:
            if version == "latest":
                row = db.execute(
                    "SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM datasets WHERE name = ? AND version = ?", (name, int(version))
                ).fetchone()
        if row is None:
            raise UserErrorException(
                f"No dataset {name!r} (version {version}) in the local workspace. "
                "Register it first (notebook 01-dataset)."
            )
        return _from_row(row, workspace)

    @staticmethod
    def get_all(workspace):
        with workspace._store.db() as db:
            names = [r["name"] for r in db.execute("SELECT DISTINCT name FROM datasets ORDER BY name")]
        return {n: Dataset.get_by_name(workspace, n) for n in names}


# --- turning a dataset into a local folder of verified files --------------------------------


def materialize(store, spec: dict, say=print) -> Path:
    """A local folder holding the dataset's files, fetched and verified."""
    paths = spec["paths"]
    names = [urlparse(p).path.rsplit("/", 1)[-1] if _is_url(p) else Path(p).name for p in paths]
    if all(_is_url(p) for p in paths) and sorted(names) == sorted(data.FILE_NAMES):
        bases = list(dict.fromkeys(p[: -len(n)] for p, n in zip(paths, names, strict=True)))
        files = data.fetch_mnist(mirror_list=bases + [m for m in data.mirrors() if m not in bases], say=say)
        say(f"MNIST files: {files.source} in {files.folder}")
        return files.folder
    if len(paths) == 1 and not _is_url(paths[0]) and Path(paths[0]).is_dir():
        return Path(paths[0])
    key = hashlib.sha1(json.dumps(paths).encode()).hexdigest()[:16]
    folder = store.root / "datasets" / key
    folder.mkdir(parents=True, exist_ok=True)
    for path, name in zip(paths, names, strict=True):
        if _is_url(path):
            _fetch_recorded(store, path, folder, say)
        elif not (folder / name).exists():
            shutil.copyfile(path, folder / name)
    return folder


def _fetch_recorded(store, url: str, folder: Path, say) -> Path:
    """Fetch a URL; its SHA-256 is recorded at the first download and checked afterwards."""
    with store.db() as db:
        row = db.execute("SELECT sha256 FROM file_hashes WHERE url = ?", (url,)).fetchone()
    known = row["sha256"] if row else None
    path = data.fetch_file(url, folder, known, progressbar=False)
    if known is None:
        digest = data.sha256(path)
        with store.write_lock(), store.db() as db:
            db.execute("INSERT OR IGNORE INTO file_hashes VALUES (?, ?, ?)", (url, digest, time.time()))
        say(f"Recorded SHA-256 {digest} for {url}")
    return path
