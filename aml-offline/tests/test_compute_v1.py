"""Compute as Microsoft's SDK v1 samples use it: clusters (get-or-create, status, nodes, update, delete), compute
instances (create, state, one run at a time, stop/start/restart/delete) and the "local" target.

Shapes are checked against azureml-core's own classes (the keys its status objects serialize), words against its
exceptions.  Runs here wait on a gate file the test writes, so a test decides when each one ends.
"""

from __future__ import annotations

import time

import pytest
from azureml.core import ScriptRunConfig
from azureml.core.compute import AksCompute, RemoteCompute
from azureml.core.compute import ComputeTarget as AzureComputeTarget
from azureml.core.compute.amlcompute import AmlComputeStatus
from azureml.core.compute.computeinstance import ComputeInstanceStatus
from azureml.core.compute_target import LocalTarget
from azureml.core.runconfig import TensorflowConfiguration
from azureml.exceptions import ComputeTargetException, UserErrorException

from aml_offline import AmlCompute, ComputeInstance, ComputeTarget, Experiment, NotAvailableOffline
from twin_support import script_dir

#: The keys azureml-core's status objects serialize, read from its own classes
CLUSTER_STATUS_KEYS = set(AmlComputeStatus(*[None] * 13).serialize())
INSTANCE_STATUS_KEYS = set(ComputeInstanceStatus(*[None] * 8).serialize())
NODE_KEYS = {"nodeId", "privateIpAddress", "publicIpAddress", "port", "nodeState", "runId"}

GATED = """
import os, sys, time
deadline = time.time() + 60
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
print("done")
"""


def _submit(ws, src, target, gate, experiment="compute"):
    config = ScriptRunConfig(source_directory=str(src), script="train.py", arguments=[str(gate)],
                             compute_target=target)  # fmt: skip
    return Experiment(ws, experiment).submit(config)


def _wait_for(run, status, timeout=60):
    deadline = time.time() + timeout
    while run.get_status() != status:
        assert time.time() < deadline, f"{run.id} is {run.get_status()}, not {status}"
        time.sleep(0.1)


def _cluster(ws, name="cpu-cluster", **kwargs):
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", **{"max_nodes": 4, **kwargs})
    return ComputeTarget.create(ws, name, config)


def test_get_or_create_a_cluster_with_azures_words_and_shapes(ws, capsys):
    with pytest.raises(ComputeTargetException) as caught:
        ComputeTarget(workspace=ws, name="cpu-cluster")
    assert caught.value.message == (
        "ComputeTargetNotFound: Compute Target with name cpu-cluster not found in provided workspace"
    )
    cluster = _cluster(ws, idle_seconds_before_scaledown="300", tags={"team": "vision"})
    cluster.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert 'Provisioning operation finished, operation "Succeeded"' in out
    assert "Minimum number of nodes requested have been provisioned" in out and "this machine" in out

    found = ComputeTarget(workspace=ws, name="cpu-cluster")
    assert isinstance(found, AmlCompute) and isinstance(found, AzureComputeTarget)  # RunConfiguration keeps its name
    assert (found.vm_size, found.vm_priority, found.tags) == ("STANDARD_D2_V2", "dedicated", {"team": "vision"})
    assert found.scale_settings.maximum_node_count == 4 and found.scale_settings.idle_seconds_before_scaledown == 300
    assert found.id.endswith("/workspaces/local-workspace/computes/cpu-cluster")
    status = found.get_status().serialize()
    assert set(status) == CLUSTER_STATUS_KEYS | {"localMachine"}
    assert status["provisioningState"] == "Succeeded" and status["currentNodeCount"] == 0
    assert status["scaleSettings"] == {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT300S"}
    assert found.serialize()["properties"]["properties"]["vmSize"] == "STANDARD_D2_V2"
    assert found.list_nodes() == []

    sizes = AmlCompute.supported_vmsizes(workspace=ws)
    assert all(set(s) == {"name", "vCPUs", "gpus", "memoryGB", "maxResourceVolumeMB"} for s in sizes)
    assert "standard_d2_v2" in {s["name"].lower() for s in sizes}
    assert [c.name for c in ComputeTarget.list(ws)] == ["cpu-cluster"] and list(ws.compute_targets) == ["cpu-cluster"]

    found.update(min_nodes=2)
    assert found.scale_settings.minimum_node_count == 2 and found.scale_settings.maximum_node_count == 4
    nodes = found.list_nodes()  # min_nodes keeps nodes up: idle, with no run
    assert [(n["nodeState"], n["runId"]) for n in nodes] == [("idle", None), ("idle", None)]
    assert all(set(n) == NODE_KEYS for n in nodes)
    assert found.get_status().serialize()["nodeStateCounts"]["idleNodeCount"] == 2
    with pytest.raises(ComputeTargetException, match="max nodes count must be greater than or equal to min nodes"):
        found.update(max_nodes=1)
    with pytest.raises(ComputeTargetException, match="Detach is not supported for AmlCompute object"):
        found.detach()

    found.delete()
    found.wait_for_completion(show_output=True, is_delete_operation=True)
    with pytest.raises(ComputeTargetException, match="ComputeTargetNotFound"):
        ComputeTarget(ws, "cpu-cluster")
    assert ComputeTarget.list(ws) == []


def test_what_cannot_exist_offline_is_refused_clearly(ws):
    with pytest.raises(UserErrorException, match="local is a reserved name"):  # azureml-core's words
        _cluster(ws, name="local")
    with pytest.raises(ComputeTargetException, match="retired"):
        ComputeTarget.create(ws, "old", AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=1))
    ssh = AmlCompute.provisioning_configuration(vm_size="Standard_DS3_v2", max_nodes=1, admin_username="me",
                                                admin_user_password="Secret-123")  # fmt: skip
    with pytest.raises(NotAvailableOffline, match="AmlCompute SSH access"):
        ComputeTarget.create(ws, "ssh-cluster", ssh)
    with pytest.raises(NotAvailableOffline, match="ComputeInstance SSH access"):
        ComputeTarget.create(ws, "ssh-ci", ComputeInstance.provisioning_configuration(ssh_public_access=True))
    attach = RemoteCompute.attach_configuration(address="10.0.0.4", ssh_port=22, username="me", password="pw")
    with pytest.raises(NotAvailableOffline, match=r"ComputeTarget.attach \(RemoteCompute\).*cannot be reached"):
        ComputeTarget.attach(ws, "my-vm", attach)
    with pytest.raises(NotAvailableOffline, match=r"ComputeTarget.create for AksCompute"):
        ComputeTarget.create(ws, "aks", AksCompute.provisioning_configuration())
    with pytest.raises(ComputeTargetException, match="Compute name 'x' is not available. Reason: Invalid"):
        ComputeTarget.create(ws, "x", ComputeInstance.provisioning_configuration())
    assert ComputeTarget.list(ws) == []


def test_list_nodes_names_the_runs_holding_the_clusters_nodes(ws, tmp_path):
    cluster = _cluster(ws, max_nodes=1)
    src, gate = script_dir(tmp_path, GATED), tmp_path / "gate"
    first = _submit(ws, src, cluster, gate)
    second = _submit(ws, src, "cpu-cluster", gate)  # by name, as azureml-core allows
    _wait_for(first, "Running")
    _wait_for(second, "Queued")
    nodes = cluster.list_nodes()
    assert [(n["nodeId"], n["nodeState"], n["runId"]) for n in nodes] == [("node-0", "running", first.id)]
    counts = cluster.get_status().serialize()["nodeStateCounts"]
    assert (counts["runningNodeCount"], counts["idleNodeCount"]) == (1, 0)
    time.sleep(0.5)
    assert second.get_status() == "Queued", "max_nodes=1: the second run waits for the node"
    assert [(r.run_id, r.status) for r in cluster.get_active_runs()] == [(first.id, "Running"), (second.id, "Queued")]
    gate.write_text("go")
    for run in (first, second):
        run.wait_for_completion()
        assert run.get_details()["target"] == "cpu-cluster"
    assert cluster.list_nodes() == [] and list(cluster.get_active_runs()) == []


def test_the_local_target_is_this_machine_with_no_queue(ws, tmp_path):
    src, gate = script_dir(tmp_path, GATED), tmp_path / "gate"
    gate.write_text("go")
    for target in ("local", LocalTarget(), None):  # the string, azureml-core's LocalTarget, and the default
        run = _submit(ws, src, target, gate)
        assert run.wait_for_completion()["target"] == "local" and run.get_status() == "Completed"
    with pytest.raises(ComputeTargetException, match="ComputeTargetNotFound"):  # as on Azure: not a record
        ComputeTarget(workspace=ws, name="local")
    with pytest.raises(UserErrorException, match="'nowhere' does not exist in the local workspace"):
        _submit(ws, src, "nowhere", gate)


def test_a_compute_instance_runs_one_job_at_a_time_and_stops_starts_and_deletes(ws, tmp_path, capsys):
    config = ComputeInstance.provisioning_configuration(vm_size="STANDARD_D3_V2", description="my box")
    instance = ComputeTarget.create(ws, "ci-test", config)
    instance.wait_for_completion(show_output=True)
    assert "Running" in capsys.readouterr().out
    assert isinstance(ComputeInstance(workspace=ws, name="ci-test"), ComputeInstance)
    assert isinstance(instance, AzureComputeTarget) and instance.description == "my box"
    status = instance.get_status()
    assert set(status.serialize()) == INSTANCE_STATUS_KEYS | {"localMachine"}
    assert (status.state, status.vm_size) == ("Running", "STANDARD_D3_V2")
    with pytest.raises(ComputeTargetException, match=r"Compute name 'ci-test' is not available. Reason: AlreadyExists"):
        ComputeTarget.create(ws, "ci-test", config)

    src, gate = script_dir(tmp_path, GATED), tmp_path / "gate"
    first = _submit(ws, src, instance, gate)
    later = ScriptRunConfig(source_directory=str(src), script="train.py", arguments=[str(gate)])
    later.run_config.target = instance  # as Microsoft's compute instance sample sets it
    second = Experiment(ws, "compute").submit(later)
    _wait_for(first, "Running")
    _wait_for(second, "Queued")
    time.sleep(0.5)
    assert instance.get_status().state == "JobRunning" and second.get_status() == "Queued"  # one node
    gate.write_text("go")
    assert first.wait_for_completion()["target"] == second.wait_for_completion()["target"] == "ci-test"

    two_workers = TensorflowConfiguration(worker_count=2, parameter_server_count=0)
    distributed = ScriptRunConfig(source_directory=str(src), script="train.py", compute_target=instance,
                                  distributed_job_config=two_workers)  # fmt: skip
    with pytest.raises(UserErrorException, match="compute instance 'ci-test' has one"):
        Experiment(ws, "compute").submit(distributed)

    gate.unlink()
    running = _submit(ws, src, instance, gate)
    _wait_for(running, "Running")
    instance.stop(wait_for_completion=True, show_output=True)  # stopping the VM ends the job on it
    assert running.get_status() == "Canceled" and "was stopped" in running.get_details()["cancelReason"]
    assert instance.get_status().state == "Stopped"
    with pytest.raises(ComputeTargetException, match=r"current state \(Stopped\) does not support Stop operation"):
        instance.stop()
    with pytest.raises(UserErrorException, match="'ci-test' is Stopped: start it first"):
        _submit(ws, src, instance, gate)
    instance.start(wait_for_completion=True, show_output=True)
    assert instance.get_status().state == "Running"
    with pytest.raises(ComputeTargetException, match=r"current state \(Running\) does not support Start operation"):
        instance.start()
    instance.restart(wait_for_completion=True, show_output=True)
    assert [c.name for c in ComputeTarget.list(ws)] == ["ci-test"] and type(ws.compute_targets["ci-test"]).__name__ == (
        "ComputeInstance"
    )
    instance.delete(wait_for_completion=True, show_output=True)
    with pytest.raises(ComputeTargetException, match="ComputeTargetNotFound"):
        ComputeInstance(workspace=ws, name="ci-test")
