"""``aml-offline status / stop / reset``: what a workspace holds and runs, stopping it, and deleting it safely.

A real process stands in for a web service's server: a ``sleep`` recorded in the workspace's ledger, as the
twin records every process it starts (its start time is the identity checked before any signal).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import aml_offline
from aml_offline.execution import ledger
from aml_offline.store import LocalStore

COMMAND = Path(sys.executable).parent / "aml-offline"


def cli(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(COMMAND), *args], cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """A workspace folder with one recorded process running (owner service:svc), and the folder."""
    root = tmp_path / "ws"
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(root))
    store = LocalStore.get(root)
    proc = ledger.start(store, ledger.service_owner("svc"), "server", ["sleep", "300"], die_with_parent=False)
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it the moment it ends, as its server's parent would
    yield root, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_status_names_what_runs(workspace):
    root, proc = workspace
    out = cli("status", cwd=root.parent)
    assert out.returncode == 0, out.stderr
    assert f"Local workspace {root}" in out.stdout
    assert f"pid {proc.pid:>7}  server" in out.stdout and "service:svc" in out.stdout
    assert aml_offline.running(root) == [
        {"owner": "service:svc", "role": "server", "pid": proc.pid, "since": pytest.approx(proc_start(proc), abs=5)}
    ]


def proc_start(proc) -> float:
    return psutil.Process(proc.pid).create_time()


def test_stop_ends_every_recorded_process_and_keeps_the_folder(workspace):
    root, proc = workspace
    out = cli("stop", cwd=root.parent)
    assert out.returncode == 0 and "Stopped 1 process" in out.stdout, out.stdout + out.stderr
    assert proc.wait(timeout=10) is not None
    assert (root / "workspace.db").is_file() and aml_offline.running(root) == []


def test_reset_asks_first_and_then_stops_and_deletes(workspace):
    root, proc = workspace
    refused = cli("reset", cwd=root.parent, stdin=subprocess.DEVNULL)  # no terminal to ask on: nothing happens
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert proc.poll() is None and root.is_dir()
    done = cli("reset", "--yes", cwd=root.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert proc.wait(timeout=10) is not None and not root.exists()


def test_reset_refuses_a_folder_that_is_not_a_workspace(tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    out = cli("--workspace", str(folder), "reset", "--yes", cwd=tmp_path)
    assert out.returncode == 2 and "is not a local workspace" in out.stderr
    assert (folder / "thesis.tex").read_text() == "years of work"
    with pytest.raises(aml_offline.NotAWorkspace):
        aml_offline.reset(folder)


def test_status_of_a_folder_with_no_workspace_yet(tmp_path):
    out = cli("--workspace", str(tmp_path / "none"), "status", cwd=tmp_path)
    assert out.returncode == 0 and "No local workspace" in out.stdout
    assert not (tmp_path / "none").exists()  # looking does not create it


def test_reset_deletes_what_the_workspace_wrote_and_nothing_else(tmp_path, monkeypatch):
    """A workspace pointed at a project's own folder ([tool.aml-offline] workspace = ".") keeps the project."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    (project / "src" / "train.py").write_text("print('mine')\n")
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(project))
    LocalStore.get(project)
    out = cli("reset", "--yes", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in project.iterdir()) == [".git", "src"]
    assert (project / "src" / "train.py").read_text() == "print('mine')\n"
    assert "the folder stays" in out.stdout


def test_run_uses_the_workspace_of_the_folder_it_is_run_from(tmp_path):
    """A notebook in a sub-project (its own pyproject.toml) run from the top uses the top's workspace, the one
    ``aml-offline status`` and ``reset`` there see."""
    import nbformat

    top = tmp_path / "top"
    sub = top / "samples"
    sub.mkdir(parents=True)
    (top / "pyproject.toml").write_text("[tool.aml-offline]\nworkspace = 'state'\n")
    (sub / "pyproject.toml").write_text("[project]\nname = 'samples'\n")
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("import os\nprint('ROOT=' + os.environ['AZUREML_LOCAL_ROOT'])")]
    nbformat.write(book, sub / "nb.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("AZUREML_LOCAL_ROOT", "AZUREML_INTERCEPT")}
    out = cli("run", "samples/nb.ipynb", "--out", str(tmp_path / "out"), cwd=top, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"ROOT={top / 'state'}" in (tmp_path / "out" / "nb.ipynb").read_text()


@pytest.mark.parametrize(
    ("source", "error"),
    [("import time\ntime.sleep(60)", "CellTimeoutError"), ("import os\nos._exit(1)", "DeadKernelError")],
    ids=["a cell that hangs", "a kernel that dies"],
)
def test_run_reports_a_hung_cell_or_a_dead_kernel_and_keeps_what_ran(tmp_path, source, error):
    import nbformat

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(c) for c in ("print('first')", source, "print('never')")]
    nbformat.write(book, tmp_path / "nb.ipynb")
    env = {k: v for k, v in os.environ.items() if k != "AZUREML_INTERCEPT"}
    out = cli("run", "nb.ipynb", "--out", str(tmp_path / "out"), "--cell-timeout", "2", cwd=tmp_path, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = (tmp_path / "out" / "nb.cells.txt").read_text().splitlines()
    assert lines[1].lstrip().startswith("ok") and "FAILED" in lines[2] and error in lines[2], lines
    assert "not run" in lines[3]
    assert "first" in (tmp_path / "out" / "nb.ipynb").read_text()  # the executed copy, with what ran


def test_stopping_one_workspace_leaves_anothers_process_of_the_same_name_alone(tmp_path):
    """Two workspaces on one machine (two students, two tests) may both have a service named "svc"."""
    procs = []
    for name in ("one", "two"):
        store = LocalStore.get(tmp_path / name)
        proc = ledger.start(store, ledger.service_owner("svc"), "server", ["sleep", "300"], die_with_parent=False)
        threading.Thread(target=proc.wait, daemon=True).start()
        procs.append(proc)
    try:
        assert aml_offline.stop_everything(tmp_path / "one") == 1
        assert procs[0].wait(timeout=10) is not None
        time.sleep(0.5)
        assert procs[1].poll() is None, "the other workspace's process was stopped"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def test_stop_ends_a_running_run_canceled_with_the_reason_not_left_running(ws, tmp_path):
    """After ``aml-offline stop`` no run reads Preparing or Running with no process behind it (a notebook that
    submitted and did not wait left such runs); an interactive run, which has no process, is left as it was."""
    import time

    from azureml.core import ScriptRunConfig

    from aml_offline.facade import Experiment

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "slow.py").write_text("import time\ntime.sleep(120)\n")
    config = ScriptRunConfig(source_directory=str(tmp_path / "src"), script="slow.py")
    config.run_config.environment.python.interpreter_path = sys.executable
    experiment = Experiment(ws, "stopped")
    run = experiment.submit(config)
    interactive = experiment.start_logging(snapshot_directory=None)
    deadline = time.time() + 60
    while run.get_status() != "Running" and time.time() < deadline:
        time.sleep(0.3)
    aml_offline.stop_everything(ws._store.root)
    assert run.get_status() == "Canceled" and "aml-offline stop" in run.get_details()["cancelReason"]
    assert interactive.get_status() == "Running"
    interactive.complete()


def test_status_reads_a_service_whose_server_is_gone_as_unhealthy_not_healthy(tmp_path):
    """As ``Webservice.state`` reads it: after a stop the record still says Healthy, but no server answers."""
    from aml_offline.records import services as service_records

    root = tmp_path / "ws"
    store = LocalStore.get(root)
    service_records.claim(store, "svc", "ACI", str(tmp_path), False, [])
    service_records.set_state(store, "svc", "Healthy", pid=4_000_000)  # a pid no live server of its has
    out = cli("--workspace", str(root), "status", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "svc (Unhealthy: no server (stopped))" in out.stdout, out.stdout
