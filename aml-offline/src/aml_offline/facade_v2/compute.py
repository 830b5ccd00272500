"""``ml_client.compute`` of the local workspace (twin of ``azure.ai.ml.operations.ComputeOperations``).

An ``AmlCompute`` cluster is a row of the same compute records v1's ``AmlCompute`` writes: its nodes are
this machine, and ``max_instances`` caps how many of its jobs run at once (the rest wait in Queued).
"""

from __future__ import annotations

from azure.ai.ml.entities import AmlCompute, ComputeInstance
from azure.ai.ml.exceptions import ErrorTarget
from azure.ai.ml.operations import ComputeOperations as AzureComputeOperations

from aml_offline.facade_v2._common import done, invalid, not_found
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import compute as compute_records

#: Sizes Azure retired (the original walkthrough's STANDARD_NC6, and Standard_NC6s_v3)
RETIRED_VM_SIZES = {"standard_nc6": "August 2023", "standard_nc6s_v3": "September 2025"}


class ComputeOperations(Offline):
    """Clusters: ``begin_create_or_update``, ``get``, ``list``, ``begin_delete``."""

    _azure_class = AzureComputeOperations

    def __init__(self, client):
        self._store = client._store

    def begin_create_or_update(self, compute):
        """Create the cluster, or update an existing one's node counts (as Azure does); ``.result()`` gives it."""
        if not isinstance(compute, AmlCompute):
            raise not_available(f"compute {type(compute).__name__}", "the local workspace has AmlCompute clusters")
        size = compute.size or "Standard_DS3_v2"
        if size.lower() in RETIRED_VM_SIZES:
            raise invalid(
                f"VM size {size} was retired by Azure in {RETIRED_VM_SIZES[size.lower()]}; pick a current "
                "size such as Standard_NC4as_T4_v3.",
                ErrorTarget.COMPUTE,
            )
        if (compute.max_instances or 1) < (compute.min_instances or 0):
            raise invalid(
                f"Cluster {compute.name!r}: max_instances ({compute.max_instances}) is below "
                f"min_instances ({compute.min_instances}).",
                ErrorTarget.COMPUTE,
            )
        for attribute in ("network_settings", "identity", "ssh_settings"):
            if getattr(compute, attribute, None):
                warn_ignored("AmlCompute", attribute, "the cluster's nodes are this machine")
        idle = int(compute.idle_time_before_scale_down or 120)
        if compute_records.get(self._store, compute.name) is None:
            try:
                compute_records.create(
                    self._store,
                    compute.name,
                    size,
                    int(compute.min_instances or 0),
                    int(compute.max_instances or 1),
                    idle,
                    compute.tags or {},
                )
            except compute_records.ComputeConflict:
                pass  # made a moment ago by another process: update it below, as Azure would
        existing = compute_records.get(self._store, compute.name)
        if existing["type"] != compute_records.CLUSTER:
            raise invalid(
                f"{compute.name!r} is a compute instance (made with SDK v1's ComputeInstance), not a cluster: "
                "delete it first or use another name.",
                ErrorTarget.COMPUTE,
            )
        if existing["vm_size"].lower() != size.lower():
            raise invalid(
                f"Cluster {compute.name!r} exists with size {existing['vm_size']}; a cluster's size cannot "
                "change (as on Azure): delete it first or use another name.",
                ErrorTarget.COMPUTE,
            )
        compute_records.update_nodes(self._store, compute.name, compute.min_instances, compute.max_instances, idle)
        return done(self.get(compute.name))

    def get(self, name: str) -> AmlCompute | ComputeInstance:
        row = compute_records.get(self._store, name)
        if row is None:
            raise not_found("compute", name, self._store, compute_records.names(self._store))
        if row["type"] == compute_records.INSTANCE:  # made with SDK v1's ComputeInstance: one node, this machine
            instance = ComputeInstance(name=row["name"], size=row["vm_size"], tags=row["tags"], location="local",
                                       description=row["settings"].get("description"))  # fmt: skip
            instance._state = row["state"]
            return instance
        return AmlCompute(
            name=row["name"],
            size=row["vm_size"],
            min_instances=row["min_nodes"],
            max_instances=row["max_nodes"],
            idle_time_before_scale_down=row["idle_seconds"],
            tags=row["tags"],
            provisioning_state="Succeeded",
            location="local",
        )

    def list(self, *, compute_type=None) -> list[AmlCompute | ComputeInstance]:
        return [self.get(name) for name in compute_records.names(self._store)]

    def begin_delete(self, name: str, *, action: str = "Delete"):
        self.get(name)
        compute_records.delete(self._store, name)
        return done(None)
