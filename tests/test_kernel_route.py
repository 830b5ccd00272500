"""The compute-instance route: `make kernel` registers the project's environment as a Jupyter kernel, that kernel runs
the notebooks' first cell, and a kernel without the project says in one line which kernel to pick.

Kernel specs go to a temporary ``JUPYTER_DATA_DIR`` (``ipykernel install --user`` writes there, and
``KernelSpecManager`` reads only there for the user's kernels), so the machine's own kernels are left alone.
The kernel "without the project" is a bare virtual environment with only ipykernel in it, installed by uv from
its cache with no network (the packages ``make install`` fetched), else the system's Python 3.11 when that has
ipykernel; the test skips, saying why, when neither can give one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import psutil
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from support import PROJECT

NOTEBOOKS = sorted(PROJECT.glob("notebooks/*.ipynb")) + sorted(PROJECT.glob("notebooks/*/*.ipynb"))
MAKEFILE = (PROJECT / "Makefile").read_text()
KERNEL_NAME = re.search(r"^KERNEL_NAME := (.+)$", MAKEFILE, re.M).group(1)
DISPLAY_NAME = re.search(r"^KERNEL_DISPLAY_NAME := (.+)$", MAKEFILE, re.M).group(1)
#: The project's own packages: a kernel that can import these is not "without the project"
PROJECT_DISTRIBUTIONS = {"aml-offline", "azureml-keras-mnist"}


def first_code_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


@pytest.fixture
def jupyter_data(tmp_path, monkeypatch):
    """A user Jupyter folder of this test's own: kernel specs are installed and found there only."""
    folder = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    return folder


def kernel_env(**extra) -> dict:
    """This process's environment without anything that would put the project on a kernel's path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return env | extra


@contextlib.contextmanager
def started_kernel(name: str, cwd: Path, env: dict):
    """Start the kernel spec ``name`` (found by KernelSpecManager), yield its client; shut it down and check that
    its process is gone, whatever happened."""
    manager = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager())
    manager.start_kernel(cwd=str(cwd), env=env)
    pid = manager.provisioner.pid
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        assert not manager.is_alive()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def run_cell(client, code: str, timeout: float = 180) -> tuple[dict, str]:
    """Execute ``code``; returns the reply's content and what the cell printed."""
    printed = []

    def on_output(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = client.execute_interactive(code, timeout=timeout, output_hook=on_output)
    return reply["content"], "".join(printed)


def test_every_notebook_starts_with_the_same_first_cell_that_names_the_kernel():
    cells = {path.relative_to(PROJECT).as_posix(): first_code_cell(path) for path in NOTEBOOKS}
    assert len(cells) >= 16 and len(set(cells.values())) == 1, "one first cell, the same in every notebook"
    cell = cells["notebooks/00-setup.ipynb"]
    assert cell.startswith("try:\n    import aml_offline\nexcept ModuleNotFoundError:\n")
    assert cell.endswith(
        "\n\nMODE = aml_offline.activate()  # local workspace without a config.json, Azure ML with one"
    )
    assert f"pick the kernel '{DISPLAY_NAME}'" in cell and "make kernel" in cell
    assert len(cell.splitlines()) <= 10, "short: students read it first"
    heading = re.search(r"see README, '([^']+)'", cell).group(1)
    assert re.search(rf"^#+ {re.escape(heading)}$", (PROJECT / "README.md").read_text(), re.M), (
        f"the README section the message points to: {heading!r}"
    )


def test_make_help_lists_the_kernel_and_preflight_targets():
    shown = subprocess.run(["make", "-s", "help"], cwd=PROJECT, capture_output=True, text=True, check=True).stdout
    assert f"make kernel - register .venv as the Jupyter kernel '{DISPLAY_NAME}'" in shown
    assert "make preflight - " in shown


def test_make_kernel_installs_a_spec_that_runs_the_first_cell(jupyter_data, tmp_path):
    # -o: take .venv as installed (the tests run in it), so make runs the kernel target's own recipe only
    made = subprocess.run(["make", "-o", ".venv/.installed", "kernel"], cwd=PROJECT, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"Kernel > Change Kernel > {DISPLAY_NAME}" in made.stdout

    specs = KernelSpecManager().find_kernel_specs()
    assert Path(specs[KERNEL_NAME]) == jupyter_data / "kernels" / KERNEL_NAME
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert spec.display_name == DISPLAY_NAME and spec.language == "python"
    assert Path(spec.argv[0]).is_absolute() and Path(spec.argv[0]).samefile(PROJECT / ".venv" / "bin" / "python")

    env = kernel_env(AZUREML_MODE="local", AZUREML_LOCAL_ROOT=str(tmp_path / "workspace"))
    with started_kernel(KERNEL_NAME, PROJECT / "notebooks", env) as kernel:
        reply, printed = run_cell(kernel, first_code_cell(PROJECT / "notebooks" / "00-setup.ipynb"))
        assert reply["status"] == "ok", reply
        assert printed.startswith("Local mode (AZUREML_MODE=local)") and str(tmp_path / "workspace") in printed
        reply, printed = run_cell(kernel, "import sys; print(MODE, sys.executable)")
        assert printed.split() == ["local", spec.argv[0]]


def _bare_python(tmp_path: Path) -> tuple[Path | None, str]:
    """A Python 3.11 with ipykernel and nothing of the project: (its path, how it was made) or (None, why not)."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    tried = []
    if uv:
        venv = tmp_path / "bare"
        # the project's versions of ipykernel and what it needs, from uv's cache, with the network off
        pins = tmp_path / "constraints.txt"
        pins.write_text("".join(f"{d.metadata['Name']}=={d.version}\n" for d in distributions()
                                if d.metadata["Name"].lower() not in PROJECT_DISTRIBUTIONS))  # fmt: skip
        offline = dict(os.environ, UV_OFFLINE="1", UV_NO_PROGRESS="1")
        steps = [
            [uv, "venv", "-q", str(venv), "--python", sys._base_executable],
            [uv, "pip", "install", "-q", "--offline", "--python", str(venv / "bin" / "python"), "-c", str(pins),
             "ipykernel"],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, env=offline, timeout=300)
            if done.returncode != 0:
                tried.append(f"uv offline: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
                break
        else:
            return venv / "bin" / "python", "a bare venv, ipykernel from uv's cache"
    else:
        tried.append("no uv")
    system = shutil.which("python3.11")
    if system:
        probe = "import importlib.util as u; print(bool(u.find_spec('ipykernel')), bool(u.find_spec('aml_offline')))"
        found = subprocess.run([system, "-c", probe], capture_output=True, text=True, env=kernel_env()).stdout.split()
        if found == ["True", "False"]:
            return Path(system), "the system's python3.11"
        tried.append(f"{system} has no ipykernel" if found[:1] == ["False"] else f"{system} has the project")
    else:
        tried.append("no python3.11 on PATH")
    return None, "; ".join(tried)


def test_a_kernel_without_the_project_says_which_kernel_to_pick(jupyter_data, tmp_path):
    python, how = _bare_python(tmp_path)
    if python is None:
        pytest.skip(f"no Python with ipykernel and without the project can be made offline here ({how})")
    env = kernel_env()
    subprocess.run([str(python), "-m", "ipykernel", "install", "--user", "--name", "bare-python"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    assert "bare-python" in KernelSpecManager().find_kernel_specs()

    with started_kernel("bare-python", PROJECT / "notebooks", env) as kernel:
        reply, _ = run_cell(kernel, "import importlib.util; assert importlib.util.find_spec('aml_offline') is None")
        assert reply["status"] == "ok", f"{how}: this kernel can import the project"
        for path in NOTEBOOKS:
            reply, printed = run_cell(kernel, first_code_cell(path))
            assert reply["status"] == "error" and reply["ename"] == "ModuleNotFoundError", (path, how, reply)
            message = reply["evalue"]
            assert message == (
                f"This kernel lacks the walkthrough's packages: pick the kernel '{DISPLAY_NAME}' "
                "(Kernel > Change Kernel), made by `make kernel`; see README, 'On an Azure ML compute instance'."
            )
            assert "\n" not in message and printed == ""
            assert "During handling" not in "\n".join(reply["traceback"]), "from None: no chained traceback"
