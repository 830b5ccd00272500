"""What the notebooks leave behind in the session's local workspace (they run first, under nbval)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import data


@pytest.fixture(scope="module")
def ws():
    from aml_offline import Dataset, Workspace

    ws = Workspace.from_config()
    if "mnist-dataset" not in ws.datasets:
        pytest.skip("the notebooks did not run in this session (run the whole suite: make test)")
    return ws, Dataset


def test_dataset_is_registered_once(ws):
    workspace, dataset_cls = ws
    dataset = dataset_cls.get_by_name(workspace, "mnist-dataset")
    assert dataset.version == 1
    assert dataset.to_path() == ["/" + n for n in data.FILE_NAMES]


def test_training_run_completed_with_epoch_metrics(ws):
    from aml_offline import Experiment

    workspace, _ = ws
    runs = list(Experiment(workspace, "keras-mnist").get_runs())
    assert runs and runs[0].get_status() == "Completed"
    metrics = runs[0].get_metrics()
    epochs = int(os.environ["AML_EPOCHS"])
    assert len(metrics["Accuracy"]) == epochs and len(metrics["Loss"]) == epochs
    assert metrics["Accuracy"][-1] > metrics["Accuracy"][0] - 0.02
    assert runs[0].get_details()["inputDatasets"][0]["name"] == "mnist-dataset"


def test_registered_model_loads_and_predicts(ws, tmp_path):
    import keras
    from aml_offline import Model

    workspace, dataset_cls = ws
    model = Model(workspace, "keras-mnist")
    assert model.version >= 1 and model.tags["framework"] == "keras"
    path = model.download(target_dir=str(tmp_path))
    classifier = keras.models.load_model(os.path.join(path, "model.keras"), safe_mode=True)
    dataset_cls.get_by_name(workspace, "mnist-dataset").download(str(tmp_path / "data"))
    mnist = data.load_mnist(tmp_path / "data")
    predicted = classifier.predict(mnist.x_test[:300].reshape(-1, 784) / 255.0, verbose=0).argmax(1)
    assert np.mean(predicted == mnist.y_test[:300]) > 0.8
    assert model.properties["data_source"] == mnist.source


def test_the_chainer_track_used_the_environment_make_install_built(ws):
    """With the network gone, the Chainer run found its job environment ready: built at install time."""
    from aml_offline import Experiment

    workspace, _ = ws
    runs = list(Experiment(workspace, "chainer-mnist").get_runs())
    assert runs and runs[0].get_status() == "Completed"
    log = runs[0]._read_log()
    assert "Reusing environment 'chainer-mnist-env'" in log, "run `make install` (it builds the job environments)"
    assert "Building environment" not in log


@pytest.mark.parametrize("tool", ["uv", "requests"])
def test_the_walkthrough_kernels_could_not_reach_a_registry(tool, tmp_path):
    """The outage the notebooks ran under is real: neither uv nor an HTTPS client reaches PyPI under it."""
    import subprocess
    import sys

    from uv import find_uv_bin

    from helpers.walkthrough import registry_unreachable

    env = {**os.environ, **registry_unreachable()}
    if tool == "uv":
        command = [find_uv_bin(), "pip", "install", "--dry-run", "--no-cache", "--python", sys.executable,
                   "--target", str(tmp_path), "six==1.16.0"]  # fmt: skip
    else:
        command = [sys.executable, "-c", "import requests; requests.get('https://pypi.org/simple/six/', timeout=10)"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout + done.stderr


def test_the_v2_track_agrees_with_the_v1_track_on_the_same_data(ws, v2_track_workspace, tmp_path, monkeypatch):
    """notebooks/v2/03-train trains what 03-train trains, on the same files: the test accuracies agree. The v2
    track ran in a workspace of its own (on the other worker, at the same time as v1's)."""
    import json

    import mlflow
    from aml_offline import Experiment, Model, Workspace
    from aml_offline.facade_v2 import MLClient

    workspace, _ = ws
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(v2_track_workspace))
    ml_client = MLClient.from_config(credential=None)
    v2_workspace = Workspace.from_config()
    jobs = [j for j in ml_client.jobs.list() if j.experiment_name == "keras-mnist-v2" and j.status == "Completed"]
    if not jobs:
        pytest.skip("the v2 notebooks did not run in this session")
    mlflow.set_tracking_uri(ml_client.workspaces.get().mlflow_tracking_uri)
    v2_accuracy = mlflow.get_run(jobs[0].name).data.metrics["Final test accuracy"]
    v1_run = next(iter(Experiment(workspace, "keras-mnist").get_runs()))
    v1_accuracy = v1_run.get_metrics()["Final test accuracy"]
    assert abs(v2_accuracy - v1_accuracy) < 0.03, (v1_accuracy, v2_accuracy)
    ml_client.models.download("keras-mnist-v2", ml_client.models.get("keras-mnist-v2", label="latest").version,
                              download_path=str(tmp_path))  # fmt: skip
    v2_source = json.loads(next(tmp_path.rglob("metadata.json")).read_text())["data_source"]
    assert v2_source == Model(workspace, "keras-mnist").properties["data_source"], "the same MNIST files"
    assert jobs[0].name in [r.id for r in Experiment(v2_workspace, "keras-mnist-v2").get_runs()], "one run history"
