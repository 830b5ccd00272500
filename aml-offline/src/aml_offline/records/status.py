"""A run's status, and the one function that changes it.

The states a run passes through on Azure ML, in order::

    NotStarted -> Queued -> Preparing -> Running -> Finalizing -> Completed
                                                                   Failed
                                                                   Canceled

A run moves forward only (it may skip states: a sweep's parent goes from
NotStarted to Running), and from any state that is not final it may end Failed
or Canceled.  A final state never changes again: the first one wins, so a
supervisor and a reaper that both try to end a run cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import time

from aml_offline.store import LocalStore, write_json

ORDER = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing")
TERMINAL = ("Completed", "Failed", "Canceled")
STATUS_TAG = "azureml.status"
#: MLflow's own run status for each of Azure ML's, so the MLflow UI agrees.
MLFLOW_STATUS = {
    "NotStarted": "SCHEDULED",
    "Queued": "SCHEDULED",
    "Preparing": "SCHEDULED",
    "Running": "RUNNING",
    "Finalizing": "RUNNING",
    "Completed": "FINISHED",
    "Failed": "FAILED",
    "Canceled": "KILLED",
}

FROM_MLFLOW = {"SCHEDULED": "NotStarted", "RUNNING": "Running", "FINISHED": "Completed", "FAILED": "Failed",
               "KILLED": "Canceled"}  # fmt: skip


class IllegalTransition(ValueError):
    """A status change that Azure ML never makes (backwards, or out of a final state into another)."""


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_legal(current: str, new: str) -> bool:
    if current in TERMINAL:
        return False
    if new in TERMINAL:
        return True
    return new in ORDER and ORDER.index(new) > ORDER.index(current)


def current_status(store: LocalStore, spec: dict) -> str:
    with store.db() as db:
        row = db.execute("SELECT status FROM run_status WHERE run_id = ?", (spec["run_id"],)).fetchone()
    if row is not None:
        store.flush_outbox()  # a reader with MLflow open keeps MLflow's copy (and so its UI) up to date
        return row["status"]
    # a run recorded before workspace.db kept statuses: its status is MLflow's tag; a run logged with mlflow itself
    # (records.runs.adopt) has MLflow's own status
    run = store.mlflow.get_run(spec["mlflow_run_id"])
    return run.data.tags.get(STATUS_TAG) or FROM_MLFLOW.get(run.info.status, "NotStarted")


def record_new(store: LocalStore, run_id: str) -> None:
    """A new run starts NotStarted (``runs.create`` calls this)."""
    with store.db() as db:
        db.execute("INSERT INTO run_status VALUES (?, 'NotStarted', ?)", (run_id, time.time()))


def set_status(store: LocalStore, spec: dict, new: str, error: str | None = None, reason: str | None = None) -> bool:
    """Move the run to ``new``; returns False (and changes nothing) when it has already ended.

    Raises :class:`IllegalTransition` for a move Azure never makes, such as Running back to Queued.
    The status is kept in workspace.db (the record every reader goes by), in ``status.json`` in the run's
    folder, where the script's own ``Run.get_context().get_status()`` reads it, and in MLflow's copy (tags and
    MLflow's own status, through :meth:`LocalStore.mirror`, so a supervisor need not open MLflow).
    """
    if new not in ORDER and new not in TERMINAL:
        raise IllegalTransition(f"{new!r} is not a run status; the statuses are {', '.join(ORDER + TERMINAL)}.")
    with store.write_lock():
        current = current_status(store, spec)
        if current in TERMINAL:
            return False
        if current == new:
            return True
        if not is_legal(current, new):
            raise IllegalTransition(f"Run {spec['run_id']} cannot go from {current} back to {new}.")
        now = time.time()
        tags = {STATUS_TAG: new}
        if new == "Running":
            tags["azureml.start_time"] = utc_now()
        if error:
            tags["azureml.error"] = error[-6000:]
        if reason:
            tags["azureml.cancel_reason"] = reason[:6000]
        if new in TERMINAL:
            tags["azureml.end_time"] = utc_now()
        store.mirror(spec["mlflow_run_id"], "tags", tags)
        end_ms = int(now * 1000) if new in TERMINAL else None
        store.mirror(spec["mlflow_run_id"], "status", {"status": MLFLOW_STATUS[new], "end_time": end_ms})
        folder = store.run_dir(spec["run_id"])
        if folder.is_dir():
            write_json(folder / "status.json", {"status": new})
        # Last: whoever reads the new status finds what goes with it (error, times) already written or queued
        with store.db() as db:
            db.execute("INSERT OR REPLACE INTO run_status VALUES (?, ?, ?)", (spec["run_id"], new, now))
    return True
