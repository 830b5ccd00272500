"""A pytest plugin: a project's Azure ML notebooks (SDK v1) run offline under nbval, with no subscription.

Installed with the package (entry point ``pytest11``) and off until asked for::

    pytest --aml-offline notebooks/                      # each notebook in a fresh local workspace
    pytest --aml-offline=session notebooks/              # one workspace shared by the session's notebooks, in order

or in the project's pytest settings: ``aml_offline = notebook`` (or ``session``).  It turns nbval's lax mode on
unless ``--nbval`` or ``--nbval-lax`` is given.  Every kernel nbval starts inherits
:func:`aml_offline.notebooks.offline_env`: ``AZUREML_MODE=local`` and the boundary switched on at the notebook's
first ``import azureml``, so its own ``from azureml.core import Workspace`` gets the local workspace, unedited.

The workspaces (runs, their logs, models, services) live in pytest's temporary folders
(``tmp_path_factory``: ``aml-offline-<notebook>``, or ``aml-offline-session``), so a failed test's state is
there to read and pytest's usual clean-up applies.  When a workspace's last notebook is done, every process it
started (web services, runs) is stopped, whether the notebook passed or not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SCOPES = ("notebook", "session")
_STATE = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("aml-offline", "Azure ML notebooks offline (aml-offline)")
    group.addoption(
        "--aml-offline", nargs="?", const="notebook", default=None, choices=SCOPES, dest="aml_offline",
        help="run .ipynb files offline against the local workspace (under nbval): a fresh workspace per notebook "
             "(the default), or one per session",
    )  # fmt: skip
    parser.addini("aml_offline", "notebook or session: switch the aml-offline plugin on with this scope", default="")


def _scope(config) -> str | None:
    value = config.getoption("aml_offline") or config.getini("aml_offline").strip().lower() or None
    if value is not None and value not in SCOPES:
        raise pytest.UsageError(f"aml_offline = {value!r} in the pytest settings: use 'notebook' or 'session'.")
    return value


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    scope = _scope(config)
    if scope is None:
        return
    from aml_offline.notebooks import offline_env  # only when switched on: a project that does not use it pays nothing

    option = config.option
    if hasattr(option, "nbval_lax") and not (option.nbval or option.nbval_lax):
        option.nbval_lax = True
    os.environ.update(offline_env())
    config.stash[_STATE] = {"scope": scope, "folders": {}, "current": None}


def _workspace_for(item) -> Path | None:
    state = item.config.stash.get(_STATE, None)
    if state is None or item.path.suffix != ".ipynb":
        return None
    key = "session" if state["scope"] == "session" else str(item.path)
    if key not in state["folders"]:
        label = "session" if key == "session" else item.path.stem
        factory = item.config._tmp_path_factory  # pytest's own, as the tmp_path fixture uses
        state["folders"][key] = factory.mktemp(f"aml-offline-{label}", numbered=True) / "workspace"
    return state["folders"][key]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    """nbval starts a notebook's kernel when its first cell is set up: point it at its workspace first."""
    folder = _workspace_for(item)
    if folder is not None:
        os.environ["AZUREML_LOCAL_ROOT"] = str(folder)
    yield


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell, stop what its workspace started (services, runs, their processes)."""
    state = item.config.stash.get(_STATE, None)
    folder = _workspace_for(item)
    if state is None or folder is None or state["scope"] == "session":
        return
    if nextitem is None or nextitem.path != item.path:
        _stop(folder)


def pytest_sessionfinish(session):
    state = session.config.stash.get(_STATE, None)
    if state is not None and state["scope"] == "session" and "session" in state["folders"]:
        _stop(state["folders"]["session"])


def _stop(folder: Path) -> None:
    if (folder / "workspace.db").is_file():
        from aml_offline import stop_everything

        stop_everything(folder)


def pytest_report_header(config):
    state = config.stash.get(_STATE, None)
    if state is not None:
        return f"aml-offline: notebooks run offline, one local workspace per {state['scope']}"
    return None
