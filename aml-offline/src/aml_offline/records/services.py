"""Web services: one row each (state, folder, auth, models); the server's processes are in the ledger."""

from __future__ import annotations

import json
import time

from aml_offline.store import LocalStore

STATES = ("Transitioning", "Healthy", "Unhealthy", "Failed")


class ServiceExists(ValueError):
    """A service of that name exists (or is being deployed by another process right now)."""


def get(store: LocalStore, name: str) -> dict | None:
    with store.db() as db:
        row = db.execute("SELECT * FROM services WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["models"] = json.loads(out["models"])
    return out


def names(store: LocalStore) -> list[str]:
    with store.db() as db:
        return [r["name"] for r in db.execute("SELECT name FROM services ORDER BY name")]


def claim(store: LocalStore, name: str, compute_type: str, folder: str, auth: bool, model_ids: list[str]) -> None:
    """Create the service's row in state Transitioning; a second deploy of the name fails here, cleanly."""
    with store.write_lock(), store.db() as db:
        if db.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone():
            raise ServiceExists(f"A service named {name!r} exists already (or another deployment of it is starting).")
        db.execute(
            "INSERT INTO services (name, compute_type, state, pid, folder, auth_enabled, models, created, error) "
            "VALUES (?, ?, 'Transitioning', 0, ?, ?, ?, ?, '')",
            (name, compute_type, folder, int(auth), json.dumps(model_ids), time.time()),
        )


def set_state(store: LocalStore, name: str, state: str, error: str = "", pid: int | None = None) -> None:
    if state not in STATES:
        raise ValueError(f"{state!r} is not a service state ({', '.join(STATES)}).")
    with store.write_lock(), store.db() as db:
        if pid is None:
            db.execute("UPDATE services SET state = ?, error = ? WHERE name = ?", (state, error, name))
        else:
            db.execute("UPDATE services SET state = ?, error = ?, pid = ? WHERE name = ?", (state, error, pid, name))


def delete(store: LocalStore, name: str) -> None:
    with store.write_lock(), store.db() as db:
        db.execute("DELETE FROM services WHERE name = ?", (name,))
