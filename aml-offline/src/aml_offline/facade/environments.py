"""``azureml.core.Environment`` in the local workspace, and an environment as the plain dict the lower layers take.

The twin is a subclass of azureml-core's own ``Environment``: building one (``Environment("myenv")``,
``from_pip_requirements``, ``from_conda_specification``, ``clone``), its sections and its serialisation are
azureml-core's code, and ``ScriptRunConfig`` and ``isinstance`` see an azureml-core environment.  Only the calls that
reach the workspace are the local workspace's:

* ``Environment.get(ws, name, version=None, label=None)``: a curated environment from the dated catalogue
  (:mod:`aml_offline.execution.curated`), or a registered one from the workspace's records;
* ``env.register(ws)``: versions 1, 2, ... (the same definition again gives its version back);
* ``Environment.list(ws)`` (and ``ws.environments``): the current curated environments and the registered ones;
* ``Environment.label(ws, name, version, labels)``.

Errors are azureml-core's: it raises a plain ``Exception`` carrying the service's code and answer
(``Error retrieving the environment definition. Code: 404 ...``), and so does the twin
(:class:`EnvironmentServiceError` is an ``Exception``).  A retired curated environment is not found, as on Azure, and
the message says when it was retired, what it held and what replaces it.  Image builds (``build``, ``build_local``,
``get_image_details``) and private wheels need Azure: they raise ``NotAvailableOffline``.
"""

from __future__ import annotations

import json
import logging

from azureml.core import Environment as AzureEnvironment
from azureml.core.conda_dependencies import CondaDependencies
from azureml.exceptions import UserErrorException

from aml_offline.execution import curated
from aml_offline.facade._base import not_available, warn_ignored
from aml_offline.records import environments as records

#: azureml-core's logger for environments (its "version is set" warning comes from there)
_log = logging.getLogger("azureml.core.environment")


class EnvironmentServiceError(Exception):
    """What azureml-core raises when the environment service refuses a call: a plain ``Exception`` whose message
    holds the HTTP code and the service's answer (404: no such environment; 400: a definition it refuses)."""


def _service_error(head: str, code: int, message: str, more: str = "") -> EnvironmentServiceError:
    body = json.dumps({"error": {"code": "UserError", "message": message}})
    return EnvironmentServiceError(f"{head} Code: {code}\n: {body}" + (f"\n{more}" if more else ""))


def _not_found(name: str, version=None, label=None, more: str = "") -> EnvironmentServiceError:
    if label is not None:
        head = f"Error retrieving the environment definition {name} with label {label}."
        message = f"No definition exists for environment {name} with label {label}."
    else:
        head = "Error retrieving the environment definition."
        message = f"No definition exists for environment {name}" + (f" version {version}." if version else ".")
    return _service_error(head, 404, message, more)


def _retired(entry: dict) -> str:
    return curated.retired_message(entry)


def _ours(env):
    """An environment azureml-core's own code made, as the twin (same object: the twin adds no state)."""
    if isinstance(env, AzureEnvironment) and not isinstance(env, Environment):
        env.__class__ = Environment
    return env


def _curated(entry: dict) -> Environment:
    """A curated environment as azureml-core's object: its Python and packages as conda dependencies, its image."""
    env = Environment(entry["name"])
    env.version = curated.VERSION
    env._environment_variables = {}
    deps = CondaDependencies()
    deps.set_python_version(entry["python"])
    for package in list(deps.pip_packages):
        deps.remove_pip_package(package)
    for package in entry["packages"]:
        deps.add_pip_package(package)
    env.python.conda_dependencies = deps
    env.python.user_managed_dependencies = False
    if entry["image"]:
        env.docker.base_image = entry["image"]
    return env


def _from_record(record: dict) -> Environment:
    env = _ours(AzureEnvironment._deserialize_and_add_to_object(record["definition"]))
    env.version = str(record["version"])
    return env


def _unavailable(name: str, why: str):
    """A method of azureml-core's ``Environment`` that needs Azure: it says so (the coverage table reads the mark)."""

    def method(*args, **kwargs):
        raise not_available(f"Environment.{name}", why)

    method.__name__ = name
    method.__not_available_offline__ = True
    return method


class Environment(AzureEnvironment):
    """azureml-core's ``Environment``, registered, listed and fetched in the local workspace (see the module)."""

    def register(self, workspace):
        """Register this environment in the workspace: version 1, 2, ...; an identical definition gives its
        version back.  Names starting with ``AzureML`` are Azure's (curated) and refused, as on Azure."""
        if self.version is not None:
            _log.warning(
                "Environment version is set. Attempting to register desired version. To auto-version, reset version to "
                "None."
            )
        head = "Error registering the environment definition."
        if not self.name or str(self.name).startswith(curated.PREFIX):
            if not self.name:
                raise _service_error(head, 400, "Environment name is required.")
            message = (
                "Environment name can not start with the prefix AzureML. To alter a curated environment first create "
                "a copy of it."
            )
            raise _service_error(head, 400, message, "Clone it under a name of your own: env.clone('my-env').")
        try:
            record = records.register(workspace._store, self.name, AzureEnvironment._serialize_to_dict(self),
                                      version=self.version)  # fmt: skip
        except records.EnvironmentRecordError as exc:
            raise _service_error(head, 400, str(exc)) from None
        return _from_record(record)

    @staticmethod
    def get(workspace, name, version=None, label=None):
        """A registered environment of the workspace (the latest version, a version, or the one labelled), or a
        curated one (one version offline: the catalogue's)."""
        if label and version:
            raise UserErrorException("Only one of version or label can be specified")
        entry = curated.find(name)
        if entry is not None and entry["name"].lower() == str(name).lower():
            if entry["status"] == "retired":
                raise _not_found(name, version, label, _retired(entry))
            if label:
                raise _not_found(name, version, label)
            if version is not None and str(version) != curated.VERSION:
                warn_ignored("Environment.get", f"version={version}", f"the local workspace holds one version of "
                             f"each curated environment, the catalogue's of {curated.DATE}")  # fmt: skip
            return _curated(entry)
        try:
            record = records.get(workspace._store, name, version=version, label=label)
        except records.EnvironmentRecordError:
            record = None
        if record is None:
            raise _not_found(name, version, label)
        return _from_record(record)

    @staticmethod
    def list(workspace):
        """``{name: Environment}``: the curated environments Azure serves now (the catalogue's current ones), then
        the latest version of each registered one."""
        found = {entry["name"]: _curated(entry) for entry in curated.entries("current")}
        for name in records.names(workspace._store):
            found[name] = _from_record(records.get(workspace._store, name))
        return found

    @staticmethod
    def label(workspace, name, version, labels):
        """Set the labels of a registered version (``Environment.get(ws, name, label=...)`` finds it by them)."""
        try:
            records.set_labels(workspace._store, name, str(version), list(labels))
        except records.EnvironmentRecordError as exc:
            raise _service_error("Error setting labels on the environment definition.", 404, str(exc)) from None

    # --- azureml-core's own code, whose result is the twin (so that .register(ws) on it is the local workspace's) ---
    def clone(self, new_name):
        return _ours(super().clone(new_name))

    @staticmethod
    def from_conda_specification(name, file_path):
        return _ours(AzureEnvironment.from_conda_specification(name, file_path))

    @staticmethod
    def from_pip_requirements(name, file_path, pip_version=None):
        return _ours(AzureEnvironment.from_pip_requirements(name, file_path, pip_version=pip_version))

    @staticmethod
    def from_existing_conda_environment(name, conda_environment_name):
        return _ours(AzureEnvironment.from_existing_conda_environment(name, conda_environment_name))

    @staticmethod
    def from_dockerfile(name, dockerfile, conda_specification=None, pip_requirements=None):
        return _ours(AzureEnvironment.from_dockerfile(name, dockerfile, conda_specification, pip_requirements))

    @staticmethod
    def from_docker_image(name, image, container_registry=None, conda_specification=None, pip_requirements=None):
        return _ours(AzureEnvironment.from_docker_image(name, image, container_registry, conda_specification,
                                                        pip_requirements))  # fmt: skip

    @staticmethod
    def from_docker_build_context(name, docker_build_context):
        return _ours(AzureEnvironment.from_docker_build_context(name, docker_build_context))

    @staticmethod
    def load_from_directory(path):
        return _ours(AzureEnvironment.load_from_directory(path))

    # --- what needs Azure ---------------------------------------------------------------------------------------
    build = _unavailable("build", "Docker images are built by Azure ML; runs here use this machine's Python")
    build_local = _unavailable("build_local", "it builds a Docker or conda environment for Azure's runtime")
    get_image_details = _unavailable("get_image_details", "Docker images are built by Azure ML")
    add_private_pip_wheel = staticmethod(
        _unavailable("add_private_pip_wheel", "it uploads the wheel to the workspace's Azure storage")
    )


def environment_spec(env) -> dict:
    """Name, pip and conda packages, Docker image, whether it is user-managed, and its variables.

    A current curated environment whose packages this interpreter lacks, where no environment can be built (uv is
    not installed), stops here, at submit, with an error naming it and the missing packages."""
    deps = env.python.conda_dependencies if env is not None else None
    spec = {
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
    entry = curated.find(spec["name"])
    if entry is not None and entry["name"] == spec["name"] and not spec["user_managed"]:
        plan = curated.serving(spec)
        if plan["how"] == "unavailable":
            raise not_available(f"Curated environment {spec['name']!r}", plan["why"].rstrip("."))
    return spec
