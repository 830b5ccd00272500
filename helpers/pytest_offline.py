"""A pytest plugin for projects that test their Azure ML v1 notebooks with nbval, offline, without a subscription.

    pytest -p helpers.pytest_offline --nbval-lax path/to/notebooks/

Every kernel nbval starts inherits ``helpers.aml.boundary.kernel_env()`` and
``AZUREML_MODE=local``, so the notebooks' own ``from azureml.core import ...``
get the local workspace (``AZUREML_LOCAL_ROOT``, else ``.azureml-local/``) with no
edit.  ``python -m helpers.notebook`` does the same for one notebook at a time.
"""

from __future__ import annotations

import os

from helpers.notebook import offline_env


def pytest_configure(config):
    os.environ.update(offline_env())
