"""Fixtures shared by the tests (the session set-up is in the project's root conftest.py)."""

import pytest


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    """A fresh local workspace in this test's temporary folder (the tests run from that folder)."""
    import aml_offline
    from aml_offline import Workspace

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    yield ws
    aml_offline.stop_everything(tmp_path / "ws")  # no server outlives its test, even a failed one
