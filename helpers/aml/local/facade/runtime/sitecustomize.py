"""Put on PYTHONPATH of a locally submitted run: makes ``Run.get_context()`` the local run.

Like moto for AWS, the local workspace intercepts at the client boundary: the
training script keeps calling ``azureml.core.Run.get_context()`` unchanged, and
inside a local run that returns a run that records into the local run history.
The hook costs nothing until the script imports ``azureml.core``.  Standard
library only: the run's interpreter may be a separate environment.
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
_chain_to_the_next_sitecustomize()
