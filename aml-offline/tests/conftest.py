"""Set-up for the package's own tests: local mode, and a workspace folder of the session's own, no network.

In this repository the walkthrough's conftest.py (one folder up) has set these already; ``setdefault`` keeps its
choices.  Each test that needs a workspace of its own takes the ``ws`` fixture.
"""

import os
import tempfile

import pytest

os.environ.setdefault("AZUREML_MODE", "local")
if "AZUREML_LOCAL_ROOT" not in os.environ:  # run on its own: a session folder (pytest's tmp folders are per test)
    _session = tempfile.mkdtemp(prefix="aml-offline-tests-")
    os.environ["AZUREML_LOCAL_ROOT"] = os.path.join(_session, "workspace")
    os.environ.setdefault("AZUREML_ENV_CACHE", os.path.join(_session, "envs"))


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    """A fresh local workspace in this test's temporary folder (the test runs from that folder)."""
    import aml_offline

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    ws = aml_offline.Workspace.from_config()
    yield ws
    aml_offline.stop_everything(tmp_path / "ws")  # nothing outlives its test, even a failed one
