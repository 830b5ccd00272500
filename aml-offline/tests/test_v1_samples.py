"""The ``aml-offline`` command and the pytest plugin on notebooks written like Microsoft's public SDK v1 samples.

``v1_samples/`` holds them, one per area (a script run with a registered model; a HyperDrive sweep; Model.deploy
with keys; environments; compute targets; a datastore upload and train; tabular datasets; the logging API; Open
Datasets with MLflow), with nothing of this repository in them.  Each runs unmodified through ``aml-offline run``
(what ``make notebook NB=...`` calls), from a copy in a folder of its own (their ``%%writefile`` cells write there,
as in a user's project), in a workspace the command finds there.  The pytest plugin's route is
``test_standalone.py``'s, in an environment without the walkthrough; here its scopes are checked on two small
notebooks.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

#: train-on-local runs in test_standalone.py instead, through the command and the plugin, in a bare environment
SAMPLES = sorted(p for p in (Path(__file__).parent / "v1_samples").glob("*.ipynb") if p.stem != "train-on-local")
COMMAND = Path(sys.executable).parent / "aml-offline"


#: This test session's switches, which a user's shell does not have. The session's own cache of built job
#: environments is one of them: a sample runs with the user's cache, where ``make install`` built the curated
#: environments the samples use, as the walkthrough's kernels use the environments it built.
SESSION_ONLY = ("AZUREML_INTERCEPT", "AZUREML_MODE", "AZUREML_LOCAL_ROOT", "AZUREML_ENV_CACHE")


def user_env(**extra) -> dict:
    """The environment of a user's shell: none of this test session's switches."""
    env = {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}
    return {**env, **extra}


def no_internet() -> dict:
    """Proxies on a closed local port: a notebook that reaches for the web (Open Datasets' MNIST address) fails at
    once and takes its offline route, and the test never touches the internet (127.0.0.1 stays reachable)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "UV_OFFLINE": "1"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = closed
    return env


def run_sample(notebook: Path, tmp_path: Path) -> str:
    """Run a sample notebook unmodified through ``aml-offline run`` from a project folder of its own, offline, and
    check every cell passed and nothing is left running; the executed notebook's text."""
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(notebook, work)
    result = subprocess.run(
        [str(COMMAND), "run", str(work / notebook.name), "--out", str(tmp_path / "out")],
        cwd=work, env=user_env(AZUREML_MODE="local", **no_internet()), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:  # a notebook that stopped half-way leaves its services up, as on Azure: stop them
        subprocess.run([str(COMMAND), "stop"], cwd=work, env=user_env(), capture_output=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = (tmp_path / "out" / f"{notebook.stem}.cells.txt").read_text().splitlines()
    assert lines[1:] and all(line.lstrip().startswith("ok ") for line in lines[1:]), lines
    assert (work / ".azureml-local" / "workspace.db").is_file()  # the project folder's workspace
    status = subprocess.run([str(COMMAND), "status"], cwd=work, env=user_env(), capture_output=True, text=True)
    assert status.returncode == 0 and "Processes:   none running" in status.stdout, status.stdout + status.stderr
    return (tmp_path / "out" / notebook.name).read_text()  # the executed copy, with outputs


@pytest.mark.samples
@pytest.mark.parametrize("notebook", SAMPLES, ids=lambda p: p.stem)
def test_a_v1_sample_notebook_runs_offline_unmodified(notebook: Path, tmp_path):
    assert "Local mode (AZUREML_MODE=local)" in run_sample(notebook, tmp_path)


def _notebook(path: Path, *sources: str) -> None:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(book, path)


@pytest.mark.parametrize("scope", ["session"])
def test_the_pytest_plugin_gives_each_notebook_or_the_session_a_workspace_in_pytests_temporary_folder(tmp_path, scope):
    """``--aml-offline`` (and the ini option) switch the plugin on; the workspace lives under ``--basetemp``.
    The default scope, a workspace per notebook, is checked in ``test_standalone.py`` in a bare environment (this
    test takes ``scope="notebook"`` too, but make test runs it once)."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("a", "b"):
        _notebook(
            work / f"{name}.ipynb",
            "import json, os\nfrom azureml.core import Dataset, Workspace\nws = Workspace.from_config()",
            f"open('{name}.txt', 'w').write('{name}')\n"
            f"Dataset.File.from_files('{name}.txt').register(ws, 'data-{name}')\n"
            f"json.dump({{'root': os.environ['AZUREML_LOCAL_ROOT'], 'ws': type(ws).__module__,"
            f" 'datasets': sorted(Dataset.get_all(ws))}}, open('{name}.json', 'w'))",
        )
    (work / "pytest.ini").write_text(f"[pytest]\naml_offline = {scope}\n" if scope == "session" else "[pytest]\n")
    # the plugin's switch leaves the rest of the session alone: a plain test beside the notebooks sees no boundary
    (work / "test_plain.py").write_text(
        "import os\ndef test_untouched():\n    assert 'AZUREML_INTERCEPT' not in os.environ\n"
    )
    flag = ["--aml-offline"] if scope == "notebook" else []  # as the README writes it: the flag, then the paths
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:cov", "-q",
         "--basetemp", str(tmp_path / "bt"), *flag, "a.ipynb", "test_plain.py", "b.ipynb"],
        cwd=work, env=user_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    a, b = (json.loads((work / f"{n}.json").read_text()) for n in ("a", "b"))
    assert a["ws"].startswith("aml_offline.") and b["ws"].startswith("aml_offline.")
    for seen in (a, b):
        assert Path(seen["root"]).is_relative_to(tmp_path / "bt") and Path(seen["root"], "workspace.db").is_file()
    if scope == "notebook":
        assert a["root"] != b["root"] and b["datasets"] == ["data-b"]
    else:
        assert a["root"] == b["root"] and b["datasets"] == ["data-a", "data-b"]


def test_the_plugin_is_off_unless_asked(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    _notebook(work / "a.ipynb", "1 + 1")
    (work / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:cov", "-q", "a.ipynb"],
        cwd=work, env=user_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "no tests ran" in result.stdout, result.stdout  # no nbval, no notebooks collected: the plugin did nothing
    assert "aml-offline" not in result.stdout
