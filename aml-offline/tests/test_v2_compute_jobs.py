"""SDK v2 compute and job files as Microsoft's azureml-examples use them, through the local workspace's ``MLClient``.

Compute: ``AmlCompute`` and ``ComputeInstance`` made, read, powered and deleted with ``ml_client.compute``; nodes,
usage and sizes as azure-ai-ml's own ``AmlComputeNodeInfo``, ``Usage`` and ``VmSize``; a job naming a compute the
workspace lacks refused at submit with Azure's words; a job with no compute run as serverless.  Jobs: inputs from
the web (a real HTTP server on 127.0.0.1), datastore and job-output paths, MLTable folders and models; outputs read
back with ``jobs.download`` in azure-ai-ml's layout; ``stream``, ``studio_url``, archive and restore.  Each test
has a workspace of its own; jobs here wait on a gate file when a test must catch them running.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import pytest
from azure.ai.ml import Input, Output, command
from azure.ai.ml.constants import ListViewType
from azure.ai.ml.entities import (
    AmlCompute,
    AmlComputeNodeInfo,
    ComputeInstance,
    Data,
    Environment,
    Model,
    Usage,
    VmSize,
)
from azure.ai.ml.exceptions import JobException, ValidationException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from aml_offline import LocalWorkspaceWarning, NotAvailableOffline
from twin_support import script_dir

ENV = Environment(conda_file={"dependencies": ["python=3.11", {"pip": ["mlflow"]}]}, name="tests-env")

#: Reads each input it is given (a file or a folder), writes to ${{outputs.out}} and ./outputs; waits for a gate
#: file when one is given, so a test can catch the job running
SCRIPT = """
import argparse, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--data", nargs="*", default=[])
parser.add_argument("--out")
parser.add_argument("--gate")
parser.add_argument("--fail", action="store_true")
parser.add_argument("--n")
args = parser.parse_args()
print("n", args.n)
for path in args.data:
    if os.path.isdir(path):
        print("folder", sorted(os.listdir(path)))
    else:
        print("file", os.path.basename(path), open(path).read().strip())
if args.gate:
    deadline = time.time() + 60
    while not os.path.exists(args.gate) and time.time() < deadline:
        time.sleep(0.05)
if args.fail:
    sys.exit("asked to fail")
if args.out:
    with open(os.path.join(args.out, "model.txt"), "w") as f:
        f.write("weights")
os.makedirs("outputs", exist_ok=True)
open("outputs/metrics.txt", "w").write("accuracy=0.9")
"""


@pytest.fixture()
def ml(tmp_path, monkeypatch):
    """The local workspace's MLClient on a fresh workspace in this test's folder."""
    import aml_offline
    from aml_offline.facade_v2 import MLClient

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the test's own HTTP server is never behind a proxy
    monkeypatch.chdir(tmp_path)
    yield MLClient(credential=None, subscription_id="sub", resource_group_name="rg", workspace_name="ws")
    aml_offline.stop_everything(tmp_path / "ws")  # nothing outlives its test, even a failed one


def _job(tmp_path, args="", **kwargs):
    src = script_dir(tmp_path, SCRIPT)
    return command(code=str(src), command=f"python train.py {args}", environment=ENV,
                   experiment_name="v2-compute-jobs", **kwargs)  # fmt: skip


def _wait(ml, name, statuses=("Completed", "Failed", "Canceled"), timeout=60):
    deadline = time.time() + timeout
    while (status := ml.jobs.get(name).status) not in statuses:
        assert time.time() < deadline, f"job {name} is {status}, not one of {statuses}"
        time.sleep(0.1)
    return status


def _read_log(ml, name) -> str:
    from aml_offline.records import runs as run_records

    spec = run_records.spec_of(ml._store, name)
    return (Path(spec["artifact_dir"]) / run_records.DRIVER_LOG).read_text()


# --- compute --------------------------------------------------------------------------------------------------------


def test_clusters_and_instances_as_the_compute_sample_makes_them(ml):
    """compute.ipynb's cells: a cluster with every sample argument, instances minimal and sized, get, list, stop,
    start, restart, delete.  Entities come back as azure-ai-ml builds them from Azure's answer."""
    cluster = AmlCompute(name="basic-example", type="amlcompute", size="STANDARD_DS3_v2", location="westus",
                         min_instances=0, max_instances=2, idle_time_before_scale_down=120)  # fmt: skip
    made = ml.compute.begin_create_or_update(cluster).result()
    assert isinstance(made, AmlCompute)
    assert (made.size, made.min_instances, made.max_instances, made.idle_time_before_scale_down) == (
        "STANDARD_DS3_v2", 0, 2, 120
    )  # fmt: skip
    assert (made.tier, made.location, made.provisioning_state) == ("dedicated", "westus", "Succeeded")
    assert made.id.endswith("/workspaces/ws/computes/basic-example") and made.id.startswith("/subscriptions/sub/")
    low = AmlCompute(name="low-pri-example", size="STANDARD_DS3_v2", min_instances=0, max_instances=2,
                     idle_time_before_scale_down=120, tier="low_priority")  # fmt: skip
    assert ml.compute.begin_create_or_update(low).result().tier == "low_priority"
    minimal = ml.compute.begin_create_or_update(ComputeInstance(name="min-ci202601011200")).result()
    assert (minimal.size, minimal.state) == ("STANDARD_DS3_V2", "Running"), "azure-ai-ml's default size"
    assert minimal.last_operation["operationName"] == "Create"
    ml.compute.begin_create_or_update(ComputeInstance(name="basic-ci", size="STANDARD_DS3_v2")).result()
    assert ml.compute.begin_create_or_update(ComputeInstance(name="basic-ci", size="STANDARD_DS3_v2")).result(), (
        "the same instance again changes nothing (a re-run notebook)"
    )
    assert sorted(c.name for c in ml.compute.list()) == ["basic-ci", "basic-example", "low-pri-example",
                                                         "min-ci202601011200"]  # fmt: skip
    assert [c.name for c in ml.compute.list(compute_type="computeinstance")] == ["basic-ci", "min-ci202601011200"]

    ml.compute.begin_stop("basic-ci").wait()
    stopped = ml.compute.get("basic-ci")
    assert (stopped.state, stopped.last_operation["operationName"]) == ("Stopped", "Stop")
    with pytest.raises(HttpResponseError, match=r"current state \(Stopped\) does not support Restart"):
        ml.compute.begin_restart("basic-ci")
    ml.compute.begin_start("basic-ci").wait()
    ml.compute.begin_restart("basic-ci").wait()
    restarted = ml.compute.get("basic-ci")
    assert (restarted.state, restarted.last_operation["operationName"]) == ("Running", "Restart")
    with pytest.raises(HttpResponseError, match="start, stop and restart are for compute instances") as refused:
        ml.compute.begin_stop("basic-example")
    assert refused.value.error.code == "UserError"

    ml.compute.begin_update(AmlCompute(name="basic-example", size="STANDARD_DS3_v2", max_instances=3)).result()
    assert ml.compute.get("basic-example").max_instances == 3, "an update changes the node counts, as on Azure"
    with pytest.raises(ValidationException, match="retired"):
        ml.compute.begin_create_or_update(AmlCompute(name="old", size="STANDARD_NC6"))
    with pytest.raises(ValidationException, match="between 2 and 16 characters"):
        ml.compute.begin_create_or_update(AmlCompute(name="a-name-far-too-long-for-azure"))
    with pytest.raises(ValidationException, match="AlreadyExists"):
        ml.compute.begin_create_or_update(ComputeInstance(name="basic-example"))
    for name in ("min-ci202601011200", "basic-ci", "basic-example", "low-pri-example"):
        ml.compute.begin_delete(name).wait()
    assert ml.compute.list() == []
    with pytest.raises(ResourceNotFoundError, match="basic-ci"):
        ml.compute.get("basic-ci")


def test_nodes_usage_and_sizes_are_azure_ai_mls_entities_and_stopping_an_instance_cancels_its_job(ml, tmp_path):
    ml.compute.begin_create_or_update(AmlCompute(name="cpu-cluster", size="Standard_DS3_v2", max_instances=1)).result()
    ml.compute.begin_create_or_update(ComputeInstance(name="my-ci", size="Standard_DS3_v2")).result()
    gate = tmp_path / "gate"
    on_cluster = ml.jobs.create_or_update(_job(tmp_path, f"--gate {gate}", compute="cpu-cluster"))
    on_instance = ml.jobs.create_or_update(_job(tmp_path, f"--gate {gate}", compute="my-ci"))
    _wait(ml, on_cluster.name, ("Running",))
    _wait(ml, on_instance.name, ("Running",))

    nodes = ml.compute.list_nodes("cpu-cluster")
    assert len(nodes) == 1 and isinstance(nodes[0], AmlComputeNodeInfo)
    # azure-ai-ml 1.35 copies Azure's answer into the entity under its REST names (runId, nodeId ...)
    assert (nodes[0].nodeId, nodes[0].runId, nodes[0].privateIpAddress) == ("node-0", on_cluster.name, "127.0.0.1")
    assert ml.compute.get("my-ci").state == "JobRunning"

    sizes = ml.compute.list_sizes()
    assert all(isinstance(s, VmSize) for s in sizes)
    t4 = next(s for s in sizes if s.name == "Standard_NC4as_T4_v3")
    assert (t4.family, t4.gpus, t4.vCPUs) == ("standardNCASv3_T4Family", 1, 4)
    assert len(ml.compute.list_sizes(compute_type="AmlCompute")) == len(sizes)
    assert ml.compute.list_sizes(compute_type="Kubernetes") == []
    with pytest.warns(LocalWorkspaceWarning, match="location"):
        ml.compute.list_sizes(location="westus")
    usage = ml.compute.list_usage()
    assert all(isinstance(u, Usage) for u in usage)
    total = next(u for u in usage if u.name["value"] == "TotalDedicatedCores")
    family = next(u for u in usage if u.name["value"] == "standardDSv2Family")
    assert (total.unit, total.currentValue, family.currentValue) == ("Count", 8, 8), "two DS3_v2 nodes in use"
    assert total.limit >= 1

    ml.compute.begin_stop("my-ci").wait()  # as on Azure, the job on a stopped instance ends
    assert ml.jobs.get(on_instance.name).status == "Canceled"
    assert "my-ci" in ml.jobs.get(on_instance.name).properties["azureml.cancelReason"]
    gate.write_text("go")
    assert _wait(ml, on_cluster.name) == "Completed"
    assert ml.compute.list_nodes("cpu-cluster") == []


def test_a_job_naming_a_compute_the_workspace_lacks_is_refused_at_submit_with_azures_words(ml, tmp_path):
    ml.compute.begin_create_or_update(AmlCompute(name="cpu", size="Standard_DS3_v2")).result()
    for name in ("cpu-cluster", "azureml:gpu-cluster"):
        with pytest.raises(HttpResponseError, match=r"\(UserError\) Unknown compute target '(cpu|gpu)-cluster'\.") as e:
            ml.jobs.create_or_update(_job(tmp_path, compute=name))
        assert e.value.error.code == "UserError"
        assert "it has: cpu" in str(e.value), "the details say what the local workspace has"
    assert ml.jobs.list() == [], "nothing ran"


def test_a_command_without_compute_runs_on_serverless_compute(ml, tmp_path, capsys):
    job = ml.jobs.create_or_update(_job(tmp_path, "--fail"))
    assert job.compute is None and job.resources.instance_count == 1
    with pytest.raises(JobException, match='"code": "UserError"') as failed:
        ml.jobs.stream(job.name)
    assert "asked to fail" in str(failed.value)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:2] == [f"RunId: {job.name}", f"Web View: {job.studio_url}"]
    assert "\nStreaming user_logs/std_log.txt\n===============================\n\n" in out
    assert out.rstrip().endswith(f"Execution Summary\n=================\nRunId: {job.name}\nWeb View: {job.studio_url}")
    assert job.studio_url.startswith("http://127.0.0.1:5000/#/experiments/")
    from aml_offline.records import runs as run_records

    assert run_records.spec_of(ml._store, job.name)["target"] == "serverless"
    assert ml.jobs.get(job.name).compute is None


# --- job inputs -------------------------------------------------------------------------------------------------------


@pytest.fixture()
def web(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``site/`` (never the internet)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "iris.csv").write_text("5.1,3.5,setosa\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def test_web_inputs_are_fetched_with_their_sha256_and_a_dead_address_fails_the_job_naming_it(ml, tmp_path, web):
    from aml_offline.records import datasets as dataset_records

    base, server = web
    url = f"{base}/iris.csv"
    job = ml.jobs.create_or_update(_job(
        tmp_path, "--data ${{inputs.table}} ${{inputs.folder}}",
        inputs={"table": Input(type="uri_file", path=url), "folder": Input(type="uri_folder", path=url)},
    ))  # fmt: skip
    assert _wait(ml, job.name) == "Completed", ml.jobs.get(job.name).properties.get("azureml.error")
    log = _read_log(ml, job.name)
    assert "file iris.csv 5.1,3.5,setosa" in log and "folder ['iris.csv']" in log
    assert len(dataset_records.known_hash(ml._store, url)) == 64, "its SHA-256 is recorded at the first download"
    with pytest.raises(NotAvailableOffline, match="cannot be listed over plain HTTP"):
        ml.jobs.create_or_update(_job(tmp_path, inputs={"d": Input(type="uri_folder", path=f"{base}/")}))
    server.shutdown()
    server.server_close()
    dead = f"{base}/gone.csv"
    failed = ml.jobs.create_or_update(_job(tmp_path, "--data ${{inputs.t}}", inputs={"t": Input(path=dead)}))
    assert _wait(ml, failed.name) == "Failed"
    assert dead in ml.jobs.get(failed.name).properties["azureml.error"], "the error names the address"


def test_mltable_model_datastore_and_job_output_inputs_reach_the_command_as_folders(ml, tmp_path):
    table = tmp_path / "sample-mltable"
    table.mkdir()
    (table / "MLTable").write_text("paths:\n  - file: ./titanic.csv\n")
    (table / "titanic.csv").write_text("a,b\n1,2\n")
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "model.pkl").write_text("pickle")
    ml.models.create_or_update(Model(name="my-model", path=str(weights), type="custom_model"))
    first = ml.jobs.create_or_update(_job(
        tmp_path, "--data ${{inputs.table}} ${{inputs.model}} --out ${{outputs.out}}",
        inputs={"table": Input(type="mltable", path=str(table)), "model": Input(type="custom_model",
                                                                                path="azureml:my-model:1")},
        outputs={"out": Output(type="uri_folder")},
    ))  # fmt: skip
    assert _wait(ml, first.name) == "Completed", ml.jobs.get(first.name).properties.get("azureml.error")
    log = _read_log(ml, first.name)
    assert "folder ['MLTable', 'titanic.csv']" in log and "folder ['model.pkl']" in log
    out = ml.jobs.get(first.name).outputs["out"].path
    assert out == f"azureml://datastores/workspaceblobstore/paths/azureml/{first.name}/out/", "Azure's default path"
    second = ml.jobs.create_or_update(_job(
        tmp_path, "--data ${{inputs.prev}} ${{inputs.same}}",
        inputs={"prev": Input(type="uri_folder", path=out),
                "same": Input(type="uri_file", path=f"azureml://jobs/{first.name}/outputs/out/paths/model.txt")},
    ))  # fmt: skip
    assert _wait(ml, second.name) == "Completed", ml.jobs.get(second.name).properties.get("azureml.error")
    assert "folder ['model.txt']" in _read_log(ml, second.name) and "file model.txt weights" in _read_log(
        ml, second.name
    )
    with pytest.raises(ValidationException, match="not a folder with an MLTable file"):
        ml.jobs.create_or_update(_job(tmp_path, inputs={"t": Input(type="mltable", path=str(weights))}))
    with pytest.raises(ValidationException, match="does not exist in the local workspace"):
        ml.jobs.create_or_update(_job(tmp_path, inputs={"t": Input(path="azureml://datastores/workspaceblobstore/"
                                                                         "paths/nothing/")}))  # fmt: skip


# --- job outputs, download, list -----------------------------------------------------------------------------------


def test_outputs_download_in_azure_ai_mls_layout_and_register_as_a_model(ml, tmp_path):
    gate = tmp_path / "gate"
    job = ml.jobs.create_or_update(_job(
        tmp_path, f"--out ${{{{outputs.model_output}}}} --gate {gate}",
        outputs={"model_output": Output(type="uri_folder"),
                 "copy": Output(type="uri_folder", path="azureml://datastores/workspaceblobstore/paths/kept/${{name}}")},
    ))  # fmt: skip
    _wait(ml, job.name, ("Running",))
    with pytest.raises(JobException, match="This job is in state Running. Download is allowed only in states"):
        ml.jobs.download(job.name, download_path=str(tmp_path / "early"))
    gate.write_text("go")
    assert _wait(ml, job.name) == "Completed"
    done = ml.jobs.get(job.name)
    assert done.outputs["copy"].path == f"azureml://datastores/workspaceblobstore/paths/kept/{job.name}/"
    assert done.outputs["default"].path == f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{job.name}"

    def files(folder):
        return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())

    ml.jobs.download(job.name, output_name="model_output", download_path=str(tmp_path / "one"))
    assert files(tmp_path / "one") == ["named-outputs/model_output/model.txt"]
    ml.jobs.download(job.name, download_path=str(tmp_path / "default"))
    assert files(tmp_path / "default") == ["artifacts/outputs/metrics.txt", "artifacts/user_logs/std_log.txt"]
    ml.jobs.download(job.name, download_path=str(tmp_path / "all"), all=True)
    assert files(tmp_path / "all") == ["artifacts/outputs/metrics.txt", "artifacts/user_logs/std_log.txt",
                                       "named-outputs/model_output/model.txt"]  # fmt: skip
    ml.jobs.download(job.name, output_name="nothing", download_path=str(tmp_path / "none"))
    assert not (tmp_path / "none").exists(), "an output the job lacks brings nothing, as on Azure"
    path = f"azureml://jobs/{job.name}/outputs/model_output/paths/model.txt"
    model = ml.models.create_or_update(Model(name="from-output", type="custom_model", path=path))
    assert Path(model.path).read_text() == "weights"
    assert ml.models.get("from-output", version="1").version == "1"


def test_archived_jobs_leave_the_default_list_and_come_back_when_restored(ml, tmp_path):
    """(A sweep's trials, ``jobs.list(parent_job_name=...)``, are checked with the sweeps in tests/test_v2.py.)"""
    kept, archived = (ml.jobs.create_or_update(_job(tmp_path)) for _ in range(2))
    for job in (kept, archived):
        _wait(ml, job.name)
    ml.jobs.archive(archived.name)
    assert [j.name for j in ml.jobs.list()] == [kept.name]
    assert [j.name for j in ml.jobs.list(list_view_type=ListViewType.ARCHIVED_ONLY)] == [archived.name]
    assert {j.name for j in ml.jobs.list(list_view_type=ListViewType.ALL)} == {kept.name, archived.name}
    assert ml.jobs.get(archived.name).status == "Completed", "an archived job is still there"
    ml.jobs.restore(archived.name)
    assert {j.name for j in ml.jobs.list()} == {kept.name, archived.name}
    assert ml.jobs.list(parent_job_name=kept.name) == [], "a command job has no children"


def test_data_assets_from_local_paths_feed_a_job(ml, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.csv").write_text("1\n")
    ml.data.create_or_update(Data(name="titanic", path=str(folder / "a.csv"), type="uri_file"))
    ml.data.create_or_update(Data(name="folder", path=str(folder), type="uri_folder"))
    inputs = {"f": Input(type="uri_file", path="azureml:titanic:1"),
              "d": Input(type="uri_folder", path="azureml:folder@latest")}  # fmt: skip
    job = ml.jobs.create_or_update(_job(tmp_path, "--data ${{inputs.f}} ${{inputs.d}}", inputs=inputs))
    assert _wait(ml, job.name) == "Completed"
    assert "file a.csv 1" in _read_log(ml, job.name) and "folder ['a.csv']" in _read_log(ml, job.name)
