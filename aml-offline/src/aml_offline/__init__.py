"""aml-offline: an offline twin of Azure Machine Learning at the client boundary, for SDK v1 and SDK v2.

Unmodified ``azureml.core`` and ``azure.ai.ml`` code really trains, records, tunes, registers and serves on
this machine, with no subscription and no Docker, the way moto sits under boto3.  One line switches it on::

    import aml_offline

    MODE = aml_offline.activate()   # "local" without a workspace config.json, "azure" with one

after which ``from azureml.core import Workspace`` (and ``from azure.ai.ml import MLClient``) give the local
workspace, whose state is one folder on disk (``.azureml-local/`` in the project, or ``AZUREML_LOCAL_ROOT``).
The other ways in: the ``aml-offline`` command (:mod:`aml_offline.cli`) and a pytest plugin that is off until
asked for (``pytest --aml-offline``, :mod:`aml_offline.pytest_plugin`).

Built in layers, each importing only the ones below it (``tests/test_layers.py`` checks)::

    boundary, mode      the mode rules and the switch at the client boundary (imports the facades lazily)
    cli, admin, ...     the commands: run notebooks, status, stop, reset, the MLflow UI
    facade/             azureml-shaped classes (Workspace, Experiment, Run, Model, ...): SDK v1
    facade_v2/          azure-ai-ml's MLClient and its operations (jobs, data, models, ...): SDK v2
    execution/          supervisors, sweeps, serving, environments, the process ledger
    records/            runs, metrics, models, datasets, compute, services; status rules
    store/              the folder, its lock, SQLite and MLflow handles
    offline, settings,  what every layer shares (NotAvailableOffline, warnings), where things live,
    run_details         and the run view (azureml-core's public Run API only)

Everything a user needs is a name of this module (``__all__``); the layers' modules are private.  The twins'
classes are imported on first use, so ``import aml_offline`` loads neither azureml-core nor MLflow.  What the
twin does differently from Azure is written down in the package's README.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from aml_offline.boundary import activate, deactivate, kernel_env
from aml_offline.mode import ModeError, resolve_mode
from aml_offline.offline import LocalWorkspaceWarning, NotAvailableOffline

try:
    __version__ = version("aml-offline")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

#: The twins of azureml-core's workspace-bound classes (SDK v1) and azure-ai-ml's MLClient (SDK v2), for code that
#: uses them directly rather than through ``activate()``; where each comes from.
_TWINS = {
    "Workspace": "aml_offline.facade",
    "Experiment": "aml_offline.facade",
    "Run": "aml_offline.facade",
    "Model": "aml_offline.facade",
    "Webservice": "aml_offline.facade",
    "Dataset": "aml_offline.facade",
    "ComputeTarget": "aml_offline.facade",
    "AmlCompute": "aml_offline.facade",
    "ComputeInstance": "aml_offline.facade",
    "HyperDriveRun": "aml_offline.facade",
    "RunDetails": "aml_offline.run_details",
    "MLClient": "aml_offline.facade_v2",
}
#: What a run's workers get for ``TensorflowConfiguration(worker_count=N)``: one ``TF_CONFIG`` each, on 127.0.0.1
_EXECUTION = {"worker_environments": "aml_offline.execution.supervisor"}
#: Commands on a whole workspace folder (:mod:`aml_offline.admin`)
_ADMIN = ("workspace_folder", "status", "running", "stop_everything", "reset", "NotAWorkspace")

__all__ = [
    "LocalWorkspaceWarning",
    "ModeError",
    "NotAvailableOffline",
    "__version__",
    "activate",
    "deactivate",
    "kernel_env",
    "resolve_mode",
    *_ADMIN,
    *_TWINS,
    *_EXECUTION,
]


def __getattr__(name: str):
    if name in _TWINS:
        return getattr(importlib.import_module(_TWINS[name]), name)
    if name in _EXECUTION:
        return getattr(importlib.import_module(_EXECUTION[name]), name)
    if name in _ADMIN:
        return getattr(importlib.import_module("aml_offline.admin"), name)
    raise AttributeError(f"module 'aml_offline' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
