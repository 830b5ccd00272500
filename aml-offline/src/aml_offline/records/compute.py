"""Compute targets: name, VM size asked for, node counts.  A target's nodes are this machine."""

from __future__ import annotations

import json
import time

from aml_offline.store import LocalStore


class ComputeConflict(ValueError):
    """A target of that name exists already."""


def get(store: LocalStore, name: str) -> dict | None:
    with store.db() as db:
        row = db.execute("SELECT * FROM compute WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["tags"] = json.loads(out["tags"])
    return out


def names(store: LocalStore) -> list[str]:
    with store.db() as db:
        return [r["name"] for r in db.execute("SELECT name FROM compute ORDER BY name")]


def create(store: LocalStore, name: str, vm_size: str, min_nodes: int, max_nodes: int, idle_seconds: int,
           tags: dict) -> dict:  # fmt: skip
    with store.write_lock(), store.db() as db:
        if db.execute("SELECT 1 FROM compute WHERE name = ?", (name,)).fetchone():
            raise ComputeConflict(f"Compute target {name!r} already exists.")
        db.execute(
            "INSERT INTO compute VALUES (?, 'AmlCompute', ?, ?, ?, ?, ?, ?)",
            (name, vm_size, min_nodes, max_nodes, idle_seconds, time.time(), json.dumps(tags or {})),
        )
    return get(store, name)


def update_nodes(store: LocalStore, name: str, min_nodes: int | None, max_nodes: int | None,
                 idle_seconds: int | None) -> None:  # fmt: skip
    with store.write_lock(), store.db() as db:
        for column, value in (("min_nodes", min_nodes), ("max_nodes", max_nodes), ("idle_seconds", idle_seconds)):
            if value is not None:
                db.execute(f"UPDATE compute SET {column} = ? WHERE name = ?", (int(value), name))


def delete(store: LocalStore, name: str) -> None:
    with store.write_lock(), store.db() as db:
        db.execute("DELETE FROM compute WHERE name = ?", (name,))
