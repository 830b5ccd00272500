"""Compute targets of the local workspace (twins of ``ComputeTarget`` / ``AmlCompute``).

A local cluster is this machine.  It records the VM size that was asked for,
reports the CPUs and GPUs runs will really use, and its ``max_nodes`` caps how
many of its runs execute at once (the others wait in Queued).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import psutil
from azureml.core.compute import AmlCompute as AzureAmlCompute
from azureml.core.compute import ComputeTarget as AzureComputeTarget
from azureml.exceptions import ComputeTargetException
from filelock import Timeout

from aml_offline.facade._base import Offline, warn_ignored
from aml_offline.records import compute as compute_records

#: Azure ML's rule for a compute target's name
COMPUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]")
#: A few current sizes (name, vCPUs, GPUs, memory GB) so a notebook can look one up offline.
#: The original walkthrough's STANDARD_NC6 (retired Aug 2023) and Standard_NC6s_v3 (Sep 2025) are gone.
SUPPORTED_VM_SIZES = [
    ("Standard_DS3_v2", 4, 0, 14),
    ("Standard_D4s_v5", 4, 0, 16),
    ("Standard_F4s_v2", 4, 0, 8),
    ("Standard_NC4as_T4_v3", 4, 1, 28),
    ("Standard_NC8as_T4_v3", 8, 1, 56),
    ("Standard_NC16as_T4_v3", 16, 1, 110),
    ("Standard_NC64as_T4_v3", 64, 4, 440),
    ("Standard_NC24ads_A100_v4", 24, 1, 220),
    ("Standard_NC40ads_H100_v5", 40, 1, 320),
]
RETIRED_VM_SIZES = {"standard_nc6": "August 2023", "standard_nc6s_v3": "September 2025"}


class AmlCompute(Offline):
    """A compute cluster in the local workspace: this machine, with ``max_nodes`` concurrent runs."""

    _azure_class = AzureAmlCompute
    provisioning_configuration = staticmethod(AzureAmlCompute.provisioning_configuration)

    def __init__(self, workspace, name, row=None):
        self.workspace = workspace
        self.name = name
        self._row = row if row is not None else compute_records.get(workspace._store, name)
        self.type = "AmlCompute"
        self.provisioning_state = "Succeeded"

    @property
    def vm_size(self) -> str:
        return self._row["vm_size"]

    @property
    def scale_settings(self):
        return {"minNodeCount": self._row["min_nodes"], "maxNodeCount": self._row["max_nodes"]}

    @staticmethod
    def supported_vmsizes(workspace, location=None):
        return [
            {"name": n, "vCPUs": c, "gpus": g, "memoryGB": float(m), "maxResourceVolumeMB": 0}
            for n, c, g, m in SUPPORTED_VM_SIZES
        ]

    def wait_for_completion(
        self, show_output=False, min_node_count=None, timeout_in_minutes=25, is_delete_operation=False
    ):
        if show_output:
            print(f"Provisioning {self.name}: {self.provisioning_state}")
            print(f"{self.name} runs on this machine: {describe_machine()}")
        if min_node_count:
            print(f"{self.name}: min_node_count={min_node_count} is met at once (nodes are this machine).")

    def update(self, min_nodes=None, max_nodes=None, idle_seconds_before_scaledown=None):
        compute_records.update_nodes(self.workspace._store, self.name, min_nodes, max_nodes,
                                     idle_seconds_before_scaledown)  # fmt: skip
        self._row = compute_records.get(self.workspace._store, self.name)

    def get_status(self):
        return _Status(self)

    def delete(self):
        compute_records.delete(self.workspace._store, self.name)

    def __repr__(self):
        return (
            f"AmlCompute(workspace=local, name={self.name}, vm_size={self.vm_size}, max_nodes={self._row['max_nodes']})"
        )


class _Status:
    def __init__(self, compute: AmlCompute):
        self._compute = compute

    def serialize(self) -> dict:
        row = self._compute._row
        busy = _busy_nodes(self._compute)
        return {
            "currentNodeCount": busy,
            "targetNodeCount": busy,
            "nodeStateCounts": {"idleNodeCount": 0, "runningNodeCount": busy, "preparingNodeCount": 0,
                                "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0},
            "allocationState": "Steady",
            "provisioningState": "Succeeded",
            "vmSize": row["vm_size"],
            "scaleSettings": {"minNodeCount": row["min_nodes"], "maxNodeCount": row["max_nodes"],
                              "nodeIdleTimeBeforeScaleDown": f"PT{row['idle_seconds']}S"},
            "localMachine": machine_facts(),
        }  # fmt: skip


def _busy_nodes(compute: AmlCompute) -> int:
    busy = 0
    for lock in compute.workspace._store.compute_slot_locks(compute.name, compute._row["max_nodes"]):
        try:
            lock.acquire(timeout=0)
            lock.release()
        except Timeout:  # a run holds this node
            busy += 1
    return busy


class ComputeTarget(Offline):
    """``ComputeTarget(ws, name)`` finds a target or raises ``ComputeTargetException``."""

    _azure_class = AzureComputeTarget

    def __new__(cls, workspace, name):
        row = compute_records.get(workspace._store, name)
        if row is None:
            raise ComputeTargetException(
                f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace"
            )
        return AmlCompute(workspace, name, row)

    @staticmethod
    def create(workspace, name, provisioning_configuration):
        if not isinstance(name, str) or not COMPUTE_NAME.fullmatch(name):  # Azure's rule (the name becomes a folder)
            raise ComputeTargetException(
                f"Compute name {name!r} is invalid. It can include letters, digits and dashes. It must start with a "
                "letter, end with a letter or digit, and be between 2 and 16 characters in length."
            )
        config = provisioning_configuration
        size = config.vm_size or "Standard_NC4as_T4_v3"
        if size.lower() in RETIRED_VM_SIZES:
            raise ComputeTargetException(
                f"VM size {size} was retired by Azure in {RETIRED_VM_SIZES[size.lower()]}; "
                "use a current size such as Standard_NC4as_T4_v3."
            )
        if size.lower() not in {n.lower() for n, *_ in SUPPORTED_VM_SIZES}:
            warn_ignored("ComputeTarget.create", "vm_size", f"{size} is not in the local list of sizes")
        max_nodes = int(config.scale_settings.maximum_node_count or 1)
        min_nodes = int(config.scale_settings.minimum_node_count or 0)
        idle = int(config.scale_settings.idle_seconds_before_scaledown or 1800)
        if max_nodes < 1 or min_nodes > max_nodes:
            raise ComputeTargetException(f"Invalid node counts: min_nodes={min_nodes}, max_nodes={max_nodes}.")
        for arg in ("vnet_name", "subnet_name", "admin_username", "identity_type"):
            if getattr(config, arg, None):
                warn_ignored("AmlCompute.provisioning_configuration", arg)
        try:
            compute_records.create(workspace._store, name, size, min_nodes, max_nodes, idle, config.tags or {})
        except compute_records.ComputeConflict as exc:
            raise ComputeTargetException(str(exc)) from None
        return ComputeTarget(workspace, name)

    @staticmethod
    def list(workspace):
        return [ComputeTarget(workspace, n) for n in compute_records.names(workspace._store)]


def machine_facts() -> dict:
    return {
        "cpus": os.cpu_count(),
        "memoryGB": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpus(),
    }


def describe_machine() -> str:
    facts = machine_facts()
    gpus = ", ".join(facts["gpus"]) or "no GPU (training uses the CPU)"
    return f"{facts['cpus']} CPUs, {facts['memoryGB']} GB memory, {gpus}"


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


# azureml-core's RunConfiguration keeps a target's name only for its own ComputeTarget types and silently
# falls back to "local" for anything else: registering the twin makes ScriptRunConfig(compute_target=cluster) work.
AzureComputeTarget.register(AmlCompute)
