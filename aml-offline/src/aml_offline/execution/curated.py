"""Azure ML's curated environments offline: look one up by any of its names, and say how a run gets it.

The catalogue (:mod:`aml_offline.execution.curated_environments`) is dated and lists where each entry comes from.
Both SDKs name the same environment in several ways, and :func:`find` takes them all::

    AzureML-sklearn-1.5                                             Environment.get(ws, name) (SDK v1)
    AzureML-sklearn-1.5:3, azureml:AzureML-sklearn-1.5@latest        a version or a label (SDK v2's job strings)
    azureml://registries/azureml/environments/sklearn-1.5/labels/latest
    azureml://registries/azureml/environments/sklearn-1.5/versions/12

Offline an environment is served by this interpreter when it has the environment's packages at versions the
environment allows; otherwise a run builds a virtual environment from them (:mod:`aml_offline.execution.envs`),
which needs uv.  :func:`serving` says which, or why neither is possible.  Plain data in and out: no SDK here.
"""

from __future__ import annotations

import copy
import re

from aml_offline.execution import envs, snapshot
from aml_offline.execution.curated_environments import DATE, ENVIRONMENTS, SOURCES

__all__ = ["DATE", "PREFIX", "SOURCES", "VERSION", "entries", "environment", "find", "retired_message", "serving"]

#: Azure reserves this prefix for curated environments: a user's environment may not start with it
PREFIX = "AzureML"
#: Offline each curated environment has one version, the catalogue's (Azure's carry Microsoft's numbers)
VERSION = "1"

_REGISTRY = re.compile(
    r"^azureml://registries/azureml/environments/(?P<name>[^/@:]+)(?:/(?:versions|labels)/[^/]+|@[^/]+)?/?$",
    re.IGNORECASE,
)
# Azure looks curated environments up whatever the case: Microsoft's samples ask for 'azureml-sklearn-1.5'
_BY_NAME = {e["name"].lower(): e for e in ENVIRONMENTS}
_BY_REGISTRY = {e["registry"]: e for e in ENVIRONMENTS if e["registry"]}


def entries(status: str | None = None) -> list[dict]:
    """The catalogue's entries (copies), all of them or those of one status (``current`` or ``retired``)."""
    return [copy.deepcopy(e) for e in ENVIRONMENTS if status is None or e["status"] == status]


def find(reference: str) -> dict | None:
    """The entry a workspace name or an SDK v2 reference names (a copy), or None when the catalogue has no such one.

    A version or a label in the reference is not checked: offline the catalogue holds one definition of each."""
    text = str(reference or "").strip()
    match = _REGISTRY.match(text)
    if match:
        found = _BY_REGISTRY.get(match["name"]) or _BY_REGISTRY.get(match["name"].lower())
    else:
        name = text.removeprefix("azureml:").split("@", 1)[0].split(":", 1)[0]
        found = _BY_NAME.get(name.lower())
    return copy.deepcopy(found) if found else None


def environment(entry: dict) -> dict:
    """The plain environment the lower layers take (as a facade makes one from an SDK's object): the entry's
    packages as pip packages, its Python version as conda's, and its image."""
    return {
        "name": entry["name"],
        "version": VERSION,
        "user_managed": False,
        "pip": list(entry["packages"]),
        "conda": [f"python={entry['python']}"],
        "docker_image": entry["image"],
        "environment_variables": {},
    }


def retired_message(entry: dict, own: str = "Environment.from_pip_requirements") -> str:
    """What to tell someone who asks for a retired curated environment: when it went, what it held, what replaces it
    (or ``own``: how the SDK at hand makes an environment of your own)."""
    held = ", ".join(entry["packages"])
    return (
        f"{entry['name']} is a curated environment Azure ML has retired. When: {entry['retired']}. It held Python "
        f"{entry['python']} with {held}. Use {entry['replaced_by']} instead, or an environment of your own "
        f"({own}). The local workspace's catalogue of curated environments is dated "
        f"{DATE}."
    )


def serving(env: dict) -> dict:
    """How a run gets a (curated) environment offline: ``{"how": ..., "missing": [...], "why": ...}``.

    ``how`` is ``interpreter`` (this interpreter has every package at a version the environment allows),
    ``build`` (it lacks some, and a virtual environment will be built from the packages) or ``unavailable``
    (it lacks some and uv, which builds environments, is not installed; ``why`` says so and what to do)."""
    missing = snapshot.missing_packages(env)
    if not missing:
        return {"how": "interpreter", "missing": [], "why": ""}
    if envs.can_build():
        return {"how": "build", "missing": missing, "why": ""}
    return {
        "how": "unavailable",
        "missing": missing,
        "why": f"Environment {env['name']!r} needs packages this interpreter lacks: {'; '.join(missing)}. The local "
        "workspace builds such an environment with uv, which is not installed: pip install 'aml-offline[envs]', "
        "or install those packages into this interpreter.",
    }
