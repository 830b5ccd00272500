"""Job environments, for a project that locks or prepares them ahead of time (public).

When a run's environment asks for packages the notebook's interpreter lacks, the local workspace builds a
virtual environment for it with ``uv`` and keeps it, keyed by what it installs.  A project can lock those
environments (``<environment name>.txt`` in its ``env-locks`` folder, with the ``requirements key`` line
:func:`requirements_key` gives) and build them before a workshop with :func:`ensure`.  An environment is the dict
``{"name": ..., "pip": [...], "conda": [...]}``.

Names that exist on Azure ML, to check an environment's image and a cluster's size against (dated lists: see
:mod:`aml_offline.azure_names`): ``BASE_IMAGES``, ``DEPRECATED_IMAGES``, ``VM_SIZES``, ``RETIRED_VM_SIZES``,
:func:`image_problem`, :func:`base_image`, :func:`deprecated_image`, :func:`vm_size`, :func:`retired_vm_size`
and :func:`has_gpu`.
"""

from aml_offline.azure_names import (
    BASE_IMAGES,
    DEPRECATED_IMAGES,
    IMAGES_DATE,
    REGISTRY,
    RETIRED_VM_SIZES,
    SOURCES,
    VM_SIZES,
    VM_SIZES_DATE,
    base_image,
    deprecated_image,
    has_gpu,
    image_name,
    image_problem,
    retired_vm_size,
    vm_size,
)
from aml_offline.execution import curated as _curated
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
    "curated",
    "BASE_IMAGES",
    "BUILD_CONSTRAINTS",
    "DEPRECATED_IMAGES",
    "IMAGES_DATE",
    "REGISTRY",
    "RETIRED_VM_SIZES",
    "SOURCES",
    "VM_SIZES",
    "VM_SIZES_DATE",
    "base_image",
    "deprecated_image",
    "has_gpu",
    "image_name",
    "image_problem",
    "retired_vm_size",
    "vm_size",
    "EnvironmentBuildError",
    "cache_root",
    "ensure",
    "lock_for",
    "requirements",
    "requirements_key",
    "wheelhouse",
]


def curated(name: str) -> dict:
    """The environment of an Azure ML curated environment (``AzureML-sklearn-1.5``, or SDK v2's registry address
    ``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``) as a run gets it offline, to build it
    ahead of time with :func:`ensure`.  ``KeyError`` naming it when the dated catalogue has no such environment."""
    entry = _curated.find(name)
    if entry is None:
        raise KeyError(f"{name!r} is not in the local workspace's catalogue of curated environments ({_curated.DATE}).")
    return _curated.environment(entry)
