"""The local workspace's folder: paths, the write lock and the database handles.

Layout of the folder (``.azureml-local/`` in the project folder, or ``AZUREML_LOCAL_ROOT``: see
:mod:`aml_offline.settings`)::

    mlflow.db        MLflow tracking store and model registry (SQLite): experiments, runs,
                     numeric metrics, tags, registered models and their versions
    artifacts/       MLflow artifacts: each run's files (outputs/, logs/, user_logs/)
    workspace.db     each run's status, every value each run logged (text included), datasets,
                     compute targets, web services, the ledger of processes, and the MLflow
                     outbox (SQLite)
    runs/<run id>/   a run's working folder (snapshot of the source), spec and live files
    services/<name>/ a web service's app folder (scoring code, azureml-models/), keys, log
    locks/           file locks: one for writes, and compute-node slots (beside each, the run holding it)

Every write goes through :meth:`LocalStore.write_lock`.  It is one lock file
shared by all processes using the folder, held through one lock object per
store, so a thread that already holds it can take it again (a write that opens
the MLflow store under the lock no longer waits for itself), while other
threads and processes wait their turn.  Reads need no lock.

MLflow's copy is written through :meth:`LocalStore.mirror`.  A process that has
opened MLflow writes it at once; one that has not (a run's supervisor: opening
MLflow costs it about 4 s of CPU, longer than many runs) leaves the write in the
``mlflow_outbox`` table, and the next process to use MLflow applies it first, in
order, under the write lock.  A notebook that has MLflow open applies it on every
status read and before every MLflow read; the MLflow UI command every 2 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import tempfile
from functools import cached_property
from pathlib import Path

import psutil
from filelock import FileLock, Timeout

from aml_offline import settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL, version INTEGER NOT NULL, description TEXT, kind TEXT NOT NULL,
    paths TEXT NOT NULL, tags TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS file_hashes (url TEXT PRIMARY KEY, sha256 TEXT NOT NULL, recorded REAL NOT NULL);
CREATE TABLE IF NOT EXISTS compute (
    name TEXT PRIMARY KEY, type TEXT NOT NULL, vm_size TEXT NOT NULL, min_nodes INTEGER NOT NULL,
    max_nodes INTEGER NOT NULL, idle_seconds INTEGER NOT NULL, created REAL NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS compute_details (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, modified REAL NOT NULL, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY, compute_type TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER NOT NULL,
    folder TEXT NOT NULL, auth_enabled INTEGER NOT NULL, models TEXT NOT NULL, created REAL NOT NULL,
    error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_numbers (run_id TEXT PRIMARY KEY, number INTEGER UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, step INTEGER,
    value TEXT NOT NULL, logged REAL NOT NULL, PRIMARY KEY (run_id, name, seq));
CREATE TABLE IF NOT EXISTS processes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, role TEXT NOT NULL, pid INTEGER NOT NULL,
    create_time REAL NOT NULL, sid INTEGER NOT NULL, started REAL NOT NULL, ended REAL, note TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS processes_owner ON processes (owner, ended);
CREATE TABLE IF NOT EXISTS run_status (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, changed REAL NOT NULL);
CREATE TABLE IF NOT EXISTS mlflow_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, mlflow_run_id TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL);
"""


#: One lock object per lock file in this process, so re-entry works even across LocalStore instances.
_LOCKS: dict[Path, FileLock] = {}


class StoreError(RuntimeError):
    """The workspace folder cannot be used; the message names the file and says what to do."""


def default_root() -> Path:
    """``AZUREML_LOCAL_ROOT``, else the project's ``[tool.aml-offline] workspace``, else ``.azureml-local/`` in the
    project folder (see :mod:`aml_offline.settings`)."""
    return settings.workspace_root()


class LocalStore:
    """Paths, the write lock and database handles for one local workspace folder."""

    _instances: dict[Path, LocalStore] = {}

    def __init__(self, root: Path):
        self.root = root
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(PermissionError):  # its keys, logs and data are its owner's alone
                os.chmod(root, 0o700)
            for sub in ("artifacts", "runs", "locks"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            probe = root / "locks" / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"The local workspace folder {root} cannot be written ({exc.strerror}: {exc.filename}). "
                "Fix its permissions, or point AZUREML_LOCAL_ROOT at a folder you can write."
            ) from None
        self.db_path = root / "workspace.db"
        self._lock = _LOCKS.setdefault(root / "locks" / "write.lock", FileLock(str(root / "locks" / "write.lock"),
                                                                              timeout=120))  # fmt: skip
        with self.write_lock(), self.db() as db:
            db.executescript(_SCHEMA)

    @classmethod
    def get(cls, root: Path | None = None) -> LocalStore:
        root = Path(root or default_root()).resolve()
        store = cls._instances.get(root)
        if store is None or not (root / "workspace.db").exists():  # the folder was deleted: recreate
            store = cls._instances[root] = cls(root)
        return store

    # --- locking and the small database ---------------------------------------------
    @contextlib.contextmanager
    def write_lock(self):
        """The folder's write lock: re-entrant in the thread that holds it, exclusive across threads and processes."""
        try:
            self._lock.acquire()
        except Timeout:
            raise StoreError(
                f"Waited {self._lock.timeout:.0f} s for the write lock {self._lock.lock_file}: "
                f"{lock_holders(Path(self._lock.lock_file))} holds it. Wait for it, or stop it if it hangs; do not "
                "delete the lock file (only a living process can hold it, and a second writer would get in)."
            ) from None
        except PermissionError as exc:
            raise StoreError(
                f"Cannot open the write lock {exc.filename}: permission denied. Fix its permissions."
            ) from None
        try:
            yield self
        finally:
            self._lock.release()

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
    def _mlflow_client(self):
        for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.model_registry.abstract_store"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow import MlflowClient

        with self.write_lock():
            fresh = not (self.root / "mlflow.db").exists()
            if fresh:
                fresh = not _copy_empty_mlflow_db(self.root / "mlflow.db")
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            client.search_experiments(max_results=1)  # creates and migrates the database once
            if fresh:
                _keep_empty_mlflow_db(self.root / "mlflow.db")
        return client

    @property
    def mlflow(self):
        """An MlflowClient on this folder's SQLite store (opened on first use), with the outbox applied."""
        client = self._mlflow_client
        self.flush_outbox()
        return client

    @property
    def mlflow_open(self) -> bool:
        """Whether this process has opened MLflow (then :meth:`mirror` writes to it at once)."""
        return "_mlflow_client" in self.__dict__

    def mirror(self, mlflow_run_id: str, kind: str, payload) -> None:
        """Write MLflow's copy of something a record holds: now when MLflow is open here, else through the outbox.

        ``kind`` ``"tags"``: ``{name: value}``; ``"status"``: ``{"status": MLflow's, "end_time": ms or None}``;
        ``"metrics"``: ``[[name, value, time ms, step], ...]``.  Writes reach MLflow in the order they were made:
        while older ones wait in the outbox (MLflow was busy), a new one waits behind them.
        """
        with self.write_lock():
            if self.mlflow_open:
                self.flush_outbox()
                if not self._outbox_waiting():
                    try:
                        _apply(self._mlflow_client, mlflow_run_id, kind, payload)
                        return
                    except _Busy:
                        pass
            with self.db() as db:
                db.execute("INSERT INTO mlflow_outbox (mlflow_run_id, kind, payload) VALUES (?, ?, ?)",
                           (mlflow_run_id, kind, json.dumps(payload)))  # fmt: skip

    def _outbox_waiting(self) -> bool:
        with self.db() as db:
            return db.execute("SELECT 1 FROM mlflow_outbox LIMIT 1").fetchone() is not None

    def flush_outbox(self) -> int:
        """Apply the writes other processes left for MLflow, oldest first; returns how many were applied.

        In chunks, each under the write lock and deleted as it is applied, so a long outbox never holds the lock
        for long and an interrupted flush repeats nothing.  When MLflow's database is busy the rest waits for the
        next flush."""
        if not self.mlflow_open or not self._outbox_waiting():
            return 0
        client = self._mlflow_client
        applied = 0
        while True:
            with self.write_lock():
                with self.db() as db:
                    rows = db.execute("SELECT id, mlflow_run_id, kind, payload FROM mlflow_outbox ORDER BY id "
                                      "LIMIT ?", (FLUSH_CHUNK,)).fetchall()  # fmt: skip
                done, busy = None, False
                try:
                    for row in rows:
                        _apply(client, row["mlflow_run_id"], row["kind"], json.loads(row["payload"]))
                        done = row["id"]
                        applied += 1
                except _Busy:
                    busy = True
                finally:
                    if done is not None:
                        with self.db() as db:
                            db.execute("DELETE FROM mlflow_outbox WHERE id <= ?", (done,))
            if busy or len(rows) < FLUSH_CHUNK:
                return applied

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

    # --- folders and node locks --------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def service_dir(self, name: str) -> Path:
        return self.root / "services" / name

    @contextlib.contextmanager
    def name_lock(self, kind: str, name: str, timeout: float = 600):
        """A lock for one named thing (``service``, ...), held across a multi-step change such as a deploy."""
        path = self.root / "locks" / f"{kind}-{name}.lock"
        lock = _LOCKS.setdefault(path, FileLock(str(path), timeout=timeout))
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"Waited {timeout:.0f} s for {path}: {lock_holders(path)} is changing {kind} {name!r}."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def compute_slot_locks(self, name: str, slots: int) -> list[FileLock]:
        """One lock file per node of a compute target; a run holds the nodes it runs on."""
        folder = self.root / "locks" / f"compute-{name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the node locks of {name!r} in {folder} ({exc.strerror}).") from None
        return [FileLock(str(folder / f"node-{i}.lock"), timeout=0) for i in range(slots)]


def lock_holders(path: Path) -> str:
    """Who holds a lock file (``flock``, Linux's /proc/locks): "process 123 (python -m ...)", or what is known."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks") as f:
            pids = {int(parts[4]) for parts in map(str.split, f) if len(parts) > 5 and parts[1] == "FLOCK"
                    and parts[5].rsplit(":", 1)[-1] == str(inode)}  # fmt: skip
    except (OSError, ValueError):
        return "another process"
    named = []
    for pid in sorted(pids - {os.getpid()}) or sorted(pids):
        try:
            command = " ".join(psutil.Process(pid).cmdline())[:120]
        except psutil.Error:
            command = "?"
        named.append(f"process {pid} ({command})" + (" in this process" if pid == os.getpid() else ""))
    return ", ".join(named) or "another process"


#: Outbox rows applied per hold of the write lock
FLUSH_CHUNK = 200
#: MLflow's limits on one log_batch call
_MAX_TAGS, _MAX_METRICS = 100, 1000


class _Busy(Exception):
    """MLflow's database is busy (another process is writing it): try again later."""


def _apply(client, mlflow_run_id: str, kind: str, payload) -> None:
    """One write of MLflow's copy.  Raises :class:`_Busy` when MLflow's database is busy.  A copy MLflow refuses
    for good (a name it cannot keep, a run deleted since) is skipped with a warning."""
    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    def call(what: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except MlflowException as exc:
            if exc.error_code == "TEMPORARILY_UNAVAILABLE":
                raise _Busy(str(exc)) from None
            logging.getLogger(__name__).warning("MLflow refused the copy of %s of run %s: %s", what,
                                                mlflow_run_id, exc.message)  # fmt: skip

    if kind == "tags":
        tags = [RunTag(k, v) for k, v in payload.items()]
        for i in range(0, len(tags), _MAX_TAGS):
            call("its tags", client.log_batch, mlflow_run_id, tags=tags[i : i + _MAX_TAGS])
    elif kind == "status":
        if payload.get("end_time") is not None:
            call("its status", client.set_terminated, mlflow_run_id, payload["status"], end_time=payload["end_time"])
        else:
            call("its status", client.update_run, mlflow_run_id, status=payload["status"])
    elif kind == "metrics":
        metrics = [Metric(key, value, ms, step) for key, value, ms, step in payload]
        for i in range(0, len(metrics), _MAX_METRICS - 100):
            call("its metrics", client.log_batch, mlflow_run_id, metrics=metrics[i : i + _MAX_METRICS - 100])
    else:
        raise ValueError(f"Unknown kind of MLflow write {kind!r}.")


# --- a new workspace's MLflow database ----------------------------------------------------------------------
# MLflow makes a new SQLite store by running its schema migrations: about 1 s of CPU, paid by every new workspace
# (a test's, a CI job's). The first one made with each MLflow version is kept in the user's cache, and later ones
# start as a copy of it. Only an optimisation: when the cache cannot be used, MLflow makes the database as before.


def _empty_mlflow_db() -> Path:
    import mlflow

    return settings.cache_root() / "mlflow" / f"empty-{mlflow.__version__}.db"


def _sqlite_copy(source: Path, target: Path, then: str = "") -> None:
    """A consistent copy of a SQLite database (its backup API), with the SQL ``then`` run on the copy, written beside
    ``target`` and renamed onto it."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    partial = Path(name)
    try:
        with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
            if then:
                with dst:
                    dst.executescript(then)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _copy_empty_mlflow_db(target: Path) -> bool:
    try:
        template = _empty_mlflow_db()
        if not template.is_file():
            return False
        _sqlite_copy(template, target)
        return True
    except (OSError, sqlite3.Error):
        return False


def _keep_empty_mlflow_db(made: Path) -> None:
    try:
        template = _empty_mlflow_db()
        template.parent.mkdir(parents=True, exist_ok=True)
        # Without MLflow's Default experiment, whose artifact folder is the one this process was started in:
        # MLflow makes it again, for its own folder, when it opens a copy.
        _sqlite_copy(made, template, "DELETE FROM experiment_tags WHERE experiment_id = 0;"
                                     "DELETE FROM experiments WHERE experiment_id = 0;")  # fmt: skip
    except (OSError, sqlite3.Error):
        pass
