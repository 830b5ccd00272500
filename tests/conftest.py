"""Fixtures shared by the tests (the session set-up is in the project's root conftest.py)."""

import pytest


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    """A fresh local workspace in this test's temporary folder (the tests run from that folder)."""
    from aml_offline import Workspace
    from aml_offline.facade.models import stop_all

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    yield ws
    stop_all(ws._store)  # no server outlives its test, even a failed one
