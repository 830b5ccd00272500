"""File datasets of the local workspace (twins of ``azureml.core.Dataset`` / ``FileDataset``).

A dataset is a list of web or local paths, registered under a name with
versions.  When a run uses it (``as_mount()`` / ``as_download()``) or
``download()`` is called, its files are fetched into a local folder and
verified (:mod:`aml_offline.execution.data`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

from azureml.core import Dataset as AzureDataset
from azureml.data import FileDataset as AzureFileDataset
from azureml.data.dataset_consumption_config import DatasetConsumptionConfig as AzureConsumption
from azureml.exceptions import UserErrorException

from aml_offline.execution import data as local_data
from aml_offline.facade._base import Offline, warn_ignored
from aml_offline.records import datasets as dataset_records
from aml_offline.store import LocalStore


class FileDataset(Offline):
    """A set of file references (twin of ``azureml.data.FileDataset``)."""

    _azure_class = AzureFileDataset

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
        try:
            record = dataset_records.register(workspace._store, name, self._paths, description, tags,
                                              create_new_version)  # fmt: skip
        except dataset_records.DatasetConflict as exc:
            raise UserErrorException(str(exc)) from None
        return _from_record(record, workspace)

    def to_path(self) -> list[str]:
        """The files' paths as a run sees them (relative to the mount point)."""
        out = []
        for p in self._paths:
            if local_data.is_url(p):
                out.append("/" + urlparse(p).path.rsplit("/", 1)[-1])
            elif Path(p).is_dir():
                out.extend("/" + f.relative_to(p).as_posix() for f in sorted(Path(p).rglob("*")) if f.is_file())
            else:
                out.append("/" + Path(p).name)
        return out

    def download(self, target_path=None, overwrite=False, ignore_not_found=False) -> list[str]:
        """Fetch the files (verified) and copy them into ``target_path``."""
        store = self._workspace._store if self._workspace else LocalStore.get()
        try:
            folder = local_data.materialize(store, self._to_spec_dict("download", self.name or "dataset"))
        except local_data.DataError as exc:
            raise UserErrorException(str(exc)) from None
        target = Path(target_path or ".")
        written = []
        for rel in self.to_path():
            src, dst = folder / rel.lstrip("/"), target / rel.lstrip("/")
            if dst.exists() and not overwrite:
                raise UserErrorException(f"{dst} already exists; pass overwrite=True to replace it.")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(str(dst))
        marker = folder / local_data.SOURCE_FILE
        if marker.is_file():  # local only: where a data source got the files (full MNIST or a sample, say)
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
        return {"name": self.name, "version": self.version, "paths": self._paths, "mode": mode,
                "input_name": input_name}  # fmt: skip

    def __repr__(self):
        registration = {"name": self.name, "version": self.version, "description": self.description}
        return json.dumps(
            {"source": self._paths, "definition": ["GetFiles"], "registration": registration if self.name else None},
            indent=2,
        )


class DatasetConsumptionConfig(Offline):
    """How a run consumes a dataset (twin of ``azureml.data.dataset_consumption_config``)."""

    _azure_class = AzureConsumption

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


def _from_record(record: dict, workspace) -> FileDataset:
    return FileDataset(record["paths"], record["name"], record["version"], record["description"], record["tags"],
                       workspace)  # fmt: skip


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
            if not local_data.is_url(p):
                p = str(Path(p).resolve())
                if validate and not Path(p).exists():
                    raise UserErrorException(f"Dataset path {p} does not exist.")
            out.append(p)
        if not out:
            raise UserErrorException("Dataset.File.from_files needs at least one path.")
        if partition_format is not None:
            warn_ignored("Dataset.File.from_files", "partition_format")
        return FileDataset(out)


class Dataset(Offline):
    """Twin of ``azureml.core.Dataset``: ``Dataset.File.from_files`` and the registry look-ups."""

    _azure_class = AzureDataset
    File = FileDatasetFactory

    @staticmethod
    def get_by_name(workspace, name, version="latest", **kwargs):
        try:
            record = dataset_records.get(workspace._store, name, version)
        except dataset_records.DatasetRecordNotFound:
            which = "" if version in (None, "latest") else f" (version: {version})"
            raise UserErrorException(  # azureml-core's words, then what to do here
                f'Cannot find dataset registered with name "{name}"{which} in the workspace '
                "(the local workspace). Register it first (notebook 01-dataset)."
            ) from None
        return _from_record(record, workspace)

    @staticmethod
    def get_all(workspace):
        return {n: Dataset.get_by_name(workspace, n) for n in dataset_records.names(workspace._store)}
