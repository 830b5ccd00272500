"""Commands on a whole workspace folder: what it holds, which processes it has running, stop them, reset it.

``aml-offline status`` and ``aml-offline reset`` (:mod:`aml_offline.cli`) call these; so do
:func:`aml_offline.stop_everything` and :func:`aml_offline.reset`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter
from pathlib import Path

from aml_offline.execution import data, ledger, serving
from aml_offline.records import compute as compute_records
from aml_offline.records import datasets as dataset_records
from aml_offline.records import endpoints as endpoint_records
from aml_offline.records import models as model_records
from aml_offline.records import runs as run_records
from aml_offline.records import services as service_records
from aml_offline.records import status as run_status
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore, default_root

#: What marks a folder as a local workspace (reset deletes nothing else)
MARKER = "workspace.db"


class NotAWorkspace(RuntimeError):
    """The folder given is not a local workspace; nothing was changed."""


def workspace_folder() -> Path:
    """The folder the local workspace keeps its state in: ``AZUREML_LOCAL_ROOT``, else the project's."""
    return default_root()


def _folder(folder: str | Path | None) -> Path:
    return Path(folder).expanduser().resolve() if folder else default_root()


#: What the local workspace writes in its folder: reset deletes these and nothing else (mlflow.db's and
#: workspace.db's SQLite journals included), then the folder only if that leaves it empty
ENTRIES = ("mlflow.db", "workspace.db", "artifacts", "runs", "services", "registered", "uploads", "endpoints",
           "datasets", "locks", "empty-code")  # fmt: skip
_JOURNALS = ("-journal", "-wal", "-shm")


def is_workspace(folder: Path) -> bool:
    """Whether the folder holds a local workspace: its ``workspace.db`` has the twin's tables (read-only check)."""
    path = folder / MARKER
    if not path.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return False
    return {"processes", "run_status", "services"} <= tables


def _existing_store(folder: Path) -> LocalStore | None:
    return LocalStore.get(folder) if is_workspace(folder) else None


def running(folder: str | Path | None = None) -> list[dict]:
    """The processes the workspace recorded that are still the ones recorded and alive: owner, role, pid, since."""
    store = _existing_store(_folder(folder))
    if store is None:
        return []
    found = []
    for owner in ledger.open_owners(store):
        for entry in ledger.entries(store, owner):
            if ledger.verified(entry) is not None:
                found.append({"owner": owner, "role": entry["role"], "pid": entry["pid"], "since": entry["started"]})
    return found


def status(folder: str | Path | None = None) -> str:
    """A few lines a person reads: the folder, its runs by status, models, datasets, compute, services, processes."""
    root = _folder(folder)
    store = _existing_store(root)
    if store is None:
        return f"No local workspace in {root} yet (it is made on first use)."
    with store.db() as db:
        statuses = Counter(r[0] for r in db.execute("SELECT status FROM run_status"))
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    models = {name: len(model_records.versions(store, name)) for name in model_records.names(store)}
    datasets = {name: len(dataset_records.versions(store, name)) for name in dataset_records.names(store)}
    services = {name: _service_state(store, name) for name in service_records.names(store)}
    lines = [
        f"Local workspace {root} ({size / 2**20:.1f} MiB)",
        "Runs:        " + (", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "none"),
        "Models:      " + (", ".join(f"{n} ({v} version{'s' * (v != 1)})" for n, v in models.items()) or "none"),
        "Datasets:    " + (", ".join(f"{n} ({v} version{'s' * (v != 1)})" for n, v in datasets.items()) or "none"),
        "Compute:     " + (", ".join(compute_records.names(store)) or "none"),
        "Services:    " + (", ".join(f"{n} ({s})" for n, s in services.items()) or "none"),
        "Endpoints:   " + (", ".join(endpoint_records.names(store)) or "none"),
    ]
    procs = running(root)
    lines.append(f"Processes:   {len(procs) or 'none'} running")
    now = time.time()
    lines += [f"  pid {p['pid']:>7}  {p['role']:<10} {p['owner']}  ({now - p['since']:.0f} s)" for p in procs]
    return "\n".join(lines)


def _service_state(store: LocalStore, name: str) -> str:
    """A service's state as ``Webservice.state`` reads it: a Healthy one whose server is gone (stopped, killed) is
    Unhealthy, not the Healthy its record last said."""
    row = service_records.get(store, name) or {}
    state = row.get("state", "?")
    if state in ("Healthy", "Transitioning") and row.get("pid") and not serving.server_alive(store, name):
        return "Failed" if state == "Transitioning" else "Unhealthy: no server (stopped)"
    return state


def stop_everything(folder: str | Path | None = None) -> int:
    """Stop every process the workspace started (web services, runs, sweeps, MLflow UIs) and what they started;
    returns how many processes were signalled.  Only processes the ledger recorded, checked by start time."""
    store = _existing_store(_folder(folder))
    if store is None:
        return 0
    _cancel_unfinished_runs(store, "stopped by `aml-offline stop` (or reset)")
    return ledger.stop_everything(store)


def _cancel_unfinished_runs(store: LocalStore, reason: str) -> None:
    """Runs the stop ends (submitted ones, not yet final) end Canceled with the reason first, so that none is left
    reading Preparing or Running with no process behind it.  Interactive runs have no process: they are left as
    their notebook left them, as on Azure."""
    with store.db() as db:
        ids = [r[0] for r in db.execute("SELECT run_id FROM run_status WHERE status NOT IN (?, ?, ?)", TERMINAL)]
    for run_id in ids:
        try:
            spec = run_records.spec_of(store, run_id)
        except run_records.RunNotFound:
            continue
        if not spec.get("interactive"):
            run_status.set_status(store, spec, "Canceled", reason=reason)


def reset(folder: str | Path | None = None) -> int:
    """Stop everything the workspace runs, then delete what it wrote (:data:`ENTRIES`) and its folder when that
    leaves it empty; returns how many processes were stopped.  Anything else in the folder is kept (a workspace
    pointed at a project's own folder deletes none of the project).  A folder that is not a local workspace is
    refused with :class:`NotAWorkspace`."""
    root = _folder(folder)
    if not root.exists():
        return 0
    if not is_workspace(root):
        raise NotAWorkspace(f"{root} is not a local workspace (it has no {MARKER} of one): nothing was deleted.")
    stopped = stop_everything(root)
    LocalStore._instances.pop(root, None)
    for name in ENTRIES:
        for path in [root / name, *(root / f"{name}{suffix}" for suffix in _JOURNALS)]:
            if path.is_dir() and not path.is_symlink():
                data.remove_tree(path)  # runs' mounted inputs are read-only folders
            elif path.exists() or path.is_symlink():
                path.unlink()
    with contextlib.suppress(OSError):
        root.rmdir()  # only when empty
    return stopped
