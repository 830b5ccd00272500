"""Layer 4, the facade: the azureml-core v1 classes of the local workspace.

``Workspace``, ``Experiment``, ``Run``, ``HyperDriveRun``, ``Model``, ``Webservice``,
``Dataset``, ``ComputeTarget`` / ``AmlCompute`` / ``ComputeInstance`` and ``RunDetails``, with
azureml-core's names and signatures, as thin classes over the records and
execution layers.  The run a script sees inside a local run is in ``runtime/``.
The second facade, SDK v2's ``MLClient``, sits beside this one on the same lower layers (``facade_v2/``);
the two never import each other.
"""

from aml_offline.facade.compute import AmlCompute, ComputeInstance, ComputeTarget
from aml_offline.facade.datasets import Dataset
from aml_offline.facade.datastores import Datastore
from aml_offline.facade.models import Model, Webservice
from aml_offline.facade.runs import Experiment, HyperDriveRun, Run
from aml_offline.facade.widgets import RunDetails
from aml_offline.facade.workspace import Workspace

__all__ = [
    "AmlCompute",
    "ComputeInstance",
    "ComputeTarget",
    "Dataset",
    "Datastore",
    "Experiment",
    "HyperDriveRun",
    "Model",
    "Run",
    "RunDetails",
    "Webservice",
    "Workspace",
]
