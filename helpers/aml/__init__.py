"""The Azure ML names the notebooks use, from one place, for Azure or the local workspace.

    from helpers.aml import Workspace, Dataset, ComputeTarget, AmlCompute, ComputeTargetException, \\
        Environment, ScriptRunConfig, Experiment, Run, Model, RunDetails, \\
        InferenceConfig, AciWebservice, LocalWebservice, Webservice, WebserviceException

Mode: ``AZUREML_MODE=local`` or ``azure``.  Unset, it is Azure when a workspace
``config.json`` is found where ``Workspace.from_config()`` looks for it (the
current folder and its parents, also in ``.azureml/``), else local.  In Azure
mode these are the real ``azureml.core`` / ``azureml.widgets`` objects; in local
mode the workspace-bound ones are the local twins from ``helpers.aml.local``.
Configuration classes (``Environment``, ``ScriptRunConfig``, ``InferenceConfig``,
the ``deploy_configuration`` of ``AciWebservice`` / ``LocalWebservice``, and
HyperDrive's, imported from ``azureml.train.hyperdrive``) are azureml-core's own in
both modes: they construct without a workspace.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from azureml.core import Environment, ScriptRunConfig
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice, LocalWebservice
from azureml.exceptions import ComputeTargetException, WebserviceException

MODES = ("local", "azure")
REQUIRED_KEYS = ("subscription_id", "resource_group", "workspace_name")


class ModeError(RuntimeError):
    """The mode or the workspace configuration is not usable; the message says why and what to do."""


def find_config(start: str | os.PathLike = ".") -> Path | None:
    """The ``config.json`` that ``Workspace.from_config()`` would read, or None."""
    from azureml._base_sdk_common.common import AML_CONFIG_DIR, AZUREML_DIR, CONFIG_FILENAME
    from azureml._file_utils.file_utils import traverse_up_path_and_find_file

    for folder in (AZUREML_DIR, AML_CONFIG_DIR, None):
        found = traverse_up_path_and_find_file(
            path=os.path.abspath(start), file_name=CONFIG_FILENAME, directory_name=folder
        )
        if found:
            return Path(found)
    return None


def check_config(path: Path) -> dict:
    """Parse a workspace config.json, naming the file and the problem when it is unusable."""
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModeError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "Download it again from ml.azure.com, or set AZUREML_MODE=local."
        ) from None
    if not isinstance(config, dict):
        raise ModeError(f"{path} must hold a JSON object with {', '.join(REQUIRED_KEYS)}.")
    missing = [k for k in REQUIRED_KEYS if not config.get(k)]
    if missing:
        raise ModeError(
            f"{path} lacks {', '.join(missing)}. Download it again from ml.azure.com "
            "(workspace name at the top right > Download config file), or set AZUREML_MODE=local."
        )
    return config


def resolve_mode() -> tuple[str, Path | None]:
    value = os.environ.get("AZUREML_MODE", "").strip().lower()
    if value and value not in MODES:
        raise ModeError(
            f"AZUREML_MODE={os.environ['AZUREML_MODE']!r} is not a mode: use 'local' or 'azure', "
            "or unset it (then a config.json means azure)."
        )
    if value == "local":
        return "local", None
    config = find_config()
    if config is None:
        if value == "azure":
            raise ModeError(
                f"AZUREML_MODE=azure, but no config.json in {os.getcwd()} or its parents. Download it from "
                "ml.azure.com (workspace name at the top right > Download config file) into the project root."
            )
        return "local", None
    check_config(config)
    return "azure", config


MODE, CONFIG_PATH = resolve_mode()

if MODE == "azure":
    from azureml.core import Dataset, Experiment, Model, Run, Workspace
    from azureml.core.compute import AmlCompute, ComputeTarget
    from azureml.core.webservice import Webservice
    from azureml.widgets import RunDetails

    _config = check_config(CONFIG_PATH)
    print(
        f"Azure ML mode: workspace '{_config['workspace_name']}' (resource group {_config['resource_group']}) "
        f"from {CONFIG_PATH}. Set AZUREML_MODE=local to work offline instead."
    )
else:
    from helpers.aml.local import (
        AmlCompute,
        ComputeTarget,
        Dataset,
        Experiment,
        Model,
        Run,
        RunDetails,
        Webservice,
        Workspace,
    )

__all__ = [
    "MODE",
    "AciWebservice",
    "AmlCompute",
    "ComputeTarget",
    "ComputeTargetException",
    "Dataset",
    "Environment",
    "Experiment",
    "InferenceConfig",
    "LocalWebservice",
    "Model",
    "Run",
    "RunDetails",
    "ScriptRunConfig",
    "Webservice",
    "WebserviceException",
    "Workspace",
]
