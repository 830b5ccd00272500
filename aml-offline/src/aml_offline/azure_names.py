"""Names that exist on Azure ML: its base images, and the VM sizes a notebook may default to (dated data).

Two lists a notebook, a conda file or a Dockerfile can be checked against, so that a name Azure does not publish
(an image that was never built, a GPU size that was retired) is caught before a student meets it on Azure:

* **base images** (``mcr.microsoft.com/azureml/<name>``): the images Azure ML publishes for training and inference,
  which an environment names as its ``docker.base_image`` (SDK v1) or ``image`` (SDK v2).  ``BASE_IMAGES`` are the
  supported ones; ``DEPRECATED_IMAGES`` are those Azure published once and no longer updates (their old tags can
  still be pulled, but get no security fixes).
* **VM sizes** (``Standard_...``): ``VM_SIZES`` are current sizes with the reason each is on the list (a default,
  or the size to move to); ``RETIRED_VM_SIZES`` are sizes Azure no longer runs, which older samples still name.

Each list says where it comes from and when (``SOURCES``).  The local workspace warns in a run's log about an
image in Azure's namespace that is not a supported base image (:func:`image_problem`); it cannot ask a registry.
Pure data and small functions: standard library only (layer 0).
"""

from __future__ import annotations

import re

#: The registry and namespace of Azure ML's base images
REGISTRY = "mcr.microsoft.com/azureml/"

#: When each list was compiled, from the sources below
IMAGES_DATE = "2026-03-16"
VM_SIZES_DATE = "2026-12-05"

SOURCES = {
    "containers": "Azure/AzureML-Containers at 7482feaf (2026-03-16): README.md, section 'Supported Images'",
    "containers-history": "the same repository's history: README.md's image lists from 2019 to 2023-06-06 "
    "(eb314c1, the last to list images before the 2024 refactoring), and images/<name>/release-notes.md, which "
    "marked images 'Deprecated' (2025-02-24, 2025-09-09) before the 2026-03-16 refresh removed them",
    "examples": "Azure/azureml-examples at 085cd6ea (2026-07-31): sdk/python/resources/compute/compute.ipynb "
    "(clusters of STANDARD_DS3_v2, dedicated and low_priority), the SDK v2 Keras and TensorFlow samples "
    "(a gpu-cluster of STANDARD_NC4AS_T4_V3), managed online deployments (Standard_DS3_v2)",
    "retirements": "Microsoft's retirement notices for Azure VM series: NC (NVIDIA K80) retired 2023-08-31, NCv3 "
    "(NVIDIA V100) retired 2025-09-30; the migration guide for the D, Ds, Dv2, Dsv2 and Ls series, which names "
    "Dsv5 and later as their replacements (retirement announced for 2028)",
}

#: Azure ML's supported base images: name (under ``REGISTRY``), Ubuntu, CUDA (None: a CPU image), what it holds
BASE_IMAGES: list[dict] = [
    {"name": "openmpi4.1.0-ubuntu22.04", "ubuntu": "22.04", "cuda": None,
     "holds": "OpenMPI 4.1.0, Miniconda (py310), msodbcsql17"},
    {"name": "openmpi5.0-ubuntu24.04", "ubuntu": "24.04", "cuda": None, "holds": "OpenMPI 5.0.6, Miniconda (py310)"},
    {"name": "openmpi5.0-cuda12.4-ubuntu22.04", "ubuntu": "22.04", "cuda": "12.4.1",
     "holds": "OpenMPI 5.0.6, CUDA 12.4.1, cuDNN, Miniconda (py310)"},
    {"name": "openmpi5.0-cuda12.5-ubuntu22.04", "ubuntu": "22.04", "cuda": "12.5.1",
     "holds": "OpenMPI 5.0.6, CUDA 12.5.1, cuDNN, Miniconda (py310)"},
    {"name": "openmpi5.0-cuda12.6-ubuntu24.04", "ubuntu": "24.04", "cuda": "12.6.3",
     "holds": "OpenMPI 5.0.6, CUDA 12.6.3, cuDNN, Miniconda (py310)"},
    {"name": "openmpi5.0-cuda12.8-ubuntu24.04", "ubuntu": "24.04", "cuda": "12.8.1",
     "holds": "OpenMPI 5.0.6, CUDA 12.8.1, cuDNN, Miniconda (py310)"},
    {"name": "openmpi5.0-cuda13.1-ubuntu24.04", "ubuntu": "24.04", "cuda": "13.1.1",
     "holds": "OpenMPI 5.0.6, CUDA 13.1.1, cuDNN, Miniconda (py310)"},
]  # fmt: skip

_CPU, _CUDA12 = "openmpi4.1.0-ubuntu22.04", "openmpi5.0-cuda12.4-ubuntu22.04"
_MARKED_2025_02 = "marked Deprecated in its release notes on 2025-02-24; dropped from the list on 2026-03-16"
_LISTED_UNTIL_2021 = "last listed in the README on 2021-03-23 (Ubuntu 16.04 images were deprecated in 2021)"
_LISTED_UNTIL_2022 = "last listed in the README on 2022-12-14"
_LISTED_UNTIL_2023 = "last listed in the README on 2023-06-06"

#: Base images Azure ML published and no longer supports: name, what happened and when, what to use instead
DEPRECATED_IMAGES: list[dict] = [
    {"name": "openmpi4.1.0-ubuntu20.04", "when": _MARKED_2025_02, "use": _CPU},
    {"name": "openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04", "when": _MARKED_2025_02, "use": _CUDA12},
    {"name": "openmpi4.1.0-cuda11.2-cudnn8-ubuntu20.04", "when": _MARKED_2025_02, "use": _CUDA12},
    {"name": "openmpi4.1.0-cuda11.3-cudnn8-ubuntu20.04", "when": _MARKED_2025_02, "use": _CUDA12},
    {"name": "openmpi4.1.0-cuda11.6-cudnn8-ubuntu20.04", "when": _MARKED_2025_02, "use": _CUDA12},
    {"name": "openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04", "use": _CUDA12,
     "when": "marked Deprecated in its release notes on 2025-09-09; dropped from the list on 2026-03-16"},
    {"name": "openmpi4.1.0-cuda11.0.3-cudnn8-ubuntu18.04", "when": _LISTED_UNTIL_2022, "use": _CUDA12},
    {"name": "openmpi4.1.0-cuda11.1-cudnn8-ubuntu18.04", "when": _LISTED_UNTIL_2022, "use": _CUDA12},
    {"name": "openmpi3.1.2-ubuntu18.04", "when": _LISTED_UNTIL_2023, "use": _CPU},
    {"name": "openmpi3.1.2-cuda10.0-cudnn7-ubuntu18.04", "when": _LISTED_UNTIL_2022, "use": _CUDA12},
    {"name": "openmpi3.1.2-cuda10.1-cudnn7-ubuntu18.04", "when": _LISTED_UNTIL_2023, "use": _CUDA12},
    {"name": "openmpi3.1.2-cuda10.2-cudnn7-ubuntu18.04", "when": _LISTED_UNTIL_2022, "use": _CUDA12},
    {"name": "openmpi3.1.2-cuda10.2-cudnn8-ubuntu18.04", "when": _LISTED_UNTIL_2022, "use": _CUDA12},
    {"name": "openmpi3.1.2-ubuntu16.04", "when": _LISTED_UNTIL_2021, "use": _CPU},
    {"name": "openmpi3.1.2-cuda9.0-cudnn7-ubuntu16.04", "when": _LISTED_UNTIL_2021, "use": _CUDA12},
    {"name": "openmpi3.1.2-cuda10.0-cudnn7-ubuntu16.04", "when": _LISTED_UNTIL_2021, "use": _CUDA12},
    {"name": "intelmpi2018.3-ubuntu16.04", "when": _LISTED_UNTIL_2021, "use": _CPU},
    {"name": "intelmpi2018.3-cuda9.0-cudnn7-ubuntu16.04", "when": _LISTED_UNTIL_2021, "use": _CUDA12},
    {"name": "intelmpi2018.3-cuda10.0-cudnn7-ubuntu16.04", "when": _LISTED_UNTIL_2021, "use": _CUDA12},
]  # fmt: skip

#: Current VM sizes a notebook may default to: name, vCPUs, GPUs (and which), memory, and why it is on the list
VM_SIZES: list[dict] = [
    {"name": "Standard_DS3_v2", "vcpus": 4, "gpus": 0, "gpu": None, "memory_gb": 14,
     "why": "the training cluster's default and the v2 deployment's instance type: a CPU size that new "
     "subscriptions have quota for, the one Microsoft's compute and deployment samples use (the DSv2 series' "
     "retirement is announced for 2028: Standard_D4s_v5 is its replacement)"},
    {"name": "Standard_D2_v2", "vcpus": 2, "gpus": 0, "gpu": None, "memory_gb": 7,
     "why": "the pre-flight check's size (helpers/preflight.py): the cheapest the walkthrough runs on (the Dv2 "
     "series' retirement is announced for 2028, as DSv2's)"},
    {"name": "Standard_D4s_v5", "vcpus": 4, "gpus": 0, "gpu": None, "memory_gb": 16,
     "why": "the same 4 vCPUs in a current series: what Microsoft's migration guide names in place of DSv2"},
    {"name": "Standard_NC4as_T4_v3", "vcpus": 4, "gpus": 1, "gpu": "NVIDIA T4 (16 GB)", "memory_gb": 28,
     "why": "the GPU opt-in's default: the smallest current NVIDIA size, the one Microsoft's SDK v2 Keras and "
     "TensorFlow samples use; its family's quota is 0 on most new subscriptions (ask for it first)"},
    {"name": "Standard_NC24ads_A100_v4", "vcpus": 24, "gpus": 1, "gpu": "NVIDIA A100 (80 GB)", "memory_gb": 220,
     "why": "a larger current GPU size, for a subscription with A100 quota"},
]  # fmt: skip

#: Sizes Azure no longer runs that the original walkthrough and older samples name
RETIRED_VM_SIZES: list[dict] = [
    {"name": "STANDARD_NC6", "retired": "2023-08-31", "gpu": "half an NVIDIA K80",
     "note": "the original walkthrough's size (NC series)", "use": "Standard_NC4as_T4_v3"},
    {"name": "Standard_NC6s_v3", "retired": "2025-09-30", "gpu": "NVIDIA V100",
     "note": "the original walkthrough's later size (NCv3 series)", "use": "Standard_NC4as_T4_v3"},
]  # fmt: skip

#: An image reference in Azure's namespace: its name, then a tag (``:20251130.v1``) or a digest (``@sha256:...``)
_REFERENCE = re.compile(r"^mcr\.microsoft\.com/azureml/(?P<name>[^:@\s]+)(?:[:@]\S*)?$", re.IGNORECASE)
_IMAGES = {i["name"]: i for i in BASE_IMAGES}
_DEPRECATED = {i["name"]: i for i in DEPRECATED_IMAGES}
_SIZES = {s["name"].lower(): s for s in VM_SIZES}
_RETIRED = {s["name"].lower(): s for s in RETIRED_VM_SIZES}


def image_name(reference: str) -> str | None:
    """The name of an image in Azure's namespace without its tag or digest (``openmpi4.1.0-ubuntu22.04`` for
    ``mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1``); None for an image elsewhere."""
    found = _REFERENCE.match(str(reference or "").strip())
    return found["name"].lower() if found else None


def base_image(reference: str) -> dict | None:
    """The supported base image a reference names (a copy), or None."""
    found = _IMAGES.get(image_name(reference) or "")
    return dict(found) if found else None


def deprecated_image(reference: str) -> dict | None:
    """The deprecated base image a reference names (a copy), or None."""
    found = _DEPRECATED.get(image_name(reference) or "")
    return dict(found) if found else None


def image_problem(reference: str) -> str | None:
    """What is wrong with an image reference in Azure's namespace, in a sentence; None for a supported base image
    and for an image outside ``mcr.microsoft.com/azureml/`` (a registry of your own: nothing to check it against).

    Curated environments' images (``mcr.microsoft.com/azureml/curated/...``) are not base images: the caller checks
    them against the curated catalogue.  Prebuilt inference images (``...-inference``, Microsoft's article "Prebuilt
    Docker images for inference") are a family these lists do not hold: the sentence says it cannot check them."""
    name = image_name(reference)
    if name is None or name in _IMAGES:
        return None
    if name.endswith("-inference"):  # Azure's prebuilt inference images: a family of their own, not listed here
        return (f"the image {reference} is named like one of Azure ML's prebuilt inference images, which these lists "
                "do not hold: the local workspace cannot tell whether Azure publishes it.")  # fmt: skip
    old = _DEPRECATED.get(name)
    if old is not None:
        return (f"the image {reference} is deprecated ({old['when']}): Azure publishes no new versions of it. "
                f"Use {REGISTRY}{old['use']} or another supported base image.")  # fmt: skip
    return (f"the image {reference} is not one of the base images Azure ML publishes (the list of {IMAGES_DATE}: "
            f"{', '.join(_IMAGES)}); on Azure the image build would fail to pull it.")  # fmt: skip


def vm_size(name: str) -> dict | None:
    """The current size of that name (any case), a copy; None when it is not on the list."""
    found = _SIZES.get(str(name or "").lower())
    return dict(found) if found else None


def retired_vm_size(name: str) -> dict | None:
    """The retired size of that name (any case), a copy; None when it is not on the list."""
    found = _RETIRED.get(str(name or "").lower())
    return dict(found) if found else None


def has_gpu(size: str) -> bool:
    """Whether VMs of this size have a GPU: from the list when it has the size, else by Azure's naming rule (the
    N-series, ``Standard_N...``, are its GPU sizes)."""
    known = _SIZES.get(str(size or "").lower())
    if known is not None:
        return known["gpus"] > 0
    return str(size or "").lower().startswith("standard_n")
