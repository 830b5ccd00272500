"""The local workspace (twin of ``azureml.core.Workspace``): all state in one folder."""

from __future__ import annotations

import uuid
from pathlib import Path

from azureml.core import Workspace as AzureWorkspace

from aml_offline import mlflow_store
from aml_offline.facade._base import Offline, not_available, warn_ignored
from aml_offline.facade.compute import ComputeTarget
from aml_offline.facade.datasets import Dataset
from aml_offline.facade.datastores import Datastore
from aml_offline.facade.environments import Environment
from aml_offline.facade.models import Model, Webservice
from aml_offline.facade.runs import Experiment, Run
from aml_offline.store import LocalStore

NAME = "local-workspace"
_announced: set[Path] = set()


class Workspace(Offline):
    """A workspace whose runs, datasets, models and compute live in ``.azureml-local/``."""

    _azure_class = AzureWorkspace

    def __init__(self, subscription_id, resource_group, workspace_name, auth=None, _location=None,
                 _disable_service_check=False, _workspace_id=None, sku="basic", tags=None,
                 _cloud="AzureCloud"):  # fmt: skip
        self.name = workspace_name or NAME
        self.subscription_id = subscription_id or "local"
        self.resource_group = resource_group or "local"
        self.location = _location or "local"
        self._store = LocalStore.get()
        root = self._store.root
        if root not in _announced:
            _announced.add(root)
            print(
                f"Local mode: workspace '{self.name}' in {root} (no Azure needed). "
                "To use Azure ML, put your workspace's config.json in the project root or set AZUREML_MODE=azure."
            )

    @classmethod
    def _for_store(cls, store: LocalStore) -> Workspace:
        """The workspace of an existing store folder, without announcing it (scripts, supervisors, tests)."""
        ws = cls.__new__(cls)
        ws.name, ws.subscription_id, ws.resource_group, ws.location = NAME, "local", "local", "local"
        ws._store = store
        return ws

    @staticmethod
    def from_config(path=None, auth=None, _logger=None, _file_name=None):
        if auth is not None:
            warn_ignored("Workspace.from_config", "auth", "the local workspace needs no authentication")
        return Workspace("local", "local", NAME)

    @staticmethod
    def get(name, auth=None, subscription_id=None, resource_group=None, location=None, cloud="AzureCloud", id=None):
        if auth is not None:
            warn_ignored("Workspace.get", "auth", "the local workspace needs no authentication")
        return Workspace(subscription_id, resource_group, name, _location=location)

    @property
    def datasets(self) -> dict:
        return Dataset.get_all(self)

    @property
    def environments(self) -> dict:
        """``{name: Environment}``: the curated environments and the registered ones (``Environment.list``)."""
        return Environment.list(self)

    @property
    def _workspace_id(self) -> str:
        """A stable id for this workspace folder (Microsoft's compute-instance sample builds names from it)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self._store.root.resolve().as_uri()))

    @property
    def datastores(self) -> dict:
        return Datastore.list(self)

    def get_default_datastore(self):
        """``workspaceblobstore`` unless another was made the default: a folder of the local workspace."""
        return Datastore.get_default(self)

    def set_default_datastore(self, name):
        Datastore(self, name).set_as_default()

    @property
    def compute_targets(self) -> dict:
        return {c.name: c for c in ComputeTarget.list(self)}

    @property
    def experiments(self) -> dict:
        return {e.name: Experiment(self, e.name) for e in self._store.mlflow.search_experiments()
                if e.name != "Default"}  # fmt: skip

    @property
    def webservices(self) -> dict:
        return {s.name: s for s in Webservice.list(self)}

    @property
    def models(self) -> dict:
        return {m.name: m for m in Model.list(self, latest=True)}

    @property
    def service_context(self):
        """What azureml-core's own classes ask a workspace for first: they were given the local workspace.

        That happens inside a submitted run, where ``from azureml.core import Model`` is azureml-core's class (as
        on Azure compute) while ``run.experiment.workspace`` is the local workspace."""
        raise not_available(
            "azureml-core's own classes (Model.register, Dataset.get_by_name, ...) with the local workspace",
            "inside a run, register with run.register_model(...) and read datasets as the run's inputs "
            "(run.input_datasets), or register in the notebook after the run",
        )

    def get_run(self, run_id):
        """The run with this id, in whichever experiment it is (``Run.get(ws, run_id)``)."""
        return Run.get(self, run_id)

    def get_mlflow_tracking_uri(self, _with_auth=False) -> str:
        """The local workspace's MLflow store: ``mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())`` then logs
        runs that the run history lists beside submitted ones (as Azure's tracking URI does)."""
        return mlflow_store.uri_for(self._store.root)

    def get_details(self) -> dict:
        return {
            "id": f"local:{self._store.root}",
            "name": self.name,
            "location": self.location,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "mode": "local",
            "folder": str(self._store.root),
            "mlflowTrackingUri": self._store.tracking_uri,
        }

    def __repr__(self):
        return f"Workspace(name='{self.name}', mode='local', folder='{self._store.root}')"
