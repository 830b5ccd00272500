"""Online endpoints (SDK v2): name, auth mode, keys, traffic and deployments, one JSON file each.

A deployment's server is an ordinary web service of :mod:`.services` (named ``<endpoint>.<deployment>``,
its processes in the ledger); the endpoint record says which deployments it has and how traffic is split.
"""

from __future__ import annotations

import time

from aml_offline.store import LocalStore, read_json, write_json


class EndpointNotFound(LookupError):
    """No endpoint of that name."""


def _path(store: LocalStore, name: str):
    return store.root / "endpoints" / f"{name}.json"


def service_name(endpoint: str, deployment: str) -> str:
    """The web service that serves one deployment of an endpoint."""
    return f"{endpoint}.{deployment}"


def get(store: LocalStore, name: str) -> dict | None:
    return read_json(_path(store, name))


def names(store: LocalStore) -> list[str]:
    folder = store.root / "endpoints"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def create_or_update(store: LocalStore, name: str, auth_mode: str, keys: list[str], description=None,
                     tags=None) -> dict:  # fmt: skip
    """Create the endpoint (with ``keys``) or update its description and tags; returns the record."""
    with store.write_lock():
        record = get(store, name) or {"name": name, "auth_mode": auth_mode, "keys": keys, "traffic": {},
                                      "deployments": {}, "created": time.time()}  # fmt: skip
        if description is not None:
            record["description"] = description
        record["tags"] = dict(tags or record.get("tags") or {})
        _path(store, name).parent.mkdir(parents=True, exist_ok=True)
        write_json(_path(store, name), record)
        return record


def update(store: LocalStore, name: str, change) -> dict:
    """Apply ``change(record)`` (it edits the dict in place, or raises to change nothing) to the record as it is
    under the write lock, and write it: a change computed from an older read never undoes another process's."""
    with store.write_lock():
        record = get(store, name)
        if record is None:
            raise EndpointNotFound(f"No endpoint {name!r} in the local workspace ({store.root}).")
        change(record)
        write_json(_path(store, name), record)
        return record


def delete(store: LocalStore, name: str) -> None:
    with store.write_lock():
        _path(store, name).unlink(missing_ok=True)
