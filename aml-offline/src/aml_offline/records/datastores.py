"""Datastores: named folders of the local workspace (``datastores/<name>/``), and which one is the default.

Azure gives every workspace ``workspaceblobstore`` (the default) and ``workspacefilestore``; here they are
folders made on first use.  A registered blob container, file share or Data Lake Gen2 filesystem is another
folder: what was registered (account, container) is recorded, and its files are what has been uploaded to it
on this machine.  Secrets given at registration (account keys, SAS tokens) are not kept.
"""

from __future__ import annotations

import time
from pathlib import Path

from aml_offline.store import LocalStore, read_json, write_json

BUILT_IN = {
    "workspaceblobstore": {"datastore_type": "AzureBlob", "container_name": "azureml-blobstore-local"},
    "workspacefilestore": {"datastore_type": "AzureFile", "container_name": "azureml-filestore-local"},
}
DEFAULT = "workspaceblobstore"


class DatastoreNotFound(LookupError):
    """No datastore of that name."""


def _index(store: LocalStore) -> Path:
    return store.root / "datastores.json"


def _read(store: LocalStore) -> dict:
    return read_json(_index(store)) or {"default": DEFAULT, "datastores": {}}


def folder(store: LocalStore, name: str) -> Path:
    return store.root / "datastores" / name


def all_records(store: LocalStore) -> dict[str, dict]:
    index = _read(store)
    records = {n: {"name": n, "account_name": "local", **r} for n, r in BUILT_IN.items()}
    records.update(index["datastores"])
    return records


def get(store: LocalStore, name: str) -> dict:
    record = all_records(store).get(name)
    if record is None:
        raise DatastoreNotFound(name)
    folder(store, name).mkdir(parents=True, exist_ok=True)
    return record


def default_name(store: LocalStore) -> str:
    return _read(store)["default"]


def register(store: LocalStore, record: dict, overwrite: bool) -> dict:
    """Record a datastore; the same name again needs ``overwrite`` (as Azure: else the existing one is kept)."""
    name = record["name"]
    with store.write_lock():
        index = _read(store)
        existing = index["datastores"].get(name) or (BUILT_IN.get(name) and {"name": name, **BUILT_IN[name]})
        if existing and not overwrite:
            return existing
        index["datastores"][name] = {**record, "registered": time.time()}
        write_json(_index(store), index)
    folder(store, name).mkdir(parents=True, exist_ok=True)
    return index["datastores"][name]


def set_default(store: LocalStore, name: str) -> None:
    get(store, name)
    with store.write_lock():
        index = _read(store)
        index["default"] = name
        write_json(_index(store), index)


def unregister(store: LocalStore, name: str) -> None:
    """Forget the registration; as on Azure, the storage (the folder and its files) stays."""
    with store.write_lock():
        index = _read(store)
        if name not in index["datastores"]:
            raise DatastoreNotFound(name)
        del index["datastores"][name]
        if index["default"] == name:
            index["default"] = DEFAULT
        write_json(_index(store), index)
