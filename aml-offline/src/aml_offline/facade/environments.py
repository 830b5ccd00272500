"""azureml-core's ``Environment`` as the plain dict the lower layers take."""

from __future__ import annotations


def environment_spec(env) -> dict:
    """Name, pip and conda packages, Docker image, whether it is user-managed, and its variables."""
    deps = env.python.conda_dependencies if env is not None else None
    return {
        "name": getattr(env, "name", None) or "default-environment",
        "version": getattr(env, "version", None),
        "user_managed": bool(env is not None and env.python.user_managed_dependencies),
        "pip": list(deps.pip_packages) if deps is not None else [],
        "conda": list(deps.conda_packages) if deps is not None else [],
        "docker_image": getattr(getattr(env, "docker", None), "base_image", None),
        "environment_variables": {
            str(k): str(v) for k, v in (getattr(env, "environment_variables", None) or {}).items()
        },
    }
