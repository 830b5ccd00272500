"""Clean-up: ``make reset`` stops the local workspace's servers and runs before it deletes the folder, and
``notebooks/99-cleanup.ipynb`` deletes one student's services and runs in a shared workspace, no one else's.

The services are real ones (Azure ML's inference server on 127.0.0.1) running a scoring script that needs no
model, so each starts in seconds; the runs are real processes that sleep until they are stopped."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support import PROJECT, script_dir

SCORE = "def init():\n    pass\n\n\ndef run(raw):\n    return {'predictions': [7]}\n"
SLEEPER = "import time\n\nfrom azureml.core import Run\n\nRun.get_context().log('started', 1)\ntime.sleep(600)\n"


def _family(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _port_open(uri: str) -> bool:
    port = int(uri.split(":")[2].split("/")[0])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _gone(processes: list[psutil.Process], timeout: float = 15) -> list[psutil.Process]:
    """The processes still alive (zombies count as gone) after waiting up to ``timeout`` seconds."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture()
def shared(tmp_path, monkeypatch):
    """A local workspace in which two students, ana and ben, each left a web service and a run running."""
    import aml_offline
    from aml_offline import Experiment, Model, Workspace
    from azureml.core import ScriptRunConfig
    from azureml.core.model import InferenceConfig

    root = tmp_path / "ws"
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(root))
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("none")
    model = Model.register(ws, model_path=str(tmp_path / "model"), model_name="tiny")
    src = script_dir(tmp_path, SCORE, name="score.py")
    script_dir(tmp_path, SLEEPER, name="sleep.py")
    left = {}
    for student in ("ana", "ben"):  # started together, waited for together: their start-ups overlap
        service = Model.deploy(ws, f"{student}-keras-mnist-svc", [model],
                               InferenceConfig(entry_script="score.py", source_directory=str(src)))  # fmt: skip
        config = ScriptRunConfig(source_directory=str(src), script="sleep.py")
        run = Experiment(ws, f"{student}-keras-mnist").submit(config, tags={"student": student})
        left[student] = {"service": service, "run": run}
    for things in left.values():  # both servers answer and both runs really run before anything is stopped
        things["service"].wait_for_deployment()
        _wait_running(things["run"])
    yield ws, root, left
    aml_offline.stop_everything(root)


def _wait_running(run, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while run.get_status() != "Running" or "started" not in run.get_metrics():
        assert time.monotonic() < deadline, f"run {run.id} did not start: {run.get_status()}"
        time.sleep(0.5)


def _processes(root: Path) -> list[psutil.Process]:
    import aml_offline

    return [p for entry in aml_offline.running(root) for p in _family(entry["pid"])]


def test_cleanup_notebook_then_make_reset(shared, tmp_path):
    """99-cleanup run by ana deletes ana's service and cancels ana's run, and leaves ben's; then make reset
    stops ben's server and run and deletes the workspace. (One test: the set-up is the slow part.)"""
    from aml_offline import notebooks

    ws, root, left = shared
    ana, ben = left["ana"], left["ben"]
    ana_processes, ana_uri = _family(ana["service"]._pid), ana["service"].scoring_uri
    env = dict(os.environ, AZUREML_LOCAL_ROOT=str(root), AML_PREFIX="ana")
    _, failure = notebooks.execute(PROJECT / "notebooks" / "99-cleanup.ipynb", tmp_path / "out", env=env,
                                   workdir=PROJECT / "notebooks", timeout=300)  # fmt: skip
    if failure:
        index, cell, exc = failure
        pytest.fail(f"99-cleanup, cell {index}: {exc.ename}: {exc.evalue}\n{cell.source[:300]}")

    names = set(ws.webservices)
    assert "ana-keras-mnist-svc" not in names, "ana's service is deleted"
    assert not _gone(ana_processes) and not _port_open(ana_uri), "and its server stopped"
    assert ana["run"].get_status() in ("Canceled", "CancelRequested"), "ana's run is canceled"

    assert "ben-keras-mnist-svc" in names, "ben's service is left alone"
    answer = ben["service"].run(json.dumps({"data": [[0.0] * 784]}))
    assert answer == {"predictions": [7]}, "and still answers"
    assert ben["run"].get_status() == "Running", "ben's run still runs"

    # make reset, on what is left: ben's server and run
    processes, ben_uri = _processes(root), ben["service"].scoring_uri
    assert processes and _port_open(ben_uri), "ben's server and run are running"
    make = (PROJECT / "Makefile").read_text()
    recipe = re.search(r"^reset:.*\n\t(.+)$", make, re.M).group(1)
    assert recipe == "$(VENV)/bin/aml-offline reset --yes", "make reset is the command this test runs"
    done = subprocess.run([str(Path(sys.executable).parent / "aml-offline"), "reset", "--yes"],
                          env=dict(os.environ, AZUREML_LOCAL_ROOT=str(root)),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Stopped [1-9]\d* process\(es\) and deleted the local workspace", done.stdout), done.stdout
    assert not _gone(processes), "no server, run or child of theirs outlives make reset"
    assert not _port_open(ben_uri), "the service's port is free"
    assert not root.exists(), "the workspace folder is deleted"
