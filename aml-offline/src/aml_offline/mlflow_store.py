"""MLflow's ``aml-offline://`` scheme: the local workspace's own MLflow store, as Azure's ``azureml://`` is Azure's.

``Workspace.get_mlflow_tracking_uri()`` (SDK v1) and ``ml_client.workspaces.get().mlflow_tracking_uri`` (SDK v2)
answer ``aml-offline:///<workspace folder>`` in local mode, so a notebook's ::

    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    mlflow.set_experiment("my-experiment")
    with mlflow.start_run():
        ...

logs into the workspace's ``mlflow.db``, and the run history lists those runs beside submitted ones.  A plain
``sqlite:///`` address would do for the runs, but MLflow would then keep the artifacts of a new experiment in
``./mlruns`` of whatever folder the notebook runs in; this scheme keeps them in the workspace folder.  MLflow finds
the scheme through the ``mlflow.tracking_store`` and ``mlflow.model_registry_store`` entry points of this package.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEME = "aml-offline"


def uri_for(root: Path) -> str:
    return f"{SCHEME}://{Path(root).resolve().as_posix()}"


def folder_of(store_uri: str) -> Path:
    parsed = urlparse(store_uri)
    if parsed.scheme != SCHEME or not parsed.path:
        raise ValueError(f"{store_uri!r} is not an {SCHEME}:// tracking URI (aml-offline:///<workspace folder>).")
    folder = Path(unquote(parsed.path))
    if not (folder / "workspace.db").is_file():
        raise ValueError(
            f"MLflow tracking URI {store_uri!r}: {folder} is not a local workspace (it has no workspace.db). "
            "Take the URI from ws.get_mlflow_tracking_uri() after Workspace.from_config()."
        )
    return folder


def tracking_store(store_uri: str, artifact_uri: str | None = None):
    """MLflow's SQL tracking store over the workspace's ``mlflow.db``; new experiments keep artifacts inside it."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = folder_of(store_uri)
    artifacts = artifact_uri or (folder / "artifacts" / "mlflow").as_uri()
    return SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", artifacts)


def registry_store(store_uri: str, **_):
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(f"sqlite:///{folder_of(store_uri) / 'mlflow.db'}")
