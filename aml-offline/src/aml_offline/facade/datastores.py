"""Datastores of the local workspace (twin of ``azureml.core.Datastore``): folders with azureml-core's API.

``ws.get_default_datastore()`` is ``workspaceblobstore``, a folder under the workspace; ``upload`` copies files
into it (printing azureml-core's progress lines), ``download`` copies them out, and a ``(datastore, "path")``
pair or ``datastore.path("path")`` names files in it for ``Dataset.File.from_files``,
``Dataset.Tabular.from_delimited_files`` and a run's arguments.  Blob containers, file shares and Data Lake
Gen2 filesystems register as further folders (their secrets are not kept); databases, DBFS, HDFS and Data
Lake Gen1 cannot be reached offline and say so.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

from azureml.core import Datastore as AzureDatastore
from azureml.data.data_reference import DataReference
from azureml.exceptions import UserErrorException

from aml_offline.facade._base import Offline, not_available
from aml_offline.records import datastores as records


class Datastore(Offline):
    """A named folder of the local workspace that stands for an Azure storage container."""

    _azure_class = AzureDatastore

    def __new__(cls, workspace, name=None):
        self = super().__new__(cls)
        store = workspace._store
        name = name or records.default_name(store)
        try:
            record = records.get(store, name)
        except records.DatastoreNotFound:
            known = ", ".join(sorted(records.all_records(store)))
            raise UserErrorException(
                f"Datastore {name!r} was not found in the local workspace (its datastores: {known}). Register it "
                "first (Datastore.register_azure_blob_container) or use ws.get_default_datastore()."
            ) from None
        self.workspace = workspace
        self.name = name
        self.datastore_type = record.get("datastore_type", "AzureBlob")
        self.container_name = record.get("container_name")
        self.account_name = record.get("account_name", "local")
        self.protocol = "https"
        self.endpoint = "core.windows.net"
        self.sas_token = None  # never kept offline
        self.account_key = None
        return self

    def __init__(self, workspace, name=None):
        pass  # __new__ did the work (azureml-core's Datastore(ws, name) is a look-up too)

    def __copy__(self):  # a handle on a folder: azureml-core's configurations copy their arguments
        return self

    def __deepcopy__(self, memo):
        return self

    @property
    def _folder(self) -> Path:
        return records.folder(self.workspace._store, self.name)

    # --- look-ups and registration ---------------------------------------------------------------
    @staticmethod
    def get(workspace, datastore_name):
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace):
        return Datastore(workspace)

    @staticmethod
    def list(workspace) -> dict:
        return {name: Datastore(workspace, name) for name in sorted(records.all_records(workspace._store))}

    @staticmethod
    def register_azure_blob_container(workspace, datastore_name, container_name, account_name, sas_token=None,
                                      account_key=None, protocol=None, endpoint=None, overwrite=False,
                                      create_if_not_exists=False, skip_validation=False, blob_cache_timeout=None,
                                      grant_workspace_access=False, subscription_id=None,
                                      resource_group=None):  # fmt: skip
        return _register(workspace, datastore_name, "AzureBlob", container_name, account_name, overwrite)

    @staticmethod
    def register_azure_file_share(workspace, datastore_name, file_share_name, account_name, sas_token=None,
                                  account_key=None, protocol=None, endpoint=None, overwrite=False,
                                  create_if_not_exists=False, skip_validation=False):  # fmt: skip
        return _register(workspace, datastore_name, "AzureFile", file_share_name, account_name, overwrite)

    @staticmethod
    def register_azure_data_lake_gen2(workspace, datastore_name, filesystem, account_name, tenant_id=None,
                                      client_id=None, client_secret=None, resource_url=None, authority_url=None,
                                      protocol=None, endpoint=None, overwrite=False, subscription_id=None,
                                      resource_group=None, grant_workspace_access=False):  # fmt: skip
        return _register(workspace, datastore_name, "AzureDataLakeGen2", filesystem, account_name, overwrite)

    def set_as_default(self):
        records.set_default(self.workspace._store, self.name)

    def unregister(self):
        """Forget the datastore; as on Azure the storage stays (its folder and files are kept)."""
        if self.name in records.BUILT_IN:
            raise UserErrorException(f"{self.name} is the workspace's own datastore and cannot be unregistered.")
        records.unregister(self.workspace._store, self.name)

    # --- files ------------------------------------------------------------------------------------
    def path(self, path=None, data_reference_name=None):
        """A ``DataReference`` to ``path`` in this datastore (``.as_mount()`` / ``.as_download()`` for a run)."""
        return DataReference(datastore=self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self):
        """The whole datastore, mounted for a run (``datastore.path().as_mount()``)."""
        return self.path().as_mount()

    def as_download(self, path_on_compute=None):
        return self.path().as_download(path_on_compute=path_on_compute)

    def as_upload(self, path_on_compute=None):
        raise not_available(
            "Datastore.as_upload", "use OutputFileDatasetConfig(destination=(datastore, 'path')) for a run's output"
        )

    def is_sas(self) -> bool:
        return False  # no credential is kept offline

    def upload(self, src_dir, target_path=None, overwrite=False, show_progress=True):
        """Copy the folder ``src_dir`` into ``target_path``; existing files are skipped unless ``overwrite``."""
        source = Path(src_dir)
        if not source.is_dir():
            raise UserErrorException(f"upload: src_dir {src_dir} is not a folder (use upload_files for files).")
        files = sorted(p for p in source.rglob("*") if p.is_file())
        pairs = [(f, f.relative_to(source).as_posix()) for f in files]
        self._copy_in(pairs, target_path, overwrite, show_progress)
        return self.path(target_path or "")

    def upload_files(self, files, relative_root=None, target_path=None, overwrite=False, show_progress=True):
        """Copy the files, each at its path below ``relative_root`` (by default their common folder)."""
        paths = [Path(f).resolve() for f in files]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UserErrorException(f"upload_files: {missing[0]} is not a file.")
        if not paths:
            return self.path(target_path or "")
        root = Path(relative_root).resolve() if relative_root else Path(os.path.commonpath([p.parent for p in paths]))
        outside = [str(p) for p in paths if not p.is_relative_to(root)]
        if outside:
            raise UserErrorException(f"upload_files: relative_root {root} is not a folder above {outside[0]}.")
        self._copy_in([(p, p.relative_to(root).as_posix()) for p in paths], target_path, overwrite, show_progress)
        return self.path(target_path or "")

    def download(self, target_path, prefix=None, overwrite=False, show_progress=True) -> int:
        """Copy the files under ``prefix`` (all by default) into ``target_path``; returns how many."""
        root = self._folder
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
        chosen = [p for p in files if prefix is None or p.relative_to(root).as_posix().startswith(str(prefix))]
        if show_progress:
            print(f"Downloading an estimated of {len(chosen)} files")
        count = 0
        for p in chosen:
            rel = p.relative_to(root).as_posix()
            target = Path(target_path) / rel
            if target.exists() and not overwrite:
                if show_progress:
                    print(f"Target already exists. Skipping download for {target}")
                continue
            _copy(p, target)
            count += 1
            if show_progress:
                print(f"Downloaded {rel}, {count} files out of an estimated total of {len(chosen)}")
        if show_progress:
            print(f"Downloaded {count} files")
        return count

    def _copy_in(self, pairs, target_path, overwrite, show_progress) -> None:
        prefix = relative_path(target_path or "")
        if show_progress:
            print(f"Uploading an estimated of {len(pairs)} files")
        count = 0
        for source, rel in pairs:
            name = f"{prefix}/{rel}" if prefix else rel
            target = self._folder / name
            if target.exists() and not overwrite:
                if show_progress:
                    print(f"Target already exists. Skipping upload for {name}")
                continue
            _copy(source, target)
            count += 1
            if show_progress:
                print(f"Uploaded {source}, {count} files out of an estimated total of {len(pairs)}")
        if show_progress:
            print(f"Uploaded {count} files")

    def __repr__(self):
        return (
            f'{{"name": "{self.name}", "container_name": "{self.container_name}", '
            f'"account_name": "{self.account_name}", "datastore_type": "{self.datastore_type}", '
            f'"local_folder": "{self._folder}"}}'
        )


def _register(workspace, name, kind, container, account, overwrite) -> Datastore:
    if not name or not all(c.isalnum() or c == "_" for c in name):  # Azure: letters, digits and underscores
        raise UserErrorException(
            f"Datastore name {name!r} is not valid: use letters, digits and underscores only (as Azure ML does)."
        )
    records.register(workspace._store, {"name": name, "datastore_type": kind, "container_name": container,
                                        "account_name": account}, overwrite)  # fmt: skip
    return Datastore(workspace, name)


def _unavailable(kind: str):
    def register(workspace, datastore_name, *args, **kwargs):
        raise not_available(
            f"Datastore.register_{kind}",
            "the local workspace keeps files only; a database or cluster store cannot be reached offline. Export "
            "the data to files and upload them to ws.get_default_datastore().",
        )

    return staticmethod(register)


for _kind in ("azure_sql_database", "azure_postgre_sql", "azure_my_sql", "dbfs", "hdfs", "azure_data_lake"):
    setattr(Datastore, f"register_{_kind}", _unavailable(_kind))


def relative_path(path: str) -> str:
    text = str(path).replace("\\", "/").strip("/")
    if any(part == ".." for part in text.split("/")):
        raise UserErrorException(f"Datastore path {path!r} must stay inside the datastore (no '..').")
    return text


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(target)  # a reader never sees half a file


def resolve(datastore, path: str | None) -> list[str]:
    """The local paths a ``(datastore, path)`` names: a folder, a file, or a glob ('folder/**', 'data/*.csv')."""
    if not isinstance(datastore, Datastore):
        raise UserErrorException(
            f"{datastore!r} is not a datastore of the local workspace: get it with ws.get_default_datastore() or "
            "Datastore.get(ws, name) after aml_offline.activate()."
        )
    rel = relative_path(path or "")
    root = datastore._folder
    if not any(c in rel for c in "*?["):
        target = root / rel
        if not target.exists():
            raise UserErrorException(
                f"Path {rel!r} was not found in datastore {datastore.name!r} ({root}): upload it first."
            )
        return [str(target)]
    if rel.endswith("/**") and not any(c in rel[:-3] for c in "*?["):
        return resolve(datastore, rel[:-3])  # the folder and everything below it
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and fnmatch.fnmatch(p.relative_to(root).as_posix(), rel)]
    if not files:
        raise UserErrorException(f"No file in datastore {datastore.name!r} matches {rel!r} ({root}).")
    return [str(p) for p in files]
