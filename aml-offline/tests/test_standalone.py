"""The package stands alone: its wheel, installed into a fresh virtual environment with nothing of the walkthrough
(no TensorFlow, no ``helpers``), runs a sample notebook offline through its console script and its pytest plugin,
in a project folder that holds only that notebook, with the package index unreachable.

The wheel is built from a copy of the package's folder; its dependencies come from the repository's lock of the
package alone (``locks/aml-offline.txt``, every file hash-checked) out of uv's cache, with uv offline (it reads only
its cache), pip without an index and every proxy on a closed local port, as on a workshop machine after
``make install``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent
LOCK = PACKAGE.parent / "locks" / "aml-offline.txt"
SAMPLE = PACKAGE / "tests" / "v1_samples" / "train-on-local.ipynb"


def _offline_env(**extra) -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    dropped = ("AZUREML_", "PYTHON", "VIRTUAL_ENV", "UV_", "PIP_", "MNIST_")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and "PROXY" not in k.upper()}
    # uv offline reads only its cache (whose entries are per index: the index URL stays the default); pip has no
    # index; every proxy is a closed port
    return {**keep, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1", "PIP_INDEX_URL": f"{closed}/simple",
            "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "ALL_PROXY": closed, "NO_PROXY": "127.0.0.1,localhost",
            **extra}  # fmt: skip


def _uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the package's wheel and the lock of its dependencies, nothing else."""
    if not LOCK.is_file():
        pytest.fail(f"{LOCK} is missing: run make lock")
    root = tmp_path_factory.mktemp("standalone")
    source = root / "aml-offline"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    env = _offline_env()
    _run([_uv(), "build", "--wheel", "--out-dir", root / "dist", source], env=env, timeout=300)
    wheel = next((root / "dist").glob("aml_offline-*.whl"))
    _run([_uv(), "venv", "--python", sys.executable, root / "venv"], env=env, timeout=120)
    python = root / "venv" / "bin" / "python"
    _run([_uv(), "pip", "install", "--python", python, "-r", LOCK], env=env, timeout=600)
    _run([_uv(), "pip", "install", "--python", python, "--no-deps", wheel], env=env, timeout=120)
    return root / "venv"


def test_the_wheel_installs_without_the_walkthrough(venv):
    python = venv / "bin" / "python"
    code = (
        "import importlib.util as u, aml_offline; "
        "print([m for m in ('helpers', 'tensorflow', 'keras', 'jax') if u.find_spec(m)], sorted(aml_offline.__all__))"
    )
    out = _run([python, "-c", code], env=_offline_env(), cwd=venv).stdout
    assert out.startswith("[] ["), out
    for name in ("activate", "deactivate", "Workspace", "MLClient", "stop_everything", "reset"):
        assert f"'{name}'" in out


def test_a_sample_runs_through_the_console_script_in_a_bare_project(venv, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(SAMPLE, project)
    result = subprocess.run(
        [venv / "bin" / "aml-offline", "run", SAMPLE.name], cwd=project, env=_offline_env(),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed: executed copy" in result.stdout
    cells = (project / "build" / "notebooks" / "offline" / f"{SAMPLE.stem}.cells.txt").read_text().splitlines()
    assert cells[1:] and all(line.lstrip().startswith("ok ") for line in cells[1:]), cells
    assert "Local mode (AZUREML_MODE=local)" in (project / "build" / "notebooks" / "offline" / SAMPLE.name).read_text()
    assert (project / ".azureml-local" / "workspace.db").is_file()  # the workspace sits in the project folder
    reset = subprocess.run([venv / "bin" / "aml-offline", "reset", "--yes"], cwd=project, env=_offline_env(),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert reset.returncode == 0 and not (project / ".azureml-local").exists(), reset.stdout + reset.stderr


def test_a_sample_runs_through_the_pytest_plugin_in_a_bare_project(venv, tmp_path):
    """Each notebook gets a fresh workspace of its own (the default scope) in pytest's temporary folder."""
    import nbformat

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(SAMPLE, project)
    second = nbformat.v4.new_notebook()
    code = "from azureml.core import Workspace\nws = Workspace.from_config()\nassert not ws.models  # not the sample's"
    second.cells = [nbformat.v4.new_code_cell(code)]
    nbformat.write(second, project / "second.ipynb")
    (project / "pytest.ini").write_text("[pytest]\naml_offline = notebook\n")
    result = subprocess.run(
        [venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", "--basetemp", tmp_path / "bt",
         SAMPLE.name, "second.ipynb"], cwd=project, env=_offline_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    assert "aml-offline: notebooks run offline, one local workspace per notebook" in result.stdout
    assert list((tmp_path / "bt").glob(f"aml-offline-{SAMPLE.stem}*/workspace/workspace.db"))
    assert list((tmp_path / "bt").glob("aml-offline-second*/workspace/workspace.db"))
    assert not (project / ".azureml-local").exists()  # the state went to pytest's temporary folder
