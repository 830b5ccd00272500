"""The offline runner on notebooks written like Microsoft's public SDK v1 samples, not for this project.

``tests/v1_samples/`` holds three of them (a script run with a registered model; a HyperDrive sweep on a cluster
with get_best_run_by_primary_metric; Model.deploy with keys, service.run and a raw requests.post).  Each runs
unmodified through ``python -m helpers.notebook``, the command ``make notebook NB=...`` gives a user, from a copy
in a folder of its own (their ``%%writefile`` cells write there, as in a user's project).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT

SAMPLES = sorted((PROJECT / "tests" / "v1_samples").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", SAMPLES, ids=lambda p: p.stem)
def test_a_v1_sample_notebook_runs_offline_unmodified(notebook: Path, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(notebook, work)
    env = {k: v for k, v in os.environ.items() if k not in ("AZUREML_INTERCEPT",)}
    result = subprocess.run(
        [sys.executable, "-m", "helpers.notebook", str(work / notebook.name), "--out", str(tmp_path / "out")],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = (tmp_path / "out" / f"{notebook.stem}.cells.txt").read_text().splitlines()
    assert lines[1:] and all(line.lstrip().startswith("ok ") for line in lines[1:]), lines
    assert (tmp_path / "out" / notebook.name).is_file()  # the executed copy, with outputs
    assert "Local mode (AZUREML_MODE=local)" in (tmp_path / "out" / notebook.name).read_text()


def test_the_nbval_route_runs_a_v1_notebook_offline(tmp_path):
    """A project's own CI: ``pytest -p helpers.pytest_offline --nbval-lax`` on its notebooks, no subscription."""
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(PROJECT / "tests" / "v1_samples" / "train-on-local.ipynb", work)
    (work / "pytest.ini").write_text("[pytest]\n")  # the user's project, not this one's settings
    env = {k: v for k, v in os.environ.items() if k not in ("AZUREML_INTERCEPT", "AZUREML_MODE")}
    env["AZUREML_LOCAL_ROOT"] = str(tmp_path / "workspace")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "helpers.pytest_offline", "--nbval-lax", "-p", "no:cacheprovider",
         "-q", "train-on-local.ipynb"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
