"""Registered components (SDK v2's ``ml_client.components``): name, version, definition and a copy of their code.

``components/<name>/<version>.json`` holds a version's definition (the component's own dict, as azure-ai-ml
writes it, with ``code`` pointing at the copy) and when it was made; ``components/<name>/<version>/code/`` is the
copy of the code folder taken when it was registered, so a registered version keeps running the code it was
registered with, as on Azure, where the code is uploaded with the component.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from aml_offline.store import LocalStore, read_json, write_json

FOLDER = "components"
#: Azure's rule for a component's name
NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.-]{0,254}")


class ComponentNotFound(LookupError):
    """No component of that name (and version)."""


class ComponentConflict(ValueError):
    """That version exists already with another definition: a version never changes."""


def _folder(store: LocalStore, name: str) -> Path:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"Component name {name!r}: Azure takes letters, digits, '_', '-' and '.', starting with a letter or '_'."
        )
    return store.root / FOLDER / name


def versions(store: LocalStore, name: str) -> list[dict]:
    """Every version of ``name``, newest first."""
    folder = _folder(store, name)
    records = [read_json(p) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted((r for r in records if r), key=lambda r: r["created"], reverse=True)


def names(store: LocalStore) -> list[str]:
    folder = store.root / FOLDER
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def get(store: LocalStore, name: str, version: str | None = None) -> dict:
    """A version, or the newest one when ``version`` is None."""
    found = versions(store, name)
    if version is not None:
        found = [r for r in found if r["version"] == str(version)]
    if not found:
        which = f"version {version} of " if version is not None else ""
        raise ComponentNotFound(f"No {which}component {name!r} in the local workspace ({store.root}).")
    return found[0]


def register(store: LocalStore, name: str, version: str | None, definition: dict, code: Path | None,
             copy_code=shutil.copytree) -> dict:  # fmt: skip
    """Keep a version of a component, its code folder copied with ``copy_code(source, target)`` (the definition
    should say what the code holds, such as its content hash).  ``version`` None: the newest version when its
    definition is the same, else the next number.  A version that exists with another definition is a
    :class:`ComponentConflict`."""
    folder = _folder(store, name)
    with store.write_lock():
        existing = versions(store, name)
        same = [r for r in existing if r["definition"] == definition and (version is None or r["version"] == version)]
        if version is None and existing and existing[0]["definition"] == definition:
            return existing[0]
        if version is not None:
            clash = [r for r in existing if r["version"] == str(version)]
            if clash and not same:
                raise ComponentConflict(
                    f"Version {version} of component {name!r} exists already with another definition; a version "
                    "never changes: give a new version, or none for the next one."
                )
            if same:
                return same[0]
        else:
            numbers = [int(r["version"]) for r in existing if str(r["version"]).isdigit()]
            version = str(max(numbers, default=0) + 1)
        version = str(version)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", version):
            raise ValueError(f"Component version {version!r}: use letters, digits, '_', '-' and '.'.")
        copy = None
        if code is not None:
            copy = folder / version / "code"
            if copy.exists():
                shutil.rmtree(copy)
            copy_code(code, copy)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"name": name, "version": version, "definition": definition, "code": str(copy) if copy else None,
                  "created": time.time()}  # fmt: skip
        write_json(folder / f"{version}.json", record)
    return record
