"""``MLClient`` of the local workspace (twin of ``azure.ai.ml.MLClient``)."""

from __future__ import annotations

from azure.ai.ml import MLClient as AzureMLClient
from azure.ai.ml.entities import Workspace as WorkspaceEntity
from azure.ai.ml.operations import WorkspaceOperations as AzureWorkspaceOperations

from aml_offline import mlflow_store
from aml_offline.facade_v2.assets import DataOperations, ModelOperations
from aml_offline.facade_v2.compute import ComputeOperations
from aml_offline.facade_v2.endpoints import OnlineDeploymentOperations, OnlineEndpointOperations
from aml_offline.facade_v2.jobs import JobOperations
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.store import LocalStore, default_root

LOCAL = "local"


class MLClient(Offline):
    """A client of the local workspace: the operations azure-ai-ml's ``MLClient`` hands out, on this machine.

    Operations the local workspace does not have (``batch_endpoints``, ``registries``, ``components``,
    ``schedules``, ...) raise ``NotAvailableOffline`` naming them; so does a ``registry_name`` client.
    """

    _azure_class = AzureMLClient

    def __init__(
        self,
        credential=None,
        subscription_id=None,
        resource_group_name=None,
        workspace_name=None,
        registry_name=None,
        **kwargs,
    ):
        if registry_name is not None:
            raise not_available("MLClient(registry_name=...)", "registries are shared Azure resources")
        self._credential = credential  # never called: nothing here signs in
        self._store = LocalStore.get(default_root())
        self._subscription_id = subscription_id or LOCAL
        self._resource_group_name = resource_group_name or LOCAL
        self._workspace_name = workspace_name or LOCAL
        self.jobs = JobOperations(self)
        self.data = DataOperations(self)
        self.models = ModelOperations(self)
        self.compute = ComputeOperations(self)
        self.online_endpoints = OnlineEndpointOperations(self)
        self.online_deployments = OnlineDeploymentOperations(self)
        self.workspaces = WorkspaceOperations(self)

    @classmethod
    def from_config(cls, credential, *, path=None, file_name=None, **kwargs) -> MLClient:
        """As azure-ai-ml's: the client of the workspace in config.json; in local mode, of the local workspace."""
        return cls(credential, workspace_name=LOCAL)

    @property
    def subscription_id(self) -> str:
        return self._subscription_id

    @property
    def resource_group_name(self) -> str:
        return self._resource_group_name

    @property
    def workspace_name(self) -> str:
        return self._workspace_name

    def __repr__(self):
        return f"MLClient(local workspace in {self._store.root})"


class WorkspaceOperations(Offline):
    """``ml_client.workspaces``: ``get`` the local workspace (its ``mlflow_tracking_uri`` is the local store)."""

    _azure_class = AzureWorkspaceOperations

    def __init__(self, client: MLClient):
        self._client = client

    def get(self, name=None, **kwargs) -> WorkspaceEntity:
        if name not in (None, self._client.workspace_name):
            warn_ignored("workspaces.get", "name", f"there is one local workspace, {self._client.workspace_name!r}")
        store = self._client._store
        return WorkspaceEntity(
            name=self._client.workspace_name,
            location=LOCAL,
            description=f"the local workspace in {store.root}",
            mlflow_tracking_uri=mlflow_store.uri_for(store.root),  # MLflow's aml-offline:// scheme
        )

    def list(self, **kwargs) -> list[WorkspaceEntity]:
        return [self.get()]
