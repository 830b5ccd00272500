"""A pytest plugin: a project's Azure ML notebooks (SDK v1) run offline under nbval, with no subscription.

Installed with the package (entry point ``pytest11``) and off until asked for::

    pytest --aml-offline notebooks/                                # each notebook in a fresh local workspace
    pytest --aml-offline --aml-offline-scope=session notebooks/    # one workspace for the session's notebooks

or in the project's pytest settings: ``aml_offline = notebook`` (or ``session``).  It turns nbval's lax mode on
unless ``--nbval`` or ``--nbval-lax`` is given, and runs each notebook in a kernel of pytest's own interpreter
(nbval's ``--nbval-current-env``) unless ``--nbval-kernel-name`` names another: a sample's kernel name
(``python38-azureml``) does not exist here.  The kernel of each notebook starts with
:func:`aml_offline.notebooks.offline_env`: ``AZUREML_MODE=local`` and the boundary switched on at its first
``import azureml``, so its own ``from azureml.core import Workspace`` gets the local workspace, unedited.  Only
the notebooks' kernels get that environment: the session's other tests and processes keep theirs.

The workspaces (runs, their logs, models, services) live in pytest's temporary folders
(``tmp_path_factory``: ``aml-offline-<notebook>N/workspace``, or ``aml-offline-sessionN/workspace``), so a
failed test's state is there to read and pytest's usual clean-up applies.  When a workspace's last notebook is
done, every process it started (web services, runs) is stopped, whether the notebook passed or not, and at the
end of the session (Ctrl-C too) whatever is left is stopped.  With pytest-xdist, keep each notebook's cells on one
worker (``--dist loadfile``); "session" is then one workspace per worker.
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
        "--aml-offline", action="store_true", default=False, dest="aml_offline",
        help="run .ipynb files offline against the local workspace (under nbval)",
    )  # fmt: skip
    group.addoption(
        "--aml-offline-scope", choices=SCOPES, default=None, dest="aml_offline_scope",
        help="a fresh local workspace per notebook (the default), or one per session",
    )  # fmt: skip
    parser.addini("aml_offline", "notebook or session: switch the aml-offline plugin on with this scope", default="")


def _scope(config) -> str | None:
    ini = config.getini("aml_offline").strip().lower()
    if ini and ini not in SCOPES:
        raise pytest.UsageError(f"aml_offline = {ini!r} in the pytest settings: use 'notebook' or 'session'.")
    if config.getoption("aml_offline") or config.getoption("aml_offline_scope") or ini:
        return config.getoption("aml_offline_scope") or ini or "notebook"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    scope = _scope(config)
    if scope is None:
        return
    option = config.option
    if not hasattr(option, "nbval_lax"):
        raise pytest.UsageError("aml-offline runs notebooks under nbval, which is not installed: "
                                "pip install 'aml-offline[pytest]' (or nbval).")  # fmt: skip
    if not (option.nbval or option.nbval_lax):
        option.nbval_lax = True
    if not option.nbval_kernel_name:
        option.nbval_current_env = True
    config.stash[_STATE] = {"scope": scope, "folders": {}}


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
    """nbval starts a notebook's kernel when its first cell is set up: start it offline, in its workspace; the
    environment is put back right after, so nothing else in the session is switched."""
    folder = _workspace_for(item)
    if folder is None:
        yield
        return
    from aml_offline.notebooks import offline_env  # only when switched on: a project that does not use it pays nothing

    kernel = {**offline_env(), "AZUREML_LOCAL_ROOT": str(folder)}
    saved = {name: os.environ.get(name) for name in kernel}
    os.environ.update(kernel)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell, stop what its workspace started (services, runs, their processes)."""
    state = item.config.stash.get(_STATE, None)
    folder = _workspace_for(item)
    if state is None or folder is None or state["scope"] == "session":
        return
    if nextitem is None or nextitem.path != item.path:
        _stop(folder)


def pytest_sessionfinish(session):
    """Whatever is still running at the end (the session's workspace, a notebook interrupted by Ctrl-C) stops."""
    state = session.config.stash.get(_STATE, None)
    for folder in (state or {}).get("folders", {}).values():
        _stop(folder)


def _stop(folder: Path) -> None:
    if (folder / "workspace.db").is_file():
        from aml_offline import stop_everything

        stop_everything(folder)


def pytest_report_header(config):
    state = config.stash.get(_STATE, None)
    if state is not None:
        return f"aml-offline: notebooks run offline, one local workspace per {state['scope']}"
    return None
