"""``ml_client.environments`` of the local workspace (twin of azure-ai-ml's ``EnvironmentOperations``), and the
environment a job runs in, whichever way the job names it.

Registered environments share the records of SDK v1's ``env.register(ws)`` (``environments/<name>/<version>.json``):
one asset, read by either SDK.  Versions follow azure-ai-ml's rules: with no version, ``create_or_update`` compares
the definition with the latest version and gives that version back when they match (its description, tags and
properties updated), else the next number; an explicit version that holds another definition is refused
(``ResourceExistsError``, as the service's 409).  ``get`` needs a version or ``label="latest"`` (the newest version
not archived), with azure-ai-ml's errors.  A Docker build context (``build=BuildContext(path=...)``) is kept in the
workspace by content (``uploads/``), as Azure uploads it; no image is built from it, and a job that names such an
environment is refused at submit.

Curated environments live in Azure's ``azureml`` registry: a workspace client does not list or get them (as on
Azure), and ``MLClient(credential, registry_name="azureml").environments`` does, from the dated catalogue
(:mod:`aml_offline.execution.curated`).  A job names one as ``azureml://registries/azureml/environments/<name>/...``,
``azureml:AzureML-<name>@latest`` or ``AzureML-<name>:<version>``; all resolve to the catalogue's entry, whose
packages the job gets: this interpreter when it has them, else a virtual environment built from them, else (no uv)
a refusal at submit that names the environment and what is missing, as SDK v1 runs do.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from pathlib import Path

from azure.ai.ml.constants import ListViewType
from azure.ai.ml.entities import BuildContext, Environment
from azure.ai.ml.entities._assets import WorkspaceAssetReference
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationErrorType, ValidationException
from azure.ai.ml.operations import EnvironmentOperations as AzureEnvironmentOperations
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from aml_offline.execution import curated, snapshot
from aml_offline.facade_v2._common import invalid
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import environments as records

#: How a job names a curated environment (a prefix of the name: the catalogue decides which one it is)
CURATED = ("azureml://registries/azureml/", "azureml:AzureML-", "AzureML-")
#: The registry whose environments the local workspace knows: Azure's curated ones
AZUREML_REGISTRY = "azureml"
#: How SDK v2 makes an environment of your own (what a retired curated environment's message suggests)
V2_OWN = "Environment(image=..., conda_file=...)"
#: What may change in an existing version (Azure keeps the rest of a version as it was registered)
MUTABLE = ("description", "tags", "properties")

_REGISTRY_ID = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/@]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+)|@(?P<at>[^/]+))?/?$",
    re.IGNORECASE,
)
_ARM_ID = re.compile(
    r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
    r"workspaces/[^/]+/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_ARM_FORMAT = (
    "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}/environments/{}"
    "/versions/{}"
)
_CURATED_HINT = (
    "Curated environments are in Azure's azureml registry, not in a workspace: get one with "
    'MLClient(credential, registry_name="azureml").environments.get("{registry}", label="latest"), or name it in a '
    'job as "azureml://registries/azureml/environments/{registry}/labels/latest".'
)


def _validation(message: str, kind=ValidationErrorType.INVALID_VALUE, target=ErrorTarget.ENVIRONMENT):
    """azure-ai-ml's own error for what it refuses before it calls the service (its words where it has them)."""
    return ValidationException(
        message=message,
        no_personal_data_message=message,
        target=target,
        error_category=ErrorCategory.USER_ERROR,
        error_type=kind,
    )


class EnvironmentOperations(Offline):
    """Environments of the local workspace: ``create_or_update``, ``get``, ``list``, ``archive``, ``restore``.

    With ``registry_name="azureml"`` (``MLClient(credential, registry_name="azureml")``): Azure's curated
    environments, read-only, from the dated catalogue."""

    _azure_class = AzureEnvironmentOperations

    def __init__(self, client, registry_name: str | None = None):
        self._client = client
        self._store = client._store
        self._registry_name = registry_name

    # --- create -------------------------------------------------------------------------------------------------
    def create_or_update(self, environment: Environment) -> Environment:
        """Register a version of the environment (see the module for how versions are chosen); returns it."""
        if self._registry_name:
            raise not_available(
                f"environments.create_or_update in registry {self._registry_name!r}",
                "the azureml registry is Microsoft's; create environments in your workspace's client",
            )
        if isinstance(environment, WorkspaceAssetReference):
            raise not_available(
                "environments.create_or_update(WorkspaceAssetReference)", "promoting to a registry needs Azure"
            )
        if not isinstance(environment, Environment):
            raise invalid(
                f"environments.create_or_update takes an Environment, not {type(environment).__name__}.",
                ErrorTarget.ENVIRONMENT,
            )
        environment.validate()  # azure-ai-ml's own checks and words (a name; an image or a build context, not both)
        name = str(environment.name)
        if name.startswith(curated.PREFIX):  # the service's rule (SDK v1 gets the same answer)
            raise HttpResponseError(
                message="(UserError) Environment name can not start with the prefix AzureML. To alter a curated "
                "environment first create a copy of it.\nCode: UserError"
            )
        definition = self._definition(environment)
        try:
            if environment.version:
                record = records.register(self._store, name, definition, str(environment.version), mutable=MUTABLE)
            else:  # azure-ai-ml tries the latest version, then the next one
                record = records.register(self._store, name, definition, mutable=MUTABLE, latest_only=True)
                environment.version = record["version"]  # as azure-ai-ml leaves the object it was given
        except records.EnvironmentVersionConflict:
            raise ResourceExistsError(
                message=f"(UserError) Environment {name} version {environment.version} exists with another "
                "definition, and a version's image, conda file and build context never change (its description, "
                "tags and properties may). Leave version= out to get the next version, or give a new one."
            ) from None
        except records.EnvironmentRecordError as exc:
            raise invalid(str(exc), ErrorTarget.ENVIRONMENT) from None
        return self._entity(record)

    def _definition(self, env: Environment) -> dict:
        """The record's definition: SDK v1's keys (so ``Environment.get(ws, name)`` reads it too) and SDK v2's."""
        conda = env.conda_file if isinstance(env.conda_file, dict) else None
        if env.conda_file is not None and conda is None:
            raise invalid(f"Environment {env.name!r}: its conda_file could not be read.", ErrorTarget.ENVIRONMENT)
        inference = env.inference_config
        if inference is not None and not isinstance(inference, dict):
            warn_ignored(f"Environment {env.name!r}", "inference_config", "the local workspace keeps it as a dict")
            inference = None
        return {
            "python": {"userManagedDependencies": conda is None, "condaDependencies": conda},
            "docker": {"baseImage": env.image},
            "environmentVariables": {},
            "v2": {
                "image": env.image,
                "conda_file": conda,
                "build": self._keep_build_context(env) if env.build is not None else None,
                "os_type": env.os_type,
                "inference_config": inference,
            },
            "description": env.description,
            "tags": dict(env.tags or {}),
            "properties": dict(env.properties or {}),
        }

    def _keep_build_context(self, env: Environment) -> dict:
        """The build context folder, copied into the workspace once per content (``uploads/``), as Azure uploads
        it (``.amlignore``, else ``.gitignore``, honoured)."""
        path = str(env.build.path or "")
        if path.startswith(("http://", "https://", "azureml://", "wasbs://", "abfss://")):
            raise not_available(f"Environment {env.name!r}: build context at {path}", "pass a local folder")
        source = Path(env.path or path).resolve()
        if not source.is_dir():
            raise invalid(
                f"Environment {env.name!r}: its build context {path!r} is not a folder ({source}).",
                ErrorTarget.ENVIRONMENT,
            )
        uploads = self._store.root / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        partial = uploads / f".{source.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}"
        try:
            snapshot.copy_snapshot(source, partial, skip=[self._store.root])
            digest = snapshot.content_hash(partial)
            target = uploads / digest[:16] / source.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    partial.rename(target)
                except OSError:
                    if not target.exists():  # otherwise another process kept the same content first
                        raise
        except snapshot.SnapshotError as exc:
            raise invalid(f"Environment {env.name!r}: {exc}", ErrorTarget.ENVIRONMENT) from None
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return {"path": str(target), "dockerfile_path": env.build.dockerfile_path or "Dockerfile", "sha256": digest}

    # --- read ---------------------------------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """A version of the environment, or ``label="latest"``: its newest version that is not archived."""
        if version and label:
            raise _validation("Cannot specify both version and label.")
        if label:
            return self._by_label(name, label)
        if not version:
            raise _validation("Must provide either version or label.", ValidationErrorType.MISSING_FIELD)
        name = name.removeprefix("azureml:")
        if self._registry_name:
            return _registry_entity(self._curated_entry(name, version=str(version)))
        record = records.get(self._store, name, version=str(version)) if records.valid_name(name) else None
        if record is None:
            known = ", ".join(records.names(self._store)) or "none"
            message = f"No environment {name}:{version} in the local workspace ({self._store.root}). It has: {known}."
            raise ResourceNotFoundError(f"{message} {_hint(name)}".strip())
        return self._entity(record)

    def _by_label(self, name: str, label: str) -> Environment:
        scope = "registry" if self._registry_name else "workspace"
        if label != "latest":  # azure-ai-ml resolves no other label
            raise _validation(
                f"Asset {name} with version label {label} does not exist in {scope}.",
                ValidationErrorType.RESOURCE_NOT_FOUND,
                ErrorTarget.ASSET,
            )
        if self._registry_name:
            return _registry_entity(self._curated_entry(name))
        record = self._latest(name)
        if record is None:
            message = f"Asset {name} does not exist in workspace {self._client.workspace_name}."
            raise _validation(
                f"{message} {_hint(name)}".strip(), ValidationErrorType.RESOURCE_NOT_FOUND, ErrorTarget.ASSET
            )
        return self._entity(record)

    def _latest(self, name: str) -> dict | None:
        """The most recently created version that is not archived (Azure's "latest")."""
        if not records.valid_name(name):
            return None
        active = [r for r in records.versions(self._store, name) if not r.get("archived")]
        return max(active, key=lambda r: r["created"], default=None)

    def list(self, name: str | None = None, *, list_view_type=ListViewType.ACTIVE_ONLY) -> list[Environment]:
        """Without a name, one entry per environment (``latest_version`` set, ``version`` None, as azure-ai-ml
        lists containers); with one, its versions, newest first.  Archived ones only when ``list_view_type`` asks."""
        view = str(getattr(list_view_type, "value", list_view_type))
        if view not in {v.value for v in ListViewType}:
            raise _validation(f"list_view_type={list_view_type!r}: use one of azure.ai.ml.constants.ListViewType.")

        def shown(archived: bool) -> bool:
            return view == ListViewType.ALL.value or archived == (view == ListViewType.ARCHIVED_ONLY.value)

        if self._registry_name:
            entries = [e for e in curated.entries("current") if name is None or e["registry"] == name]
            found = [_registry_entity(e) for e in entries]
            return [_container(e.name, e.version, e.id) for e in found] if name is None else found
        if name is not None:
            if not records.valid_name(name):
                return []
            return [self._entity(r) for r in records.versions(self._store, name) if shown(bool(r.get("archived")))]
        out = []
        for each in records.names(self._store):
            if not shown(records.is_archived(self._store, each)):
                continue
            newest = max(records.versions(self._store, each), key=lambda r: r["created"])
            out.append(_container(each, str(newest["version"]), self._arm_id(each, None)))
        return out

    def _curated_entry(self, name: str, version: str | None = None) -> dict:
        """The catalogue's entry for a name in the azureml registry (``sklearn-1.5``)."""
        if self._registry_name != AZUREML_REGISTRY:
            raise not_available(f"registry {self._registry_name!r}", "registries are shared Azure resources")
        entry = curated.find(f"azureml://registries/azureml/environments/{name}")
        if entry is None or entry["status"] != "current":
            if version is None:
                raise _validation(
                    f"Asset {name} does not exist in registry {self._registry_name}. The local workspace knows the "
                    f"azureml registry's curated environments from its catalogue dated {curated.DATE}.",
                    ValidationErrorType.RESOURCE_NOT_FOUND,
                    ErrorTarget.ASSET,
                )
            raise ResourceNotFoundError(
                f"No environment {name}:{version} in registry azureml (the local workspace's catalogue of curated "
                f"environments, dated {curated.DATE})."
            )
        if version is not None and str(version) != curated.VERSION:
            warn_ignored(
                "environments.get",
                f"version={version}",
                f"the local workspace holds one version of each curated environment, the catalogue's of {curated.DATE}",
            )
        return entry

    # --- archive ------------------------------------------------------------------------------------------------
    def archive(self, name: str, version: str | None = None, label: str | None = None, **kwargs) -> None:
        """Archive a version, or (no version) the environment and all its versions: lists leave them out; jobs
        may still use them; a new version of an archived environment is archived too."""
        self._set_archived(name, version, label, True)

    def restore(self, name: str, version: str | None = None, label: str | None = None, **kwargs) -> None:
        """Restore an archived version, or (no version) the environment and all its versions."""
        self._set_archived(name, version, label, False)

    def _set_archived(self, name: str, version, label, archived: bool) -> None:
        if self._registry_name:
            raise not_available(
                f"environments.{'archive' if archived else 'restore'} in registry {self._registry_name!r}",
                "the azureml registry is Microsoft's",
            )
        if version and label:
            raise _validation("Cannot specify both version and label.", target=ErrorTarget.ASSET)
        name = name.removeprefix("azureml:")
        if label:
            version = self._by_label(name, label).version
        try:
            if not records.valid_name(name):
                raise records.EnvironmentRecordError(f"Environment {name!r} is not registered.")
            records.set_archived(self._store, name, None if version is None else str(version), archived)
        except records.EnvironmentRecordError as exc:
            raise ResourceNotFoundError(f"{exc} {_hint(name)}".strip()) from None

    def share(self, name, version, *, share_with_name, share_with_version, registry_name) -> Environment:
        """Not offline: it copies the environment into a registry, a shared Azure resource."""
        raise not_available("EnvironmentOperations.share", "registries are shared Azure resources")

    share.__not_available_offline__ = True  # the coverage table lists it as not available

    # --- entities -----------------------------------------------------------------------------------------------
    def _arm_id(self, name: str, version: str | None) -> str:
        client = self._client
        arm = _ARM_FORMAT.format(
            client.subscription_id, client.resource_group_name, client.workspace_name, name, version
        )
        return arm if version is not None else arm.rsplit("/versions/", 1)[0]

    def _entity(self, record: dict) -> Environment:
        """A registered version as azure-ai-ml's ``Environment`` (one SDK v1 registered too)."""
        definition = record["definition"]
        v2 = definition.get("v2")
        if v2 is None:  # registered with SDK v1 (env.register(ws)): the same asset, as SDK v2 shows it
            v2 = _from_v1(definition)
        build = v2.get("build")
        env = Environment(
            id=self._arm_id(record["name"], str(record["version"])),
            name=record["name"],
            version=str(record["version"]),
            description=definition.get("description"),
            tags=definition.get("tags") or {},
            properties=definition.get("properties") or {},
            image=v2.get("image"),
            conda_file=v2.get("conda_file"),
            build=BuildContext(path=build["path"], dockerfile_path=build["dockerfile_path"]) if build else None,
            os_type=v2.get("os_type"),
            inference_config=v2.get("inference_config"),
        )
        env._environment_variables = dict(definition.get("environmentVariables") or {})  # SDK v1's, for its jobs
        return env


def _hint(name: str) -> str:
    """For a curated environment's name asked of a workspace: where Azure keeps it."""
    entry = curated.find(name)
    if entry is None or not str(name).removeprefix("azureml:").startswith(curated.PREFIX):
        return ""
    if entry["status"] == "retired":
        return curated.retired_message(entry, V2_OWN)
    return _CURATED_HINT.format(registry=entry["registry"])


def _from_v1(definition: dict) -> dict:
    """SDK v2's view of an environment SDK v1 registered: its conda dependencies unless user-managed, its image."""
    python = definition.get("python") or {}
    conda = None
    if not python.get("userManagedDependencies") and python.get("condaDependencies"):
        conda = dict(python["condaDependencies"])
        conda["dependencies"] = [
            {"pip": [p for p in dep.get("pip", []) if not str(p).startswith("-")]} if isinstance(dep, dict) else dep
            for dep in conda.get("dependencies", [])
        ]  # pip's options lines (--extra-index-url) are no packages
    image = (definition.get("docker") or {}).get("baseImage")
    return {"image": image, "conda_file": conda, "build": None, "os_type": None, "inference_config": None}


def _container(name: str, latest: str, arm_id: str) -> Environment:
    """One environment of a list without a name, as azure-ai-ml builds it from a container."""
    env = Environment(name=name, version="1", id=arm_id)
    env.latest_version = latest
    env.version = None
    return env


def _conda_of(entry: dict) -> dict:
    return {
        "name": entry["registry"] or entry["name"],
        "channels": ["conda-forge"],
        "dependencies": [f"python={entry['python']}", "pip", {"pip": list(entry["packages"])}],
    }


def _registry_entity(entry: dict) -> Environment:
    """A curated environment as the azureml registry gives it: its image, its defining packages as a conda file."""
    name = entry["registry"]
    return Environment(
        id=f"azureml://registries/{AZUREML_REGISTRY}/environments/{name}/versions/{curated.VERSION}",
        name=name,
        version=curated.VERSION,
        description=entry.get("description"),
        image=entry["image"],
        conda_file=_conda_of(entry),
        tags={"aml-offline.catalogue": curated.DATE},
    )


# --- the environment a job or a deployment runs in ------------------------------------------------------------------


def environment_spec(env: Environment, variables: dict | None = None) -> dict:
    """azure-ai-ml's ``Environment`` as the plain dict the lower layers take (conda file: pip and conda packages)."""
    conda = env.conda_file if isinstance(env.conda_file, dict) else {}
    pip, conda_packages = [], []
    for dep in conda.get("dependencies", []) or []:
        if isinstance(dep, dict):
            pip += [str(p) for p in dep.get("pip", [])]
        else:
            conda_packages.append(str(dep))
    if env.build is not None:
        warn_ignored("Environment", "build", "Docker builds are Azure's; the local workspace reads conda_file")
    return {
        "name": env.name or "anonymous-environment",
        "version": env.version,
        "user_managed": False if conda else True,
        "pip": pip,
        "conda": conda_packages,
        "docker_image": env.image,
        "environment_variables": variables or {},
    }


def curated_spec(reference: str, variables: dict | None = None) -> dict:
    """A curated environment (``AzureML-sklearn-1.5``, ``azureml:AzureML-sklearn-1.5@latest``,
    ``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``) as the catalogue defines it: its
    packages, checked (or built) for the job as any environment's.  One the catalogue lacks, or a retired one, is not
    found (as on Azure); one whose packages this interpreter lacks where none can be built is refused here."""
    entry = curated.find(reference)
    if entry is None:
        raise ResourceNotFoundError(
            f"No curated environment {reference!r} in Azure's azureml registry, as the local workspace's catalogue "
            f"(dated {curated.DATE}) knows it. Curated environments are named like AzureML-sklearn-1.5 or "
            "azureml://registries/azureml/environments/sklearn-1.5/labels/latest."
        )
    if entry["status"] == "retired":
        raise ResourceNotFoundError(f"No environment {reference!r}: {curated.retired_message(entry, V2_OWN)}")
    spec = curated.environment(entry)
    spec["environment_variables"] = dict(variables or {})
    plan = curated.serving(spec)
    if plan["how"] == "unavailable":
        raise not_available(f"Curated environment {entry['name']!r}", plan["why"].rstrip("."))
    return spec


def job_environment(client, label: str, environment, variables: dict | None = None) -> dict:
    """The environment a job runs in, as the lower layers take it, from whatever the job names (as azure-ai-ml
    resolves a job's environment before it submits the job):

    * an ``Environment(...)``: its conda file and image (one got from the azureml registry: the catalogue's entry);
    * ``azureml://registries/azureml/environments/<name>/labels/latest`` (or ``/versions/<n>``), ``AzureML-<name>``
      with or without ``azureml:``, ``@latest`` or ``:<version>``: the curated environment (:func:`curated_spec`);
    * ``<name>:<version>``, ``<name>@latest`` (with or without ``azureml:``), or the version's ARM id: a registered
      environment of the workspace.

    An environment with a Docker build context and no image is refused: the local workspace builds no images."""
    variables = {str(k): str(v) for k, v in (variables or {}).items()}
    operations = client.environments
    if isinstance(environment, Environment):
        match = _REGISTRY_ID.match(str(environment.id or ""))
        if match:
            return _registry_spec(label, match, str(environment.id), variables)
        if environment.build is not None and environment.image is None:
            raise _no_docker_build(label, f"{environment.name}:{environment.version}")
        spec = environment_spec(environment, variables)
        spec["environment_variables"] = {**getattr(environment, "_environment_variables", {}), **variables}
        return spec
    if environment is None:
        raise invalid(
            f"{label}: command(...) needs an environment (an Environment(...), a registered or a curated one)."
        )
    if not isinstance(environment, str):
        raise invalid(f"{label}: environment={environment!r} is neither an Environment nor a name.")
    reference = environment.strip()
    match = _REGISTRY_ID.match(reference)
    if match:
        return _registry_spec(label, match, reference, variables)
    if reference.startswith("azureml://"):
        raise not_available(f"{label}: environment={reference!r}", "only the azureml registry's curated ones")
    match = _ARM_ID.match(reference)
    if match:
        name, version, at = match["name"], match["version"], None
    else:
        short = reference.removeprefix("azureml:")
        if short.startswith(curated.PREFIX + "-"):  # azure-ai-ml hands curated short names to the service as they are
            return curated_spec(reference, variables)
        name, _, at = short.rpartition("@") if "@" in short else (short, "", None)
        name, _, version = name.partition(":")
        if not version and at is None:
            raise _validation(
                f"Failed to extract version when parsing asset {reference} of type environments as arm id. "
                "Version must be provided.",
                ValidationErrorType.MISSING_FIELD,
                ErrorTarget.ASSET,
            )
    registered = operations.get(name, label=at) if at is not None else operations.get(name, version=version)
    if registered.build is not None and registered.image is None:
        raise _no_docker_build(label, f"{registered.name}:{registered.version}")
    spec = environment_spec(registered, variables)
    spec["environment_variables"] = {**registered._environment_variables, **variables}
    return spec


def _registry_spec(label: str, match: re.Match, reference: str, variables: dict) -> dict:
    if match["registry"].lower() != AZUREML_REGISTRY:
        raise not_available(
            f"{label}: environment={reference!r} of registry {match['registry']!r}",
            "registries are shared Azure resources; the local workspace knows the azureml registry's curated "
            "environments",
        )
    return curated_spec(reference, variables)


def _no_docker_build(label: str, name: str):
    return not_available(
        f"{label}: environment {name} is built from a Docker build context",
        "the local workspace builds no Docker images. Give the environment image= and conda_file= (the packages "
        "its Dockerfile installs) to run the job here",
    )
