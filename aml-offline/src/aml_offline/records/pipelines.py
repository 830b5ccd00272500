"""Pipelines' records: published pipelines, and the index of step runs a later pipeline may reuse.

Both are JSON files of the workspace folder, written atomically (a reader never sees half a record):

``pipelines/published/<id>.json``
    a published pipeline: its name, description, version, status (Active or Disabled), the step graph as plain data
    (what the pipeline supervisor runs) and the folder of the snapshots taken when it was published
    (``pipelines/published/<id>/``), so a re-run by id runs the scripts as they were then, as on Azure.
``pipelines/reuse/<key>.json``
    a completed step run whose work a later step with the same key may reuse instead of running again: its run id,
    pipeline run id, node id and where its outputs are (datastore and path).  The key is a hash made by the
    execution layer (:func:`aml_offline.execution.pipelines.reuse_key`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from aml_offline.store import LocalStore, read_json, write_json

PUBLISHED = Path("pipelines") / "published"
REUSE = Path("pipelines") / "reuse"
ACTIVE = "Active"
DISABLED = "Disabled"
_KEY = re.compile(r"[0-9a-f]{64}")
_ID = re.compile(r"[0-9a-f-]{36}")


class PublishedPipelineNotFound(LookupError):
    """No published pipeline with that id."""


def published_folder(store: LocalStore, pipeline_id: str) -> Path:
    """Where a published pipeline keeps the snapshots it runs (one folder per step)."""
    return store.root / PUBLISHED / _checked_id(pipeline_id)


def _checked_id(pipeline_id: str) -> str:
    if not _ID.fullmatch(str(pipeline_id)):
        raise PublishedPipelineNotFound(f"{pipeline_id!r} is not the id of a published pipeline (a GUID).")
    return str(pipeline_id)


def publish(store: LocalStore, record: dict) -> dict:
    """Keep a published pipeline (``record`` holds its ``id``, name, description, version, graph ...)."""
    record = {**record, "status": record.get("status", ACTIVE), "created": record.get("created", time.time())}
    (store.root / PUBLISHED).mkdir(parents=True, exist_ok=True)
    write_json(store.root / PUBLISHED / f"{_checked_id(record['id'])}.json", record)
    return record


def get_published(store: LocalStore, pipeline_id: str) -> dict:
    record = read_json(store.root / PUBLISHED / f"{_checked_id(pipeline_id)}.json")
    if record is None:
        raise PublishedPipelineNotFound(f"No published pipeline {pipeline_id!r} in the local workspace ({store.root}).")
    return record


def list_published(store: LocalStore, active_only: bool = True) -> list[dict]:
    """The published pipelines, newest first (only the active ones unless ``active_only`` is False)."""
    folder = store.root / PUBLISHED
    records = [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    records = [r for r in records if r is not None and (not active_only or r["status"] == ACTIVE)]
    return sorted(records, key=lambda r: r["created"], reverse=True)


def set_status(store: LocalStore, pipeline_id: str, status: str) -> dict:
    with store.write_lock():
        record = get_published(store, pipeline_id)
        record["status"] = status
        write_json(store.root / PUBLISHED / f"{record['id']}.json", record)
    return record


def reusable(store: LocalStore, key: str) -> dict | None:
    """The step run recorded under ``key``, or None."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a reuse key (64 hex digits).")
    return read_json(store.root / REUSE / f"{key}.json")


def record_reusable(store: LocalStore, key: str, entry: dict) -> None:
    """Remember a completed step run under ``key`` (the newest completed run of a key is the one reused)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a reuse key (64 hex digits).")
    (store.root / REUSE).mkdir(parents=True, exist_ok=True)
    write_json(store.root / REUSE / f"{key}.json", {**entry, "recorded": time.time()})


def forget_reusable(store: LocalStore, key: str) -> None:
    """A recorded run that can no longer be reused (deleted, or its outputs gone)."""
    (store.root / REUSE / f"{key}.json").unlink(missing_ok=True)
