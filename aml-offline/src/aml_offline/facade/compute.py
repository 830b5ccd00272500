"""Compute targets of the local workspace (twins of ``ComputeTarget``, ``AmlCompute`` and ``ComputeInstance``).

Every node is this machine.

* A cluster (``AmlCompute``) records the VM size asked for and reports the CPUs and GPUs runs will really use; its
  ``max_nodes`` caps how many of its runs execute at once (the others wait in Queued).  Its nodes are the runs
  holding one of those places (``list_nodes()``), plus idle ones up to ``min_nodes``.
* A compute instance (``ComputeInstance``) is one node that can be stopped, started and restarted: its runs execute
  one at a time, a run is refused while it is stopped, and stopping, restarting or deleting it cancels the runs on it.
* ``"local"`` (azureml-core's default target, ``compute_target="local"`` or a ``LocalTarget``) is this machine with
  no queue at all: it is a name, not a record, and no target may take it.

Attached compute (a remote VM, Kubernetes, Databricks, ...) and SSH access cannot exist offline: they raise
``NotAvailableOffline``.  The status and node objects are azureml-core's own classes, so they serialize with Azure's
keys; ``get_status().serialize()`` adds ``localMachine``, what this machine really has.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import json
import os
import re
import shutil
import subprocess
import time

import psutil
from azureml._compute._constants import MLC_COMPUTE_RESOURCE_ID_FMT
from azureml._restclient.models import RunDto
from azureml.core.compute import AmlCompute as AzureAmlCompute
from azureml.core.compute import ComputeInstance as AzureComputeInstance
from azureml.core.compute import ComputeTarget as AzureComputeTarget
from azureml.core.compute.amlcompute import (
    AmlComputeNodeStateCounts,
    AmlComputeProvisioningConfiguration,
    AmlComputeStatus,
    ScaleSettings,
)
from azureml.core.compute.computeinstance import ComputeInstanceProvisioningConfiguration, ComputeInstanceStatus
from azureml.exceptions import ComputeTargetException, UserErrorException

from aml_offline.execution import watch
from aml_offline.facade._base import Offline, not_available, warn_ignored
from aml_offline.records import compute as compute_records
from aml_offline.records import filters
from aml_offline.records import runs as run_records
from aml_offline.records.status import TERMINAL

#: Azure ML's rule for a cluster's name
COMPUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]")
#: ... and for a compute instance's (the service checks it; azureml-core words its answer)
INSTANCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]")
#: Names azureml-core's ComputeTarget.create refuses ("local" is this machine, with no queue)
RESERVED_NAMES = ("amlcompute", "local", "containerinstance")
#: A few current sizes (name, vCPUs, GPUs, memory GB) so a notebook can look one up offline, among them those
#: Microsoft's samples ask for.  The original walkthrough's STANDARD_NC6 (retired Aug 2023) and Standard_NC6s_v3
#: (Sep 2025) are gone.
SUPPORTED_VM_SIZES = [
    ("Standard_D2_v2", 2, 0, 7),
    ("Standard_D3_v2", 4, 0, 14),
    ("Standard_DS3_v2", 4, 0, 14),
    ("Standard_DS11_v2", 2, 0, 14),
    ("Standard_DS12_v2", 4, 0, 28),
    ("Standard_D4s_v5", 4, 0, 16),
    ("Standard_E4ds_v4", 4, 0, 32),
    ("Standard_F4s_v2", 4, 0, 8),
    ("Standard_NC4as_T4_v3", 4, 1, 28),
    ("Standard_NC8as_T4_v3", 8, 1, 56),
    ("Standard_NC16as_T4_v3", 16, 1, 110),
    ("Standard_NC64as_T4_v3", 64, 4, 440),
    ("Standard_NC24ads_A100_v4", 24, 1, 220),
    ("Standard_NC40ads_H100_v5", 40, 1, 320),
]
RETIRED_VM_SIZES = {"standard_nc6": "August 2023", "standard_nc6s_v3": "September 2025"}
#: How long stopping, restarting or deleting a target waits for the runs it cancels to end
CANCEL_WAIT_S = 60


class ComputeTarget(Offline):
    """``ComputeTarget(ws, name)`` finds a target (as the class its type calls for) or raises
    ``ComputeTargetException``; ``create``, ``list``; ``attach`` is not available offline."""

    _azure_class = AzureComputeTarget

    def __new__(cls, workspace, name):
        row = compute_records.get(workspace._store, name) if name else None
        if row is None:  # azureml-core's words
            raise ComputeTargetException(
                f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace"
            )
        target = object.__new__(_TWIN_OF[row["type"]])  # as on Azure: AmlCompute(ws, "an-instance") is an instance
        target._load(workspace, row)
        return target

    def __init__(self, workspace, name):
        """Nothing more to do: ``__new__`` found the target and read it."""

    def _load(self, workspace, row: dict) -> None:
        self.workspace = workspace
        self.name = row["name"]
        self._row = row
        self.id = MLC_COMPUTE_RESOURCE_ID_FMT.format(workspace.subscription_id, workspace.resource_group,
                                                     workspace.name, self.name)  # fmt: skip
        self.location = self.cluster_location = workspace.location
        self.type = row["type"]
        self.tags = row["tags"]
        self.description = row["settings"].get("description")
        self.created_on = _utc(row["created"])
        self.modified_on = _utc(row["modified"])
        self.provisioning_state = "Succeeded"
        self.provisioning_errors = None
        self.cluster_resource_id = None
        self.is_attached = False

    @property
    def _store(self):
        return self.workspace._store

    def refresh_state(self):
        """Read the target again (it may have changed in another process); a deleted one raises, as on Azure."""
        row = compute_records.get(self._store, self.name)
        if row is None:
            raise ComputeTargetException(
                f"ComputeTargetNotFound: Compute Target with name {self.name} not found in provided workspace"
            )
        self._load(self.workspace, row)

    # --- the workspace's targets ---------------------------------------------------------------------------
    @staticmethod
    def create(workspace, name, provisioning_configuration):
        """A cluster (``AmlCompute.provisioning_configuration``) or a compute instance
        (``ComputeInstance.provisioning_configuration``); it is ready at once."""
        if name in RESERVED_NAMES:  # azureml-core's check and words
            raise UserErrorException(f"Please specify a different target name. {name} is a reserved name.")
        config = provisioning_configuration
        if isinstance(config, AmlComputeProvisioningConfiguration):
            target = _create_cluster(workspace, name, config)
        elif isinstance(config, ComputeInstanceProvisioningConfiguration):
            target = _create_instance(workspace, name, config)
        else:
            kind = getattr(getattr(config, "_compute_type", None), "__name__", type(config).__name__)
            raise not_available(
                f"ComputeTarget.create for {kind}",
                "the local workspace makes clusters (AmlCompute) and compute instances (ComputeInstance), whose "
                "nodes are this machine",
            )
        target._operation = "create"
        return target

    def attach(workspace, name, attach_configuration):
        kind = getattr(getattr(attach_configuration, "_compute_type", None), "__name__", "compute")
        raise not_available(
            f"ComputeTarget.attach ({kind})",
            "an attached VM, Kubernetes cluster, Databricks workspace or other Azure resource cannot be reached "
            "offline. Run on 'local', a cluster (AmlCompute) or a compute instance (ComputeInstance) instead",
        )

    attach.__not_available_offline__ = True  # the coverage table reads the mark
    attach = staticmethod(attach)

    @staticmethod
    def list(workspace):
        """Every cluster and compute instance of the workspace, by name."""
        found = []
        for name in compute_records.names(workspace._store):
            try:
                found.append(ComputeTarget(workspace, name))
            except ComputeTargetException:  # deleted a moment ago
                continue
        return found

    # --- what runs on it ------------------------------------------------------------------------------------
    def get_active_runs(self, type=None, tags=None, properties=None, status=None):
        """The runs queued or running on this target, as azureml-core's ``RunDto`` (``run_id``, ``status``, ...)."""
        store = self._store
        for spec in compute_records.active_runs(store, self.name):
            current = watch.status(store, spec)  # a run whose supervisor died is marked Failed here
            if current in TERMINAL or (status is not None and current != status):
                continue
            if type is not None and spec.get("type", "azureml.scriptrun") != type:
                continue
            all_tags = run_records.mlflow_tags(store, spec)
            run_tags, run_properties = run_records.user_tags(all_tags), run_records.properties_of(all_tags)
            try:
                if not (filters.matches(run_tags, tags) and filters.matches(run_properties, properties)):
                    continue
            except filters.FilterError as exc:
                raise UserErrorException(str(exc)) from None
            yield RunDto(
                run_id=spec["run_id"], run_number=spec.get("number"), parent_run_id=spec.get("parent_run_id"),
                status=current, target=self.name, run_type=spec.get("type", "azureml.scriptrun"),
                script_name=spec.get("script"), created_utc=_utc(spec.get("created", 0)), tags=run_tags,
                properties=run_properties, name=spec.get("experiment"),
            )  # fmt: skip

    def _end_runs(self, why: str) -> None:
        """Cancel the runs queued or running on this target (and the sweeps feeding it) and wait until they end."""
        store = self._store
        specs = [s for s in compute_records.active_runs(store, self.name, include_sweeps=True)
                 if watch.status(store, s) not in TERMINAL]  # fmt: skip
        for spec in specs:
            watch.request_cancel(store, spec, why)
            print(f"Canceling run {spec['run_id']}: {why}.")
        deadline = time.time() + CANCEL_WAIT_S
        while specs and time.time() < deadline:
            specs = [s for s in specs if watch.status(store, s) not in TERMINAL]
            if specs:
                time.sleep(0.25)
        if specs:
            raise ComputeTargetException(
                f"{self.type} {self.name!r}: run(s) {', '.join(s['run_id'] for s in specs)} did not stop within "
                f"{CANCEL_WAIT_S} s of being canceled; see `aml-offline status`, then try again."
            )

    def _busy_nodes(self) -> dict[int, str | None]:
        return compute_records.busy_nodes(self._store, self.name, self._row["max_nodes"])

    def __repr__(self):  # azureml-core's ComputeTarget.__repr__
        return (
            f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, id={self.id}, type={self.type}, "
            f"provisioning_state={self.provisioning_state}, location={self.location}, tags={self.tags})"
        )


class AmlCompute(ComputeTarget):
    """A compute cluster in the local workspace: this machine, with ``max_nodes`` concurrent runs."""

    _azure_class = AzureAmlCompute
    provisioning_configuration = staticmethod(AzureAmlCompute.provisioning_configuration)

    def _load(self, workspace, row: dict) -> None:
        super()._load(workspace, row)
        self.vm_size = row["vm_size"]
        self.vm_priority = row["settings"].get("vm_priority", "dedicated")
        self.scale_settings = ScaleSettings(row["min_nodes"], row["max_nodes"], row["idle_seconds"])
        self.admin_username = self.admin_user_password = self.admin_user_ssh_key = None
        self.vnet_resourcegroup_name = self.vnet_name = self.subnet_name = None
        self.remote_login_port_public_access = "Disabled"  # no SSH offline
        self.identity_type = self.identity_id = None

    @staticmethod
    def supported_vmsizes(workspace, location=None):
        """A fixed list of current sizes, in Azure's shape (the local workspace cannot ask a region)."""
        return _vm_sizes(workspace)

    def wait_for_completion(self, show_output=False, min_node_count=None, timeout_in_minutes=25,
                            is_delete_operation=False):  # fmt: skip
        """Nothing to wait for: the cluster is ready, and its nodes are this machine.  Prints Azure's lines."""
        if getattr(self, "_operation", None):
            print('Provisioning operation finished, operation "Succeeded"')
        if is_delete_operation:
            return
        self.refresh_state()
        if show_output:
            print(self.provisioning_state)
            print("AmlCompute wait for completion finished\n")
            print("Minimum number of nodes requested have been provisioned")
            if min_node_count and min_node_count > self._row["min_nodes"]:
                print(f"(min_node_count={min_node_count} is met at once: every node of {self.name} is this machine)")
            print(f"{self.name}'s nodes are this machine: {describe_machine()}")

    def get_status(self):
        """azureml-core's ``AmlComputeStatus``: node counts from the runs holding a node now; ``serialize()`` also
        gives ``localMachine``."""
        self.refresh_state()
        return self.status

    @property
    def status(self) -> LocalAmlComputeStatus:
        row = self._row
        busy = self._busy_nodes()
        preparing = sum(_node_state(self._store, run_id) == "preparing" for run_id in busy.values())
        current = max(row["min_nodes"], len(busy))
        counts = AmlComputeNodeStateCounts(
            idle_node_count=current - len(busy), leaving_node_count=0, preempted_node_count=0,
            preparing_node_count=preparing, running_node_count=len(busy) - preparing, unusable_node_count=0,
        )  # fmt: skip
        return LocalAmlComputeStatus(
            allocation_state="Steady", allocation_state_transition_time=None, creation_time=self.created_on,
            current_node_count=current, errors=None, modified_time=self.modified_on, node_state_counts=counts,
            provisioning_state=self.provisioning_state, provisioning_state_transition_time=self.modified_on,
            scale_settings=self.scale_settings, target_node_count=current, vm_priority=self.vm_priority,
            vm_size=self.vm_size, local_machine=machine_facts(),
        )  # fmt: skip

    def list_nodes(self):
        """The cluster's nodes in Azure's shape: one per node a run holds now (``runId`` says which run), then idle
        ones up to ``min_nodes``.  Every node is this machine (``privateIpAddress`` 127.0.0.1; no SSH port)."""
        self.refresh_state()
        busy = self._busy_nodes()
        nodes = [_node(index, _node_state(self._store, run_id), run_id) for index, run_id in sorted(busy.items())]
        idle = [i for i in range(self._row["max_nodes"]) if i not in busy]
        nodes += [_node(index, "idle", None) for index in idle[: max(0, self._row["min_nodes"] - len(busy))]]
        return nodes

    def update(self, min_nodes=None, max_nodes=None, idle_seconds_before_scaledown=None):
        """New node counts or idle time (the others stay); runs already on a node keep it."""
        if min_nodes is None and max_nodes is None and idle_seconds_before_scaledown is None:
            return
        self.refresh_state()
        row = self._row
        low = row["min_nodes"] if min_nodes is None else int(min_nodes)
        high = row["max_nodes"] if max_nodes is None else int(max_nodes)
        idle = row["idle_seconds"] if idle_seconds_before_scaledown is None else _seconds(idle_seconds_before_scaledown)
        _check_nodes(low, high)
        compute_records.update_nodes(self._store, self.name, low, high, idle)
        self._operation = "update"
        self.refresh_state()

    def delete(self):
        """Remove the cluster; runs queued or running on it are canceled first (their nodes go with it)."""
        self.refresh_state()
        self._end_runs(f"compute target {self.name!r} was deleted")
        compute_records.delete(self._store, self.name)
        self.provisioning_state = "Deleting"
        self._operation = "delete"

    def detach(self):  # azureml-core's words
        raise ComputeTargetException("Detach is not supported for AmlCompute object. Try to use delete instead.")

    def serialize(self):
        """Azure's JSON of a cluster."""
        return {
            "id": self.id, "name": self.name, "location": self.location, "tags": self.tags, "identity": None,
            "properties": {
                "description": self.description, "resourceId": self.cluster_resource_id, "computeType": self.type,
                "computeLocation": self.cluster_location, "provisioningState": self.provisioning_state,
                "provisioningErrors": self.provisioning_errors,
                "properties": {
                    "vmSize": self.vm_size, "vmPriority": self.vm_priority,
                    "scaleSettings": self.scale_settings.serialize(),
                    "userAccountCredentials": {"adminUserName": None, "adminUserPassword": None,
                                               "adminUserSshPublicKey": None},
                    "subnet": {"id": None}, "remoteLoginPortPublicAccess": self.remote_login_port_public_access,
                },
                "status": self.status.serialize(),
            },
        }  # fmt: skip


class ComputeInstance(ComputeTarget):
    """A compute instance in the local workspace: one node (this machine) that can be stopped and started."""

    _azure_class = AzureComputeInstance
    provisioning_configuration = staticmethod(AzureComputeInstance.provisioning_configuration)

    def _load(self, workspace, row: dict) -> None:
        super()._load(workspace, row)
        self.vm_size = row["vm_size"]
        self.ssh_public_access = False
        self.admin_username = self.admin_user_ssh_public_key = self.ssh_port = None
        self.vnet_resourcegroup_name = self.vnet_name = self.subnet_name = self.subnet_id = None
        self.public_ip_address = None
        self.private_ip_address = "127.0.0.1"
        self.applications = []  # Azure's Jupyter, JupyterLab and RStudio links: here, your own Jupyter
        self.errors = None
        self.assigned_user_object_id = self.assigned_user_tenant_id = None

    @staticmethod
    def supported_vmsizes(workspace, location=None):
        """A fixed list of current sizes, in Azure's shape (the local workspace cannot ask a region)."""
        return _vm_sizes(workspace)

    def _state(self) -> str:
        """Running, JobRunning (a run holds its node) or Stopped."""
        state = self._row["state"]
        return "JobRunning" if state == compute_records.RUNNING and self._busy_nodes() else state

    @property
    def status(self) -> LocalComputeInstanceStatus:
        return LocalComputeInstanceStatus(
            creation_time=self.created_on, created_by_user_name=self._row["settings"].get("created_by"),
            created_by_user_id=None, created_by_user_org=None, errors=None, modified_time=self.modified_on,
            state=self._state(), vm_size=self.vm_size, local_machine=machine_facts(),
        )  # fmt: skip

    def get_status(self):
        """azureml-core's ``ComputeInstanceStatus`` (``state``: Running, JobRunning or Stopped); ``serialize()`` also
        gives ``localMachine``."""
        self.refresh_state()
        return self.status

    def wait_for_completion(self, show_output=False, is_delete_operation=False):
        """Nothing to wait for: the instance is ready at once.  Prints its state, as Azure does."""
        if is_delete_operation:
            print('Provisioning operation finished, operation "Succeeded"')
            return
        self.refresh_state()
        if show_output:
            print(self._state())
            print(f"{self.name} is this machine: {describe_machine()}")

    def start(self, wait_for_completion=False, show_output=False):
        self._power("start", wait_for_completion, show_output)

    def stop(self, wait_for_completion=False, show_output=False):
        """Stop the instance; runs queued or running on it are canceled first."""
        self._power("stop", wait_for_completion, show_output)

    def restart(self, wait_for_completion=False, show_output=False):
        """Restart the instance; runs queued or running on it are canceled first."""
        self._power("restart", wait_for_completion, show_output)

    def _power(self, operation: str, wait_for_completion: bool, show_output: bool) -> None:
        self.refresh_state()
        current = self._state()
        if (current.lower() == "stopped" and operation in ("restart", "stop")) or (
            current.lower().endswith("running") and operation == "start"
        ):  # azureml-core's check and words
            raise ComputeTargetException(
                f"ComputeInstance current state ({current}) does not support {operation.capitalize()} operation.\n"
            )
        if operation != "start":
            self._end_runs(f"compute instance {self.name!r} was {'stopped' if operation == 'stop' else 'restarted'}")
        compute_records.set_state(
            self._store, self.name, compute_records.STOPPED if operation == "stop" else compute_records.RUNNING
        )
        self.refresh_state()
        if wait_for_completion and show_output:
            print(self._state())

    def delete(self, wait_for_completion=False, show_output=False):
        """Remove the instance; runs queued or running on it are canceled first."""
        self.refresh_state()
        self._end_runs(f"compute instance {self.name!r} was deleted")
        compute_records.delete(self._store, self.name)
        self.provisioning_state = "Deleting"
        if wait_for_completion and show_output:
            print("Deleted")

    def detach(self):  # azureml-core's words
        raise ComputeTargetException("Detach is not supported for ComputeInstance object. Try to use delete instead.")

    def serialize(self):
        """Azure's JSON of a compute instance."""
        return {
            "id": self.id, "name": self.name, "location": self.location, "tags": self.tags,
            "properties": {
                "description": self.description, "computeType": self.type, "computeLocation": self.location,
                "resourceId": self.cluster_resource_id, "provisioningErrors": self.provisioning_errors,
                "provisioningState": self.provisioning_state,
                "properties": {
                    "vmSize": self.vm_size, "applications": self.applications,
                    "connectivityEndpoints": {"publicIpAddress": None, "privateIpAddress": self.private_ip_address},
                    "sshSettings": {"sshPublicAccess": "Disabled", "adminUserName": None, "adminPublicKey": None,
                                    "sshPort": None},
                    "personalComputeInstanceSettings": None, "subnet": {"id": None}, "errors": self.errors,
                },
                "status": self.status.serialize(),
            },
        }  # fmt: skip

    def __repr__(self):  # azureml-core's
        return json.dumps(self.serialize(), indent=2)

    def __str__(self):
        info = {"Name": self.name, "Id": self.id, "Workspace": self.workspace.name, "Location": self.location,
                "VmSize": self.vm_size, "State": self._state(), "Tags": self.tags}  # fmt: skip
        return json.dumps(info, indent=2)


_TWIN_OF = {compute_records.CLUSTER: AmlCompute, compute_records.INSTANCE: ComputeInstance}


class LocalAmlComputeStatus(AmlComputeStatus):
    """azureml-core's cluster status, whose ``serialize()`` also gives ``localMachine``: what every node (this
    machine) really has."""

    def __init__(self, *, local_machine: dict, **status):
        super().__init__(**status)
        self.local_machine = local_machine

    def serialize(self):
        return {**super().serialize(), "localMachine": self.local_machine}


class LocalComputeInstanceStatus(ComputeInstanceStatus):
    """azureml-core's compute instance status, whose ``serialize()`` also gives ``localMachine``."""

    def __init__(self, *, local_machine: dict, **status):
        super().__init__(**status)
        self.local_machine = local_machine

    def serialize(self):
        return {**super().serialize(), "localMachine": self.local_machine}


# --- creating ---------------------------------------------------------------------------------------------


def _create_cluster(workspace, name, config) -> AmlCompute:
    if not isinstance(name, str) or not COMPUTE_NAME.fullmatch(name):  # Azure's rule (the name becomes a folder)
        raise ComputeTargetException(
            f"Compute name {name!r} is invalid. It can include letters, digits and dashes. It must start with a "
            "letter, end with a letter or digit, and be between 2 and 16 characters in length."
        )
    size = _vm_size(config.vm_size or "Standard_NC4as_T4_v3", "AmlCompute.provisioning_configuration")
    max_nodes = int(config.scale_settings.maximum_node_count or 1)
    min_nodes = int(config.scale_settings.minimum_node_count or 0)
    idle = _seconds(config.scale_settings.idle_seconds_before_scaledown or 1800)
    _check_nodes(min_nodes, max_nodes)
    if (config.admin_username or config.admin_user_password or config.admin_user_ssh_key
            or str(config.remote_login_port_public_access).lower() == "enabled"):  # fmt: skip
        raise not_available(
            "AmlCompute SSH access (admin_username, admin_user_password, admin_user_ssh_key, "
            "remote_login_port_public_access)",
            "the cluster's nodes are this machine: open a terminal on it instead",
        )
    for arg in ("vnet_name", "subnet_name", "identity_type", "compute_location"):
        if getattr(config, arg, None):
            warn_ignored("AmlCompute.provisioning_configuration", arg, "the cluster's nodes are this machine")
    settings = {"description": config.description, "vm_priority": config.vm_priority or "dedicated"}
    try:
        compute_records.create(workspace._store, name, size, min_nodes, max_nodes, idle, config.tags or {},
                               kind=compute_records.CLUSTER, settings=settings)  # fmt: skip
    except compute_records.ComputeConflict as exc:
        raise ComputeTargetException(str(exc)) from None
    return ComputeTarget(workspace, name)


def _create_instance(workspace, name, config) -> ComputeInstance:
    if not isinstance(name, str) or not INSTANCE_NAME.fullmatch(name):  # azureml-core's words for the service's answer
        raise ComputeTargetException(
            f"Compute name '{name}' is not available. Reason: Invalid. Message: A compute instance name has 3 to 24 "
            "letters, digits and dashes; it starts with a letter and ends with a letter or digit."
        )
    if compute_records.get(workspace._store, name) is not None:
        raise ComputeTargetException(
            f"Compute name '{name}' is not available. Reason: AlreadyExists. Message: The workspace already has a "
            f"compute target named '{name}'."
        )
    size = _vm_size(config.vm_size, "ComputeInstance.provisioning_configuration")
    if config.ssh_public_access or config.admin_user_ssh_public_key:
        raise not_available(
            "ComputeInstance SSH access (ssh_public_access, admin_user_ssh_public_key)",
            "the instance is this machine: open a terminal on it instead",
        )
    for arg in ("vnet_name", "subnet_name", "assigned_user_object_id"):
        if getattr(config, arg, None):
            warn_ignored("ComputeInstance.provisioning_configuration", arg, "the instance is this machine, yours")
    settings = {"description": config.description, "created_by": _user()}
    try:  # one node: its runs execute one at a time
        compute_records.create(workspace._store, name, size, 1, 1, 0, config.tags or {},
                               kind=compute_records.INSTANCE, settings=settings)  # fmt: skip
    except compute_records.ComputeConflict as exc:
        raise ComputeTargetException(str(exc)) from None
    return ComputeTarget(workspace, name)


def _vm_size(size: str, where: str) -> str:
    if size.lower() in RETIRED_VM_SIZES:
        raise ComputeTargetException(
            f"VM size {size} was retired by Azure in {RETIRED_VM_SIZES[size.lower()]}; "
            "use a current size such as Standard_NC4as_T4_v3."
        )
    if size.lower() not in {n.lower() for n, *_ in SUPPORTED_VM_SIZES}:
        warn_ignored(where, "vm_size", f"{size} is not in the local list of sizes; it is recorded as asked")
    return size


def _check_nodes(min_nodes: int, max_nodes: int) -> None:
    if max_nodes < min_nodes:  # azureml-core's words
        raise ComputeTargetException(
            "Invalid provisioning configuration, max nodes count must be greater than or equal to min nodes count"
        )
    if max_nodes < 1 or min_nodes < 0:
        raise ComputeTargetException(
            f"Invalid node counts: min_nodes={min_nodes}, max_nodes={max_nodes}. A local cluster needs max_nodes of "
            "at least 1 (each node is a place for one run on this machine)."
        )


def _seconds(value) -> int:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = -1
    if seconds < 0:  # azureml-core's words
        raise UserErrorException("Invalid input, provide an integer duration in seconds")
    return seconds


def _vm_sizes(workspace) -> list[dict]:
    if not workspace:  # as azureml-core
        return []
    return [
        {"name": n, "vCPUs": c, "gpus": g, "memoryGB": float(m), "maxResourceVolumeMB": 0}
        for n, c, g, m in SUPPORTED_VM_SIZES
    ]


# --- nodes --------------------------------------------------------------------------------------------------


def _node(index: int, state: str, run_id: str | None) -> dict:
    """One node, as Azure's ``list_nodes`` gives it."""
    return {"nodeId": f"node-{index}", "privateIpAddress": "127.0.0.1", "publicIpAddress": None, "port": None,
            "nodeState": state, "runId": run_id}  # fmt: skip


def _node_state(store, run_id: str | None) -> str:
    """A busy node is ``preparing`` while its run prepares (copies its snapshot, checks its environment), else
    ``running``."""
    if run_id is None:
        return "running"
    try:
        spec = run_records.spec_of(store, run_id)
    except run_records.RunNotFound:
        return "running"
    return "preparing" if watch.status(store, spec) == "Preparing" else "running"


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in some containers)
        return "local"


# --- this machine -------------------------------------------------------------------------------------------


def machine_facts() -> dict:
    return {
        "cpus": os.cpu_count(),
        "memoryGB": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": list(_gpus()),
    }


def describe_machine() -> str:
    facts = machine_facts()
    gpus = ", ".join(facts["gpus"]) or "no GPU (training uses the CPU)"
    return f"{facts['cpus']} CPUs, {facts['memoryGB']} GB memory, {gpus}"


@functools.cache
def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


# azureml-core's RunConfiguration keeps a target's name only for its own ComputeTarget types and silently falls back
# to "local" for anything else: registering the twins makes ScriptRunConfig(compute_target=cluster_or_instance) and
# src.run_config.target = instance work.
AzureComputeTarget.register(ComputeTarget)
