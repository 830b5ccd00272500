"""Job environments, for a project that locks or prepares them ahead of time (public).

When a run's environment asks for packages the notebook's interpreter lacks, the local workspace builds a
virtual environment for it with ``uv`` and keeps it, keyed by what it installs.  A project can lock those
environments (``<environment name>.txt`` in its ``env-locks`` folder, with the ``requirements key`` line
:func:`requirements_key` gives) and build them before a workshop with :func:`ensure`.  An environment is the dict
``{"name": ..., "pip": [...], "conda": [...]}``.
"""

from aml_offline.execution.envs import (
    BUILD_CONSTRAINTS,
    EnvironmentBuildError,
    cache_root,
    ensure,
    lock_for,
    requirements,
    requirements_key,
    wheelhouse,
)

__all__ = [
    "BUILD_CONSTRAINTS",
    "EnvironmentBuildError",
    "cache_root",
    "ensure",
    "lock_for",
    "requirements",
    "requirements_key",
    "wheelhouse",
]
