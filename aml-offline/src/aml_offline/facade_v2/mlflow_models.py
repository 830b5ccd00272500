"""MLflow models (``type="mlflow_model"``) in SDK v2: the ``MLmodel`` check, and the environment of a deployment
without code.

An MLflow model is the folder ``mlflow.<flavor>.save_model`` (or ``log_model``) writes, with its ``MLmodel`` file at
the top.  Registered with ``type=AssetTypes.MLFLOW_MODEL``, it deploys to an online endpoint without
``code_configuration`` or environment: Azure generates the scoring script and builds the environment from the
model's own ``conda.yaml``; the local workspace does the same with its generated script
(``execution/runtime/azureml_mlflow_score.py``) and this machine's Python when it has the model's packages.
"""

from __future__ import annotations

from pathlib import Path

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Environment
from azure.ai.ml.exceptions import ErrorTarget

from aml_offline.facade_v2._common import invalid
from aml_offline.facade_v2.jobs import environment_spec

MLMODEL = "MLmodel"


def is_mlflow(kind: str | None) -> bool:
    return (kind or "").lower() == AssetTypes.MLFLOW_MODEL


def check_folder(what: str, folder: Path, target=ErrorTarget.MODEL) -> None:
    """Refuse an MLflow model whose folder has no ``MLmodel`` file at its top, saying where one is if it is deeper."""
    folder = Path(folder)
    if (folder / MLMODEL).is_file():
        return
    if not folder.is_dir():
        found = "it is a file, not a folder"
    else:
        deeper = sorted(p.parent.relative_to(folder).as_posix() for p in folder.glob(f"*/{MLMODEL}"))
        found = (
            f"it has one in {', '.join(repr(d + '/') for d in deeper)}: register that folder"
            if deeper
            else "it has none"
        )
    raise invalid(
        f"{what} is an MLflow model (type {AssetTypes.MLFLOW_MODEL}), but its folder {folder} has no {MLMODEL} file "
        f"at its top ({found}). An MLflow model is the folder mlflow.<flavor>.save_model or log_model writes, "
        f"with its {MLMODEL} file; otherwise register it as type {AssetTypes.CUSTOM_MODEL} and deploy it with a "
        "scoring script.",
        target,
    )


def logged_model_folder(store, run: dict, name: str) -> Path | None:
    """The folder of a model the run logged with ``mlflow.<flavor>.log_model(..., name=name)``, if it did.

    MLflow 3 keeps a logged model apart from the run's own files (``models:/<model id>``, in the experiment's
    artifacts), where MLflow 2 wrote it among them; ``runs:/<run>/<name>`` and a job's
    ``outputs/artifacts/paths/<name>`` still name it."""
    client = store.mlflow
    run_id = run.get("mlflow_run_id")
    if not run_id or not hasattr(client, "search_logged_models") or "'" in name:
        return None
    experiment = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}' AND name = '{name}'"
    )
    for logged in found:
        folder = Path(logged.artifact_location.removeprefix("file://"))
        if (folder / MLMODEL).is_file():
            return folder
    return None


def environment(model: dict, variables: dict) -> dict:
    """The environment the model's folder asks for (its ``conda.yaml``, else its ``requirements.txt``), as the plain
    dict the lower layers take: this machine's Python serves it when it has those packages."""
    folder = Path(model["source"])
    name = f"mlflow-{model['name']}-{model['version']}"
    if (folder / "conda.yaml").is_file():
        return dict(environment_spec(Environment(conda_file=str(folder / "conda.yaml")), variables), name=name)
    pip = []
    if (folder / "requirements.txt").is_file():
        lines = (line.split("#", 1)[0].strip() for line in (folder / "requirements.txt").read_text().splitlines())
        pip = [line for line in lines if line and not line.startswith("-")]
    return {"name": name, "version": None, "user_managed": False, "pip": pip, "conda": [], "docker_image": None,
            "environment_variables": variables}  # fmt: skip
