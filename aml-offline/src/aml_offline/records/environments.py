"""Registered environments: one JSON file per version, ``environments/<name>/<version>.json`` in the workspace.

A record is ``{"name", "version", "definition", "labels", "created"}``; the definition is the environment as the SDK
serialises it (plain JSON), so a person can read it and any facade can rebuild its own object from it.  Versions are
numbered 1, 2, ... as Azure numbers them, under the write lock, so two processes registering at once never get the
same number.  Registering a definition that a version already holds gives that version back, not a new one (Azure:
"if you re-register an identical version, the version number is not increased").
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from aml_offline.store import LocalStore, read_json, write_json

#: What a name or a version may be (it becomes a file name): Azure's names start with a letter or a digit
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class EnvironmentRecordError(ValueError):
    """An environment name or version the workspace cannot keep, or a version that holds another definition."""


def folder(store: LocalStore) -> Path:
    return store.root / "environments"


def _check(what: str, text: str) -> str:
    if not _NAME.match(text or ""):
        raise EnvironmentRecordError(
            f"Environment {what} {text!r} is not one Azure ML accepts: use letters, digits, '-', '_' and '.', "
            "starting with a letter or a digit (at most 255 characters)."
        )
    return text


def _same(a: dict, b: dict) -> bool:
    """Two definitions describe the same environment (name, version and asset id aside)."""

    def key(d: dict) -> str:
        return json.dumps({k: v for k, v in d.items() if k not in ("name", "version", "assetId")}, sort_keys=True)

    return key(a) == key(b)


def _order(record: dict):
    version = str(record["version"])
    return (1, int(version), record["created"]) if version.isdigit() else (0, 0, record["created"])


def versions(store: LocalStore, name: str) -> list[dict]:
    """Every registered version of ``name``, newest first."""
    place = folder(store) / _check("name", name)
    if not place.is_dir():
        return []
    found = [read_json(path) for path in place.glob("*.json")]
    return sorted((r for r in found if r), key=_order, reverse=True)


def names(store: LocalStore) -> list[str]:
    place = folder(store)
    if not place.is_dir():
        return []
    return sorted(p.name for p in place.iterdir() if p.is_dir() and any(p.glob("*.json")))


def get(store: LocalStore, name: str, version: str | None = None, label: str | None = None) -> dict | None:
    """The newest version of ``name``, the version asked for, or the newest one carrying ``label``; None if none."""
    for record in versions(store, name):
        if version is not None and str(record["version"]) != str(version):
            continue
        if label is not None and label not in record.get("labels", []):
            continue
        return record
    return None


def register(store: LocalStore, name: str, definition: dict, version: str | None = None) -> dict:
    """Keep ``definition`` as a version of ``name`` and return its record.

    ``version`` None: the version that already holds this definition, else the next number.  A version asked for
    that holds another definition is an :class:`EnvironmentRecordError`."""
    _check("name", name)
    if version is not None:
        _check("version", str(version))
    definition = json.loads(json.dumps(definition))  # plain JSON, as it will be read back
    with store.write_lock():
        existing = versions(store, name)
        if version is None:
            for record in existing:
                if _same(record["definition"], definition):
                    return record
            numbers = [int(r["version"]) for r in existing if str(r["version"]).isdigit()]
            version = str(max(numbers, default=0) + 1)
        else:
            version = str(version)
            for record in existing:
                if str(record["version"]) == version:
                    if _same(record["definition"], definition):
                        return record
                    raise EnvironmentRecordError(
                        f"Environment {name!r} version {version} exists with another definition: register without a "
                        "version (env.version = None) to get the next one."
                    )
        record = {"name": name, "version": version, "definition": dict(definition, name=name, version=version),
                  "labels": [], "created": time.time()}  # fmt: skip
        place = folder(store) / name
        place.mkdir(parents=True, exist_ok=True)
        write_json(place / f"{version}.json", record)
        return record


def set_labels(store: LocalStore, name: str, version: str, labels: list[str]) -> dict:
    """Set a version's labels (they replace its old ones, as azureml-core's call does); :func:`get` by a label gives
    the newest version carrying it."""
    with store.write_lock():
        record = get(store, name, version=str(version))
        if record is None:
            raise EnvironmentRecordError(f"Environment {name!r} has no version {version}.")
        record["labels"] = [str(label) for label in labels]
        write_json(folder(store) / name / f"{record['version']}.json", record)
        return record
