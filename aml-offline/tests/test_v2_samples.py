"""The ``aml-offline`` command on notebooks written like Microsoft's public SDK v2 samples (azureml-examples).

``v2_samples/`` holds them, with nothing of this repository in them and no added cell: each runs unmodified
through ``aml-offline run`` from a copy in a folder of its own, in a workspace the command finds there.  A v2
notebook never imports ``azureml``: its first ``import azure.ai.ml`` switches the local workspace on.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from test_v1_samples import COMMAND, no_internet, user_env

SAMPLES = sorted((Path(__file__).parent / "v2_samples").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", SAMPLES, ids=lambda p: p.stem)
def test_a_v2_sample_notebook_runs_offline_unmodified(notebook: Path, tmp_path):
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
    executed = (tmp_path / "out" / notebook.name).read_text()
    assert "Local mode (AZUREML_MODE=local)" in executed and "MLClient" in executed
    status = subprocess.run([str(COMMAND), "status"], cwd=work, env=user_env(), capture_output=True, text=True)
    assert status.returncode == 0 and "Processes:   none running" in status.stdout, status.stdout + status.stderr
