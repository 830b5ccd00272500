"""Registered environments: one JSON file per version, ``environments/<name>/<version>.json`` in the workspace.

A record is ``{"name", "version", "definition", "labels", "created"}``; the definition is the environment as the SDK
serialises it (plain JSON), so a person can read it and any facade can rebuild its own object from it.  Versions are
numbered 1, 2, ... as Azure numbers them, under the write lock, so two processes registering at once never get the
same number.  Registering a definition that a version already holds gives that version back, not a new one (Azure:
"if you re-register an identical version, the version number is not increased").

SDK v2 asks for a little more (:func:`register`'s keywords): it compares a new definition with the latest version
only, and lets an existing version's description, tags and properties change in place (Azure keeps an environment
version's definition but lets those change).  A version can be archived (``"archived": true`` in its record), and so
can a whole environment: the file ``archived`` in its folder, beside the versions, says so, and a version registered
while it is there is archived too.
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


class EnvironmentVersionConflict(EnvironmentRecordError):
    """A version asked for exists and holds another definition (versions never change what they hold)."""


def folder(store: LocalStore) -> Path:
    return store.root / "environments"


def _check(what: str, text: str) -> str:
    if not _NAME.match(text or ""):
        raise EnvironmentRecordError(
            f"Environment {what} {text!r} is not one Azure ML accepts: use letters, digits, '-', '_' and '.', "
            "starting with a letter or a digit (at most 255 characters)."
        )
    return text


def valid_name(name: str) -> bool:
    """Whether ``name`` is one a registered environment can have (a name that is not cannot be registered)."""
    return bool(_NAME.match(name or ""))


def _same(a: dict, b: dict, mutable=()) -> bool:
    """Two definitions describe the same environment (name, version, asset id and the ``mutable`` keys aside)."""
    ignored = {"name", "version", "assetId", *mutable}

    def key(d: dict) -> str:
        return json.dumps({k: v for k, v in d.items() if k not in ignored}, sort_keys=True)

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


def register(
    store: LocalStore,
    name: str,
    definition: dict,
    version: str | None = None,
    *,
    mutable: tuple[str, ...] = (),
    latest_only: bool = False,
) -> dict:
    """Keep ``definition`` as a version of ``name`` and return its record.

    ``version`` None: the version that already holds this definition (with ``latest_only``, only the latest version
    is compared, as SDK v2 does), else the next number.  A version asked for that holds another definition is an
    :class:`EnvironmentVersionConflict`.  The ``mutable`` keys of the definition (SDK v2: description, tags,
    properties) are not part of what a version holds: a matching version takes their new values."""
    _check("name", name)
    if version is not None:
        _check("version", str(version))
    definition = json.loads(json.dumps(definition))  # plain JSON, as it will be read back
    with store.write_lock():
        existing = versions(store, name)
        if version is None:
            newest = sorted(existing, key=lambda r: r["created"], reverse=True)
            for record in newest[:1] if latest_only else existing:
                if _same(record["definition"], definition, mutable):
                    return _update(store, record, definition, mutable)
            numbers = [int(r["version"]) for r in existing if str(r["version"]).isdigit()]
            version = str(max(numbers, default=0) + 1)
        else:
            version = str(version)
            for record in existing:
                if str(record["version"]) == version:
                    if _same(record["definition"], definition, mutable):
                        return _update(store, record, definition, mutable)
                    raise EnvironmentVersionConflict(
                        f"Environment {name!r} version {version} exists with another definition: register without a "
                        "version (env.version = None) to get the next one."
                    )
        record = {"name": name, "version": version, "definition": dict(definition, name=name, version=version),
                  "labels": [], "created": time.time()}  # fmt: skip
        if is_archived(store, name):  # a new version of an archived environment is archived too (Azure's rule)
            record["archived"] = True
        place = folder(store) / name
        place.mkdir(parents=True, exist_ok=True)
        write_json(place / f"{version}.json", record)
        return record


def _update(store: LocalStore, record: dict, definition: dict, mutable) -> dict:
    """The record with the ``mutable`` keys of ``definition`` (written only when they changed)."""
    changed = {k: definition.get(k) for k in mutable if record["definition"].get(k) != definition.get(k)}
    if changed:
        record["definition"].update(changed)
        write_json(folder(store) / record["name"] / f"{record['version']}.json", record)
    return record


def is_archived(store: LocalStore, name: str) -> bool:
    """Whether the environment as a whole (not one version) is archived."""
    return (folder(store) / _check("name", name) / "archived").exists()


def set_archived(store: LocalStore, name: str, version: str | None, archived: bool) -> None:
    """Archive or restore one version, or (``version`` None) the environment and every version of it.

    An archived version is still there (a job may use it); lists leave it out unless asked."""
    with store.write_lock():
        found = versions(store, name)
        if version is not None:
            found = [r for r in found if str(r["version"]) == str(version)]
        if not found:
            what = f"{name!r} version {version}" if version is not None else repr(name)
            raise EnvironmentRecordError(f"Environment {what} is not registered.")
        for record in found:
            record["archived"] = archived
            write_json(folder(store) / name / f"{record['version']}.json", record)
        if version is None:
            marker = folder(store) / name / "archived"
            if archived:
                marker.write_text(f"archived {time.strftime('%Y-%m-%d %H:%M:%S')}: every version of {name}\n")
            else:
                marker.unlink(missing_ok=True)


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
