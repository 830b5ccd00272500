"""Which azureml names the local workspace stands in for at the client boundary.

``TWINS`` maps each azureml module a notebook imports from to the names whose
objects are bound to a workspace (they talk to the service): in local mode
``aml_offline.boundary.activate()`` makes ``from azureml.core import Workspace``
give the twin.  Configuration classes (``Environment``, ``ScriptRunConfig``,
``InferenceConfig``, ``AciWebservice.deploy_configuration``, HyperDrive's
configuration) are not here: they build without a workspace, so azureml-core's own
serve both modes.  The defining modules (``azureml.core.run`` ...) are listed as
well, so ``from azureml.core.model import Model`` (a scoring script's habit) gets the
twin too.  With azureml-pipeline installed, its workspace-bound classes are added
(:data:`aml_offline.facade.pipelines.TWINS`); its steps stay azureml's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aml_offline.facade import workspace
from aml_offline.facade.compute import AmlCompute, ComputeInstance, ComputeTarget
from aml_offline.facade.datasets import Dataset
from aml_offline.facade.datastores import Datastore
from aml_offline.facade.environments import Environment
from aml_offline.facade.models import Model, Webservice
from aml_offline.facade.runs import Experiment, HyperDriveRun, Run
from aml_offline.facade.widgets import RunDetails
from aml_offline.facade.workspace import Workspace
from aml_offline.store import default_root

TWINS: dict[str, dict[str, type]] = {
    "azureml.core": {"Workspace": Workspace, "Experiment": Experiment, "Run": Run, "Model": Model,
                     "Dataset": Dataset, "ComputeTarget": ComputeTarget, "Webservice": Webservice,
                     "Datastore": Datastore, "Environment": Environment},
    "azureml.core.environment": {"Environment": Environment},
    "azureml.core.datastore": {"Datastore": Datastore},
    "azureml.core.workspace": {"Workspace": Workspace},
    "azureml.core.experiment": {"Experiment": Experiment},
    "azureml.core.run": {"Run": Run},
    "azureml.core.model": {"Model": Model},
    "azureml.core.dataset": {"Dataset": Dataset},
    "azureml.core.compute": {"ComputeTarget": ComputeTarget, "AmlCompute": AmlCompute,
                             "ComputeInstance": ComputeInstance},
    "azureml.core.compute.compute": {"ComputeTarget": ComputeTarget},
    "azureml.core.compute.amlcompute": {"AmlCompute": AmlCompute},
    "azureml.core.compute.computeinstance": {"ComputeInstance": ComputeInstance},
    "azureml.core.webservice": {"Webservice": Webservice},
    "azureml.core.webservice.webservice": {"Webservice": Webservice},
    "azureml.train.hyperdrive": {"HyperDriveRun": HyperDriveRun},
    "azureml.train.hyperdrive.run": {"HyperDriveRun": HyperDriveRun},
    "azureml.widgets": {"RunDetails": RunDetails},
    "azureml.widgets.run_details": {"RunDetails": RunDetails},
}  # fmt: skip

# SDK v1 pipelines (azureml.pipeline.core / .steps) when azureml-pipeline is installed: the workspace-bound classes
# (Pipeline, PipelineRun, StepRun, PublishedPipeline, ...); the steps and data classes stay azureml's own.
if importlib.util.find_spec("azureml.pipeline") is not None and importlib.util.find_spec("azureml.pipeline.steps"):
    from aml_offline.facade import pipelines

    TWINS.update(pipelines.TWINS)


def workspace_folder() -> Path:
    """The folder the local workspace keeps its state in (``AZUREML_LOCAL_ROOT``, else ``.azureml-local/``)."""
    return default_root()


def announced(folder: Path) -> None:
    """The boundary has said where the workspace is: ``Workspace(...)`` need not say it again."""
    workspace._announced.add(folder)
