"""Interactive runs (``experiment.start_logging``) and MLflow through the workspace's tracking URI, as
azureml-core's samples use them: a notebook logs to a run it made itself, then ends it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from azureml.exceptions import SnapshotException, UserErrorException


def _experiment(ws, name="interactive"):
    from aml_offline.facade import Experiment

    return Experiment(ws, name)


def test_start_logging_makes_a_running_run_that_complete_ends_with_its_outputs_and_snapshot(ws, tmp_path):
    Path("train.py").write_text("print('hello')\n")
    Path("outputs").mkdir()
    Path("outputs/model.txt").write_text("weights")
    run = _experiment(ws).start_logging(display_name="first")
    assert run.get_status() == "Running" and run.display_name == "first"
    assert run.get_details()["target"] == "sdk"  # azureml-core's SDK_TARGET for a run the SDK made
    run.log("alpha", 0.5)
    run.log("loss", 0.9)
    run.log("loss", 0.4)
    run.log_list("fold", [1, 2, 3])
    run.log_row("curve", x=1, y=2)
    run.log_confusion_matrix("cm", {"schema_type": "confusion_matrix", "data": {"matrix": [[1, 0], [0, 1]]}})
    run.tag("team", "blue")
    run.upload_file("outputs/extra.csv", "train.py")
    with pytest.raises(UserErrorException, match="already has a file"):
        run.upload_file("outputs/extra.csv", "train.py")
    with pytest.raises(UserErrorException, match="relative path"):
        run.upload_file("../escape.txt", "train.py")
    run.complete()
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["alpha"] == 0.5 and metrics["loss"] == [0.9, 0.4] and metrics["fold"] == [1, 2, 3]
    assert metrics["curve"] == {"x": 1, "y": 2} and metrics["cm"]["data"]["matrix"] == [[1, 0], [0, 1]]
    assert {"outputs/model.txt", "outputs/extra.csv"} <= set(run.get_file_names())  # ./outputs went up at the end
    assert run.get_tags()["team"] == "blue"
    archive = run.restore_snapshot(path=str(tmp_path / "snap"))
    assert "train.py" in zipfile.ZipFile(archive).namelist()
    with pytest.raises(UserErrorException, match="ended|Completed|already"):
        run.fail()  # an ended run stays ended (azureml raises too); here: the status is final
    assert run.get_status() == "Completed"


def test_the_with_block_completes_or_fails_the_run_and_children_belong_to_their_parent(ws):
    exp = _experiment(ws)
    with exp.start_logging(snapshot_directory=None) as run:
        child = run.child_run(name="fold-1")
        child.log("acc", 0.8)
        child.complete()
        kids = run.create_children(tag_key="fold", tag_values=["2", "3"])
        for kid in kids:
            kid.complete()
    assert run.get_status() == "Completed"
    assert {c.id for c in run.get_children()} == {child.id, *(k.id for k in kids)}
    assert child.parent.id == run.id and child.name == "fold-1"
    assert sorted(c.get_tags().get("fold", "") for c in run.get_children()) == ["", "2", "3"]
    with pytest.raises(ValueError), exp.start_logging(snapshot_directory=None) as failing:
        raise ValueError("fold 4 has no rows")
    assert failing.get_status() == "Failed"
    assert "fold 4 has no rows" in failing.get_details()["error"]["error"]["message"]


def test_run_get_list_and_cancel_find_interactive_runs_and_a_submitted_run_cannot_be_completed_by_hand(ws):
    from aml_offline.facade import Run

    exp = _experiment(ws)
    run = exp.start_logging(snapshot_directory=None)
    assert Path("outputs").is_dir(), "azureml-core makes ./outputs at start_logging: a script saves into it at once"
    assert Run.get(ws, run.id).id == run.id and ws.get_run(run.id).id == run.id
    assert [r.id for r in Run.list(exp, status="Running")] == [run.id]
    run.cancel()
    assert run.get_status() == "Canceled" and list(Run.list(exp, status="Running")) == []
    with pytest.raises(UserErrorException, match="not found"):
        Run.get(ws, "no-such-run")


def test_a_snapshot_folder_over_azures_limits_is_refused_with_azures_advice(ws, monkeypatch):
    from aml_offline.execution import snapshot

    monkeypatch.setattr(snapshot, "MAX_FILES", 2)
    for i in range(3):
        Path(f"f{i}.txt").write_text("x")
    with pytest.raises(SnapshotException, match="snapshot_directory=None"):
        _experiment(ws).start_logging()


def test_mlflow_through_the_workspaces_tracking_uri_lands_in_the_run_history(ws):
    import mlflow

    uri = ws.get_mlflow_tracking_uri()
    assert uri.startswith("aml-offline://")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("mlflow-direct")
        with mlflow.start_run(run_name="by-mlflow") as active:
            mlflow.log_param("alpha", 0.1)
            mlflow.log_metric("rmse", 3.0)
            mlflow.log_metric("rmse", 2.5)
            Path("note.txt").write_text("x")
            mlflow.log_artifact("note.txt")
        artifact_uri = active.info.artifact_uri
    finally:
        mlflow.set_tracking_uri(previous)
    assert Path(artifact_uri.removeprefix("file://")).is_relative_to(ws._store.root)  # not ./mlruns of the cwd
    runs = list(_experiment(ws, "mlflow-direct").get_runs())
    assert [r.id for r in runs] == [active.info.run_id]
    run = runs[0]
    assert run.get_status() == "Completed" and run.display_name == "by-mlflow"
    assert run.get_metrics()["rmse"] == [3.0, 2.5] and "note.txt" in run.get_file_names()
