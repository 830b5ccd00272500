"""Compute targets: clusters (``AmlCompute``) and compute instances (``ComputeInstance``).  Every node is this machine.

A target is a row of ``compute`` (name, type, VM size asked for, node counts, tags) and one of ``compute_details``
(an instance's power state, Running or Stopped; when the target last changed; the settings Azure shows back, such as
the description and VM priority).  A target recorded before ``compute_details`` existed reads as Running, changed
when it was made.

Its nodes are file locks (``LocalStore.compute_slot_locks``): a run holds one lock per node it runs on and writes its
run id beside each (``node-<i>.run``), so a reader can tell which run each busy node serves.  A compute instance has
one node.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from filelock import Timeout

from aml_offline.records import runs as run_records
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore

CLUSTER = "AmlCompute"
INSTANCE = "ComputeInstance"
RUNNING = "Running"
STOPPED = "Stopped"
#: What a power change records as an instance's last operation (SDK v2's ``ComputeInstance.last_operation``)
OPERATION_OF = {RUNNING: "Start", STOPPED: "Stop"}

#: The sizes the local workspace lists (``list_sizes``, ``supported_vmsizes``), among them those Microsoft's samples
#: ask for: name, Azure's VM family, vCPUs, GPUs, memory in GB.  Every node is this machine whatever its size.
VM_SIZES = [
    ("Standard_D2_v2", "standardDv2Family", 2, 0, 7),
    ("Standard_D3_v2", "standardDv2Family", 4, 0, 14),
    ("Standard_DS3_v2", "standardDSv2Family", 4, 0, 14),
    ("Standard_DS11_v2", "standardDSv2Family", 2, 0, 14),
    ("Standard_DS12_v2", "standardDSv2Family", 4, 0, 28),
    ("Standard_D4s_v5", "standardDSv5Family", 4, 0, 16),
    ("Standard_E4ds_v4", "standardEDSv4Family", 4, 0, 32),
    ("Standard_F4s_v2", "standardFSv2Family", 4, 0, 8),
    ("Standard_NC4as_T4_v3", "standardNCASv3_T4Family", 4, 1, 28),
    ("Standard_NC8as_T4_v3", "standardNCASv3_T4Family", 8, 1, 56),
    ("Standard_NC16as_T4_v3", "standardNCASv3_T4Family", 16, 1, 110),
    ("Standard_NC64as_T4_v3", "standardNCASv3_T4Family", 64, 4, 440),
    ("Standard_NC24ads_A100_v4", "standardNCADSA100v4Family", 24, 1, 220),
    ("Standard_NC40ads_H100_v5", "standardNCadsH100v5Family", 40, 1, 320),
]
#: Sizes Azure retired: the original walkthrough's STANDARD_NC6, and Standard_NC6s_v3
RETIRED_VM_SIZES = {"standard_nc6": "August 2023", "standard_nc6s_v3": "September 2025"}


def size_facts(vm_size: str) -> tuple | None:
    """``(name, family, vCPUs, GPUs, memory GB)`` of a listed size (any case), or None."""
    return next((row for row in VM_SIZES if row[0].lower() == str(vm_size).lower()), None)


class ComputeConflict(ValueError):
    """A target of that name exists already."""


def get(store: LocalStore, name: str) -> dict | None:
    """The target's row (``type``, ``vm_size``, node counts, ``tags``, ``state``, ``modified``, ``settings``)."""
    with store.db() as db:
        row = db.execute(
            "SELECT c.*, d.state AS state, d.modified AS modified, d.settings AS settings "
            "FROM compute AS c LEFT JOIN compute_details AS d ON d.name = c.name WHERE c.name = ?",
            (name,),
        ).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["tags"] = json.loads(out["tags"])
    out["settings"] = json.loads(out["settings"] or "{}")
    out["state"] = out["state"] or RUNNING
    out["modified"] = out["modified"] or out["created"]
    return out


def names(store: LocalStore, kind: str | None = None) -> list[str]:
    """The targets' names, sorted; only those of one type (``CLUSTER`` or ``INSTANCE``) when ``kind`` is given."""
    with store.db() as db:
        rows = db.execute("SELECT name, type FROM compute ORDER BY name").fetchall()
    return [r["name"] for r in rows if kind is None or r["type"] == kind]


def create(store: LocalStore, name: str, vm_size: str, min_nodes: int, max_nodes: int, idle_seconds: int,
           tags: dict, *, kind: str = CLUSTER, settings: dict | None = None) -> dict:  # fmt: skip
    """Record a new target (an instance starts Running, as Azure's does once created)."""
    now = time.time()
    with store.write_lock(), store.db() as db:
        if db.execute("SELECT 1 FROM compute WHERE name = ?", (name,)).fetchone():
            raise ComputeConflict(f"Compute target {name!r} already exists.")
        db.execute(
            "INSERT INTO compute VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, kind, vm_size, min_nodes, max_nodes, idle_seconds, now, json.dumps(tags or {})),
        )
        db.execute("INSERT OR REPLACE INTO compute_details VALUES (?, ?, ?, ?)",
                   (name, RUNNING, now, json.dumps(settings or {})))  # fmt: skip
    return get(store, name)


def update_nodes(store: LocalStore, name: str, min_nodes: int | None, max_nodes: int | None,
                 idle_seconds: int | None) -> None:  # fmt: skip
    with store.write_lock(), store.db() as db:
        for column, value in (("min_nodes", min_nodes), ("max_nodes", max_nodes), ("idle_seconds", idle_seconds)):
            if value is not None:
                db.execute(f"UPDATE compute SET {column} = ? WHERE name = ?", (int(value), name))
        _touch(db, name)


def set_state(store: LocalStore, name: str, state: str, operation: str | None = None) -> None:
    """An instance's power state: ``RUNNING`` or ``STOPPED``; ``operation`` (Start, Stop, Restart: else the one the
    state implies) is kept as its last operation, with the time."""
    with store.write_lock(), store.db() as db:
        _touch(db, name)
        db.execute("UPDATE compute_details SET state = ? WHERE name = ?", (state, name))
        _note_operation(db, name, operation or OPERATION_OF[state])


def note_operation(store: LocalStore, name: str, operation: str) -> None:
    """Keep ``operation`` (Create, Start, Stop, Restart) as the target's last one, with the time."""
    with store.write_lock(), store.db() as db:
        _note_operation(db, name, operation)


def _note_operation(db, name: str, operation: str) -> None:
    row = db.execute("SELECT settings FROM compute_details WHERE name = ?", (name,)).fetchone()
    settings = json.loads((row["settings"] if row else None) or "{}")
    settings["last_operation"] = {"name": operation, "time": time.time()}
    db.execute("UPDATE compute_details SET settings = ? WHERE name = ?", (json.dumps(settings), name))


def _touch(db, name: str) -> None:
    db.execute("INSERT OR IGNORE INTO compute_details VALUES (?, ?, ?, '{}')", (name, RUNNING, time.time()))
    db.execute("UPDATE compute_details SET modified = ? WHERE name = ?", (time.time(), name))


def delete(store: LocalStore, name: str) -> None:
    with store.write_lock(), store.db() as db:
        db.execute("DELETE FROM compute WHERE name = ?", (name,))
        db.execute("DELETE FROM compute_details WHERE name = ?", (name,))


# --- nodes and the runs on them ---------------------------------------------------------------------------


def note_holders(locks: list, run_id: str) -> None:
    """Write ``run_id`` beside each node lock the run has just taken (what :func:`busy_nodes` reads)."""
    for lock in locks:
        Path(lock.lock_file).with_suffix(".run").write_text(run_id)


def busy_nodes(store: LocalStore, name: str, max_nodes: int) -> dict[int, str | None]:
    """``{node index: id of the run holding it}`` for each node a run holds now (None: the holder wrote no id)."""
    busy = {}
    for index, lock in enumerate(store.compute_slot_locks(name, max_nodes)):
        try:
            lock.acquire(timeout=0)
        except Timeout:  # a run holds this node
            holder = None
            with contextlib.suppress(OSError):
                holder = Path(lock.lock_file).with_suffix(".run").read_text().strip() or None
            busy[index] = holder
        else:
            lock.release()
    return busy


def active_runs(store: LocalStore, name: str, include_sweeps: bool = False) -> list[dict]:
    """The specs of the runs submitted to this target that have not ended, oldest first (as recorded: a caller that
    must know a run is really alive reads its status through ``execution.watch``).  A sweep's parent holds no node:
    it is left out unless ``include_sweeps``; its children are in."""
    with store.db() as db:
        rows = db.execute(
            f"SELECT run_id FROM run_status WHERE status NOT IN ({', '.join('?' * len(TERMINAL))})", TERMINAL
        ).fetchall()
    specs = []
    for row in rows:
        try:
            spec = run_records.spec_of(store, row["run_id"])
        except run_records.RunNotFound:  # being created this moment
            continue
        if spec.get("target") == name and (include_sweeps or spec.get("type") != "hyperdrive"):
            specs.append(spec)
    return sorted(specs, key=lambda spec: spec.get("created", 0))
