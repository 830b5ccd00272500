"""``ml_client.compute`` of the local workspace (twin of ``azure.ai.ml.operations.ComputeOperations``).

Clusters (``AmlCompute``) and compute instances (``ComputeInstance``) are rows of the same compute records SDK v1's
``AmlCompute`` and ``ComputeInstance`` write, so one workspace serves both SDKs: every node is this machine.  A
cluster's ``max_instances`` caps how many of its jobs run at once (the rest wait in Queued); an instance is one node
that can be stopped, started and restarted, and stopping, restarting or deleting it cancels the jobs on it.

What comes back is built the way azure-ai-ml builds it: the twin writes the REST answer Azure's service would give
(``ComputeResource``, ``Usage``, ``VirtualMachineSize``, ``AmlComputeNodeInformation``) and hands it to
azure-ai-ml's own ``_from_rest_object``, so the entities (and their quirks in azure-ai-ml 1.35: ``Usage``,
``VmSize`` and ``AmlComputeNodeInfo`` keep the REST names, ``currentValue``, ``vCPUs``, ``nodeId``, as attributes,
and leave the snake_case ones None) are the ones the installed SDK gives on Azure.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re

from azure.ai.ml._restclient.arm_ml_service.models import AmlComputeNodeInformation as RestNodeInformation
from azure.ai.ml._restclient.arm_ml_service.models import ComputeResource as RestComputeResource
from azure.ai.ml._restclient.arm_ml_service.models import Usage as RestUsage
from azure.ai.ml._restclient.arm_ml_service.models import VirtualMachineSize as RestVmSize
from azure.ai.ml.constants._compute import ComputeDefaults
from azure.ai.ml.entities import AmlCompute, AmlComputeNodeInfo, Compute, ComputeInstance, Usage, VmSize
from azure.ai.ml.exceptions import ErrorTarget
from azure.ai.ml.operations import ComputeOperations as AzureComputeOperations
from azure.core.exceptions import ResourceNotFoundError

from aml_offline.execution import watch
from aml_offline.facade_v2._common import done, invalid, not_found, service_error, user
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import compute as compute_records
from aml_offline.records import runs as run_records

#: Azure ML's rules for a cluster's name and a compute instance's (3 to 24 letters, digits and dashes)
CLUSTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]")
INSTANCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]")
#: How long stopping, restarting or deleting a target waits for the jobs it cancels to end
CANCEL_WAIT_S = 60
#: azure-ai-ml's logger for this class: it warns there when a location is given for a compute instance
module_logger = logging.getLogger("azure.ai.ml.operations._compute_operations")
_PRIORITY = {"dedicated": "Dedicated", "low_priority": "LowPriority", "lowpriority": "LowPriority"}


class ComputeOperations(Offline):
    """Clusters and compute instances: create, get, list, start, stop, restart, delete; nodes, usage and sizes."""

    _azure_class = AzureComputeOperations

    def __init__(self, client):
        self._client = client
        self._store = client._store

    # --- create and update ------------------------------------------------------------------------------------
    def begin_create_or_update(self, compute: Compute):
        """Create the cluster or compute instance, or update an existing cluster's node counts (as Azure's PUT
        does); ``.result()`` gives it as ``get`` does.  It is ready at once: its nodes are this machine."""
        if isinstance(compute, AmlCompute):
            self._create_cluster(compute)
        elif isinstance(compute, ComputeInstance):
            self._create_instance(compute)
        else:
            raise not_available(
                f"compute {type(compute).__name__}",
                "an attached VM, Kubernetes cluster or Synapse pool cannot be reached offline; the local workspace "
                "makes AmlCompute clusters and ComputeInstance instances, whose nodes are this machine",
            )
        return done(self.get(compute.name))

    def begin_update(self, compute: Compute):
        """Update a cluster (its node counts and idle time), as ``begin_create_or_update`` does."""
        if not isinstance(compute, AmlCompute):  # azure-ai-ml: "Currently only valid for AmlCompute"
            raise invalid(f"Compute {compute.name!r}: begin_update is for AmlCompute clusters.", ErrorTarget.COMPUTE)
        self.get(compute.name)
        return self.begin_create_or_update(compute)

    def begin_attach(self, compute: Compute, **kwargs):
        raise not_available(
            f"ComputeOperations.begin_attach ({type(compute).__name__})",
            "an attached VM, Kubernetes cluster or Synapse pool cannot be reached offline",
        )

    begin_attach.__not_available_offline__ = True  # the coverage table reads the mark

    def _create_cluster(self, compute: AmlCompute) -> None:
        name = compute.name
        if not isinstance(name, str) or not CLUSTER_NAME.fullmatch(name):
            raise invalid(
                f"Compute name {name!r} is invalid. It can include letters, digits and dashes. It must start with a "
                "letter, end with a letter or digit, and be between 2 and 16 characters in length.",
                ErrorTarget.COMPUTE,
            )
        size = _size(compute.size or ComputeDefaults.VMSIZE, "AmlCompute")
        low = int(compute.min_instances or 0)
        high = int(compute.max_instances if compute.max_instances is not None else ComputeDefaults.MAX_NODES)
        if high < low or high < 1:
            raise invalid(
                f"Cluster {name!r}: max_instances ({high}) must be at least 1 and at least min_instances ({low}).",
                ErrorTarget.COMPUTE,
            )
        idle = int(compute.idle_time_before_scale_down if compute.idle_time_before_scale_down is not None else 120)
        if compute.ssh_settings is not None or compute.ssh_public_access_enabled:
            raise not_available("AmlCompute SSH access (ssh_settings, ssh_public_access_enabled)",
                                "the cluster's nodes are this machine: open a terminal on it instead")  # fmt: skip
        for attribute in ("network_settings", "identity"):
            if getattr(compute, attribute, None):
                warn_ignored("AmlCompute", attribute, "the cluster's nodes are this machine")
        tier = _PRIORITY.get(str(compute.tier or "dedicated").lower())
        if tier is None:
            raise invalid(f"Cluster {name!r}: tier {compute.tier!r}: use 'dedicated' or 'low_priority'.",
                          ErrorTarget.COMPUTE)  # fmt: skip
        existing = compute_records.get(self._store, name)
        if existing is None:
            settings = {"description": compute.description, "vm_priority": tier.lower(),
                        "location": compute.location, "created_by": user()}  # fmt: skip
            try:
                compute_records.create(self._store, name, size, low, high, idle, compute.tags or {},
                                       kind=compute_records.CLUSTER, settings=settings)  # fmt: skip
                compute_records.note_operation(self._store, name, "Create")
                return
            except compute_records.ComputeConflict:
                existing = compute_records.get(self._store, name)  # made a moment ago elsewhere: update it
        if existing["type"] != compute_records.CLUSTER:
            raise invalid(
                f"{name!r} is a compute instance, not a cluster: delete it first or use another name.",
                ErrorTarget.COMPUTE,
            )
        if existing["vm_size"].lower() != size.lower():
            raise invalid(
                f"Cluster {name!r} exists with size {existing['vm_size']}; a cluster's size cannot change (as on "
                "Azure): delete it first or use another name.",
                ErrorTarget.COMPUTE,
            )
        compute_records.update_nodes(self._store, name, low, high, idle)

    def _create_instance(self, compute: ComputeInstance) -> None:
        name = compute.name
        if not isinstance(name, str) or not INSTANCE_NAME.fullmatch(name):
            raise invalid(
                f"Compute name '{name}' is not available. Reason: Invalid. Message: A compute instance name has 3 to "
                "24 letters, digits and dashes; it starts with a letter and ends with a letter or digit.",
                ErrorTarget.COMPUTE,
            )
        if compute.location:  # azure-ai-ml's own warning: an instance is made in the workspace's region
            module_logger.warning(
                "Warning: 'Location' is not supported for compute type %s and will not be used.", compute.type
            )
        size = _size(compute.size or ComputeDefaults.VMSIZE, "ComputeInstance")
        if compute.ssh_public_access_enabled or (compute.ssh_settings and compute.ssh_settings.ssh_key_value):
            raise not_available("ComputeInstance SSH access (ssh_public_access_enabled, ssh_settings)",
                                "the instance is this machine: open a terminal on it instead")  # fmt: skip
        for attribute in ("network_settings", "identity", "create_on_behalf_of", "schedules", "setup_scripts",
                          "custom_applications"):  # fmt: skip
            if getattr(compute, attribute, None):
                warn_ignored("ComputeInstance", attribute, "the instance is this machine, yours, always on")
        if compute.idle_time_before_shutdown_minutes or compute.idle_time_before_shutdown:
            warn_ignored("ComputeInstance", "idle_time_before_shutdown", "the local instance never shuts itself down")
        existing = compute_records.get(self._store, name)
        if existing is None:
            settings = {"description": compute.description, "created_by": user()}
            try:  # one node: its jobs execute one at a time
                compute_records.create(self._store, name, size, 1, 1, 0, compute.tags or {},
                                       kind=compute_records.INSTANCE, settings=settings)  # fmt: skip
                compute_records.note_operation(self._store, name, "Create")
                return
            except compute_records.ComputeConflict:
                existing = compute_records.get(self._store, name)
        if existing["type"] != compute_records.INSTANCE or existing["vm_size"].lower() != size.lower():
            kind = (
                "a cluster" if existing["type"] == compute_records.CLUSTER else f"an instance of {existing['vm_size']}"
            )
            raise invalid(
                f"Compute name '{name}' is not available. Reason: AlreadyExists. Message: The workspace already has "
                f"a compute named '{name}' ({kind}); delete it first or use another name.",
                ErrorTarget.COMPUTE,
            )  # the same instance again: nothing changes, as Azure's PUT of the same definition

    # --- read -----------------------------------------------------------------------------------------------
    def get(self, name: str) -> Compute:
        row = compute_records.get(self._store, name)
        if row is None:
            raise not_found("compute", name, self._store, compute_records.names(self._store))
        return Compute._from_rest_object(RestComputeResource(self._rest(row)))

    def list(self, *, compute_type: str | None = None) -> list[Compute]:
        """Every cluster and instance (``compute_type``: only ``AmlCompute`` or ``ComputeInstance``, any case)."""
        found = []
        for name in compute_records.names(self._store):
            try:
                compute = self.get(name)
            except ResourceNotFoundError:  # deleted a moment ago
                continue
            if compute_type is None or str(compute.type).lower() == compute_type.lower():
                found.append(compute)
        return found

    def list_nodes(self, name: str) -> list[AmlComputeNodeInfo]:
        """The nodes a job holds now (``runId`` says which job), then idle ones up to ``min_instances``; every
        node is this machine (``privateIpAddress`` 127.0.0.1, no public IP, no SSH port)."""
        row = self._row(name)
        busy = compute_records.busy_nodes(self._store, name, row["max_nodes"])
        nodes = [(index, self._node_state(job), job) for index, job in sorted(busy.items())]
        idle = [i for i in range(row["max_nodes"]) if i not in busy][: max(0, row["min_nodes"] - len(busy))]
        nodes += [(index, "idle", None) for index in idle]
        return [
            AmlComputeNodeInfo._from_rest_object(RestNodeInformation(
                {"nodeId": f"node-{index}", "privateIpAddress": "127.0.0.1", "publicIpAddress": None, "port": None,
                 "nodeState": state, "runId": job}))
            for index, state, job in nodes
        ]  # fmt: skip

    def list_sizes(self, *, location: str | None = None, compute_type: str | None = None) -> list[VmSize]:
        """A fixed list of current sizes (the local workspace cannot ask a region); any size is this machine."""
        self._warn_location("list_sizes", location)
        sizes = [
            RestVmSize({"name": name, "family": family, "vCPUs": cpus, "gpus": gpus, "memoryGB": float(memory),
                        "supportedComputeTypes": ["ComputeInstance", "AmlCompute"]})
            for name, family, cpus, gpus, memory in compute_records.VM_SIZES
        ]  # fmt: skip
        if compute_type:  # as azure-ai-ml filters
            sizes = [s for s in sizes if compute_type.lower() in (t.lower() for t in s.supported_compute_types)]
        return [VmSize._from_rest_object(size) for size in sizes]

    def list_usage(self, *, location: str | None = None) -> list[Usage]:
        """vCPUs in use and the limit, per VM family of the listed sizes and in total, as Azure's quota reads.

        The limit of each is this machine's CPU count (every node is this machine; there is no quota offline); a
        family's use is the vCPUs of the nodes its clusters' jobs hold now and of its running instances.  Azure's
        names for the rows (``standardDSv2Family``, ``Total Cluster Dedicated Regional vCPUs``) are as I remember
        them from its answers; I could not check them against a real workspace offline."""
        self._warn_location("list_usage", location)
        region = location or "local"
        limit = os.cpu_count() or 1
        used: dict[str, int] = {}
        for name in compute_records.names(self._store):
            row = compute_records.get(self._store, name)
            if row is None:
                continue
            facts = compute_records.size_facts(row["vm_size"])
            if facts is None:
                continue
            if row["type"] == compute_records.INSTANCE:
                nodes = 1 if row["state"] == compute_records.RUNNING else 0
            else:
                nodes = max(row["min_nodes"], len(compute_records.busy_nodes(self._store, name, row["max_nodes"])))
            used[facts[1]] = used.get(facts[1], 0) + nodes * facts[2]
        scope = (f"/subscriptions/{self._client.subscription_id}/providers/Microsoft.MachineLearningServices"
                 f"/locations/{region}")  # fmt: skip

        def usage(kind: str, value: str, label: str, current: int) -> Usage:
            rest = {"id": f"{scope}/usages/{value}", "amlWorkspaceLocation": region, "unit": "Count",
                    "type": f"Microsoft.MachineLearningServices/{kind}/usages", "currentValue": current,
                    "limit": limit, "name": {"value": value, "localizedValue": label}}  # fmt: skip
            return Usage._from_rest_object(RestUsage(rest))

        rows = [usage("totalCores", "TotalDedicatedCores", "Total Cluster Dedicated Regional vCPUs",
                      sum(used.values()))]  # fmt: skip
        families = sorted({row[1] for row in compute_records.VM_SIZES})
        for family in families:
            label = f"{family[0].upper()}{family[1:].removesuffix('Family')} Family Cluster Dedicated vCPUs"
            rows.append(usage("vmFamily", family, label, used.get(family, 0)))
        return rows

    # --- compute instances: power --------------------------------------------------------------------------
    def begin_start(self, name: str):
        """Start a stopped compute instance."""
        self._power(name, "Start")
        return done(None)

    def begin_stop(self, name: str):
        """Stop a compute instance; the jobs queued or running on it are canceled first (they end Canceled)."""
        self._power(name, "Stop")
        return done(None)

    def begin_restart(self, name: str):
        """Restart a compute instance; the jobs queued or running on it are canceled first."""
        self._power(name, "Restart")
        return done(None)

    def _power(self, name: str, operation: str) -> None:
        row = self._row(name)
        if row["type"] != compute_records.INSTANCE:
            raise service_error(  # Azure's service answers this; its words are not known offline
                f"Compute {name!r} is a cluster (AmlCompute): start, stop and restart are for compute instances "
                "(a cluster scales itself between min_instances and max_instances)."
            )
        state = self._instance_state(row)
        if (state == compute_records.STOPPED and operation in ("Stop", "Restart")) or (
            state != compute_records.STOPPED and operation == "Start"
        ):  # azureml-core's words for the same check (SDK v1); Azure's service answers SDK v2 (not checked)
            raise service_error(f"ComputeInstance current state ({state}) does not support {operation} operation.")
        if operation != "Start":
            self._end_jobs(name, f"compute instance {name!r} was {'stopped' if operation == 'Stop' else 'restarted'}")
        new = compute_records.STOPPED if operation == "Stop" else compute_records.RUNNING
        compute_records.set_state(self._store, name, new, operation)

    # --- delete -------------------------------------------------------------------------------------------------
    def begin_delete(self, name: str, *, action: str = "Delete"):
        """Delete a cluster or compute instance; the jobs queued or running on it are canceled first."""
        row = self._row(name)
        if str(action).lower() == "detach":
            raise service_error(f"Compute {name!r} ({row['type']}) was made in the workspace: delete it, "
                                 "detach is for attached compute.")  # fmt: skip
        self._end_jobs(name, f"compute {name!r} was deleted")
        compute_records.delete(self._store, name)
        return done(None)

    # --- helpers ------------------------------------------------------------------------------------------------
    def _row(self, name: str) -> dict:
        row = compute_records.get(self._store, name)
        if row is None:
            raise not_found("compute", name, self._store, compute_records.names(self._store))
        return row

    def _end_jobs(self, name: str, why: str) -> None:
        left = watch.cancel_runs_on(self._store, name, why, CANCEL_WAIT_S)
        if left:
            raise service_error(
                f"Compute {name!r}: job(s) {', '.join(left)} did not stop within {CANCEL_WAIT_S} s of being "
                "canceled; see `aml-offline status`, then try again."
            )

    def _instance_state(self, row: dict) -> str:
        """Running, JobRunning (a job holds its node) or Stopped."""
        if row["state"] == compute_records.RUNNING and compute_records.busy_nodes(self._store, row["name"], 1):
            return "JobRunning"
        return row["state"]

    def _node_state(self, job: str | None) -> str:
        """A busy node is ``preparing`` while its job prepares (copies its code, checks its environment)."""
        if job is None:
            return "running"
        try:
            spec = run_records.spec_of(self._store, job)
        except run_records.RunNotFound:
            return "running"
        return "preparing" if watch.status(self._store, spec) == "Preparing" else "running"

    def _warn_location(self, where: str, location: str | None) -> None:
        if location and location != "local":
            warn_ignored(f"compute.{where}", "location", "the local workspace has one region, this machine")

    def _rest(self, row: dict) -> dict:
        """The compute as Azure's service answers a GET of it (``ComputeResource``)."""
        client = self._client
        settings = row["settings"]
        created = _iso(row["created"])
        props = {
            "computeType": row["type"],
            "provisioningState": "Succeeded",
            "description": settings.get("description"),
            "createdOn": created,
            "modifiedOn": _iso(row["modified"]),
            "isAttachedCompute": False,
            "disableLocalAuth": True,
        }
        if row["type"] == compute_records.CLUSTER:
            busy = compute_records.busy_nodes(self._store, row["name"], row["max_nodes"])
            preparing = sum(self._node_state(job) == "preparing" for job in busy.values())
            current = max(row["min_nodes"], len(busy))
            props["computeLocation"] = settings.get("location") or "local"
            props["properties"] = {
                "vmSize": row["vm_size"],
                "vmPriority": _PRIORITY.get(str(settings.get("vm_priority", "dedicated")).lower(), "Dedicated"),
                "scaleSettings": {"maxNodeCount": row["max_nodes"], "minNodeCount": row["min_nodes"],
                                  "nodeIdleTimeBeforeScaleDown": f"PT{row['idle_seconds']}S"},
                "remoteLoginPortPublicAccess": "Disabled",
                "enableNodePublicIp": True,
                "allocationState": "Steady",
                "currentNodeCount": current,
                "targetNodeCount": current,
                "nodeStateCounts": {"idleNodeCount": current - len(busy), "runningNodeCount": len(busy) - preparing,
                                    "preparingNodeCount": preparing, "unusableNodeCount": 0, "leavingNodeCount": 0,
                                    "preemptedNodeCount": 0},
            }  # fmt: skip
        else:
            last = settings.get("last_operation") or {"name": "Create", "time": row["created"]}
            props["properties"] = {
                "vmSize": row["vm_size"],
                "state": self._instance_state(row),
                "lastOperation": {"operationName": last["name"], "operationTime": _iso(last["time"]),
                                  "operationStatus": "Succeeded", "operationTrigger": "User"},
                "applications": [],  # Azure's Jupyter, JupyterLab and VS Code links: here, your own Jupyter
                "connectivityEndpoints": {"privateIpAddress": "127.0.0.1", "publicIpAddress": None},
                "sshSettings": {"sshPublicAccess": "Disabled"},
                "computeInstanceAuthorizationType": "personal",
                "enableNodePublicIp": False,
            }  # fmt: skip
        return {
            "id": (f"/subscriptions/{client.subscription_id}/resourceGroups/{client.resource_group_name}/providers/"
                   f"Microsoft.MachineLearningServices/workspaces/{client.workspace_name}/computes/{row['name']}"),
            "name": row["name"],
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": "local",
            "tags": row["tags"] or None,
            "properties": props,
        }  # fmt: skip


def _size(size: str, where: str) -> str:
    if size.lower() in compute_records.RETIRED_VM_SIZES:
        raise invalid(
            f"VM size {size} was retired by Azure in {compute_records.RETIRED_VM_SIZES[size.lower()]}; pick a "
            "current size such as Standard_NC4as_T4_v3 (ml_client.compute.list_sizes() lists them).",
            ErrorTarget.COMPUTE,
        )
    if compute_records.size_facts(size) is None:
        warn_ignored(where, "size", f"{size} is not in the local list of sizes; it is recorded as asked")
    return size


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
