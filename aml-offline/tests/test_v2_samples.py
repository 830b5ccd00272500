"""The ``aml-offline`` command on notebooks written like Microsoft's public SDK v2 samples (azureml-examples).

``v2_samples/`` holds them, with nothing of this repository in them and no added cell: each runs unmodified
through ``aml-offline run`` from a copy in a folder of its own, in a workspace the command finds there.  A v2
notebook never imports ``azureml``: its first ``import azure.ai.ml`` switches the local workspace on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_v1_samples import run_sample

SAMPLES = sorted((Path(__file__).parent / "v2_samples").glob("*.ipynb"))


@pytest.mark.samples
@pytest.mark.parametrize("notebook", SAMPLES, ids=lambda p: p.stem)
def test_a_v2_sample_notebook_runs_offline_unmodified(notebook: Path, tmp_path):
    executed = run_sample(notebook, tmp_path)
    assert "Local mode (AZUREML_MODE=local)" in executed and "MLClient" in executed
