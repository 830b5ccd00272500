"""What azureml-core's samples and our notebooks rely on, tested as behaviour (not signatures).

Filters in every form azureml-core documents, every metric shape, the run a script sees, ``./outputs``
and environment variables at the start of a script, ``Model.get_model_path`` inside a scoring script,
status rules, the write lock from a fresh process, and clear errors where the twin stops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest
from azureml.core import Environment, ScriptRunConfig
from azureml.exceptions import ModelNotFoundException, UserErrorException, WebserviceException
from azureml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice

from aml_offline import Dataset, Experiment, Model, Run, Workspace
from aml_offline.facade._base import NotAvailableOffline
from aml_offline.records import status as run_status
from aml_offline.store import LocalStore, StoreError
from twin_support import script_dir


def submit(ws, src, experiment="behaviour", **kwargs):
    return Experiment(ws, experiment).submit(ScriptRunConfig(source_directory=str(src), script="train.py", **kwargs))


# --- filters ----------------------------------------------------------------------------------------------


def test_run_filters_in_every_documented_form(ws, tmp_path):
    src = script_dir(tmp_path, "print('hi')\n")
    tagged = submit(ws, src)
    tagged.tag("stage", "prod")
    tagged.tag("team", "vision")
    plain = submit(ws, src)
    plain.tag("stage", "dev")
    for run in (tagged, plain):
        run.wait_for_completion()
    exp = Experiment(ws, "behaviour")

    def ids(**kw):
        return {r.id for r in exp.get_runs(**kw)}

    assert ids(tags="team") == {tagged.id}, 'tags="key": the runs that have the tag'
    assert ids(tags=["team"]) == {tagged.id}, 'tags=["key"]: the runs that have it, not the others'
    assert ids(tags={"stage": "dev"}) == {plain.id}
    assert ids(tags=[["stage", "prod"], "team"]) == {tagged.id}
    assert ids(tags="absent") == set()
    assert ids() == {tagged.id, plain.id}
    with pytest.raises(UserErrorException, match="key"):
        ids(tags=[["too", "many", "items"]])


def test_model_filters_in_azureml_cores_list_form(ws, tmp_path):
    (tmp_path / "a.txt").write_text("a")
    Model.register(ws, str(tmp_path / "a.txt"), "m", tags={"stage": "prod"}, properties={"acc": "0.9"})
    Model.register(ws, str(tmp_path / "a.txt"), "m", tags={"stage": "dev"})
    Model.register(ws, str(tmp_path / "a.txt"), "other", tags={"stage": "prod", "team": "x"})

    def found(**kw):
        return sorted(m.id for m in Model.list(ws, **kw))

    assert found(tags=[["stage", "prod"]]) == ["m:1", "other:1"]
    assert found(tags=["team"]) == ["other:1"]
    assert found(tags=[["stage", "prod"], "team"]) == ["other:1"]
    assert found(properties=[["acc", "0.9"]]) == ["m:1"]
    assert found(name="m", latest=True) == ["m:2"]
    # Model(ws, name, tags=...) is the newest version that matches, as azureml-core selects
    assert Model(ws, "m", tags=[["stage", "prod"]]).version == 1
    assert Model(ws, "m").version == 2
    with pytest.raises(WebserviceException, match="ModelNotFound.*stage"):  # azureml-core's class and words
        Model(ws, "m", tags=[["stage", "staging"]])
    with pytest.raises(ModelNotFoundException):
        Model.get_model_path("absent", _workspace=ws)
    with pytest.raises(UserErrorException, match="must be list type"):  # as azureml-core's Model.list
        Model.list(ws, tags={"stage": "prod"})
    with pytest.raises(WebserviceException, match="whole number"):
        Model(ws, "m", version="latest")
    first = Model(ws, "m", version=1)
    first.delete()
    with pytest.raises(WebserviceException, match="ModelNotFound"):
        first.delete()
    assert [m.version for m in Model.list(ws, name="m")] == [2]


# --- what a script sees ----------------------------------------------------------------------------------

IN_SCRIPT = """
import json, os
from azureml.core import Run
run = Run.get_context()
facts = {
    "outputs_at_start": os.path.isdir("outputs"),
    "variable": os.environ.get("MY_SETTING"),
    "status": run.get_status(),
    "parent": None if run.parent is None else run.parent.id,
    "workspace": run.experiment.workspace.name,
    "inputs": sorted(run.input_datasets),
}
try:
    run.no_such_method()
except NotImplementedError as exc:
    facts["missing"] = str(exc)
run.log("note", "text " * 3)
run.log_confusion_matrix("cm", {"schema_type": "confusion_matrix", "data": {"matrix": [[1, 0], [0, 1]]}})
run.log_table("table", {"a": [1, 2], "b": [3, 4]})
run.log_row("row", x=1, y=2)
run.log_row("row", x=3, y=4)
run.log_list("list", [1, 2, 3])
run.log("loss (val)", 0.5)  # a name MLflow refuses: kept all the same
import matplotlib.pyplot as plt
figure = plt.figure()
plt.plot([1, 2, 3])
run.log_image("curve", plot=figure)
with open("outputs/model.txt", "w") as f:
    f.write("m")
model = run.register_model("in-script-model", "outputs/model.txt")
facts["model"] = [model.name, model.version]
with open("outputs/facts.json", "w") as f:
    json.dump(facts, f)
run.complete()
"""


def test_the_run_a_script_sees_is_whole(ws, tmp_path):
    src = script_dir(tmp_path, IN_SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("x")
    dataset = Dataset.File.from_files(str(tmp_path / "data")).register(ws, "xs")
    env = Environment("with-variable")
    env.python.user_managed_dependencies = True
    env.environment_variables = {"MY_SETTING": "from the environment"}
    run = Experiment(ws, "behaviour").submit(
        ScriptRunConfig(
            source_directory=str(src),
            script="train.py",
            environment=env,
            arguments=[dataset.as_named_input("xs").as_mount()],
        )  # fmt: skip
    )
    assert run.wait_for_completion()["status"] == "Completed"
    run.download_file("outputs/facts.json", str(tmp_path / "facts.json"))
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["outputs_at_start"] is True, "Azure creates ./outputs before the script starts"
    assert facts["variable"] == "from the environment"
    assert facts["status"] == "Running" and facts["parent"] is None
    assert facts["workspace"] == "local-workspace" and facts["inputs"] == ["xs"]
    assert "no_such_method is not available in a local run" in facts["missing"]
    assert facts["model"] == ["in-script-model", 1]
    assert Model(ws, "in-script-model").run_id == run.id
    metrics = run.get_metrics()
    assert metrics["note"] == "text text text "
    assert metrics["cm"]["data"]["matrix"] == [[1, 0], [0, 1]]
    assert metrics["table"] == {"a": [1, 2], "b": [3, 4]}
    assert metrics["row"] == {"x": [1, 3], "y": [2, 4]}
    assert metrics["list"] == [1, 2, 3]
    assert metrics["loss (val)"] == 0.5
    assert metrics["curve"].startswith("aml://artifactId/") and metrics["curve"].rsplit("/", 1)[1] in str(
        run.get_file_names()
    )
    assert "The script marked the run complete" in run.get_details_with_logs()["logFiles"]["user_logs/std_log.txt"]


def test_run_fail_ends_the_run_failed_even_when_the_script_exits_0(ws, tmp_path):
    src = script_dir(tmp_path, "from azureml.core import Run\nRun.get_context().fail(error_details='bad data')\n")
    details = submit(ws, src).wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and "bad data" in details["error"]["error"]["message"]


def test_a_sweep_child_sees_its_parent(ws, tmp_path):
    src = script_dir(
        tmp_path,
        """
        import argparse
        from azureml.core import Run
        parser = argparse.ArgumentParser(); parser.add_argument("--x", type=int); args = parser.parse_args()
        run = Run.get_context()
        run.log("parent", run.parent.id)
        run.log("parent_status", run.parent.get_status())
        run.log("score", args.x)
        try:
            run.parent.log("written", 1)
        except NotImplementedError as exc:
            run.log("parent_write", str(exc))
        """,
    )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=str(src), script="train.py"),
        hyperparameter_sampling=GridParameterSampling({"--x": choice(1, 2)}),
        primary_metric_name="score", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=2,
    )  # fmt: skip
    sweep = Experiment(ws, "behaviour").submit(config)
    sweep.wait_for_completion()
    children = list(sweep.get_children())
    assert len(children) == 2
    for child in children:
        assert child.get_metrics()["parent"] == sweep.id and child.get_metrics()["parent_status"] == "Running"
        assert child.parent.id == sweep.id
        assert "is not available in a local run" in child.get_metrics()["parent_write"]
    assert sweep.get_best_run_by_primary_metric().get_metrics()["score"] == 2


def test_text_metrics_logged_hundreds_of_times_keep_the_history_readable(ws, tmp_path):
    src = script_dir(
        tmp_path,
        "from azureml.core import Run\nrun = Run.get_context()\n"
        "for i in range(600):\n    run.log('message', f'epoch {i}: ' + 'x' * 40)\n",
    )
    run = submit(ws, src)
    run.wait_for_completion()
    values = run.get_metrics()["message"]
    assert len(values) == 600 and values[599].startswith("epoch 599: ")
    assert run.get_metrics(name="message")["message"][0].startswith("epoch 0: ")


# --- models inside a scoring script ------------------------------------------------------------------------


def test_model_get_model_path_works_inside_a_scoring_script(ws, tmp_path):
    from azureml.core.model import InferenceConfig
    from azureml.core.webservice import LocalWebservice

    (tmp_path / "weights.txt").write_text("42")
    model = Model.register(ws, str(tmp_path / "weights.txt"), "answer")
    src = script_dir(
        tmp_path,
        """
        import json
        from azureml.core.model import Model

        def init():
            global value
            value = open(Model.get_model_path("answer")).read()

        def run(raw):
            return {"value": value, "path": Model.get_model_path("answer", version=1)}
        """,
        name="score.py",
    )
    env = Environment("plain")
    env.python.user_managed_dependencies = True
    config = InferenceConfig(entry_script="score.py", source_directory=str(src), environment=env)
    service = Model.deploy(ws, "answer-svc", [model], config, LocalWebservice.deploy_configuration())
    service.wait_for_deployment()
    answer = service.run("{}")
    assert answer["value"] == "42" and answer["path"].endswith("azureml-models/answer/1/weights.txt")
    request = urllib.request.Request(service.scoring_uri, data=b"{}", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert json.loads(resp.read())["value"] == "42"
    service.delete()


# --- status rules, locks and clear errors --------------------------------------------------------------------


def test_status_moves_forward_only_and_a_final_status_stays(ws, tmp_path):
    src = script_dir(tmp_path, "print('done')\n")
    run = submit(ws, src)
    run.wait_for_completion()
    spec = run._spec
    assert run_status.set_status(ws._store, spec, "Failed") is False, "a finished run stays finished"
    assert run.get_status() == "Completed"
    assert run_status.is_legal("Running", "Queued") is False and run_status.is_legal("Queued", "Running")
    assert run_status.is_legal("Preparing", "Canceled") and not run_status.is_legal("Completed", "Failed")


def test_tagging_a_run_from_a_fresh_process_does_not_wait_for_its_own_lock(ws, tmp_path):
    src = script_dir(tmp_path, "print('done')\n")
    run = submit(ws, src)
    run.wait_for_completion()
    code = (
        "from aml_offline import Experiment, Run, Workspace\n"
        f"ws = Workspace.from_config()\nRun(Experiment(ws, 'behaviour'), {run.id!r}).tag('from', 'elsewhere')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, AZUREML_LOCAL_ROOT=str(ws._store.root)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert run.get_tags()["from"] == "elsewhere"


def test_a_folder_that_cannot_be_written_is_one_clear_error(tmp_path):
    root = tmp_path / "readonly"
    root.mkdir()
    root.chmod(0o500)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        with pytest.raises(StoreError, match="cannot be written"):
            LocalStore(root)
    finally:
        root.chmod(0o700)


def test_a_missing_dataset_file_fails_the_run_naming_the_file(ws, tmp_path):
    src = script_dir(tmp_path, "import sys\nprint(sys.argv)\n")
    data_file = tmp_path / "gone.csv"
    data_file.write_text("a,b\n")
    dataset = Dataset.File.from_files([str(data_file)]).register(ws, "gone")
    data_file.unlink()
    run = Experiment(ws, "behaviour").submit(
        ScriptRunConfig(source_directory=str(src), script="train.py", arguments=[dataset.as_mount()])
    )
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and str(data_file) in details["error"]["error"]["message"]


def test_what_the_twin_lacks_is_a_clear_error_not_an_attribute_error(ws):
    with pytest.raises(NotAvailableOffline, match="Workspace.write_config is not available in the local workspace"):
        ws.write_config()
    with pytest.raises(NotAvailableOffline, match="Experiment.archive"):
        Experiment(ws, "behaviour").archive()
    with pytest.raises(NotAvailableOffline, match="Dataset.get_by_id"):
        Dataset.get_by_id(ws, "0000")
    with pytest.raises(AttributeError) as typo:
        ws.no_such_thing  # noqa: B018
    assert not isinstance(typo.value, NotImplementedError), "a typo stays an AttributeError"


def test_a_tag_the_store_cannot_keep_is_a_clear_error(ws, tmp_path):
    run = submit(ws, script_dir(tmp_path, "print('done')\n"))
    run.wait_for_completion()
    with pytest.raises(UserErrorException, match="owner@team"):
        run.tag("owner@team", "x")
    with pytest.raises(UserErrorException, match="at most 8,000"):
        run.tag("notes", "x" * 9000)


def test_run_lookup_of_an_unknown_id_names_it(ws):
    with pytest.raises(UserErrorException, match="no-such-run"):
        Run(Experiment(ws, "behaviour"), "no-such-run")


def test_workspace_is_a_workspace(ws):
    assert isinstance(ws, Workspace) and ws.get_details()["mode"] == "local"


def test_a_source_folder_holding_the_workspace_is_snapshotted_without_it(tmp_path, monkeypatch):
    """Samples often keep everything in one folder: the workspace must never be copied into its own runs."""
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    (tmp_path / "train.py").write_text("import os\nprint(sorted(os.listdir('.')))\n")
    first = submit(ws, tmp_path)
    first.wait_for_completion()
    second = submit(ws, tmp_path)
    second.wait_for_completion()
    log = second.get_details_with_logs()["logFiles"]["user_logs/std_log.txt"]
    assert "'train.py'" in log and "'ws'" not in log
    assert sum(1 for _ in (ws._store.run_dir(second.id) / "wd").rglob("*")) < 10


def test_a_source_folder_over_azures_snapshot_limit_is_refused_at_submit(ws, tmp_path):
    from azureml.exceptions import SnapshotException

    src = script_dir(tmp_path, "print('never runs')\n")
    for i in range(2001):
        (src / f"f{i}.txt").write_text("x")
    with pytest.raises(SnapshotException, match="more than 2000 files"):
        submit(ws, src)
    (src / ".amlignore").write_text("f*.txt\n")
    assert submit(ws, src).wait_for_completion()["status"] == "Completed"


def test_register_model_takes_the_path_as_azureml_core_normalises_it(ws, tmp_path):
    """Microsoft's train-on-local sample registers model_path='./outputs/ridge_0.40.pkl'."""
    src = script_dir(
        tmp_path, "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/m.pkl', 'w').write('m')\n"
    )
    env = Environment("plain")
    env.python.user_managed_dependencies = True
    run = Experiment(ws, "behaviour").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                             environment=env))  # fmt: skip
    run.wait_for_completion()
    model = run.register_model(model_name="normalised", model_path="./outputs/m.pkl")
    assert model.name == "normalised" and model.run_id == run.id


def test_azureml_cores_own_model_register_inside_a_run_fails_saying_what_to_use(ws, tmp_path):
    """Inside a run ``Model`` is azureml-core's (as on Azure compute) and the run's workspace the local one: the
    Pipelines HyperDrive sample's register step does this. The run fails naming run.register_model, not an
    attribute of azureml-core's internals."""
    body = (
        "from azureml.core import Model, Run\n"
        "run = Run.get_context()\n"
        "Model.register(workspace=run.experiment.workspace, model_path='train.py', model_name='m')\n"
    )
    details = submit(ws, script_dir(tmp_path, body)).wait_for_completion(raise_on_error=False)
    message = details["error"]["error"]["message"]
    assert details["status"] == "Failed" and "run.register_model(...)" in message, message
