"""The local workspace: an offline twin of the Azure ML SDK v1 workspace.

Same names and signatures as ``azureml.core``; all state in one folder on disk
(see :mod:`helpers.aml.local.store`).  What it does differently from Azure is
written down in ``docs/local-workspace.md``.
"""

from helpers.aml.local.compute import AmlCompute, ComputeTarget
from helpers.aml.local.datasets import Dataset
from helpers.aml.local.models import Model
from helpers.aml.local.runs import Experiment, Run
from helpers.aml.local.webservices import Webservice
from helpers.aml.local.widgets import RunDetails
from helpers.aml.local.workspace import Workspace

__all__ = [
    "AmlCompute",
    "ComputeTarget",
    "Dataset",
    "Experiment",
    "Model",
    "Run",
    "RunDetails",
    "Webservice",
    "Workspace",
]
