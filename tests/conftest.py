"""Fixtures shared by the tests (the session set-up is in the project's root conftest.py)."""

import pytest


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    """A fresh local workspace in this test's temporary folder (the tests run from that folder)."""
    from helpers.aml.local import Workspace

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    return Workspace.from_config()
