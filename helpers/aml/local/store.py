"""The local workspace's storage: one folder on disk, safe for several processes at once.

Layout of the folder (``.azureml-local/`` at the project root, or ``AZUREML_LOCAL_ROOT``)::

    mlflow.db        MLflow tracking store and model registry (SQLite): experiments, runs,
                     params, metrics, tags, registered models and their versions
    artifacts/       MLflow artifacts: each run's files (outputs/, logs/, user_logs/)
    workspace.db     datasets, compute targets and web services (SQLite, plain tables)
    runs/<run id>/   a run's working folder (snapshot of the source), spec and live files
    services/<name>/ a web service's scoring code, model files, keys and server log
    locks/           file locks: one for writes, and compute-node slots

Every write goes through :meth:`LocalStore.write_lock`, a file lock shared by all
processes using the folder, so concurrent runs, children and registrations never
lose or duplicate anything.  Reads need no lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from functools import cached_property
from pathlib import Path

from filelock import FileLock

from helpers._scripts import PROJECT_ROOT

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL, version INTEGER NOT NULL, description TEXT, kind TEXT NOT NULL,
    paths TEXT NOT NULL, tags TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS file_hashes (url TEXT PRIMARY KEY, sha256 TEXT NOT NULL, recorded REAL NOT NULL);
CREATE TABLE IF NOT EXISTS compute (
    name TEXT PRIMARY KEY, type TEXT NOT NULL, vm_size TEXT NOT NULL, min_nodes INTEGER NOT NULL,
    max_nodes INTEGER NOT NULL, idle_seconds INTEGER NOT NULL, created REAL NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY, compute_type TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER NOT NULL,
    folder TEXT NOT NULL, auth_enabled INTEGER NOT NULL, models TEXT NOT NULL, created REAL NOT NULL,
    error TEXT NOT NULL);
"""


def default_root() -> Path:
    env = os.environ.get("AZUREML_LOCAL_ROOT")
    return Path(env).expanduser().resolve() if env else PROJECT_ROOT / ".azureml-local"


class LocalStore:
    """Paths, locks and database handles for one local workspace folder."""

    _instances: dict[Path, LocalStore] = {}

    def __init__(self, root: Path):
        self.root = root
        for sub in ("artifacts", "runs", "locks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.db_path = root / "workspace.db"
        with self.write_lock(), self.db() as db:
            db.executescript(_SCHEMA)

    @classmethod
    def get(cls, root: Path | None = None) -> LocalStore:
        root = (root or default_root()).resolve()
        store = cls._instances.get(root)
        if store is None or not (root / "workspace.db").exists():  # the folder was deleted: recreate
            store = cls._instances[root] = cls(root)
        return store

    # --- locking and the small database ---------------------------------------------
    def write_lock(self, timeout: float = 120) -> FileLock:
        return FileLock(str(self.root / "locks" / "write.lock"), timeout=timeout)

    @contextlib.contextmanager
    def db(self):
        conn = sqlite3.connect(self.db_path, timeout=60)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    # --- MLflow ------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @cached_property
    def mlflow(self):
        """An MlflowClient on this folder's SQLite store (created under the lock on first use)."""
        for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.model_registry.abstract_store"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow import MlflowClient

        with self.write_lock():
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            client.search_experiments(max_results=1)  # creates and migrates the database once
        return client

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        client = self.mlflow
        exp = client.get_experiment_by_name(name)
        if exp is None and create:
            with self.write_lock():
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    location = (self.root / "artifacts" / name).as_uri()
                    return client.create_experiment(name, artifact_location=location)
        return exp.experiment_id if exp else None

    # --- runs folders ------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def compute_slot_locks(self, name: str, slots: int) -> list[FileLock]:
        folder = self.root / "locks" / f"compute-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        return [FileLock(str(folder / f"node-{i}.lock"), timeout=0) for i in range(slots)]


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def write_json(path: Path, value) -> None:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)
