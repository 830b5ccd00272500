"""Put on PYTHONPATH of a locally submitted run: makes ``Run.get_context()`` the local run.

Like moto for AWS, the local workspace intercepts at the client boundary: the
training script keeps calling ``azureml.core.Run.get_context()`` unchanged, and
inside a local run that returns a run that records into the local run history.
The hook costs nothing until the script imports ``azureml.core``.  Standard
library only: the run's interpreter may be a separate environment.

With ``AZUREML_INTERCEPT=1`` (``aml_offline.boundary.kernel_env()``), any process
(a notebook's kernel, a script) gets the whole client boundary: its first
``import azureml...`` or ``import azure.ai.ml`` calls ``aml_offline.boundary.activate()``
right after, so ``from azureml.core import Workspace`` and ``from azure.ai.ml import
MLClient`` follow the mode rules with no change to the code.  Inside a run or a web
service it does nothing: there azureml-core's own classes serve, as on Azure compute
(with the run context above).
"""

import importlib.abc
import importlib.util
import os
import sys

_TARGET = "azureml.core.run"


class _PatchRunContext(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            import azureml_local_run

            azureml_local_run.patch(module.Run)

        spec.loader.exec_module = exec_and_patch
        return spec


#: SDK v1 notebooks start with ``import azureml...``, SDK v2 ones with ``from azure.ai.ml import MLClient``
_SDK_PACKAGES = ("azureml", "azure.ai.ml")


class _ActivateBoundary(importlib.abc.MetaPathFinder):
    """On the first import of either SDK (``azureml``, ``azure.ai.ml``): import it, then activate the boundary
    before anything else."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _SDK_PACKAGES:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_activate(module):
            exec_module(module)
            if os.environ.get("AZUREML_LOCAL_RUN_DIR") or os.environ.get("AZUREML_MODEL_DIR"):
                return  # a run or a service: azureml-core's own classes, as on Azure compute
            facade = sys.modules.get("aml_offline.facade")
            if facade is not None and getattr(facade.__spec__, "_initializing", False):
                return  # the process imports the twin itself: it uses it directly
            try:
                boundary = importlib.import_module("aml_offline.boundary")
            except ImportError as exc:
                sys.stderr.write(
                    f"AZUREML_INTERCEPT is set, but {sys.executable} cannot import aml_offline.boundary ({exc}): "
                    "azureml.core is left as it is (Azure ML).\n"
                )
                return
            boundary.activate()

        spec.loader.exec_module = exec_and_activate
        return spec


def _chain_to_the_next_sitecustomize():
    """Python imports only the first ``sitecustomize`` on the path: run the one this hook shadows, if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in sys.path:
        if not folder or os.path.abspath(folder) == here:
            continue
        candidate = os.path.join(folder, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return


if os.environ.get("AZUREML_LOCAL_RUN_DIR"):
    sys.meta_path.insert(0, _PatchRunContext())
if os.environ.get("AZUREML_INTERCEPT") == "1" and not any(name in sys.modules for name in _SDK_PACKAGES):
    sys.meta_path.insert(0, _ActivateBoundary())
_chain_to_the_next_sitecustomize()
