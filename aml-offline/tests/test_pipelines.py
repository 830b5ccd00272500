"""Pipelines on the local workspace, with real processes: SDK v1 steps in dependency order (two at once when they
can), data between steps through datastore folders, reuse of unchanged steps, a failing step, a canceled pipeline,
a killed step and a killed pipeline supervisor (nothing outlives them), a published pipeline run by id; and an SDK
v2 ``@dsl.pipeline`` of components on the same executor (serverless, reuse, a failing node).

The scripts are plain Python (no azureml import), so each step costs a process start, not an SDK import.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from azureml.data import OutputFileDatasetConfig
from azureml.exceptions import ActivityFailedException
from azureml.pipeline.core import PipelineData, PipelineParameter
from azureml.pipeline.steps import PythonScriptStep

from aml_offline import Experiment, NotAvailableOffline
from aml_offline.execution import ledger
from aml_offline.facade.pipelines import Pipeline, PublishedPipeline, Schedule  # what the boundary's twins are
from aml_offline.run_details import RunDetails

#: Writes "<input text> + <its name>" into its output, after sleeping the given seconds
STEP = """
    import argparse, os, time
    p = argparse.ArgumentParser()
    p.add_argument("--name"); p.add_argument("--out"); p.add_argument("--sleep", type=float, default=0)
    p.add_argument("--inp", action="append", default=[]); p.add_argument("--fail", default="no")
    p.add_argument("--scale")
    a = p.parse_args()
    open(os.path.join(os.environ.get("PIDS", "."), a.name + ".pid"), "w").write(str(os.getpid()))
    start = time.time()
    time.sleep(a.sleep)
    if a.fail == "yes":
        raise SystemExit(f"step {a.name} was told to fail")
    text = "+".join(open(os.path.join(i, "value.txt")).read() for i in a.inp) or "root"
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "value.txt"), "w").write(f"({text})>{a.name}")
    open(os.path.join(a.out, "times.txt"), "w").write(f"{start} {time.time()}")
"""


@pytest.fixture()
def src(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / "step.py").write_text(textwrap.dedent(STEP))
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PIDS", str(pids))  # the runs inherit the environment, as a step's scripts do on this machine
    return folder


def step(src, name, out, inputs=(), sleep=0, fail="no", allow_reuse=True, extra=()):
    arguments = ["--name", name, "--out", out, "--sleep", sleep, "--fail", fail, *extra]
    for data in inputs:
        arguments += ["--inp", data]
    return PythonScriptStep(name=name, script_name="step.py", source_directory=str(src), arguments=arguments,
                            inputs=list(inputs), outputs=[out], allow_reuse=allow_reuse)  # fmt: skip


def value(step_run, output) -> str:
    ref = step_run.get_output_data(output)
    return (Path(ref.datastore._folder) / ref.path_on_datastore / "value.txt").read_text()


def wait_for(predicate, timeout=60, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pid_of(tmp_path, name) -> psutil.Process:
    path = tmp_path / "pids" / f"{name}.pid"
    wait_for(lambda: path.exists() and path.read_text(), what=f"step {name} to start")
    return psutil.Process(int(path.read_text()))


def test_a_rerun_of_an_unchanged_pipeline_reuses_every_step_and_a_new_parameter_value_runs_them(ws, src):
    prepped = PipelineData("prepped", datastore=ws.get_default_datastore())
    model = OutputFileDatasetConfig(name="model")
    scale = PipelineParameter(name="scale", default_value="1")
    step(src, "prep", prepped, extra=["--scale", scale])  # not listed below: it joins as the producer of `prepped`
    train = step(src, "train", model.as_mount(), inputs=[prepped])
    pipeline = Pipeline(workspace=ws, steps=[train])
    assert pipeline.validate() == []
    experiment = Experiment(ws, "pipelines")

    first = experiment.submit(pipeline, pipeline_parameters={"scale": "2"})
    assert first.wait_for_completion(show_output=False) == "Finished"
    assert first.get_details()["status"] == "Completed"
    steps = {s.name: s for s in first.get_steps()}
    assert set(steps) == {"prep", "train"} and not any(s._is_reused for s in steps.values())
    assert value(steps["train"], "model") == "((root)>prep)>train"
    assert steps["prep"].get_details()["runDefinition"]["arguments"][-2:] == ["--scale", "2"]

    second = experiment.submit(pipeline, pipeline_parameters={"scale": "2"})
    assert second.wait_for_completion(show_output=False) == "Finished"
    reused = {s.name: s for s in second.get_steps()}
    assert all(s._is_reused for s in reused.values())
    assert {n: s.id for n, s in reused.items()} == {n: s.id for n, s in steps.items()}  # the runs it reused
    assert all(s.pipeline_run_id == first.id for s in reused.values())
    view = RunDetails(second)  # the run view: a table of the steps, each reused
    view.show()
    table = view._children.value
    assert "2 steps started, 2 reused from earlier runs" in table and table.count("reused: run ") == 2
    assert "class='aml-run-status'>Finished<" in view._summary.value and view._error.value == ""

    listed = {r.id: type(r).__name__ for r in experiment.get_runs(include_children=True)}
    assert listed[first.id] == "PipelineRun" and listed[steps["prep"].id] == "StepRun"  # read back as what they are
    assert type(ws.get_run(second.id)).__name__ == "PipelineRun"

    third = experiment.submit(pipeline, pipeline_parameters={"scale": "3"})
    assert third.wait_for_completion(show_output=False) == "Finished"
    assert not any(s._is_reused for s in third.get_steps()), "a new parameter value, and so a new input downstream"


def test_a_diamond_runs_the_two_readers_of_one_output_at_once_and_joins_them(ws, src, tmp_path):
    store = ws.get_default_datastore()
    a, b, c, d = (PipelineData(n, datastore=store) for n in ("a_out", "b_out", "c_out", "d_out"))
    steps = [
        step(src, "a", a),
        step(src, "b", b, inputs=[a], sleep=2),
        step(src, "c", c, inputs=[a], sleep=2),
        step(src, "d", d, inputs=[b, c]),
    ]
    run = Experiment(ws, "pipelines").submit(Pipeline(ws, steps))
    assert run.wait_for_completion(show_output=False) == "Finished"
    runs = {s.name: s for s in run.get_steps()}
    assert value(runs["d"], "d_out") == "(((root)>a)>b+((root)>a)>c)>d"
    times = {}
    for name in "bc":
        ref = runs[name].get_output_data(f"{name}_out")
        times[name] = [
            float(t) for t in (Path(ref.datastore._folder) / ref.path_on_datastore / "times.txt").read_text().split()
        ]
    assert times["b"][0] < times["c"][1] and times["c"][0] < times["b"][1], "b and c ran one after the other"


def test_a_failing_step_fails_the_pipeline_naming_it_and_the_steps_after_it_never_run(ws, src, tmp_path):
    store = ws.get_default_datastore()
    a, b, slow = (PipelineData(n, datastore=store) for n in ("a_out", "b_out", "slow_out"))
    steps = [step(src, "a", a, fail="yes"), step(src, "b", b, inputs=[a]), step(src, "slow", slow, sleep=300)]
    run = Experiment(ws, "pipelines").submit(Pipeline(ws, steps))
    sibling = pid_of(tmp_path, "slow")
    with pytest.raises(ActivityFailedException, match="step a was told to fail"):
        run.wait_for_completion(show_output=True)  # the failed step's error, as azureml-pipeline raises it
    wait_for(lambda: run.get_status() == "Failed", what="the pipeline to fail")
    error = run.get_details()["error"]["error"]["message"]
    assert "failed steps: a (Failed" in error and "Not run, as a failed step came before them: b" in error
    statuses = {s.name: s.get_status() for s in run.get_steps()}
    assert statuses == {"a": "Failed", "slow": "Canceled"}, statuses  # b never started: no step run, as on Azure
    wait_for(lambda: not sibling.is_running() or sibling.status() == psutil.STATUS_ZOMBIE, 15, "the sibling to end")


def test_canceling_the_pipeline_mid_step_cancels_the_step_and_ends_its_process(ws, src, tmp_path):
    store = ws.get_default_datastore()
    first, second = PipelineData("first", datastore=store), PipelineData("second", datastore=store)
    run = Experiment(ws, "pipelines").submit(
        Pipeline(ws, [step(src, "long", first, sleep=300), step(src, "after", second, inputs=[first])])
    )
    script = pid_of(tmp_path, "long")
    run.cancel()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"
    assert [(s.name, s.get_status()) for s in run.get_steps()] == [("long", "Canceled")]
    wait_for(lambda: not script.is_running() or script.status() == psutil.STATUS_ZOMBIE, 10, "the script to end")
    wait_for(lambda: ledger.open_owners(ws._store) == [], 10, "the pipeline's supervisor to end")


def test_killing_a_steps_script_fails_the_step_and_killing_the_pipeline_supervisor_reaps_everything(ws, src, tmp_path):
    store = ws.get_default_datastore()
    out = PipelineData("out", datastore=store)
    run = Experiment(ws, "pipelines").submit(Pipeline(ws, [step(src, "victim", out, sleep=300)]))
    os.kill(pid_of(tmp_path, "victim").pid, signal.SIGKILL)
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert "victim (Failed" in run.get_details()["error"]["error"]["message"]
    [victim] = run.get_steps()
    assert "exited with code -9" in victim.get_details()["error"]["error"]["message"]

    (tmp_path / "pids" / "victim.pid").unlink()
    again = Experiment(ws, "pipelines").submit(Pipeline(ws, [step(src, "victim", out, sleep=300)]))
    script = pid_of(tmp_path, "victim")
    supervisor = ledger.entries(ws._store, ledger.run_owner(again.id), ("supervisor",))[0]
    os.kill(supervisor["pid"], signal.SIGKILL)
    # the kernel ends the step's script with the process that supervised it; the next status read reaps the runs
    wait_for(lambda: not script.is_running() or script.status() == psutil.STATUS_ZOMBIE, 10, "the script to end")
    assert again.get_status() == "Failed"
    assert "supervisor stopped unexpectedly" in again.get_details()["error"]["error"]["message"]
    assert [s.get_status() for s in again.get_steps()] == ["Failed"]
    wait_for(lambda: ledger.open_owners(ws._store) == [], 10, "the ledger to be closed")


def test_a_published_pipeline_runs_by_id_with_the_scripts_it_was_published_with(ws, src, tmp_path):
    out = PipelineData("out", datastore=ws.get_default_datastore())
    pipeline = Pipeline(ws, [step(src, "only", out, allow_reuse=False)], description="published")
    published = pipeline.publish(name="demo", description="a demo", version="1")
    assert PublishedPipeline.get(ws, published.id).name == "demo" and published.status == "Active"
    assert [p.id for p in PublishedPipeline.list(ws)] == [published.id]
    (src / "step.py").write_text("raise SystemExit('changed after publishing')")
    run = PublishedPipeline.get(ws, published.id).submit(ws, "published-runs")
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert value(run.find_step_run("only")[0], "out") == "(root)>only"
    published.disable()
    with pytest.raises(Exception, match="Disabled"):
        Experiment(ws, "published-runs").submit(published)
    with pytest.raises(NotAvailableOffline, match="scheduler"):
        Schedule.create(ws, name="nightly", pipeline_id=published.id, experiment_name="x")


#: Copies the text of its --data file into its --out folder
READ_ONE_FILE = """
    import argparse, os
    p = argparse.ArgumentParser(); p.add_argument("--data"); p.add_argument("--out"); a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "value.txt"), "w").write(open(a.data).read())
"""


def test_a_file_dataset_pipeline_parameter_is_mounted_as_its_file_and_another_dataset_at_submit_reruns(ws, tmp_path):
    # the boundary's names for these (what `from azureml.pipeline.core import PipelineParameter` gives in local mode)
    from azureml.data.datapath import DataPath

    from aml_offline import Dataset
    from aml_offline.facade.datasets import DatasetConsumptionConfig
    from aml_offline.facade.pipelines import PipelineParameter as LocalPipelineParameter

    code = tmp_path / "reader"
    code.mkdir()
    (code / "read.py").write_text(textwrap.dedent(READ_ONE_FILE))
    for name, text in (("a.txt", "alpha"), ("b.txt", "beta")):
        (tmp_path / name).write_text(text)
    store = ws.get_default_datastore()
    store.upload_files([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], target_path="texts", overwrite=True)
    alpha = Dataset.File.from_files((store, "texts/a.txt"))
    beta = Dataset.File.from_files((store, "texts/b.txt"))
    parameter = LocalPipelineParameter(name="text_ds", default_value=alpha)
    data = DatasetConsumptionConfig("text", parameter).as_mount()
    out = OutputFileDatasetConfig(name="copy")
    read = PythonScriptStep(name="read", script_name="read.py", source_directory=str(code),
                            arguments=["--data", data, "--out", out], inputs=[data], outputs=[out])  # fmt: skip
    pipeline = Pipeline(workspace=ws, steps=[read])
    experiment = Experiment(ws, "dataset-parameters")

    first = experiment.submit(pipeline)  # the default: a dataset of one file, mounted as that file (as Azure does)
    assert first.wait_for_completion(show_output=False) == "Finished"
    assert value(first.find_step_run("read")[0], "copy") == "alpha"
    second = experiment.submit(pipeline, pipeline_parameters={"text_ds": beta})
    assert second.wait_for_completion(show_output=False) == "Finished"
    step_run = second.find_step_run("read")[0]
    assert not step_run._is_reused and value(step_run, "copy") == "beta"
    with pytest.raises(TypeError, match="Expected type: FileDataset"):
        experiment.submit(pipeline, pipeline_parameters={"text_ds": DataPath(store, "texts/a.txt")})

    rows = Dataset.Tabular.from_delimited_files((store, "texts/a.txt"), validate=False)
    table = LocalPipelineParameter(name="table", default_value=rows)
    tabular_input = DatasetConsumptionConfig("rows", table)
    tabular = PythonScriptStep(name="t", script_name="read.py", source_directory=str(code),
                               arguments=["--data", tabular_input], inputs=[tabular_input])  # fmt: skip
    with pytest.raises(NotAvailableOffline, match="holding a TabularDataset .*pass a file dataset"):
        Pipeline(workspace=ws, steps=[tabular])


def test_validate_finds_a_cycle_and_submit_refuses_it(ws, src):
    store = ws.get_default_datastore()
    first, second = (
        step(src, "first", PipelineData("o1", datastore=store)),
        step(src, "second", PipelineData("o2", datastore=store)),
    )
    first.run_after(second)
    second.run_after(first)
    pipeline = Pipeline(ws, [first])
    [error] = pipeline.validate()
    assert error.startswith("Cycle detected including node")
    with pytest.raises(ValueError, match="Cycle detected"):
        pipeline.submit("pipelines")
    with pytest.raises(Exception, match="Pipeline parameter with name nope does not exist"):
        Pipeline(ws, [step(src, "p", PipelineData("o3", datastore=store))]).submit(
            "pipelines", pipeline_parameters={"nope": 1}
        )


# --- SDK v2: a @dsl.pipeline on the same executor -------------------------------------------------------------

V2_STEP = """
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--inp"); p.add_argument("--out"); p.add_argument("--fail", default="no")
a = p.parse_args()
if a.fail == "yes":
    raise SystemExit("the node was told to fail")
text = open(os.path.join(a.inp, "value.txt")).read() if a.inp else "root"
open(os.path.join(a.out, "value.txt"), "w").write(text + ">node")
"""


def test_a_v2_pipeline_of_components_runs_on_serverless_compute_and_a_failing_node_fails_it(ws, tmp_path):
    from azure.ai.ml import Input, Output, command
    from azure.ai.ml.dsl import pipeline
    from azure.ai.ml.entities import Environment
    from azure.ai.ml.exceptions import JobException

    from aml_offline.facade_v2 import MLClient

    code = tmp_path / "v2src"
    code.mkdir()
    (code / "node.py").write_text(V2_STEP)
    ml_client = MLClient(credential=None, subscription_id="sub", resource_group_name="rg", workspace_name="ws")
    image = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    env = Environment(conda_file={"dependencies": ["python=3.11", {"pip": []}]}, image=image)
    first = command(
        name="first_node", code=str(code), environment=env, outputs={"out": Output(type="uri_folder")},
        command="python node.py --out ${{outputs.out}}",
    )  # fmt: skip
    registered = ml_client.components.create_or_update(first.component)
    assert (registered.name, registered.version) == ("first_node", "1")
    assert ml_client.components.create_or_update(first.component).version == "1", "the same definition again"
    assert [c.name for c in ml_client.components.list()] == ["first_node"]
    second = command(
        name="second_node", code=str(code), environment=env, inputs={"inp": Input(type="uri_folder"), "fail": "no"},
        outputs={"out": Output(type="uri_folder")},
        command="python node.py --inp ${{inputs.inp}} --out ${{outputs.out}} --fail ${{inputs.fail}}",
    )  # fmt: skip

    @pipeline()
    def two_nodes(fail="no"):
        a = ml_client.components.get("first_node")()
        b = second(inp=a.outputs.out, fail=fail)
        return {"result": b.outputs.out}

    good = two_nodes()
    good.settings.default_compute = "serverless"
    job = ml_client.jobs.create_or_update(good, experiment_name="v2-pipelines")
    ml_client.jobs.stream(job.name)
    children = {c.display_name: c for c in ml_client.jobs.list(parent_job_name=job.name)}
    assert set(children) == {"a", "b"} and all(c.status == "Completed" for c in children.values())
    ml_client.jobs.download(job.name, output_name="result", download_path=str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "named-outputs" / "result" / "value.txt").read_text() == "root>node>node"

    bad = ml_client.jobs.create_or_update(two_nodes(fail="yes"), experiment_name="v2-pipelines")
    with pytest.raises(JobException, match="failed steps: b"):
        ml_client.jobs.stream(bad.name)
    statuses = {c.display_name: (c.status, c.properties.get("azureml.isreused")) for c in
                ml_client.jobs.list(parent_job_name=bad.name)}  # fmt: skip
    assert statuses == {"a": ("Completed", "true"), "b": ("Failed", None)}, statuses


def test_a_step_environment_that_lists_azureml_sdk_runs_in_this_interpreter_with_the_local_workspace():
    # Microsoft's HyperDrive pipeline sample registers its model in a step whose environment lists azureml-sdk: built
    # into an environment of its own, that step would not reach the local workspace
    from aml_offline.execution import envs, snapshot

    assert snapshot.unsatisfied("azureml-sdk") is None
    assert snapshot.missing_packages({"pip": ["azureml-sdk", "azureml-defaults", "no-such-package-xyz"]}) == [
        "no-such-package-xyz"
    ]
    assert envs.requirements({"name": "e", "conda": [], "pip": ["azureml-sdk"]}) == ["azureml-core"]
