"""The local workspace: an offline twin of the Azure ML workspace, for SDK v1 and SDK v2.

Same names and signatures as ``azureml.core`` (and ``azure.ai.ml``); all state in one folder on disk.
Built in four layers, each importing only the ones below it::

    facade/      azureml-shaped classes (Workspace, Experiment, Run, Model, ...): SDK v1
    facade_v2/   azure-ai-ml's MLClient and its operations (jobs, data, models, ...): SDK v2
    execution/   supervisors, sweeps, serving, environments, the process ledger
    records/     runs, metrics, models, datasets, compute, services; status rules
    store/       the folder, its lock, SQLite and MLflow handles
    offline.py   what both facades' twins share (NotAvailableOffline, warnings): below every layer

The facade's classes are imported from here on first use, so importing a lower
layer (a supervisor does) never loads azureml-core.  What the twin does
differently from Azure is written down in ``docs/local-workspace.md``.
"""

from __future__ import annotations

import importlib

__all__ = [
    "AmlCompute",
    "ComputeTarget",
    "Dataset",
    "Experiment",
    "HyperDriveRun",
    "Model",
    "Run",
    "RunDetails",
    "Webservice",
    "Workspace",
]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("helpers.aml.local.facade"), name)
    raise AttributeError(f"module 'helpers.aml.local' has no attribute {name!r}")
