"""SDK v2 (azure-ai-ml) on the local workspace: MLClient's data, compute, jobs, sweeps, models and online endpoints.

The same records, supervisors, sweep rules and inference server as the v1 tests exercise; here through
azure-ai-ml's own entity classes (``command``, ``Input``, ``Data``, ``Model``, ``ManagedOnlineEndpoint`` ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from aml_offline.execution import ledger
from aml_offline.offline import NotAvailableOffline
from azure.ai.ml import Input, command
from azure.ai.ml.entities import (
    AmlCompute,
    CodeConfiguration,
    Data,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    PipelineJob,
)
from azure.ai.ml.exceptions import JobException, ValidationException
from azure.ai.ml.sweep import BanditPolicy, Choice
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from support import PROJECT

# A training script that logs with mlflow, as SDK v2 scripts do (the job's MLFLOW_RUN_ID points it at its run)
FAKE_TRAINING = """
    import argparse, os, sys, time
    import mlflow

    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--quality", type=float)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.3)
    args = parser.parse_args()
    print("data files:", sorted(os.listdir(args.data)) if args.data else None)
    for i in range(args.steps):
        mlflow.log_metric("Accuracy", args.quality + i / 1000, step=i)
        time.sleep(args.pause)
    if args.quality < 0:
        sys.exit("the quality is negative")
    os.makedirs("outputs/model", exist_ok=True)
    with open("outputs/model/weights.txt", "w") as f:
        f.write(str(args.quality))
"""


@pytest.fixture()
def ml(tmp_path, monkeypatch):
    """The local workspace's MLClient on a fresh workspace in this test's folder, with one cluster."""
    from aml_offline.facade_v2 import MLClient

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    client = MLClient.from_config(credential=None)
    client.compute.begin_create_or_update(AmlCompute(name="cpu", size="Standard_DS3_v2", max_instances=4)).result()
    yield client
    for endpoint in client.online_endpoints.list():  # no server outlives its test
        client.online_endpoints.begin_delete(endpoint.name).result()


def _source(tmp_path: Path, body: str = FAKE_TRAINING) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(body))
    return src


ENV = Environment(conda_file={"dependencies": ["python=3.11", {"pip": ["mlflow", "azureml-mlflow"]}]})


def _job(src: Path, quality, **kwargs):
    inputs = {"quality": quality, **kwargs.pop("inputs", {})}
    data = "--data ${{inputs.data}} " if "data" in inputs else ""
    return command(
        code=str(src),
        command=f"python train.py {data}--quality ${{{{inputs.quality}}}} " + kwargs.pop("extra", ""),
        inputs=inputs,
        environment=ENV,
        compute="cpu",
        experiment_name=kwargs.pop("experiment_name", "v2-tests"),
        **kwargs,
    )


def _wait(ml, name: str, timeout: float = 120) -> str:
    end = time.time() + timeout
    while time.time() < end:
        status = ml.jobs.get(name).status
        if status in ("Completed", "Failed", "Canceled"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not end in {timeout} s")


# --- data and compute ---------------------------------------------------------------------------------


def test_data_assets_have_versions_and_keep_their_files(ml, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "a.txt").write_text("one")
    first = ml.data.create_or_update(Data(name="digits", path=str(folder), type="uri_folder"))
    again = ml.data.create_or_update(Data(name="digits", path=str(folder), type="uri_folder"))
    assert (first.version, again.version) == ("1", "1"), "the same files again give the same version"
    (folder / "a.txt").write_text("two")
    second = ml.data.create_or_update(Data(name="digits", path=str(folder), type="uri_folder"))
    assert second.version == "2"
    assert (Path(first.path) / "a.txt").read_text() == "one", "a version's files never change (uploaded copy)"
    assert ml.data.get("digits", label="latest").version == "2"
    assert ml.data.get("digits", version="1").path == first.path
    assert [d.version for d in ml.data.list(name="digits")] == ["2", "1"]
    with pytest.raises(ValidationException, match="Version 1 of data asset 'digits' exists already"):
        (folder / "a.txt").write_text("three")
        ml.data.create_or_update(Data(name="digits", version="1", path=str(folder), type="uri_folder"))
    with pytest.raises(ResourceNotFoundError, match="digits:7"):
        ml.data.get("digits", version="7")


def test_compute_is_get_or_create_and_refuses_retired_sizes(ml):
    cluster = ml.compute.get("cpu")
    assert (cluster.size, cluster.max_instances, cluster.provisioning_state) == ("Standard_DS3_v2", 4, "Succeeded")
    again = ml.compute.begin_create_or_update(AmlCompute(name="cpu", size="Standard_DS3_v2", max_instances=2))
    assert again.result().max_instances == 2, "create_or_update updates the node counts, as on Azure"
    with pytest.raises(ValidationException, match="retired"):
        ml.compute.begin_create_or_update(AmlCompute(name="old", size="STANDARD_NC6"))
    with pytest.raises(ResourceNotFoundError, match="gpu-cluster"):
        ml.compute.get("gpu-cluster")


# --- jobs ---------------------------------------------------------------------------------------------------


def test_a_command_job_runs_with_its_data_asset_and_its_mlflow_metrics_land_on_its_run(ml, tmp_path, capsys):
    import mlflow
    from aml_offline import Experiment, Workspace

    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    ml.data.create_or_update(Data(name="toy", path=str(folder), type="uri_folder"))
    job = _job(_source(tmp_path), 0.5, inputs={"data": Input(type="uri_folder", path="azureml:toy@latest")})
    submitted = ml.jobs.create_or_update(job)
    assert submitted.status in ("NotStarted", "Queued", "Preparing", "Running")
    ml.jobs.stream(submitted.name)
    out = capsys.readouterr().out
    assert f"RunId: {submitted.name}" in out and "Execution Summary" in out
    assert "data files: ['x.txt']" in out, "${{inputs.data}} became the data asset's local folder"
    done = ml.jobs.get(submitted.name)
    assert done.status == "Completed" and done.experiment_name == "v2-tests"
    mlflow.set_tracking_uri(ml.workspaces.get().mlflow_tracking_uri)
    run = mlflow.get_run(submitted.name)  # a job's name is its MLflow run id, as on Azure
    assert run.data.metrics["Accuracy"] == pytest.approx(0.503)
    history = mlflow.MlflowClient().get_metric_history(submitted.name, "Accuracy")
    assert [round(m.value, 3) for m in sorted(history, key=lambda m: m.step)] == [0.5, 0.501, 0.502, 0.503]
    v1_runs = {r.id: r for r in Experiment(Workspace.from_config(), "v2-tests").get_runs()}
    assert submitted.name in v1_runs, "one run history for v1 runs and v2 jobs"
    assert v1_runs[submitted.name].get_metrics()["Accuracy"] == pytest.approx([0.5, 0.501, 0.502, 0.503])
    ml.jobs.download(submitted.name, download_path=str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "artifacts" / "outputs" / "model" / "weights.txt").read_text() == "0.5"


def test_a_failing_job_ends_failed_and_stream_raises_job_exception_with_its_error(ml, tmp_path):
    job = ml.jobs.create_or_update(_job(_source(tmp_path), -1.0, extra="--steps 1"))
    with pytest.raises(JobException, match="the quality is negative"):
        ml.jobs.stream(job.name)
    failed = ml.jobs.get(job.name)
    assert failed.status == "Failed" and "the quality is negative" in failed.properties["azureml.error"]


def test_canceling_a_job_ends_it_canceled_and_stops_its_script(ml, tmp_path):
    job = ml.jobs.create_or_update(_job(_source(tmp_path), 0.5, extra="--steps 200"))
    store = ml._store
    owner = ledger.run_owner(job.name)
    end = time.time() + 60
    while ml.jobs.get(job.name).status != "Running" and time.time() < end:
        time.sleep(0.2)
    time.sleep(1)
    scripts = [e for e in ledger.entries(store, owner, ("script",), open_only=False)]
    assert scripts, "the script was recorded in the ledger"
    ml.jobs.begin_cancel(job.name).result()
    assert _wait(ml, job.name) == "Canceled"
    assert not any(ledger.verified(e) for e in scripts), "the script was stopped"
    assert "canceled by the user" in ml.jobs.get(job.name).properties["azureml.cancelReason"]


def test_bad_job_inputs_are_clear_errors_naming_the_job(ml, tmp_path):
    src = _source(tmp_path)
    with pytest.raises(ValidationException, match="data asset 'azureml:nope:1'.*01-data"):
        ml.jobs.create_or_update(_job(src, 0.5, inputs={"data": Input(type="uri_folder", path="azureml:nope:1")}))
    with pytest.raises(HttpResponseError, match="Unknown compute target 'gpu'"):  # Azure's words, at submit
        ml.jobs.create_or_update(_bad_compute(src))
    job = ml.jobs.create_or_update(_job(src, 0.5, extra="--x ${{inputs.missing}}"))
    assert _wait(ml, job.name) == "Failed"
    assert "${{inputs.missing}}" in ml.jobs.get(job.name).properties["azureml.error"]


def _bad_compute(src):
    job = _job(src, 0.5)
    job.compute = "gpu"
    return job


def test_what_the_local_workspace_does_not_do_raises_not_available_naming_it(ml, tmp_path):
    from aml_offline.facade_v2 import MLClient

    for name in ("batch_endpoints", "batch_deployments", "schedules", "registries"):
        with pytest.raises(NotAvailableOffline, match=f"MLClient.{name} is not available in the local workspace"):
            getattr(ml, name)
    with pytest.raises(NotAvailableOffline, match="registries"):
        MLClient(credential=None, registry_name="my-registry")  # the azureml registry's curated environments are known
    registered_env = _job(_source(tmp_path), 0.5)
    registered_env.environment = "azureml:keras-env@latest"
    with pytest.raises(ValidationException, match="Asset keras-env does not exist in workspace"):  # azure-ai-ml's
        ml.jobs.create_or_update(registered_env)
    with pytest.raises(NotAvailableOffline, match="mltable"):
        ml.data.create_or_update(Data(name="table", path=str(tmp_path), type="mltable"))
    with pytest.raises(NotAvailableOffline, match="JobOperations.validate"):
        ml.jobs.validate(PipelineJob(jobs={}))
    with pytest.raises(AttributeError, match="jbos"):
        ml.jbos  # noqa: B018  (a typo stays a typo)


def test_activate_makes_azure_ai_ml_mlclient_the_local_workspaces(tmp_path, monkeypatch):
    import aml_offline.boundary as boundary
    from aml_offline.facade_v2 import MLClient as LocalMLClient

    monkeypatch.setenv("AZUREML_MODE", "local")
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    try:
        assert boundary.activate() == "local"
        import azure.ai.ml
        from azure.ai.ml import MLClient

        assert MLClient is LocalMLClient and azure.ai.ml.MLClient is LocalMLClient
        assert azure.ai.ml.command.__module__.startswith("azure.ai.ml"), "entity builders stay azure-ai-ml's"
    finally:
        boundary.deactivate()
    from azure.ai.ml import MLClient

    assert MLClient is not LocalMLClient
    (tmp_path / "config.json").write_text(json.dumps({"subscription_id": "s", "resource_group": "rg",
                                                      "workspace_name": "my-ws"}))  # fmt: skip
    monkeypatch.setenv("AZUREML_MODE", "azure")
    try:
        assert boundary.activate() == "azure"
        from azure.ai.ml import MLClient

        assert MLClient is not LocalMLClient, "Azure mode leaves azure-ai-ml as it is"
    finally:
        boundary.deactivate()


def test_a_v1_notebook_does_not_import_azure_ai_ml_and_a_v2_one_gets_the_twin_on_import(tmp_path):
    """azure-ai-ml takes seconds to import: activate() overlays MLClient on its first import, not before."""
    code = textwrap.dedent("""
        import sys
        import aml_offline.boundary
        aml_offline.boundary.activate()
        assert "azure.ai.ml" not in sys.modules, "a v1 notebook does not pay for importing azure-ai-ml"
        from azure.ai.ml import MLClient
        print(MLClient.__module__)
    """)
    env = {**os.environ, "AZUREML_MODE": "local", "AZUREML_LOCAL_ROOT": str(tmp_path / "ws")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "aml_offline.facade_v2.client"


def test_a_command_is_run_by_bash_as_on_azure(ml, tmp_path):
    """``&&``, redirection and arithmetic are the shell's; a step that fails fails the job."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / f"{name}.py").write_text(f"import os\nos.makedirs('outputs', exist_ok=True)\n"
                                        f"open('outputs/{name}.txt', 'w').write('{name}')\n")  # fmt: skip
    both = command(code=str(src), command='python a.py && python b.py && echo "$((6 * 7))" > outputs/answer.txt',
                   environment=ENV, compute="cpu", experiment_name="v2-bash")  # fmt: skip
    done = ml.jobs.create_or_update(both)
    assert _wait(ml, done.name) == "Completed"
    ml.jobs.download(done.name, download_path=str(tmp_path / "dl"))
    outputs = tmp_path / "dl" / "artifacts" / "outputs"
    assert (outputs / "a.txt").is_file() and (outputs / "b.txt").is_file()
    assert (outputs / "answer.txt").read_text().strip() == "42"
    broken = command(code=str(src), command="python a.py && false && python b.py", environment=ENV, compute="cpu",
                     experiment_name="v2-bash")  # fmt: skip
    assert _wait(ml, ml.jobs.create_or_update(broken).name) == "Failed"


# --- sweeps ---------------------------------------------------------------------------------------------------


def test_a_sweep_job_bandit_stops_a_clearly_worse_trial_and_finds_the_best(ml, tmp_path):
    """Two trials, one near 0.9 and one near 0.1: the Bandit policy cancels the bad one at its second value."""
    job = _job(_source(tmp_path), 0.5, extra="--steps 30 --pause 0.3")
    trial = job(quality=Choice([0.1, 0.9]))
    sweep = trial.sweep(sampling_algorithm="random", primary_metric="Accuracy", goal="Maximize",
                        early_termination_policy=BanditPolicy(slack_factor=0.2, evaluation_interval=1,
                                                              delay_evaluation=1))  # fmt: skip
    sweep.set_limits(max_total_trials=2, max_concurrent_trials=2, timeout=600)
    sweep.experiment_name = "v2-sweep"
    submitted = ml.jobs.create_or_update(sweep)
    assert type(submitted).__name__ == "SweepJob"
    assert _wait(ml, submitted.name, timeout=180) == "Completed"
    trials = {t.name: t for t in ml.jobs.list(parent_job_name=submitted.name)}
    assert len(trials) == 2
    statuses = sorted(t.status for t in trials.values())
    assert statuses == ["Canceled", "Completed"], statuses
    stopped = next(t for t in trials.values() if t.status == "Canceled")
    assert "BanditPolicy" in stopped.properties["azureml.cancelReason"]
    best = ml.jobs.get(submitted.name).properties["best_child_run_id"]
    assert trials[best].status == "Completed"
    import mlflow

    mlflow.set_tracking_uri(ml.workspaces.get().mlflow_tracking_uri)
    best_run = mlflow.get_run(best)  # a trial is named after its MLflow run id too, as on Azure
    assert best_run.data.metrics["Accuracy"] > 0.9
    # azure-ai-ml downloads a sweep as the best trial's files, and the sweep's own logs beside them
    ml.jobs.download(submitted.name, download_path=str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "artifacts" / "outputs" / "model" / "weights.txt").read_text() == "0.9"
    assert (tmp_path / "dl" / "hd-artifacts").is_dir()


# --- models and online endpoints ----------------------------------------------------------------------------

KERAS_MODEL = """
    import os
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10, activation="softmax")])
    os.makedirs("outputs/model", exist_ok=True)
    model.save("outputs/model/model.keras")
"""


def test_register_deploy_invoke_with_key_and_delete(ml, tmp_path):
    src = _source(tmp_path, KERAS_MODEL)
    job = ml.jobs.create_or_update(
        command(code=str(src), command="python train.py", environment=ENV, compute="cpu", experiment_name="v2-model")
    )
    assert _wait(ml, job.name, timeout=180) == "Completed"
    model = ml.models.create_or_update(
        Model(
            name="mnist-v2",
            path=f"azureml://jobs/{job.name}/outputs/artifacts/paths/outputs/model/",
            type="custom_model",
        )  # fmt: skip
    )
    assert (model.name, model.version, model.type) == ("mnist-v2", "1", "custom_model")
    with pytest.raises(ValidationException, match="has no 'outputs/nothing'"):
        ml.models.create_or_update(
            Model(name="x", path=f"azureml://jobs/{job.name}/outputs/artifacts/paths/outputs/nothing")
        )
    endpoint = ManagedOnlineEndpoint(name="mnist-ep", auth_mode="key")
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    score_env = Environment(conda_file=str(PROJECT / "scripts" / "score-env.yml"))
    deployment = ManagedOnlineDeployment(
        name="blue", endpoint_name="mnist-ep", model=model, environment=score_env,
        code_configuration=CodeConfiguration(code=str(PROJECT / "scripts"), scoring_script="score.py"),
        instance_type="Standard_DS3_v2", instance_count=1,
    )  # fmt: skip
    assert ml.online_deployments.begin_create_or_update(deployment).result().provisioning_state == "Succeeded"
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"data": [[0.0] * 784, [1.0] * 784]}))
    with pytest.raises(HttpResponseError, match="no deployment taking traffic"):
        ml.online_endpoints.invoke("mnist-ep", request_file=str(request))
    endpoint.traffic = {"blue": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    answer = json.loads(ml.online_endpoints.invoke(endpoint_name="mnist-ep", request_file=str(request)))
    assert len(answer["predictions"]) == 2 and all(0 <= p <= 9 for p in answer["predictions"])
    uri = ml.online_endpoints.get("mnist-ep").scoring_uri
    key = ml.online_endpoints.get_keys("mnist-ep").primary_key

    def post(body: bytes, headers: dict) -> tuple[int, str]:
        req = urllib.request.Request(uri, data=body, headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert post(request.read_bytes(), {"Authorization": f"Bearer {key}"})[0] == 200
    assert post(request.read_bytes(), {})[0] == 401, "no key: refused"
    assert post(request.read_bytes(), {"Authorization": "Bearer wrong"})[0] == 401
    status, text = post(b'{"data": [[1, 2, 3]]}', {"Authorization": f"Bearer {key}"})
    assert status == 400 and "784" in text, "bad input: a 400 that says what is wrong"
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    # invoke checks the answer with azure-ai-ml's own validate_response, as on Azure. Version 1.35 reads
    # {"error": {"message": ...}} and fails on a scoring script's {"error": "..."} with an AttributeError there
    # too, which is why notebooks/v2/05 shows bad input over plain HTTP.
    with pytest.raises(AttributeError, match="'str' object has no attribute 'get'"):
        ml.online_endpoints.invoke("mnist-ep", request_file=str(bad))
    assert "init(): loaded" in ml.online_deployments.get_logs("blue", "mnist-ep")
    service = ledger.service_owner("mnist-ep.blue")
    servers = ledger.entries(ml._store, service, open_only=False)
    pids = [e["pid"] for e in servers if ledger.verified(e)]
    assert pids, "the server is recorded in the ledger"
    ml.online_endpoints.begin_delete("mnist-ep").result()
    time.sleep(0.5)
    assert not any(psutil.pid_exists(p) and ledger.verified(e) for e, p in zip(servers, pids, strict=False))
    with pytest.raises(ResourceNotFoundError, match="mnist-ep"):
        ml.online_endpoints.get("mnist-ep")


def test_a_uri_file_input_reaches_the_command_as_the_file_itself(ml, tmp_path):
    """Azure hands a uri_file input over as the file's path, not its folder's."""
    src = _source(tmp_path, "import sys\nprint('read:', open(sys.argv[1]).read())\n")
    (tmp_path / "labels.csv").write_text("7,2,1\n")
    job = ml.jobs.create_or_update(
        command(
            code=str(src),
            command="python train.py ${{inputs.labels}}",
            environment=ENV,
            compute="cpu",
            inputs={"labels": Input(type="uri_file", path=str(tmp_path / "labels.csv"))},
            experiment_name="v2-tests",
        )  # fmt: skip
    )
    assert _wait(ml, job.name) == "Completed", ml.jobs.get(job.name).properties.get("azureml.error")
    log = next(Path(ml._store.root).rglob("std_log.txt"))
    assert "read: 7,2,1" in log.read_text()


def test_a_bandit_policy_with_a_slack_amount_keeps_trials_within_it(ml, tmp_path):
    """azure-ai-ml's BanditPolicy sets the slack it was not given to 0: the one given counts. Trials 0.1 apart
    stay within a slack amount of 0.2 and both complete; a policy with no slack at all is refused at submit."""
    trial = _job(_source(tmp_path), 0.5, extra="--steps 6 --pause 0.3")(quality=Choice([0.7, 0.8]))
    sweep = trial.sweep(sampling_algorithm="random", primary_metric="Accuracy", goal="Maximize",
                        early_termination_policy=BanditPolicy(slack_amount=0.2, evaluation_interval=1))  # fmt: skip
    sweep.set_limits(max_total_trials=2, max_concurrent_trials=2, timeout=600)
    submitted = ml.jobs.create_or_update(sweep)
    assert _wait(ml, submitted.name, timeout=180) == "Completed"
    assert sorted(t.status for t in ml.jobs.list(parent_job_name=submitted.name)) == ["Completed", "Completed"]
    no_slack = trial.sweep(sampling_algorithm="random", primary_metric="Accuracy", goal="Maximize",
                           early_termination_policy=BanditPolicy(evaluation_interval=1))  # fmt: skip
    no_slack.set_limits(max_total_trials=2)
    with pytest.raises(ValidationException, match="slack_factor= or slack_amount="):
        ml.jobs.create_or_update(no_slack)
