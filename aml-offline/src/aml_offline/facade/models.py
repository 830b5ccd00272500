"""Models and the web services that serve them (twins of ``azureml.core.Model`` and ``Webservice``).

The registry is MLflow's (see :mod:`aml_offline.records.models`).
``Model.deploy(ws, name, [model], inference_config, deployment_config)`` starts a
real HTTP server on 127.0.0.1 that runs the scoring script through Azure ML's
inference server package, with the models laid out as Azure lays them out
(:mod:`aml_offline.execution.serving`).  The service keeps running in the
background, as on Azure, until ``service.delete()``; deploying again under the
same name with ``overwrite=True`` replaces it.

``AciWebservice.deploy_configuration(auth_enabled=True)`` turns key
authentication on (``get_keys()``, ``regen_key()``, 401 without a key);
``LocalWebservice.deploy_configuration(port=...)`` picks the port.  Other
settings are recorded (CPU and memory, shown by ``serialize()``) or warned about
(SSL, DNS labels, App Insights, networks): there is nothing to size or certify
on one machine.  Model and Webservice share this module because each returns
the other (``Model.deploy`` a service, ``Webservice.models`` models).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from azureml._model_management._util import model_name_validation
from azureml.core import Model as AzureModel
from azureml.core.webservice import Webservice as AzureWebservice
from azureml.exceptions import ModelNotFoundException, UserErrorException, WebserviceException

from aml_offline.execution import envs, serving, snapshot
from aml_offline.facade._base import Offline, warn_ignored
from aml_offline.facade.environments import environment_spec
from aml_offline.records import filters
from aml_offline.records import models as model_records
from aml_offline.records import services as service_records
from aml_offline.store import LocalStore, read_json, write_json


def _filter_error(exc: Exception) -> UserErrorException:
    return UserErrorException(str(exc))


class Model(Offline):
    """A registered model version (twin of ``azureml.core.Model``)."""

    _azure_class = AzureModel
    #: the framework names ``Model.register(model_framework=Model.Framework.SCIKITLEARN)`` takes: azureml-core's
    Framework = AzureModel.Framework

    def __init__(self, workspace, name=None, id=None, tags=None, properties=None, version=None, run_id=None,
                 model_framework=None, expand=True, **kwargs):  # fmt: skip
        if id:
            name, _, version = id.partition(":")
        if not name:
            raise WebserviceException("Model needs a name or an id (name:version).")
        self.workspace = workspace
        store = workspace._store
        for what, value in (("tags", tags), ("properties", properties)):
            if isinstance(value, dict):  # azureml-core iterates what it is given: a dict's keys
                value = list(value)
            if what == "tags":
                tags = value
            else:
                properties = value
        if version not in (None, ""):
            if not str(version).isdigit():
                raise WebserviceException(f"Model {name!r}: version must be a whole number, not {version!r}.")
            try:
                record = model_records.get(store, name, int(version))
            except model_records.ModelRecordNotFound as exc:
                raise WebserviceException(f"ModelNotFound: {exc}") from None  # azureml-core's class for Model(...)
        else:
            # As azureml-core: the newest version of ``name`` that matches every filter given.
            try:
                found = model_records.select(store, name=name, tags=tags, properties=properties, run_id=run_id,
                                             framework=model_framework)  # fmt: skip
            except filters.FilterError as exc:
                raise _filter_error(exc) from None
            if not found:
                wanted = ", ".join(f"{k}={v!r}" for k, v in (("tags", tags), ("properties", properties),
                                   ("run_id", run_id), ("model_framework", model_framework)) if v)  # fmt: skip
                raise WebserviceException(
                    f"ModelNotFound: no model named {name!r}{' with ' + wanted if wanted else ''} "
                    "in the local workspace."
                )
            record = found[0]
        self._load(record)

    @classmethod
    def _from_record(cls, workspace, record: dict) -> Model:
        model = cls.__new__(cls)
        model.workspace = workspace
        model._load(record)
        return model

    def _load(self, record: dict) -> None:
        self.name = record["name"]
        self.version = record["version"]
        self.id = f"{self.name}:{self.version}"
        self.description = record["description"]
        self.run_id = record["run_id"]
        self.experiment_name = record["experiment_name"]
        self.properties = record["properties"]
        self.tags = record["tags"]
        self.created_time = record["created_time"]
        self.model_framework = record["framework"]
        self.model_framework_version = record["framework_version"]
        self._asset_path = record["asset_path"]
        self._source = Path(record["source"])
        self._record = record

    @property
    def url(self) -> str:
        return self._source.as_uri()

    def download(self, target_dir=".", exist_ok=False, exists_ok=None):
        """Copy the model's files into ``target_dir``; returns the path of the model file or folder."""
        if exists_ok is not None:
            exist_ok = exists_ok
        target = Path(target_dir) / self._source.name
        if target.exists() and not exist_ok:
            raise WebserviceException(f"File already exists: {target}. Pass exist_ok=True to overwrite it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._source.is_dir():
            shutil.copytree(self._source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(self._source, target)
        return str(target)

    def delete(self):
        try:
            model_records.delete(self.workspace._store, self.name, self.version)
        except model_records.ModelRecordNotFound as exc:
            raise WebserviceException(f"ModelNotFound: {exc}") from None

    @staticmethod
    def list(workspace, name=None, tags=None, properties=None, run_id=None, latest=False, dataset_id=None,
             expand=True, page_count=255, model_framework=None):  # fmt: skip
        """Registered versions, filtered as azureml-core filters (``tags=['key', ['key2', 'value']]``)."""
        if dataset_id:
            warn_ignored("Model.list", "dataset_id", "the local workspace does not link models to datasets")
        for what, value in (("tags", tags), ("properties", properties)):
            if value is not None and not isinstance(value, list):  # azureml-core refuses other forms here
                raise UserErrorException(
                    f'Expected {what} must be list type. Ex. ["key", ["key2", "key2 value"]]: provided {type(value)}'
                )
        try:
            found = model_records.select(workspace._store, name=name, tags=tags, properties=properties,
                                         run_id=run_id, latest=latest, framework=model_framework)  # fmt: skip
        except filters.FilterError as exc:
            raise _filter_error(exc) from None
        return [Model._from_record(workspace, r) for r in found]

    @staticmethod
    def register(workspace, model_path, model_name, tags=None, properties=None, description=None, datasets=None,
                 model_framework=None, model_framework_version=None, child_paths=None, sample_input_dataset=None,
                 sample_output_dataset=None, resource_configuration=None):  # fmt: skip
        """Register a file or folder from this machine (its files are copied into the workspace)."""
        model_name_validation(model_name)  # azureml-core's rule and words (a quote would break the registry's look-up)
        unused = {
            "datasets": datasets,
            "child_paths": child_paths,
            "sample_input_dataset": sample_input_dataset,
            "sample_output_dataset": sample_output_dataset,
            "resource_configuration": resource_configuration,
        }
        for arg, value in unused.items():
            if value is not None:
                warn_ignored("Model.register", arg)
        source = Path(model_path).expanduser().resolve()
        if not source.exists():
            raise WebserviceException(f"model_path {model_path!r} does not exist (looked in {source}).")
        keep = model_records.keep_copy(workspace._store, source)
        record = model_records.register(
            workspace._store, model_name, keep, source.name, tags=tags, properties=properties,
            description=description, framework=model_framework, framework_version=model_framework_version,
        )  # fmt: skip
        return Model._from_record(workspace, record)

    @staticmethod
    def deploy(workspace, name, models, inference_config=None, deployment_config=None, deployment_target=None,
               overwrite=False, show_output=False):  # fmt: skip
        """Serve ``models`` with the scoring script on 127.0.0.1, as a web service."""
        return deploy(workspace, name, models, inference_config, deployment_config, deployment_target, overwrite,
                      show_output)  # fmt: skip

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        """The folder or file of a registered model version, on this machine."""
        store = _workspace._store if _workspace is not None else LocalStore.get()
        try:
            return model_records.get(store, model_name, version)["source"]
        except model_records.ModelRecordNotFound as exc:
            raise ModelNotFoundException(f"ModelNotFound: {exc}") from None

    def serialize(self) -> dict:
        return {"id": self.id, "name": self.name, "version": self.version, "tags": self.tags,
                "properties": self.properties, "runId": self.run_id, "description": self.description,
                "framework": self.model_framework, "frameworkVersion": self.model_framework_version,
                "url": self.url}  # fmt: skip

    def __repr__(self):
        return (
            f"Model(workspace=local, name={self.name}, id={self.id}, version={self.version}, "
            f"tags={self.tags}, properties={self.properties})"
        )


# --- web services -------------------------------------------------------------------------------------------

NAME_RULE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
IGNORED_ACI = ("ssl_enabled", "enable_app_insights", "dns_name_label", "location", "collect_model_data",
               "vnet_name", "subnet_name")  # fmt: skip


def deploy(workspace, name, models, inference_config, deployment_config, deployment_target, overwrite, show_output):
    """Start a local service for ``models``; returns the service (state Transitioning)."""
    store: LocalStore = workspace._store
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise WebserviceException(
            f"Service name {name!r} is not valid: 3 to 32 characters, lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-' (as on Azure)."
        )
    if inference_config is None:
        raise WebserviceException("Pass an InferenceConfig(entry_script=..., environment=...) to deploy a model.")
    if not models:
        raise WebserviceException("Pass the registered models to deploy, e.g. [Model(ws, 'keras-mnist')].")
    if deployment_target is not None:
        warn_ignored("Model.deploy", "deployment_target", "local services run on this machine")
    kind = type(deployment_config).__name__ if deployment_config is not None else "Local"
    auth = bool(getattr(deployment_config, "auth_enabled", False))
    for field in IGNORED_ACI:
        if getattr(deployment_config, field, None) not in (None, False):
            warn_ignored("deploy_configuration", field, "a local service has nothing to size or certify")

    with store.name_lock("service", name):  # one deploy or delete of a name at a time, across processes
        _start_service(workspace, name, models, inference_config, deployment_config, overwrite, show_output, kind,
                       auth)  # fmt: skip
    service = Webservice(workspace, name)
    if show_output:
        service.wait_for_deployment(show_output=True)
    return service


def _start_service(workspace, name, models, inference_config, deployment_config, overwrite, show_output, kind,
                   auth) -> None:  # fmt: skip
    """Replace or refuse an existing service of the name, lay out the new one and start its server."""
    store: LocalStore = workspace._store
    if service_records.get(store, name) is not None:
        if not overwrite:
            raise WebserviceException(
                f"A service named {name!r} already exists: pass overwrite=True to replace it, or delete it first."
            )
        Webservice(workspace, name).delete()
    env = environment_spec(inference_config.environment) if inference_config.environment is not None else None
    python = _service_python(env, show_output)
    compute_type = "ACI" if kind.startswith("Aci") else "Local"
    try:  # the row is the claim on the name: a second deploy of it at the same moment stops here, cleanly
        service_records.claim(store, name, compute_type, str(store.service_dir(name)), auth, [m.id for m in models])
    except service_records.ServiceExists as exc:
        raise WebserviceException(f"{exc} Wait for it, or deploy under another name.") from None
    try:
        source = Path(inference_config.source_directory or ".").resolve()
        paths = serving.lay_out(store, name, source, inference_config.entry_script,
                                [m._record for m in models])  # fmt: skip
        variables = dict((env or {}).get("environment_variables") or {})
        keys = []
        if auth:
            keys = [getattr(deployment_config, "primary_key", None) or secrets.token_urlsafe(24),
                    getattr(deployment_config, "secondary_key", None) or secrets.token_urlsafe(24)]  # fmt: skip
        spec = {
            "name": name,
            "port": getattr(deployment_config, "port", None),
            **{k: paths[k] for k in ("entry_script", "app_root", "model_dir")},
            "environment_variables": variables,
            "workers": int(variables.get("WORKER_COUNT", 1)),
            # recorded, not enforced: one machine has nothing to size
            "cpu_cores": getattr(deployment_config, "cpu_cores", None),
            "memory_gb": getattr(deployment_config, "memory_gb", None),
            "tags": getattr(deployment_config, "tags", None) or {},
            "description": getattr(deployment_config, "description", None),
        }
        serving.write_spec(Path(paths["folder"]), spec, keys)
        if env is not None:  # as a run's log does: what the local workspace cannot honour, said where one looks
            serving.note(store, name, [f"Warning: {w}" for w in snapshot.warnings_for(env)])
        pid = serving.start(store, name, python)
        service_records.set_state(store, name, "Transitioning", pid=pid)
    except serving.ServingError as exc:
        service_records.delete(store, name)
        raise WebserviceException(str(exc)) from None
    except BaseException:
        serving.stop(store, name, grace=2)
        service_records.delete(store, name)
        serving.remove_folder(store, name)
        raise


def _service_python(env: dict | None, show_output: bool) -> str:
    """This interpreter when it has the inference environment's packages, else a built environment's
    (the same builder and cache as runs: built once, reused by runs and services alike)."""
    if env is None:
        return sys.executable
    missing = snapshot.missing_packages(env)
    if not missing:
        return sys.executable
    if env["user_managed"]:
        raise WebserviceException(
            f"The inference environment is user-managed, and this interpreter ({sys.executable}) lacks: "
            + "; ".join(missing)
            + ". Install them, or let Azure ML manage the environment."
        )
    # The server needs Azure's inference server in the environment (azureml-defaults brings it on Azure).
    env = dict(env, pip=[*env["pip"], "azureml-inference-server-http"])
    lines: list[str] = []
    say = print if show_output else lines.append
    try:
        return envs.ensure(env, say)
    except envs.EnvironmentBuildError as exc:
        raise WebserviceException(f"The inference environment could not be built. {exc}") from None


class Webservice(Offline):
    """A deployed local service (twin of ``azureml.core.Webservice`` / ``AciWebservice``)."""

    _azure_class = AzureWebservice

    def __init__(self, workspace, name):
        self.workspace = workspace
        self.name = name
        self._store: LocalStore = workspace._store
        row = service_records.get(self._store, name)
        if row is None:
            raise WebserviceException(
                f"WebserviceNotFound: no service named {name!r} in the local workspace. "
                f"Services: {', '.join(service_records.names(self._store)) or 'none'}."
            )
        self._folder = Path(row["folder"])
        self.compute_type = row["compute_type"]
        self.auth_enabled = bool(row["auth_enabled"])
        self.created_time = row["created"]
        self.tags = (read_json(self._folder / "service.json") or {}).get("tags", {})

    # --- state -------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        row = service_records.get(self._store, self.name)
        if row is None:
            return "Deleted"
        if row["state"] in ("Healthy", "Transitioning") and not serving.server_alive(self._store, self.name):
            if row["pid"] == 0:
                return "Transitioning"  # being laid out: the server has not been started yet
            return "Failed" if row["state"] == "Transitioning" else "Unhealthy"
        return row["state"]

    @property
    def _pid(self) -> int | None:
        """The server's pid as recorded (the ledger also holds its start time; stop through it, not this)."""
        row = service_records.get(self._store, self.name)
        return (row["pid"] or None) if row else None

    @property
    def error(self) -> str | None:
        row = service_records.get(self._store, self.name)
        return (row["error"] or None) if row else None

    @property
    def scoring_uri(self) -> str | None:
        port = serving.port_of(self._store, self.name)
        return f"http://127.0.0.1:{port}/score" if port else None

    @property
    def swagger_uri(self) -> str | None:
        port = serving.port_of(self._store, self.name)
        return f"http://127.0.0.1:{port}/swagger.json" if port else None

    @property
    def models(self) -> list:
        row = service_records.get(self._store, self.name)
        return [Model(self.workspace, id=model_id) for model_id in (row["models"] if row else [])]

    def wait_for_deployment(self, show_output=False, timeout_sec=None):
        """Wait until the server answers (init() has run) or has failed; a failure raises with its log."""
        deadline = time.time() + (timeout_sec or 600)
        if show_output:
            print(f"Local service {self.name!r}: starting Azure ML's inference server", end="", flush=True)
        while True:
            row = service_records.get(self._store, self.name)
            if row is None or row["state"] != "Transitioning":
                break
            if row["pid"] and not serving.server_alive(self._store, self.name):
                service_records.set_state(self._store, self.name, "Failed", self._log_tail(40))
                serving.stop(self._store, self.name, grace=2)
                break
            if self.scoring_uri and self._healthy():
                service_records.set_state(self._store, self.name, "Healthy")
                break
            if time.time() > deadline:
                service_records.set_state(self._store, self.name, "Failed",
                                          f"The service did not answer within {timeout_sec} s.")  # fmt: skip
                break
            if show_output:
                print(".", end="", flush=True)
            time.sleep(0.5)
        state = self.state
        if show_output:
            print(f"\n{state}: {self.scoring_uri}" if state == "Healthy" else f"\n{state}")
        if state != "Healthy":
            raise WebserviceException(
                f"Service {self.name!r} failed to start ({state}). The end of its log (service.get_logs()):\n"
                + (self.error or self._log_tail(40))
            )

    def _healthy(self) -> bool:
        try:
            with serving.loopback_open(self.scoring_uri.removesuffix("score"), timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def get_logs(self, num_lines=5000, init=False):
        """The server's log: the inference server's start-up, init() output, one line per request."""
        return self._log_tail(num_lines)

    def _log_tail(self, num_lines: int) -> str:
        try:
            lines = (self._folder / "service.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-num_lines:])

    # --- keys ---------------------------------------------------------------------------------
    def get_keys(self):
        """The primary and secondary key (as ``AciWebservice.get_keys``)."""
        if not self.auth_enabled:
            raise WebserviceException(
                f"Service {self.name!r} has key authentication off: deploy with "
                "AciWebservice.deploy_configuration(auth_enabled=True) to use keys."
            )
        primary, secondary = read_json(self._folder / "keys.json")["keys"]
        return primary, secondary

    def regen_key(self, key, set_key=None):
        """Replace the ``'Primary'`` or ``'Secondary'`` key (with ``set_key``, or a new random one)."""
        if key not in ("Primary", "Secondary"):
            raise WebserviceException("regen_key takes key='Primary' or key='Secondary'.")
        keys = list(self.get_keys())
        keys[0 if key == "Primary" else 1] = set_key or secrets.token_urlsafe(24)
        write_json(self._folder / "keys.json", {"keys": keys})

    # --- calling ------------------------------------------------------------------------------
    def run(self, input_data):
        """POST ``input_data`` (a JSON string) to the scoring URI; returns the decoded answer."""
        if self.state != "Healthy" or not self.scoring_uri:
            raise WebserviceException(
                f"Service {self.name!r} is {self.state}: call wait_for_deployment() first, or see get_logs()."
            )
        body = input_data if isinstance(input_data, bytes) else str(input_data).encode()
        headers = {"Content-Type": "application/json"}
        if self.auth_enabled:
            headers["Authorization"] = f"Bearer {self.get_keys()[0]}"
        request = urllib.request.Request(self.scoring_uri, data=body, headers=headers, method="POST")
        try:
            with serving.loopback_open(request, timeout=300) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            content = exc.read().decode(errors="replace")
            raise WebserviceException(
                f"Received bad response from service: status {exc.code}, content {content}"
            ) from None

    # --- lifecycle ----------------------------------------------------------------------------
    def delete(self):
        """Stop the server (its workers and anything they started, through the ledger) and forget the service."""
        with self._store.name_lock("service", self.name):
            serving.stop(self._store, self.name)
            service_records.delete(self._store, self.name)
            serving.remove_folder(self._store, self.name)

    def serialize(self) -> dict:
        spec = read_json(self._folder / "service.json") or {}
        return {
            "containerResourceRequirements": {"cpu": spec.get("cpu_cores"), "memoryInGB": spec.get("memory_gb")},
            "tags": spec.get("tags", {}),
            "description": spec.get("description"),
            "name": self.name,
            "computeType": self.compute_type,
            "state": self.state,
            "scoringUri": self.scoring_uri,
            "swaggerUri": self.swagger_uri,
            "authEnabled": self.auth_enabled,
            "models": [m.id for m in self.models],
        }

    @staticmethod
    def list(workspace, compute_type=None, image_name=None, image_id=None, model_name=None, model_id=None,
             tags=None, properties=None, image_digest=None):  # fmt: skip
        services = [Webservice(workspace, n) for n in service_records.names(workspace._store)]
        if compute_type:
            services = [s for s in services if s.compute_type.lower() == compute_type.lower()]
        if model_name:
            services = [s for s in services if any(m.name == model_name for m in s.models)]
        if model_id:
            services = [s for s in services if any(m.id == model_id for m in s.models)]
        if tags:
            try:
                services = [s for s in services if filters.matches(s.tags, tags)]
            except filters.FilterError as exc:
                raise _filter_error(exc) from None
        for arg, value in (("image_name", image_name), ("image_id", image_id), ("image_digest", image_digest),
                           ("properties", properties)):  # fmt: skip
            if value:
                warn_ignored("Webservice.list", arg, "local services have no images or properties")
        return services

    def __repr__(self):
        return f"Webservice(name={self.name}, compute_type={self.compute_type}, state={self.state}, " \
            f"scoring_uri={self.scoring_uri})"  # fmt: skip


def stop_all(store: LocalStore) -> int:
    """Stop every service of a workspace folder (test clean-up); returns how many there were."""
    names = service_records.names(store)
    for name in names:
        serving.stop(store, name, grace=2)
        service_records.delete(store, name)
        serving.remove_folder(store, name)
    return len(names)
