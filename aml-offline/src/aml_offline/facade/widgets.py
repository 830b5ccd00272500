"""``RunDetails`` of the local workspace: the project's run view, which works on Azure runs as well.

It lives in :mod:`aml_offline.run_details` (outside the local workspace's layers: it reads a run only through
azureml-core's public ``Run`` API, so the same view serves Azure mode); the facade offers it beside the other
azureml-shaped classes.
"""

from aml_offline.run_details import RunDetails

__all__ = ["RunDetails"]
