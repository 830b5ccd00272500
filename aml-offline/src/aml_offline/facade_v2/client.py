"""``MLClient`` of the local workspace (twin of ``azure.ai.ml.MLClient``)."""

from __future__ import annotations

from collections.abc import Mapping

from azure.ai.ml import MLClient as AzureMLClient
from azure.ai.ml._ml_client import _begin_create_or_update, _create_or_update
from azure.ai.ml.constants._common import AzureMLResourceType
from azure.ai.ml.entities import Workspace as WorkspaceEntity
from azure.ai.ml.operations import WorkspaceOperations as AzureWorkspaceOperations

from aml_offline import mlflow_store
from aml_offline.facade_v2.assets import DataOperations, ModelOperations
from aml_offline.facade_v2.compute import ComputeOperations
from aml_offline.facade_v2.endpoints import OnlineDeploymentOperations, OnlineEndpointOperations
from aml_offline.facade_v2.environments import AZUREML_REGISTRY, EnvironmentOperations
from aml_offline.facade_v2.jobs import JobOperations
from aml_offline.facade_v2.pipelines import ComponentOperations
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.store import LocalStore, default_root

LOCAL = "local"
#: The operations ``MLClient`` holds by azure-ai-ml's resource types, as its ``create_or_update`` and
#: ``begin_create_or_update`` look them up (those the local workspace lacks raise ``NotAvailableOffline``)
OPERATIONS = {
    AzureMLResourceType.JOB: "jobs",
    AzureMLResourceType.MODEL: "models",
    AzureMLResourceType.DATA: "data",
    AzureMLResourceType.ENVIRONMENT: "environments",
    AzureMLResourceType.COMPUTE: "compute",
    AzureMLResourceType.ONLINE_ENDPOINT: "online_endpoints",
    AzureMLResourceType.ONLINE_DEPLOYMENT: "online_deployments",
    AzureMLResourceType.WORKSPACE: "workspaces",
    AzureMLResourceType.COMPONENT: "components",
    AzureMLResourceType.DATASTORE: "datastores",
    AzureMLResourceType.INDEX: "indexes",
    AzureMLResourceType.REGISTRY: "registries",
    AzureMLResourceType.CAPABILITY_HOST: "capability_hosts",
    AzureMLResourceType.BATCH_ENDPOINT: "batch_endpoints",
    AzureMLResourceType.BATCH_DEPLOYMENT: "batch_deployments",
    AzureMLResourceType.SCHEDULE: "schedules",
    AzureMLResourceType.SERVERLESS_ENDPOINT: "serverless_endpoints",
    AzureMLResourceType.MARKETPLACE_SUBSCRIPTION: "marketplace_subscriptions",
    AzureMLResourceType.DEPLOYMENT_TEMPLATE: "deployment_templates",
}


class MLClient(Offline):
    """A client of the local workspace: the operations azure-ai-ml's ``MLClient`` hands out, on this machine.

    Operations the local workspace does not have (``batch_endpoints``, ``registries``, ``schedules``, ...) raise
    ``NotAvailableOffline`` naming them.  ``registry_name="azureml"`` gives a client of Azure's curated environments
    (its ``environments``, read-only, from the dated catalogue); any other registry raises ``NotAvailableOffline``.
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
        if registry_name is not None and registry_name != AZUREML_REGISTRY:
            raise not_available(
                f"MLClient(registry_name={registry_name!r})",
                "registries are shared Azure resources; the local workspace knows the azureml registry's curated "
                "environments only",
            )
        self._credential = credential  # never called: nothing here signs in
        self._store = LocalStore.get(default_root())
        self._registry_name = registry_name
        self._subscription_id = subscription_id or LOCAL
        self._resource_group_name = resource_group_name or LOCAL
        if registry_name is not None:  # a registry client: its environments, nothing of a workspace
            self._workspace_name = None
            self.environments = EnvironmentOperations(self, registry_name=registry_name)
            return
        self._workspace_name = workspace_name or LOCAL
        self.environments = EnvironmentOperations(self)
        self.jobs = JobOperations(self)
        self.data = DataOperations(self)
        self.models = ModelOperations(self)
        self.compute = ComputeOperations(self)
        self.online_endpoints = OnlineEndpointOperations(self)
        self.online_deployments = OnlineDeploymentOperations(self)
        self.workspaces = WorkspaceOperations(self)
        self.components = ComponentOperations(self)

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
    def workspace_name(self) -> str | None:
        return self._workspace_name

    def create_or_update(self, entity, **kwargs):
        """As azure-ai-ml's: a ``Job`` goes to ``jobs``, a ``Model`` to ``models``, an ``Environment`` to
        ``environments``, a ``Component`` to ``components`` (a ``Datastore`` to operations the local workspace
        lacks); anything else is azure-ai-ml's ``TypeError``.  azure-ai-ml's own dispatch decides, over this
        client's operations."""
        return _create_or_update(entity, _Operations(self), **kwargs)

    def begin_create_or_update(self, entity, **kwargs):
        """As azure-ai-ml's: a ``Compute``, ``OnlineEndpoint`` or ``OnlineDeployment`` goes to its operations'
        ``begin_create_or_update`` and gives its poller (``Workspace``, ``Registry``, ``BatchEndpoint``,
        ``Schedule``, ... to operations the local workspace lacks)."""
        return _begin_create_or_update(entity, _Operations(self), **kwargs)

    def __getattr__(self, name: str):
        registry = self.__dict__.get("_registry_name")
        if registry and not name.startswith("_") and hasattr(AzureMLClient, name):
            raise not_available(
                f"MLClient(registry_name={registry!r}).{name}",
                "a registry client of the local workspace has the azureml registry's curated environments "
                "(ml_client.environments) and nothing else",
            )
        return super().__getattr__(name)

    def __repr__(self):
        if self._registry_name:
            return (
                f"MLClient(registry {self._registry_name!r}: the local workspace's catalogue of curated environments)"
            )
        return f"MLClient(local workspace in {self._store.root})"


class _Operations(Mapping):
    """The client's operations by azure-ai-ml's resource type, as azure-ai-ml's dispatch reads them."""

    def __init__(self, client: MLClient):
        self._client = client

    def __getitem__(self, resource_type: str):
        return getattr(self._client, OPERATIONS.get(resource_type, resource_type))

    def __iter__(self):
        return iter(OPERATIONS)

    def __len__(self) -> int:
        return len(OPERATIONS)


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
