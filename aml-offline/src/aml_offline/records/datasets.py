"""Registered file datasets (name, version, paths, tags) and the SHA-256 recorded for each URL."""

from __future__ import annotations

import json
import time

from aml_offline.store import LocalStore


class DatasetConflict(ValueError):
    """The name is registered with other files and no new version was asked for."""


class DatasetRecordNotFound(LookupError):
    """No dataset of that name (and version)."""


def _plain(row) -> dict:
    paths = json.loads(row["paths"])
    record = {
        "name": row["name"],
        "version": row["version"],
        "description": row["description"],
        "kind": row["kind"],
        "paths": paths,
        "tags": json.loads(row["tags"]),
        "created": row["created"],
    }
    if row["kind"] == "tabular":  # a tabular dataset keeps how its files are read: {"paths": [...], "read": {...}}
        record.update(paths=paths["paths"], read=paths["read"])
    return record


def register(store: LocalStore, name: str, paths: list[str], description=None, tags=None,
             create_new_version=False, version: int | None = None, read: dict | None = None) -> dict:  # fmt: skip
    """Version 1, or the next version; the same files again give back the latest version, as on Azure.

    ``read``: a tabular dataset's definition (how its files are parsed, and the steps after: take, skip...).

    ``version`` (SDK v2's explicit versions): that version; the same files again give it back, other files
    are a :class:`DatasetConflict` (a version's files never change).
    """
    kind = "file" if read is None else "tabular"
    content = paths if read is None else {"paths": paths, "read": read}
    with store.write_lock(), store.db() as db:
        if version is not None:
            row = db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, version)).fetchone()
            if row is not None:
                if json.loads(row["paths"]) == content:
                    return _plain(row)
                raise DatasetConflict(
                    f"Version {version} of data asset {name!r} exists already with other files; a version's files "
                    "never change: give a new version, or none for the next one."
                )
            db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, version, description, kind, json.dumps(content), json.dumps(tags or {}), time.time()),
            )
            row = db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, version)).fetchone()
            return _plain(row)
        row = db.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        if row is not None:
            if json.loads(row["paths"]) == content and row["kind"] == kind:
                return _plain(row)
            if not create_new_version:
                raise DatasetConflict(
                    f"A dataset named {name!r} is already registered with other files; "
                    "pass create_new_version=True to add a version."
                )
        version = 1 if row is None else row["version"] + 1
        db.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, version, description, kind, json.dumps(content), json.dumps(tags or {}), time.time()),
        )
        return _plain(db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, version)).fetchone())


def get(store: LocalStore, name: str, version="latest") -> dict:
    with store.db() as db:
        if version in (None, "latest"):
            row = db.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        else:
            row = db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, int(version))).fetchone()
    if row is None:
        raise DatasetRecordNotFound(f"No dataset {name!r} (version {version}) in the local workspace ({store.root}).")
    return _plain(row)


def versions(store: LocalStore, name: str) -> list[dict]:
    """Every version of ``name``, newest first."""
    with store.db() as db:
        rows = db.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC", (name,)).fetchall()
    return [_plain(r) for r in rows]


def names(store: LocalStore) -> list[str]:
    with store.db() as db:
        return [r["name"] for r in db.execute("SELECT DISTINCT name FROM datasets ORDER BY name")]


def known_hash(store: LocalStore, url: str) -> str | None:
    with store.db() as db:
        row = db.execute("SELECT sha256 FROM file_hashes WHERE url = ?", (url,)).fetchone()
    return row["sha256"] if row else None


def record_hash(store: LocalStore, url: str, digest: str) -> None:
    with store.write_lock(), store.db() as db:
        db.execute("INSERT OR IGNORE INTO file_hashes VALUES (?, ?, ?)", (url, digest, time.time()))
