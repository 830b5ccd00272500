"""The client boundary: ``from azureml.core import Workspace`` gives the local workspace in local mode.

Like moto for AWS, the notebook keeps azureml-core's imports and calls, and one
visible call switches the twin on::

    import aml_offline.boundary

    MODE = aml_offline.boundary.activate()   # prints one line: the mode and the workspace folder

then, in the cells below, exactly what runs on Azure::

    from azure.ai.ml import MLClient, command, Input       # SDK v2 (notebooks/v2): the same switch


    from azureml.core import Workspace, Experiment, Dataset, Environment, ScriptRunConfig, Run, Model
    from azureml.core.compute import ComputeTarget, AmlCompute
    from azureml.core.webservice import AciWebservice, Webservice
    from azureml.widgets import RunDetails

The mode rules are :mod:`aml_offline.mode`'s (``AZUREML_MODE=local|azure``, else
Azure when a workspace config is found).  In local mode the workspace-bound names
of the modules in ``aml_offline.facade.boundary.TWINS`` read as the local
twins; configuration classes stay azureml-core's.  In Azure mode nothing of
azureml-core changes (only ``RunDetails`` becomes the project's run view, which
works on Azure runs and in JupyterLab 4).  :func:`deactivate` puts everything back.

How: the module objects are not edited.  Each one gets a subclass of its module
type whose attribute lookup answers the twin for those names, so
``from azureml.core.run import Run`` and ``azureml.core.Run`` give the twin, while
azureml-core's own code, which reads its module globals directly, keeps its own
classes.

Any Python process can opt in without a call: ``kernel_env()`` is the environment
(``AZUREML_INTERCEPT=1`` and the ``sitecustomize`` folder on ``PYTHONPATH``) under
which the first ``import azureml...`` activates the boundary;
``python -m aml_offline.notebooks`` runs notebooks that way.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
import types
from pathlib import Path

from aml_offline.mode import ModeError, read_config, resolve_mode

RUNTIME_DIR = Path(__file__).parent / "facade" / "runtime"
#: the variable the sitecustomize hook in ``RUNTIME_DIR`` looks for
INTERCEPT_VARIABLE = "AZUREML_INTERCEPT"
#: the project's run view; once it exists it is ``azureml.widgets.RunDetails`` in both modes
RUN_VIEW = ("aml_offline.run_details", "RunDetails")
RUN_VIEW_MODULES = ("azureml.widgets", "azureml.widgets.run_details")

_overlaid: dict[str, types.ModuleType] = {}
_said: set[str] = set()
_busy = False  # activate() imports azureml, which may call it again (the sitecustomize hook): once is enough
MODE: str | None = None

__all__ = ["MODE", "ModeError", "activate", "deactivate", "kernel_env"]


def _lookup(module: types.ModuleType, name: str):
    twins = type(module).__dict__["_twins"]
    if name in twins:
        return twins[name]
    return type(module).__mro__[1].__getattribute__(module, name)


def overlay(module_name: str, names: dict) -> bool:
    """Make ``names`` read as the given objects on that module (imported now); False when it is not installed."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    kind = type(module)
    if "_twins" in kind.__dict__:
        kind._twins.update(names)
    else:
        module.__class__ = type(f"Intercepted{kind.__name__}", (kind,),
                                {"_twins": dict(names), "__getattribute__": _lookup})  # fmt: skip
    _overlaid[module_name] = module
    return True


def deactivate() -> None:
    """Give every intercepted module back its own names (names already imported into a notebook stay bound)."""
    global MODE
    for module in _overlaid.values():
        kind = type(module)
        if "_twins" in kind.__dict__:
            module.__class__ = kind.__mro__[1]
    _overlaid.clear()
    for name in _stood_in:
        sys.modules.pop(name, None)
    _stood_in.clear()
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImport)]
    MODE = None


def _say(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line)


def _run_view() -> type | None:
    try:
        return getattr(importlib.import_module(RUN_VIEW[0]), RUN_VIEW[1])
    except ImportError:
        return None


def activate(path: str | os.PathLike | None = None, _file_name: str | None = None) -> str:
    """Apply the mode rules from ``path`` (as ``Workspace.from_config`` would search); returns "local" or "azure".

    Local: azureml's workspace-bound names become the local workspace's, and one line says where it keeps its
    state.  Azure: one line names the workspace; azureml-core is left as it is.  A config that cannot be read
    raises :class:`ModeError`, whose one line names the file.
    """
    global MODE, _busy
    if _busy:
        return MODE
    _busy = True
    try:
        MODE = _activate(path, _file_name)
    finally:
        _busy = False
    return MODE


def _activate(path, _file_name) -> str:
    mode, config_path = resolve_mode(path, _file_name)
    if mode == "azure":
        deactivate()
        view = _run_view()
        if view is not None:
            for name in RUN_VIEW_MODULES:
                overlay(name, {"RunDetails": view})
        config = read_config(config_path)
        _say(
            f"Azure ML mode: workspace '{config['workspace_name']}' (resource group {config['resource_group']}) "
            f"from {config_path}; azureml.core is unchanged. Set AZUREML_MODE=local to work offline instead."
        )
    else:
        # imported here, not above: Azure mode never loads the twin (nor its MLflow store)
        from aml_offline.facade import boundary as twin

        for name, names in twin.TWINS.items():
            overlay(name, names)
        _open_datasets()
        v2 = _overlay_v2()
        folder = twin.workspace_folder()
        twin.announced(folder)
        why = "AZUREML_MODE=local" if os.environ.get("AZUREML_MODE", "").strip().lower() == "local" else (
            f"no config.json in {Path(path or '.').absolute()} or its parents")  # fmt: skip
        _say(
            f"Local mode ({why}): azureml.core's Workspace and what it holds (experiments, runs and pipelines, "
            f"datasets and datastores, environments, compute, models and web services){V2_PART if v2 else ''} are the "
            f"offline local workspace in {folder}. A config.json (or AZUREML_MODE=azure) uses Azure ML instead."
        )
    return mode


V2_PART = " and azure.ai.ml's MLClient"
OPEN_DATASETS = "azureml.opendatasets"
_stood_in: set[str] = set()


def _open_datasets() -> None:
    """``from azureml.opendatasets import MNIST, Diabetes`` gives the local copies (:mod:`.facade.opendatasets`): the
    real package's names are taken over when it is installed; when it is not (it cannot be installed beside pandas
    2.1 or later), the local module stands in its place until :func:`deactivate`."""
    local = importlib.import_module("aml_offline.facade.opendatasets")
    if importlib.util.find_spec(OPEN_DATASETS) is not None and OPEN_DATASETS not in _stood_in:
        overlay(OPEN_DATASETS, {name: getattr(local, name) for name in local.AVAILABLE})
        return
    sys.modules[OPEN_DATASETS] = local
    _stood_in.add(OPEN_DATASETS)


def _overlay_v2() -> bool:
    """SDK v2: ``azure.ai.ml.MLClient`` becomes the local workspace's; False when azure-ai-ml is not installed.

    azure-ai-ml takes seconds to import, so a v1 notebook should not pay for it: when it is not imported yet,
    the overlay waits for the first ``import azure.ai.ml`` (a one-shot import hook) and happens right after it.
    """
    if importlib.util.find_spec("azure") is None or importlib.util.find_spec("azure.ai") is None:
        return False
    if importlib.util.find_spec("azure.ai.ml") is None:
        return False
    if "azure.ai.ml" in sys.modules:
        _apply_v2()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("azure.ai.ml", _apply_v2))
    return True


def _apply_v2() -> None:
    from aml_offline.facade_v2 import boundary as twin_v2

    if MODE == "azure":  # switched to Azure before azure.ai.ml was first imported
        return
    for name, names in twin_v2.TWINS.items():
        overlay(name, names)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then()`` once, right after the module ``name`` has been imported for the first time."""

    def __init__(self, name: str, then):
        self.name, self.then, self.busy = name, then, False

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name or self.busy:
            return None
        self.busy = True  # the other finders answer the inner lookup
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy = False
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenLoader(spec.loader, self)
        return spec  # a probe (find_spec without an import) leaves the hook in place for the real import


class _ThenLoader(importlib.abc.Loader):
    def __init__(self, loader, finder: _AfterImport):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        self.finder.then()

    def __getattr__(self, name):  # get_source, get_resource_reader, ...: the real loader's
        return getattr(self.loader, name)


def kernel_env(base: dict | None = None) -> dict:
    """An environment under which a Python process (a Jupyter kernel, a script) gets the boundary on its own."""
    env = dict(os.environ if base is None else base)
    env[INTERCEPT_VARIABLE] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(RUNTIME_DIR), env.get("PYTHONPATH")]))
    return env


if __name__ == "__main__":  # python -m aml_offline.boundary: which mode would a notebook here get?
    try:
        activate()
    except ModeError as exc:
        sys.exit(str(exc))
