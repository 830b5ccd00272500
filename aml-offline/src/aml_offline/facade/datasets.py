"""File datasets of the local workspace (twins of ``azureml.core.Dataset`` / ``FileDataset``).

A dataset is a list of web or local paths, registered under a name with
versions.  When a run uses it (``as_mount()`` / ``as_download()``) or
``download()`` is called, its files are fetched into a local folder and
verified (:mod:`aml_offline.execution.data`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

from azureml.core import Dataset as AzureDataset
from azureml.data import FileDataset as AzureFileDataset
from azureml.data import TabularDataset as AzureTabularDataset
from azureml.data.constants import _DATASET_ARGUMENT_TEMPLATE
from azureml.data.data_reference import DataReference
from azureml.data.datapath import DataPath
from azureml.data.dataset_consumption_config import DatasetConsumptionConfig as AzureConsumption
from azureml.exceptions import UserErrorException

from aml_offline.execution import data as local_data
from aml_offline.facade import datastores
from aml_offline.facade._base import Offline, not_available, warn_ignored
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
        return self.as_named_input(self._input_name()).as_mount(path_on_compute)

    def as_download(self, path_on_compute=None):
        return self.as_named_input(self._input_name()).as_download(path_on_compute)

    def _input_name(self) -> str:
        """The dataset's name when azureml takes it as an input name (letters, digits and underscores), else
        azureml's own choice for an unnamed input: ``input_`` and the start of the dataset's id."""
        if self.name and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            return self.name
        return f"input_{self.id[:8]}"

    def _to_spec_dict(self, mode: str, input_name: str) -> dict:
        return {"name": self.name, "version": self.version, "paths": self._paths, "mode": mode,
                "input_name": input_name}  # fmt: skip

    def __repr__(self):
        registration = {"name": self.name, "version": self.version, "description": self.description}
        return json.dumps(
            {"source": self._paths, "definition": ["GetFiles"], "registration": registration if self.name else None},
            indent=2,
        )


class DatasetConsumptionConfig(Offline, AzureConsumption):
    """How a run consumes a dataset (twin of ``azureml.data.dataset_consumption_config``).

    A subclass of azureml's own, so a pipeline step (``PythonScriptStep(inputs=[ds.as_named_input("raw")])``)
    takes it as the dataset input it is; its name is kept as given."""

    _azure_class = AzureConsumption

    def __init__(self, name, dataset, mode="direct", path_on_compute=None):
        self._name = name
        self.arg_val = _DATASET_ARGUMENT_TEMPLATE.format(name)
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


def _from_record(record: dict, workspace):
    if record.get("kind") == "tabular":
        return TabularDataset(record["paths"], record["read"], record["name"], record["version"],
                              record["description"], record["tags"], workspace)  # fmt: skip
    return FileDataset(record["paths"], record["name"], record["version"], record["description"], record["tags"],
                       workspace)  # fmt: skip


class TabularDataset(Offline):
    """Rows and columns read from delimited, Parquet or JSON Lines files (twin of ``azureml.data.TabularDataset``).

    As on Azure it is a definition, not a copy: the files are read (with pandas) when ``to_pandas_dataframe()``
    is called, and ``take``/``skip``/``keep_columns``/``random_split`` add steps to the definition.
    """

    _azure_class = AzureTabularDataset

    def __init__(self, paths, read, name=None, version=None, description=None, tags=None, workspace=None):
        self._paths, self._read = list(paths), dict(read)
        self.name = name
        self.version = version
        self.description = description
        self.tags = tags or {}
        self._workspace = workspace

    @property
    def id(self) -> str:
        return hashlib.sha1(json.dumps([self._paths, self._read]).encode()).hexdigest()[:32]

    def _with(self, step: list) -> TabularDataset:
        read = {**self._read, "steps": [*self._read.get("steps", []), step]}
        return TabularDataset(self._paths, read, workspace=self._workspace)

    # --- the definition's steps ----------------------------------------------------------------
    def take(self, count):
        return self._with(["take", int(count)])

    def skip(self, count):
        return self._with(["skip", int(count)])

    def take_sample(self, probability, seed=None):
        return self._with(["sample", float(probability), seed])

    def keep_columns(self, columns, validate=False):
        return self._with(["keep", [columns] if isinstance(columns, str) else list(columns)])

    def drop_columns(self, columns):
        return self._with(["drop", [columns] if isinstance(columns, str) else list(columns)])

    def random_split(self, percentage, seed=None):
        """Two datasets: about ``percentage`` of the rows, and the rest (the same split for the same seed)."""
        if not 0 < percentage < 1:
            raise UserErrorException("percentage must be between 0 and 1 (exclusive).")
        seed = 0 if seed is None else int(seed)
        return (self._with(["split", float(percentage), seed, True]),
                self._with(["split", float(percentage), seed, False]))  # fmt: skip

    # --- reading --------------------------------------------------------------------------------
    def to_pandas_dataframe(self, on_error="null", out_of_range_datetime="null"):
        return read_table(self._store, self._paths, self._read, self.name)

    def head(self, count=5):
        return self.take(count).to_pandas_dataframe()

    @property
    def _store(self) -> LocalStore:
        return self._workspace._store if self._workspace else LocalStore.get()

    def register(self, workspace, name, description=None, tags=None, create_new_version=False):
        try:
            record = dataset_records.register(workspace._store, name, self._paths, description, tags,
                                              create_new_version, read=self._read)  # fmt: skip
        except dataset_records.DatasetConflict as exc:
            raise UserErrorException(str(exc)) from None
        return _from_record(record, workspace)

    def as_named_input(self, name):
        raise not_available(
            "TabularDataset.as_named_input",
            "pass the files to the run instead: Dataset.File.from_files(...).as_mount(), and read them with pandas",
        )

    def __repr__(self):
        registration = {"name": self.name, "version": self.version, "description": self.description}
        return json.dumps({"source": self._paths, "definition": ["GetFiles", f"Read{self._read['format']}",
                                                                 *[s[0] for s in self._read.get("steps", [])]],
                           "registration": registration if self.name else None}, indent=2)  # fmt: skip


def read_table(store: LocalStore, paths: list[str], read: dict, label=None):
    """Read the files as azureml's tabular readers do, then apply the definition's steps."""
    import pandas as pd

    files = []
    for p in paths:
        if local_data.is_url(p):
            try:
                folder = local_data.materialize(store, {"name": label, "paths": [p], "mode": "download",
                                                        "input_name": label or "dataset"})  # fmt: skip
            except local_data.DataError as exc:
                raise UserErrorException(str(exc)) from None
            files.append(folder / local_data.file_name(p))
        elif Path(p).is_dir():
            files.extend(f for f in sorted(Path(p).rglob("*")) if f.is_file() and not f.name.endswith(".partial"))
        else:
            files.append(Path(p))
    if not files:
        raise UserErrorException(f"Tabular dataset {label or ''}: its paths hold no files ({', '.join(paths)}).")
    frames = []
    for f in files:
        try:
            if read["format"] == "DelimitedFiles":
                frames.append(pd.read_csv(f, sep=read.get("separator", ","),
                                          header=0 if read.get("header", True) else None,
                                          encoding=read.get("encoding", "utf8")))  # fmt: skip
            elif read["format"] == "ParquetFiles":
                frames.append(pd.read_parquet(f))
            else:
                frames.append(pd.read_json(f, lines=True))
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise UserErrorException(
                f"Tabular dataset {label or ''}: {f} cannot be read as {read['format']}: {exc}"
            ) from None
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if read.get("include_path"):
        df.insert(0, "Path", [str(f) for f, frame in zip(files, frames, strict=True) for _ in range(len(frame))])
    for step in read.get("steps", []):
        kind = step[0]
        if kind == "take":
            df = df.head(step[1])
        elif kind == "skip":
            df = df.iloc[step[1] :]
        elif kind == "sample":
            df = df.sample(frac=step[1], random_state=step[2])
        elif kind in ("keep", "drop"):
            missing = [c for c in step[1] if c not in df.columns]
            if missing and kind == "keep":
                raise UserErrorException(f"keep_columns: no column {missing[0]!r}; the columns: {list(df.columns)}.")
            df = df[step[1]] if kind == "keep" else df.drop(columns=[c for c in step[1] if c in df.columns])
        elif kind == "split":
            import numpy as np

            chosen = np.random.default_rng(step[2]).random(len(df)) < step[1]
            df = df[chosen if step[3] else ~chosen]
    return df.reset_index(drop=True)


def _validated(dataset: TabularDataset, validate: bool) -> TabularDataset:
    if validate:
        dataset.take(1).to_pandas_dataframe()  # as Azure: a file that cannot be read fails here, not later
    return dataset


class TabularDatasetFactory:
    """``Dataset.Tabular``: tabular datasets from delimited, Parquet or JSON Lines files, or a DataFrame."""

    @staticmethod
    def from_delimited_files(path, validate=True, include_path=False, infer_column_types=True, set_column_types=None,
                             separator=",", header=True, partition_format=None, support_multi_line=False,
                             empty_as_string=False, encoding="utf8"):  # fmt: skip
        paths = _paths(path, validate, "Dataset.Tabular.from_delimited_files")
        read = {"format": "DelimitedFiles", "separator": separator, "header": header not in (False, "NO_HEADER"),
                "encoding": encoding, "include_path": include_path}  # fmt: skip
        return _validated(TabularDataset(paths, read), validate)

    @staticmethod
    def from_parquet_files(path, validate=True, include_path=False, set_column_types=None, partition_format=None):
        paths = _paths(path, validate, "Dataset.Tabular.from_parquet_files")
        return _validated(TabularDataset(paths, {"format": "ParquetFiles", "include_path": include_path}), validate)

    @staticmethod
    def from_json_lines_files(path, validate=True, include_path=False, set_column_types=None, partition_format=None,
                              invalid_lines="error", encoding="utf8"):  # fmt: skip
        paths = _paths(path, validate, "Dataset.Tabular.from_json_lines_files")
        return _validated(TabularDataset(paths, {"format": "JsonLinesFiles", "include_path": include_path}), validate)

    @staticmethod
    def register_pandas_dataframe(dataframe, target, name, description=None, tags=None, show_progress=True,
                                  row_group_size=None, make_target_path_unique=True):  # fmt: skip
        """Write the DataFrame as Parquet into ``target`` (a datastore, or a ``(datastore, path)`` pair) and
        register it as a tabular dataset."""
        import uuid

        datastore, path = _datastore_pair(target) if not hasattr(target, "upload_files") else (target, "")
        folder = f"{path.strip('/')}/{uuid.uuid4()}" if make_target_path_unique else path.strip("/")
        local = datastore._folder / folder
        local.mkdir(parents=True, exist_ok=True)
        partial = local / "part-00000.parquet.partial"
        dataframe.to_parquet(partial, index=False)
        partial.replace(local / "part-00000.parquet")
        if show_progress:
            print(f"Validating arguments.\nArguments validated.\nSuccessfully obtained datastore reference and path.\n"
                  f"Uploading file to {folder}\nSuccessfully uploaded file to datastore.\nCreating and registering a "
                  "new dataset.\nSuccessfully created and registered a new dataset.")  # fmt: skip
        dataset = TabularDataset([str(local)], {"format": "ParquetFiles", "include_path": False})
        return dataset.register(datastore.workspace, name, description=description, tags=tags, create_new_version=True)


class FileDatasetFactory:
    """``Dataset.File``: create file datasets."""

    @staticmethod
    def from_files(path, validate=True, partition_format=None, is_file=False):
        out = _paths(path, validate, "Dataset.File.from_files")
        if partition_format is not None:
            warn_ignored("Dataset.File.from_files", "partition_format")
        return FileDataset(out)

    @staticmethod
    def upload_directory(src_dir, target, pattern=None, overwrite=False, show_progress=True):
        """Upload a folder to ``target`` (a ``(datastore, path)`` pair) and return a file dataset of it."""
        datastore, path = _datastore_pair(target)
        source = Path(src_dir)
        if pattern is not None:
            files = [p for p in sorted(source.rglob("*")) if p.is_file() and p.match(pattern)]
            datastore.upload_files([str(p) for p in files], relative_root=str(source), target_path=path,
                                   overwrite=overwrite, show_progress=show_progress)  # fmt: skip
        else:
            datastore.upload(str(source), target_path=path, overwrite=overwrite, show_progress=show_progress)
        return FileDataset(resolve_datastore_path(datastore, path))


def _datastore_pair(target):
    if isinstance(target, DataPath):
        return target._datastore, target.path_on_datastore
    if isinstance(target, tuple) and len(target) == 2:
        return target
    if hasattr(target, "path_on_datastore") and hasattr(target, "datastore"):  # DataReference
        return target.datastore, target.path_on_datastore
    raise UserErrorException(f"target must be a (datastore, 'path') pair or a DataPath, not {target!r}.")


def _paths(path, validate: bool, where: str) -> list[str]:
    """URLs and local paths as given; ``(datastore, path)`` pairs, ``DataPath`` and ``DataReference`` as the local
    workspace's files they name (a glob such as 'folder/**' or 'data/*.csv' is resolved now)."""
    items = [path] if isinstance(path, str | Path | tuple | DataPath | DataReference) else list(path)
    out = []
    for p in items:
        if isinstance(p, tuple | DataPath | DataReference):
            out.extend(resolve_datastore_path(*_datastore_pair(p)))
            continue
        p = str(p)
        if not local_data.is_url(p):
            p = str(Path(p).resolve())
            if validate and not Path(p).exists():
                raise UserErrorException(f"Dataset path {p} does not exist.")
        out.append(p)
    if not out:
        raise UserErrorException(f"{where} needs at least one path.")
    return out


def resolve_datastore_path(datastore, path) -> list[str]:
    return datastores.resolve(datastore, path)


class Dataset(Offline):
    """Twin of ``azureml.core.Dataset``: ``Dataset.File`` / ``Dataset.Tabular`` and the registry look-ups."""

    _azure_class = AzureDataset
    File = FileDatasetFactory
    Tabular = TabularDatasetFactory

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
