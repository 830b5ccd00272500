"""Registered models, kept in MLflow's model registry (so ``make mlflow-ui`` shows them).

Each registration is an MLflow model version whose source is a file or folder
in the workspace; its tags hold Azure's tags, properties, framework, run and
the asset path.  Registrations take the write lock, so versions go up by one
and are never reused or lost, also when several processes register at once.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from aml_offline.records import filters
from aml_offline.store import LocalStore

PROPERTY_PREFIX = "azureml.property."
FRAMEWORK_TAG = "azureml.model_framework"


class ModelRecordNotFound(LookupError):
    """No such model, or no such version of it."""


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def as_dict(mv) -> dict:
    """A model version as plain data."""
    tags = dict(mv.tags)
    framework = tags.get(FRAMEWORK_TAG, "Custom:").split(":", 1)
    return {
        "name": mv.name,
        "version": int(mv.version),
        "description": mv.description or None,
        "run_id": tags.get("azureml.run_id"),
        "experiment_name": tags.get("azureml.experiment"),
        "tags": {k: v for k, v in tags.items() if not k.startswith("azureml.")},
        "properties": {k[len(PROPERTY_PREFIX) :]: v for k, v in tags.items() if k.startswith(PROPERTY_PREFIX)},
        "created_time": mv.creation_timestamp,
        "framework": framework[0],
        "framework_version": framework[1] or None,
        "asset_path": tags.get("azureml.asset_path", ""),
        "source": mv.source.removeprefix("file://"),
    }


def versions(store: LocalStore, name: str) -> list[dict]:
    """Every version of ``name``, newest first."""
    found, token = [], None
    while True:
        page = store.mlflow.search_model_versions(f"name = '{_quote(name)}'", max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            break
    return sorted((as_dict(mv) for mv in found), key=lambda m: m["version"], reverse=True)


def names(store: LocalStore) -> list[str]:
    found, token = [], None
    while True:  # MLflow answers in pages (100 names by default)
        page = store.mlflow.search_registered_models(max_results=1000, page_token=token)
        found += [m.name for m in page]
        token = page.token
        if not token:
            return sorted(found)


def get(store: LocalStore, name: str, version: int | None = None) -> dict:
    found = versions(store, name)
    if not found:
        raise ModelRecordNotFound(f"No model named {name!r} in the local workspace.")
    if version is None:
        return found[0]
    for model in found:
        if model["version"] == int(version):
            return model
    raise ModelRecordNotFound(
        f"Model {name!r} has no version {version} (its versions: {', '.join(str(m['version']) for m in found)})."
    )


def select(store: LocalStore, name=None, tags=None, properties=None, run_id=None, latest=False,
           framework=None) -> list[dict]:  # fmt: skip
    """Model versions matching azureml-core's filters, newest first within each name."""
    out = []
    for n in [name] if name else names(store):
        found = versions(store, n)
        found = [m for m in found if filters.matches(m["tags"], tags)]
        found = [m for m in found if filters.matches(m["properties"], properties)]
        if run_id:
            found = [m for m in found if m["run_id"] == run_id]
        if framework:
            found = [m for m in found if m["framework"].lower() == str(framework).lower()]
        out += found[:1] if latest else found
    return out


def keep_copy(store: LocalStore, source: Path) -> Path:
    """Copy a file or folder from this machine into the workspace, where a registration keeps it."""
    keep = store.root / "registered" / uuid.uuid4().hex / source.name
    keep.parent.mkdir(parents=True)
    tmp = keep.with_name(f".{source.name}.partial")
    if source.is_dir():
        shutil.copytree(source, tmp)
    else:
        shutil.copyfile(source, tmp)
    tmp.rename(keep)  # never a half-copied model
    return keep


def register(store: LocalStore, name: str, source: Path, asset_path: str, *, tags=None, properties=None,
             description=None, framework=None, framework_version=None, run: dict | None = None) -> dict:  # fmt: skip
    """Register ``source`` as the next version of ``name``; ``run`` is the spec of the run it came from."""
    client = store.mlflow
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    all_tags.update({PROPERTY_PREFIX + k: str(v) for k, v in (properties or {}).items()})
    all_tags["azureml.asset_path"] = asset_path
    if run is not None:
        all_tags.update({"azureml.run_id": run["run_id"], "azureml.experiment": run["experiment"]})
    if framework:
        all_tags[FRAMEWORK_TAG] = f"{framework}:{framework_version or ''}"
    with store.write_lock():
        if not client.search_registered_models(filter_string=f"name = '{_quote(name)}'"):
            client.create_registered_model(name)
        mv = client.create_model_version(
            name,
            source=Path(source).as_uri(),
            run_id=run["mlflow_run_id"] if run else None,
            tags=all_tags,
            description=description,
        )
    return as_dict(mv)


def delete(store: LocalStore, name: str, version: int) -> None:
    with store.write_lock():
        get(store, name, version)  # ModelRecordNotFound when it is gone already
        store.mlflow.delete_model_version(name, str(version))
        if not versions(store, name):
            store.mlflow.delete_registered_model(name)
