"""The Chainer track: its script, and runs whose environment the local workspace builds and reuses."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from aml_offline import Dataset, Experiment
from aml_offline.execution import envs
from aml_offline.facade.environments import environment_spec as _environment_spec
from azureml.core import Environment, ScriptRunConfig
from azureml.exceptions import ActivityFailedException
from support import PROJECT

from helpers import chainer_mlp, data

ENV_FILE = PROJECT / "scripts" / "chainer-env.yml"


def chainer_env() -> Environment:
    return Environment.from_conda_specification("chainer-mnist-env", str(ENV_FILE))


def test_chainer_script_runs_standalone_for_an_epoch(tmp_path):
    python = envs.ensure(_environment_spec(chainer_env()), say=lambda line: None)
    folder = data.fetch_mnist(progressbar=False).folder
    done = subprocess.run(
        [python, str(PROJECT / "scripts" / "chainer_mnist.py"), "--data-folder", str(folder), "--epochs", "1",
         "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Chainer 7.8.1, NumPy 1." in done.stdout and "epoch 1/1: validation loss" in done.stdout
    assert "Training on the CPU" in done.stdout and done.stdout.count("Final test accuracy") == 1
    params = chainer_mlp.load(tmp_path / "out" / "model.npz")
    assert params["l1/W"].shape == (100, 784) and params["l3/b"].shape == (10,)


def _preparing_seconds(run) -> float:
    """Time from Preparing to Running, from the run's own log."""
    stamps = {}
    for line in run._read_log().splitlines():
        found = re.match(r"\[([\d-]+ [\d:]+)\] Status: (Preparing|Running)", line)
        if found:
            stamps[found[2]] = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S")
    return (stamps["Running"] - stamps["Preparing"]).total_seconds()


def test_a_chainer_run_builds_its_environment_once_then_reuses_it(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("AZUREML_ENV_CACHE", str(tmp_path / "envs"))  # a cold cache, for this test alone
    ds = Dataset.File.from_files(path=data.mnist_urls()).register(ws, "mnist-dataset", create_new_version=True)
    config = ScriptRunConfig(
        source_directory=str(PROJECT / "scripts"),
        script="chainer_mnist.py",
        arguments=["--data-folder", ds.as_named_input("mnist").as_mount(), "--epochs", 2, "--batchsize", 128],
        environment=chainer_env(),
    )
    first = Experiment(ws, "chainer-mnist").submit(config)
    first.wait_for_completion()
    second = Experiment(ws, "chainer-mnist").submit(config)
    second.wait_for_completion()

    first_log, second_log = first._read_log(), second._read_log()
    assert "Building environment 'chainer-mnist-env'" in first_log and "+ chainer==7.8.1" in first_log
    assert "Installing the lock" in first_log and "chainer-mnist-env.txt" in first_log  # the project's lock, hashed
    assert "Reusing environment 'chainer-mnist-env'" in second_log and "Building environment" not in second_log
    # The logs above are the check; the seconds are printed, not asserted: a build from the lock with a warm uv
    # cache can take under a second, as long as a reuse (a timing in a test would flake).
    built, reused = _preparing_seconds(first), _preparing_seconds(second)
    print(f"Preparing: {built:.0f} s building the environment, {reused:.0f} s reusing it")

    metrics = second.get_metrics()
    assert len(metrics["Accuracy"]) == 2 and metrics["Batch size"] == 128 and metrics["Epochs"] == 2
    model = second.register_model(model_name="chainer-dnn-mnist", model_path="outputs/model.npz")
    params = chainer_mlp.load(model.download(target_dir=str(tmp_path / "dl")))
    mnist = data.load_mnist(data.fetch_mnist(progressbar=False).folder)
    predicted = chainer_mlp.predict(params, mnist.x_test.reshape(-1, 784) / 255.0).argmax(axis=1)
    assert np.mean(predicted == mnist.y_test) == pytest.approx(metrics["Final test accuracy"], abs=0.002)


def test_a_broken_environment_fails_the_run_with_the_installers_error(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("AZUREML_ENV_CACHE", str(tmp_path / "envs"))
    env = chainer_env()
    env.python.conda_dependencies.add_pip_package("chainer-plugin-that-does-not-exist==9.9")
    src = Path(tmp_path / "src")
    src.mkdir()
    (src / "train.py").write_text("print('never runs')\n")
    run = Experiment(ws, "chainer-mnist").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                                 environment=env))  # fmt: skip
    with pytest.raises(ActivityFailedException, match="Building the environment failed"):
        run.wait_for_completion()
    message = run.get_details()["error"]["error"]["message"]
    assert "chainer-plugin-that-does-not-exist" in message and "never runs" not in run._read_log()
