"""The local workspace, with real subprocess runs in a fresh workspace folder per test."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aml_offline as local
import psutil
import pytest
from aml_offline import AmlCompute, ComputeTarget, Dataset, Experiment, Model, Workspace
from aml_offline.facade.datasets import DatasetConsumptionConfig, FileDataset, FileDatasetFactory
from azureml.exceptions import ActivityFailedException, ComputeTargetException, UserErrorException
from support import script_dir

PROJECT = Path(__file__).resolve().parent.parent


def submit(ws, src: Path, arguments=None, script="train.py", experiment="tests", **kwargs):
    from azureml.core import ScriptRunConfig

    config = ScriptRunConfig(source_directory=str(src), script=script, arguments=arguments or [], **kwargs)
    return Experiment(ws, experiment).submit(config)


# --- runs ----------------------------------------------------------------------------------


def test_passing_script_goes_through_azure_states_and_keeps_outputs(ws, tmp_path, capsys):
    src = script_dir(
        tmp_path,
        """
        import os, sys
        os.makedirs("outputs", exist_ok=True)
        open("outputs/hello.txt", "w").write("hi " + sys.argv[2])
        os.makedirs("logs", exist_ok=True)
        open("logs/extra.log", "w").write("log")
        print("snapshot:", sorted(os.listdir(".")))
        """,
    )
    (src / "secret.bin").write_text("ignored")
    (src / ".amlignore").write_text("secret.bin\n")
    run = submit(ws, src, ["--name", "world"])
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed" and run.get_status() == "Completed"
    streamed = capsys.readouterr().out
    states = [line.split("Status: ")[1] for line in streamed.splitlines() if "Status: " in line]
    assert states == ["Queued", "Preparing", "Running", "Finalizing", "Completed"]
    assert "secret.bin" not in streamed.split("snapshot:")[1].splitlines()[0], ".amlignore is honoured"
    files = run.get_file_names()
    assert {"outputs/hello.txt", "logs/extra.log", "user_logs/std_log.txt"} <= set(files)
    run.download_file("outputs/hello.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_text() == "hi world"
    run.download_files(prefix="outputs", output_directory=str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "outputs" / "hello.txt").is_file()
    again = local.Run(Experiment(ws, "tests"), run.id)
    assert again.get_status() == "Completed" and [r.id for r in Experiment(ws, "tests").get_runs()] == [run.id]
    assert details["startTimeUtc"] and details["endTimeUtc"]


def test_a_supervisor_never_opens_mlflow_and_a_reader_finds_mlflow_up_to_date(ws, tmp_path, monkeypatch):
    """Opening MLflow costs a process about 4 s of CPU, longer than many runs: the supervisor leaves MLflow's
    copy (status, numbers, tags) in workspace.db's outbox, and the next process to use MLflow applies it."""
    from mlflow import MlflowClient

    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the supervisor's imports, into its supervisor.log
    src = script_dir(
        tmp_path,
        """
        from azureml.core import Run
        run = Run.get_context()
        for i in range(3):
            run.log("loss", 1.0 / (i + 1))
        run.tag("kind", "check")
        """,
    )
    run = submit(ws, src)
    run.wait_for_completion()
    imported = [line.rsplit("|", 1)[-1].strip() for line in (run._dir / "supervisor.log").read_text().splitlines()
                if line.startswith("import time:")]  # fmt: skip
    assert "aml_offline.records.status" in imported  # the import log was captured
    assert not [name for name in imported if name.split(".")[0] in ("mlflow", "pandas", "sqlalchemy")]
    client = MlflowClient(ws._store.tracking_uri)
    mlrun = client.get_run(run._spec["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED" and mlrun.info.end_time
    assert mlrun.data.tags["azureml.status"] == "Completed" and mlrun.data.tags["kind"] == "check"
    assert [m.value for m in client.get_metric_history(mlrun.info.run_id, "loss")] == pytest.approx([1, 0.5, 1 / 3])


def test_while_mlflow_is_busy_its_copy_waits_in_the_outbox_in_order(tmp_path, monkeypatch, caplog):
    """A busy MLflow database (another process writing it) loses nothing: the writes wait in the outbox, later
    ones behind them, and are applied in order (tags in batches MLflow accepts); a copy MLflow refuses for good
    (its run was deleted) is skipped with a warning instead of blocking the rest."""
    from aml_offline.store import LocalStore
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    store = LocalStore.get(tmp_path / "ws")
    client = store.mlflow
    run_id = client.create_run(store.experiment_id("busy")).info.run_id
    gone = client.create_run(store.experiment_id("busy")).info.run_id
    client.delete_run(gone)
    log_batch = client.log_batch

    def busy(*args, **kwargs):
        raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)  # as MLflow's SQL store

    monkeypatch.setattr(client, "log_batch", busy)
    store.mirror(run_id, "tags", {"step": "1", **{f"many.{i}": "x" for i in range(150)}})  # MLflow takes 100 a batch
    store.mirror(gone, "tags", {"lost": "with its run"})
    store.mirror(run_id, "tags", {"step": "2"})
    assert store.flush_outbox() == 0, "still busy: everything waits"
    monkeypatch.setattr(client, "log_batch", log_batch)
    assert store.flush_outbox() == 3
    tags = client.get_run(run_id).data.tags
    assert tags["step"] == "2" and sum(k.startswith("many.") for k in tags) == 150
    assert f"of run {gone}" in caplog.text
    assert store.flush_outbox() == 0


def test_a_new_workspace_starts_from_a_cached_empty_mlflow_database(tmp_path, monkeypatch):
    """MLflow's migrations cost every new workspace about 1 s: the first empty database made with this MLflow
    version is kept in the user's cache and copied; a broken copy in the cache is made again by MLflow."""
    import mlflow
    from aml_offline.store import LocalStore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = tmp_path / "cache" / "aml-offline" / "mlflow" / f"empty-{mlflow.__version__}.db"
    first = LocalStore.get(tmp_path / "a")
    first.mlflow.create_run(first.experiment_id("kept apart"))
    assert template.is_file()
    with contextlib.closing(sqlite3.connect(template)) as db:  # not even the Default experiment (its folder is ours)
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] == 0
    second = LocalStore.get(tmp_path / "b")
    assert [e.name for e in second.mlflow.search_experiments()] == ["Default"], "the copy holds no one's runs"
    second.mlflow.create_run(second.experiment_id("works"))
    template.write_text("not a database")
    third = LocalStore.get(tmp_path / "c")
    third.mlflow.create_run(third.experiment_id("made by MLflow"))
    assert template.read_bytes().startswith(b"SQLite format 3"), "the broken copy was replaced"


def test_a_run_still_being_created_is_not_listed_yet(ws, tmp_path):
    """A sweep names its trial before creating it: its MLflow run exists a moment before its run.json (CI saw
    ``get_children`` fail on one). Listing skips it until it is a run, as Azure lists only created runs."""
    run = submit(ws, script_dir(tmp_path, "print('parent')\n"))
    run.wait_for_completion()
    store = ws._store
    store.mlflow.create_run(store.experiment_id("tests"),
                            tags={"azureml.run_id": f"{run.id}_0", "azureml.parent_run_id": run.id})  # fmt: skip
    assert list(run.get_children()) == []
    assert [r.id for r in Experiment(ws, "tests").get_runs(include_children=True)] == [run.id]


def test_failing_script_is_failed_with_its_own_error_lines(ws, tmp_path):
    src = script_dir(tmp_path, "print('about to fail')\nraise ValueError('the learning rate is negative')\n")
    run = submit(ws, src)
    with pytest.raises(ActivityFailedException) as err:
        run.wait_for_completion()
    assert "ValueError: the learning rate is negative" in str(err.value)
    assert run.get_status() == "Failed"
    assert "Traceback" in run.get_details()["error"]["error"]["message"]
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_cancel_ends_the_whole_process_tree(ws, tmp_path):
    src = script_dir(
        tmp_path,
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open("pids.txt", "w").write(f"{child.pid}")
        print("started", flush=True)
        time.sleep(120)
        """,
    )
    run = submit(ws, src)
    pids_file = run._dir / "wd" / "pids.txt"
    deadline = time.time() + 60
    while not pids_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    child_pid = int(pids_file.read_text())
    assert psutil.pid_exists(child_pid)
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    time.sleep(0.5)
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE


def test_unchanged_v1_script_logs_into_the_run_history(ws, tmp_path):
    body = """
        from azureml.core import Run
        run = Run.get_context()
        run.log("Accuracy", 0.5)
        run.log("Accuracy", 0.75)
        run.log("Final", 0.9)
        run.log("note", "a string")
        run.log_list("losses", [3, 2, 1])
        run.log_row("cm", x=1, y=2)
        run.tag("framework", "keras")
        open("up.txt", "w").write("uploaded")
        run.upload_file("extra/up.txt", "up.txt")
        print("run id", run.id)
        """
    src = script_dir(tmp_path, body)
    run = submit(ws, src)
    run.wait_for_completion()
    metrics = run.get_metrics()
    assert metrics["Accuracy"] == [0.5, 0.75] and metrics["Final"] == 0.9
    assert metrics["note"] == "a string" and metrics["losses"] == [3, 2, 1]
    assert metrics["cm"] == {"x": 1, "y": 2}
    assert run.get_tags()["framework"] == "keras"
    assert "extra/up.txt" in run.get_file_names()
    assert f"run id {run.id}" in run._read_log()
    # the same script run plainly keeps azureml-core's own offline behaviour
    plain = subprocess.run([sys.executable, str(src / "train.py")], capture_output=True, text=True, cwd=tmp_path)
    assert plain.returncode == 0 and "OfflineRun" in plain.stdout


def test_max_nodes_caps_concurrent_runs(ws, tmp_path):
    ComputeTarget.create(ws, "one-node", AmlCompute.provisioning_configuration(vm_size="Standard_D4s_v5", max_nodes=1))
    src = script_dir(
        tmp_path,
        """
        import json, sys, time
        start = time.time(); time.sleep(2)
        json.dump([start, time.time()], open(sys.argv[1], "w"))
        """,
    )
    spans = [tmp_path / f"span{i}.json" for i in range(2)]
    runs = [submit(ws, src, [str(s)], compute_target="one-node") for s in spans]
    for run in runs:
        run.wait_for_completion()
    (a0, a1), (b0, b1) = sorted(json.loads(s.read_text()) for s in spans)
    assert b0 >= a1, "with max_nodes=1 the second run must wait for the first"


def test_environment_missing_packages_fail_the_run_with_their_names(ws, tmp_path):
    from azureml.core import Environment

    env = Environment("needs-more")
    env.python.conda_dependencies.add_pip_package("surely-not-installed-package==1.0")
    env.python.conda_dependencies.add_pip_package("azureml-defaults")  # stands in for Azure's runtime
    src = script_dir(tmp_path, "print('never runs')\n")
    run = submit(ws, src, environment=env)
    with pytest.raises(ActivityFailedException, match="Building the environment failed") as failed:
        run.wait_for_completion()
    assert "surely-not-installed-package==1.0" in str(failed.value), "the installer names what it could not find"
    assert "azureml-defaults" not in run.get_details()["error"]["error"]["message"]


def test_training_script_runs_through_submit_and_reports_epoch_metrics(ws, tmp_path):
    from azureml.core import ScriptRunConfig

    from helpers import data

    ds = Dataset.File.from_files(path=data.mnist_urls()).register(ws, "mnist-dataset", create_new_version=True)
    config = ScriptRunConfig(
        source_directory=str(PROJECT / "scripts"),
        script="keras_mnist.py",
        arguments=["--data-folder", ds.as_named_input("mnist").as_mount(), "--epochs", 2, "--seed", 1],
    )
    run = Experiment(ws, "keras-mnist").submit(config)
    run.wait_for_completion()
    metrics = run.get_metrics()
    assert len(metrics["Accuracy"]) == 2 and len(metrics["Loss"]) == 2
    assert metrics["Final test accuracy"] > 0.8
    assert {"outputs/model/model.keras", "outputs/model/metadata.json"} <= set(run.get_file_names())
    model = run.register_model(model_name="keras-mnist", model_path="outputs/model")
    assert model.version == 1 and Model(ws, "keras-mnist").run_id == run.id
    with pytest.raises(UserErrorException, match="outputs/model/model.keras"):
        run.register_model(model_name="keras-mnist", model_path="outputs/nothing-here")


# --- datasets ------------------------------------------------------------------------------


def test_dataset_versions(ws, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    v1 = Dataset.File.from_files(path=[str(a)]).register(ws, "files", description="first")
    assert v1.version == 1
    assert Dataset.File.from_files(path=[str(a)]).register(ws, "files", create_new_version=True).version == 1
    with pytest.raises(UserErrorException, match="create_new_version"):
        Dataset.File.from_files(path=[str(b)]).register(ws, "files")
    v2 = Dataset.File.from_files(path=[str(a), str(b)]).register(ws, "files", create_new_version=True)
    assert v2.version == 2
    assert Dataset.get_by_name(ws, "files").version == 2
    assert Dataset.get_by_name(ws, "files", version=1).to_path() == ["/a.txt"]
    assert list(ws.datasets) == ["files"]
    written = v2.download(target_path=str(tmp_path / "dl"))
    assert sorted(Path(p).name for p in written) == ["a.txt", "b.txt"]
    with pytest.raises(UserErrorException, match="overwrite"):
        v2.download(target_path=str(tmp_path / "dl"))
    with pytest.raises(UserErrorException, match="Register it first"):
        Dataset.get_by_name(ws, "nope")


# --- compute -----------------------------------------------------------------------------------


def test_compute_get_or_create(ws):
    with pytest.raises(ComputeTargetException):
        ComputeTarget(workspace=ws, name="gpu-cluster")
    config = AmlCompute.provisioning_configuration(vm_size="Standard_NC4as_T4_v3", max_nodes=4)
    target = ComputeTarget.create(ws, "gpu-cluster", config)
    target.wait_for_completion(show_output=True)
    status = target.get_status().serialize()
    assert status["vmSize"] == "Standard_NC4as_T4_v3" and status["scaleSettings"]["maxNodeCount"] == 4
    assert status["localMachine"]["cpus"] == os.cpu_count()
    assert ComputeTarget(workspace=ws, name="gpu-cluster").vm_size == "Standard_NC4as_T4_v3"
    with pytest.raises(ComputeTargetException, match="retired"):
        ComputeTarget.create(ws, "old", AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=1))
    assert "Standard_NC4as_T4_v3" in [s["name"] for s in AmlCompute.supported_vmsizes(ws)]


# --- models ----------------------------------------------------------------------------------------

_REGISTER = """
import sys
from aml_offline import Experiment, Run, Workspace
ws = Workspace.from_config()
run = Run(Experiment(ws, "tests"), sys.argv[1])
for _ in range(3):
    print(run.register_model(model_name="shared", model_path="outputs/model.txt").version, flush=True)
"""


def test_concurrent_registration_loses_and_duplicates_no_version(ws, tmp_path):
    src = script_dir(
        tmp_path, "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.txt', 'w').write('m')\n"
    )
    run = submit(ws, src)
    run.wait_for_completion()
    env = dict(os.environ)
    procs = [
        subprocess.Popen([sys.executable, "-c", _REGISTER, run.id], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(4)
    ]
    versions = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        versions += [int(v) for v in out.split() if v.isdigit()]
    assert sorted(versions) == list(range(1, 13))
    assert sorted(m.version for m in Model.list(ws, name="shared")) == list(range(1, 13))
    latest = Model(ws, "shared")
    assert latest.version == 12
    path = latest.download(target_dir=str(tmp_path / "m"))
    assert Path(path).read_text() == "m"
    with pytest.raises(Exception, match="already exists"):
        latest.download(target_dir=str(tmp_path / "m"))


# --- signature parity -----------------------------------------------------------------------------------


def _parity_pairs():
    from aml_offline import HyperDriveRun
    from azureml.core import Dataset as AzDataset
    from azureml.core import Experiment as AzExperiment
    from azureml.core import Model as AzModel
    from azureml.core import Run as AzRun
    from azureml.core import Workspace as AzWorkspace
    from azureml.core.compute import AmlCompute as AzAmlCompute
    from azureml.core.compute import ComputeTarget as AzComputeTarget
    from azureml.core.webservice import AciWebservice as AzAciWebservice
    from azureml.core.webservice import Webservice as AzWebservice
    from azureml.data import FileDataset as AzFileDataset
    from azureml.data.dataset_consumption_config import DatasetConsumptionConfig as AzConsumption
    from azureml.data.dataset_factory import FileDatasetFactory as AzFileFactory
    from azureml.train.hyperdrive import HyperDriveRun as AzHyperDriveRun
    from azureml.widgets import RunDetails as AzRunDetails

    return [
        (Workspace.__init__, AzWorkspace.__init__),
        (Workspace.from_config, AzWorkspace.from_config),
        (Workspace.get, AzWorkspace.get),
        (Workspace.get_details, AzWorkspace.get_details),
        (Dataset.get_by_name, AzDataset.get_by_name),
        (FileDatasetFactory.from_files, AzFileFactory.from_files),
        (FileDataset.register, AzFileDataset.register),
        (FileDataset.to_path, AzFileDataset.to_path),
        (FileDataset.download, AzFileDataset.download),
        (FileDataset.as_named_input, AzFileDataset.as_named_input),
        (FileDataset.as_mount, AzFileDataset.as_mount),
        (FileDataset.as_download, AzFileDataset.as_download),
        (DatasetConsumptionConfig.as_mount, AzConsumption.as_mount),
        (DatasetConsumptionConfig.as_download, AzConsumption.as_download),
        (ComputeTarget.__new__, AzComputeTarget.__new__),
        (ComputeTarget.create, AzComputeTarget.create),
        (AmlCompute.provisioning_configuration, AzAmlCompute.provisioning_configuration),
        (AmlCompute.wait_for_completion, AzAmlCompute.wait_for_completion),
        (AmlCompute.get_status, AzAmlCompute.get_status),
        (AmlCompute.supported_vmsizes, AzAmlCompute.supported_vmsizes),
        (Experiment.__init__, AzExperiment.__init__),
        (Experiment.submit, AzExperiment.submit),
        (Experiment.get_runs, AzExperiment.get_runs),
        (local.Run.__init__, AzRun.__init__),
        (local.Run.get_context, AzRun.get_context),
        (local.Run.wait_for_completion, AzRun.wait_for_completion),
        (local.Run.get_status, AzRun.get_status),
        (local.Run.get_details, AzRun.get_details),
        (local.Run.get_metrics, AzRun.get_metrics),
        (local.Run.get_file_names, AzRun.get_file_names),
        (local.Run.download_file, AzRun.download_file),
        (local.Run.download_files, AzRun.download_files),
        (local.Run.register_model, AzRun.register_model),
        (local.Run.cancel, AzRun.cancel),
        (local.Run.tag, AzRun.tag),
        (local.Run.get_children, AzRun.get_children),
        (local.Run.get_tags, AzRun.get_tags),
        (local.Run.get_properties, AzRun.get_properties),
        (Model.__init__, AzModel.__init__),
        (Model.list, AzModel.list),
        (Model.download, AzModel.download),
        (Model.get_model_path, AzModel.get_model_path),
        (Model.register, AzModel.register),
        (Model.deploy, AzModel.deploy),
        (local.Webservice.__init__, AzWebservice.__init__),
        (local.Webservice.wait_for_deployment, AzWebservice.wait_for_deployment),
        (local.Webservice.get_logs, AzWebservice.get_logs),
        (local.Webservice.get_keys, AzWebservice.get_keys),
        (local.Webservice.regen_key, AzWebservice.regen_key),
        (local.Webservice.delete, AzWebservice.delete),
        (local.Webservice.list, AzWebservice.list),
        (local.Webservice.run, AzAciWebservice.run),
        (HyperDriveRun.__init__, AzHyperDriveRun.__init__),
        (HyperDriveRun.get_best_run_by_primary_metric, AzHyperDriveRun.get_best_run_by_primary_metric),
        (HyperDriveRun.get_children_sorted_by_primary_metric, AzHyperDriveRun.get_children_sorted_by_primary_metric),
        (HyperDriveRun.get_hyperparameters, AzHyperDriveRun.get_hyperparameters),
        (HyperDriveRun.get_metrics, AzHyperDriveRun.get_metrics),
        (HyperDriveRun.cancel, AzHyperDriveRun.cancel),
        (local.RunDetails.__init__, AzRunDetails.__init__),
        (local.RunDetails.show, AzRunDetails.show),
    ]


def _params(func) -> list[tuple]:
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(func).parameters.values()
        if p.name not in ("self", "cls")
    ]


@pytest.mark.parametrize("twin,real", _parity_pairs(), ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_signature_parity_with_azureml_core(twin, real):
    """Code written against the twin must be valid on Azure: same parameters, same defaults."""
    assert _params(twin) == _params(real)
