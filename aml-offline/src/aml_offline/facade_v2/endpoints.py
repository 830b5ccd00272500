"""``ml_client.online_endpoints`` and ``ml_client.online_deployments`` of the local workspace (twins of
azure-ai-ml's ``OnlineEndpointOperations`` and ``OnlineDeploymentOperations``).

An endpoint is a record (auth mode, keys, traffic); each of its deployments is a web service of the same
serving layer v1's ``Model.deploy`` uses: Azure ML's inference server under gunicorn on 127.0.0.1, the model
laid out as on Azure (``AZUREML_MODEL_DIR``), the server recorded in the ledger and stopped by
``begin_delete``.  Key auth (``auth_mode="key"``) is checked in front of ``/score`` (401 without a key).
Traffic goes to one deployment: the one with the largest share (a split is recorded, with a warning).

An MLflow model (``type="mlflow_model"``) deploys without ``code_configuration`` or environment, as on Azure: the
server runs the scoring script Azure would generate (MLflow's ``mlflow.pyfunc.load_model`` behind Azure's request
format, ``{"input_data": ...}``), in this machine's Python when it has the model's packages.

``local=True`` (azure-ai-ml's Docker endpoints) is served the same way, without Docker: local endpoints are a
namespace of their own (records ``local.<name>``), as Docker's are apart from the workspace's, with azure-ai-ml's
local behaviour: no keys, no traffic rules, ``begin_*`` returning the entity (or None) instead of a poller, and
its ``Local...`` errors.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

from azure.ai.ml._utils._endpoint_utils import get_duration, validate_response
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Environment, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from azure.ai.ml.entities._endpoint.online_endpoint import EndpointAuthKeys
from azure.ai.ml.exceptions import (
    ErrorTarget,
    InvalidVSCodeRequestError,
    LocalDeploymentGPUNotAvailable,
    LocalEndpointInFailedStateError,
    LocalEndpointNotFoundError,
    MultipleLocalDeploymentsFoundError,
    RequiredLocalArtifactsNotFoundError,
)
from azure.ai.ml.operations import OnlineDeploymentOperations as AzureOnlineDeploymentOperations
from azure.ai.ml.operations import OnlineEndpointOperations as AzureOnlineEndpointOperations
from azure.core.exceptions import HttpResponseError

from aml_offline.execution import envs, serving, snapshot
from aml_offline.facade_v2 import mlflow_models
from aml_offline.facade_v2._common import done, invalid, not_found
from aml_offline.facade_v2.jobs import CURATED, curated_spec, environment_spec
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import endpoints as endpoint_records
from aml_offline.records import models as model_records
from aml_offline.records import services as service_records
from aml_offline.store import LocalStore

#: Azure's rule for endpoint names: 3 to 32 letters, digits and '-', starting with a letter
ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
START_TIMEOUT_S = 600
#: Local endpoints' records are ``local.<name>`` (an endpoint's name has no '.'), their servers ``local.<name>.<d>``
LOCAL = "local."
#: azure-ai-ml's local endpoints say what they do through this logger ("Creating local endpoint (name)", "Done")
_progress = logging.getLogger("azure.ai.ml._utils._endpoint_utils")


def _key(name: str, local: bool) -> str:
    """The record of endpoint ``name``: the workspace's, or the local (``local=True``) one."""
    return f"{LOCAL}{name}" if local else name


def _names(store: LocalStore, local: bool = False) -> list[str]:
    names = endpoint_records.names(store)
    if local:
        return [n.removeprefix(LOCAL) for n in names if n.startswith(LOCAL)]
    return [n for n in names if not n.startswith(LOCAL)]


def _endpoint_or_raise(store: LocalStore, name: str, local: bool = False) -> dict:
    record = endpoint_records.get(store, _key(name, local))
    if record is None:
        if local:
            raise LocalEndpointNotFoundError(endpoint_name=name)
        raise not_found("online endpoint", name, store, _names(store))
    return record


def _service(record: dict, deployment: str) -> str:
    """The web service that serves a deployment now (an update starts a new one beside it, then switches)."""
    info = record["deployments"].get(deployment) or {}
    return info.get("service") or endpoint_records.service_name(record["name"], deployment)


def _port(store: LocalStore, endpoint: str, deployment: str) -> int | None:
    record = endpoint_records.get(store, endpoint)
    return serving.port_of(store, _service(record, deployment)) if record else None


def _routed(record: dict) -> str | None:
    """The deployment that takes the endpoint's traffic: the largest share above 0."""
    shares = {d: p for d, p in (record.get("traffic") or {}).items() if p and d in record["deployments"]}
    return max(shares, key=shares.get) if shares else None


@contextmanager
def _reporting(message: str):
    """What azure-ai-ml's local operations say: the operation, "Done" and the time it took (also when it fails)."""
    start = time.time()
    _progress.warning("%s", message)
    try:
        yield
    finally:
        _progress.warning("Done ")
        get_duration(start)


def _endpoint_entity(name: str, record: dict, port: int | None, state: str | None) -> ManagedOnlineEndpoint:
    """The endpoint as azure-ai-ml's entity, served on ``port`` of 127.0.0.1 (None: no server answers for it)."""
    return ManagedOnlineEndpoint(
        name=name,
        auth_mode=record["auth_mode"],
        description=record.get("description"),
        tags=record.get("tags") or {},
        traffic=dict(record.get("traffic") or {}),
        scoring_uri=f"http://127.0.0.1:{port}/score" if port else None,
        openapi_uri=f"http://127.0.0.1:{port}/swagger.json" if port else None,
        provisioning_state=state,
        location="local",
    )


class OnlineEndpointOperations(Offline):
    """Endpoints: ``begin_create_or_update``, ``get``, ``list``, ``get_keys``, ``begin_regenerate_keys``,
    ``invoke``, ``begin_delete``; with ``local=True``, the local endpoints azure-ai-ml runs in Docker."""

    _azure_class = AzureOnlineEndpointOperations

    def __init__(self, client):
        self._store: LocalStore = client._store

    def begin_create_or_update(self, endpoint: ManagedOnlineEndpoint, *, local: bool = False):
        """Create the endpoint (with two keys), or update its traffic, description and tags.  With ``local=True``, a
        local endpoint (no keys, no traffic rules), returned as azure-ai-ml returns it: the entity, not a poller."""
        name = endpoint.name or ""
        if not ENDPOINT_NAME.match(name):
            raise invalid(
                f"Endpoint name {name!r} is not valid: 3 to 32 letters, digits and '-', starting with a "
                "letter (as on Azure).",
                ErrorTarget.ONLINE_ENDPOINT,
            )
        if local:
            return self._create_or_update_local(endpoint)
        auth = (endpoint.auth_mode or "key").lower()
        if auth != "key":
            raise not_available(f"Endpoint {name!r}: auth_mode={auth!r}", "the local workspace checks keys")
        existing = endpoint_records.get(self._store, name)
        if existing is not None and existing["auth_mode"] != auth:
            raise invalid(
                f"Endpoint {name!r} exists with auth_mode {existing['auth_mode']!r}.", ErrorTarget.ONLINE_ENDPOINT
            )
        keys = [secrets.token_urlsafe(24), secrets.token_urlsafe(24)]
        endpoint_records.create_or_update(self._store, name, auth, keys, endpoint.description, endpoint.tags)
        if endpoint.traffic:
            total = sum(int(p) for p in endpoint.traffic.values())
            if total not in (0, 100):
                raise invalid(
                    f"Endpoint {name!r}: traffic adds up to {total}%; it must be 100% (or 0%).",
                    ErrorTarget.ONLINE_ENDPOINT,
                )
            if sum(1 for p in endpoint.traffic.values() if p) > 1:
                warn_ignored(
                    f"Endpoint {name!r}",
                    "traffic split",
                    "one deployment takes all requests locally: the one with the largest share",
                )

            def set_traffic(record: dict) -> None:
                unknown = sorted(set(endpoint.traffic) - set(record["deployments"]))
                if unknown:
                    raise invalid(
                        f"Endpoint {name!r}: traffic names deployment(s) {', '.join(unknown)}, which it does "
                        f"not have (it has: {', '.join(record['deployments']) or 'none'}).",
                        ErrorTarget.ONLINE_ENDPOINT,
                    )
                record["traffic"] = {d: int(p) for d, p in endpoint.traffic.items()}

            endpoint_records.update(self._store, name, set_traffic)
        return done(self.get(name))

    def _create_or_update_local(self, endpoint: ManagedOnlineEndpoint) -> ManagedOnlineEndpoint:
        """A local endpoint: a record without keys (Docker's local endpoints check none); its traffic is kept as
        given and routes nothing (a request names its deployment, or the endpoint has one)."""
        name, store = endpoint.name, self._store
        exists = endpoint_records.get(store, _key(name, True)) is not None
        with _reporting(f"{'Updating' if exists else 'Creating'} local endpoint ({name}) "):
            auth = (endpoint.auth_mode or "key").lower()
            endpoint_records.create_or_update(store, _key(name, True), auth, [], endpoint.description, endpoint.tags)
            traffic = {d: int(p) for d, p in (endpoint.traffic or {}).items()}
            endpoint_records.update(store, _key(name, True), lambda record: record.__setitem__("traffic", traffic))
        return self.get(name, local=True)

    def get(self, name: str, *, local: bool = False) -> ManagedOnlineEndpoint:
        record = _endpoint_or_raise(self._store, name, local)
        if local:
            return self._local_entity(name, record)
        routed = _routed(record)
        port = _port(self._store, name, routed) if routed else None
        return _endpoint_entity(name, record, port, "Succeeded")

    def _local_entity(self, name: str, record: dict) -> ManagedOnlineEndpoint:
        """As azure-ai-ml shows a local endpoint: its first deployment's server gives the scoring URI and the state
        (Failed when it is not running); an endpoint without deployments is what was given."""
        deployments = sorted(record["deployments"], key=lambda d: record["deployments"][d].get("created", 0))
        port = state = None
        if deployments:
            service = _service(record, deployments[0])
            port = serving.port_of(self._store, service)
            state = "Succeeded" if serving.server_alive(self._store, service) else "Failed"
        return _endpoint_entity(name, record, port, state)

    def list(self, *, local: bool = False) -> list[ManagedOnlineEndpoint]:
        return [self.get(name, local=local) for name in _names(self._store, local)]

    def get_keys(self, name: str) -> EndpointAuthKeys:
        primary, secondary = _endpoint_or_raise(self._store, name)["keys"]
        return EndpointAuthKeys(primary_key=primary, secondary_key=secondary)

    def begin_regenerate_keys(self, name: str, *, key_type: str = "primary"):
        """A new primary or secondary key; each deployment's server takes it at once."""
        _endpoint_or_raise(self._store, name)
        if key_type not in ("primary", "secondary"):
            raise invalid(f"key_type must be 'primary' or 'secondary', not {key_type!r}.", ErrorTarget.ONLINE_ENDPOINT)

        def regenerate(record: dict) -> None:
            record["keys"][0 if key_type == "primary" else 1] = secrets.token_urlsafe(24)

        with self._store.write_lock():  # a deploy writes its server's keys under the same lock: none is left stale
            record = endpoint_records.update(self._store, name, regenerate)
            for deployment in record["deployments"]:
                folder = self._store.service_dir(_service(record, deployment))
                if (folder / "keys.json").is_file():
                    serving.write_keys(folder, record["keys"])
        return done(None)

    def invoke(
        self,
        endpoint_name: str,
        *,
        request_file=None,
        deployment_name=None,
        input_data=None,
        params_override=None,
        local: bool = False,
        **kwargs,
    ) -> str:
        """POST ``request_file``'s JSON to the endpoint (or to ``deployment_name``) with its key; the answer's
        text, as azure-ai-ml returns it.  An answer other than 200 raises ``HttpResponseError`` with it.  With
        ``local=True``, to the local endpoint, without a key, and any answer is returned as it is (as azure-ai-ml
        does for its local endpoints)."""
        # as azure-ai-ml 1.35 does: the payload is request_file's JSON, read first (so no request_file is its
        # TypeError, and input_data, a batch endpoint's argument, is not sent)
        with open(request_file, "rb") as f:
            body = json.dumps(json.loads(f.read())).encode()
        if local:
            return self._invoke_local(endpoint_name, body, deployment_name)
        record = _endpoint_or_raise(self._store, endpoint_name)
        deployment = deployment_name or _routed(record)
        if deployment is None:
            raise HttpResponseError(
                message=f"Endpoint {endpoint_name!r} has no deployment taking traffic: set endpoint.traffic = "
                "{'<deployment>': 100} and call online_endpoints.begin_create_or_update(endpoint), or pass "
                "deployment_name=."
            )
        if deployment not in record["deployments"]:
            raise not_found(
                f"deployment of endpoint {endpoint_name!r}:", deployment, self._store, list(record["deployments"])
            )
        port = _port(self._store, endpoint_name, deployment)
        if port is None:
            raise HttpResponseError(
                message=f"Endpoint {endpoint_name!r}: deployment {deployment!r} has no running server. Its log: "
                f"ml_client.online_deployments.get_logs({deployment!r}, {endpoint_name!r}); then update or "
                "re-create the deployment."
            )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/score",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {record['keys'][0]}",
                "azureml-model-deployment": deployment,
            },
        )
        try:
            with serving.loopback_open(request, timeout=120) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            # azure-ai-ml's own check of the answer, so a non-200 answer raises what it raises on Azure
            validate_response(_Answer(exc.code, exc.read(), exc.reason))
            raise  # validate_response raises for every answer but 200 and 201
        except (urllib.error.URLError, OSError) as exc:
            raise HttpResponseError(
                message=f"Endpoint {endpoint_name!r} (deployment {deployment!r}) did not answer: {exc}. Its log: "
                "ml_client.online_deployments.get_logs(...)."
            ) from None

    def _invoke_local(self, endpoint_name: str, body: bytes, deployment_name: str | None) -> str:
        """azure-ai-ml's local invoke: the endpoint's one deployment (or ``deployment_name``), no key, and the
        answer's text whatever its status."""
        store = self._store
        record = _endpoint_or_raise(store, endpoint_name, local=True)
        deployments = list(record["deployments"])
        if deployment_name is None:
            if len(deployments) > 1:
                raise MultipleLocalDeploymentsFoundError(endpoint_name=endpoint_name)
            if not deployments:  # azure-ai-ml's answer for an endpoint without deployments, word for word
                return (
                    "This local endpoint does not have any deployments, so it cannot be invoked."
                    "Please use 'az ml online-deployment create --local' before invoking."
                )
            deployment = deployments[0]
        elif deployment_name not in deployments:
            raise LocalEndpointNotFoundError(endpoint_name=endpoint_name, deployment_name=deployment_name)
        else:
            deployment = deployment_name
        service = _service(record, deployment)
        port = serving.port_of(store, service)
        if port is None or not serving.server_alive(store, service):
            raise LocalEndpointInFailedStateError(endpoint_name=endpoint_name, deployment_name=deployment)
        headers = {"Content-Type": "application/json"}
        if deployment_name is not None:
            headers["azureml-model-deployment"] = deployment_name
        request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=body, method="POST", headers=headers)
        try:
            with serving.loopback_open(request, timeout=120) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.read().decode()
        except (urllib.error.URLError, OSError):
            raise LocalEndpointInFailedStateError(endpoint_name=endpoint_name, deployment_name=deployment) from None

    def begin_delete(self, name=None, *, local: bool = False):
        """Delete the endpoint and every deployment of it: their servers and everything they started stop.  With
        ``local=True``, the local endpoint, and None is returned (as azure-ai-ml does), not a poller."""
        record = _endpoint_or_raise(self._store, name, local)
        for deployment in list(record["deployments"]):
            _remove_deployment(self._store, record["name"], deployment)
        endpoint_records.delete(self._store, record["name"])
        return None if local else done(None)


def _remove_service(store: LocalStore, service: str) -> None:
    serving.stop(store, service, grace=5)
    service_records.delete(store, service)
    serving.remove_folder(store, service)


def _remove_deployment(store: LocalStore, endpoint: str, deployment: str) -> None:
    """Stop and forget a deployment; ``endpoint`` is the endpoint's record name (``local.<name>`` for a local one)."""
    record = endpoint_records.get(store, endpoint)
    with store.name_lock("service", endpoint_records.service_name(endpoint, deployment)):
        _remove_service(store, _service(record, deployment) if record else
                        endpoint_records.service_name(endpoint, deployment))  # fmt: skip

    def forget(record: dict) -> None:
        record["deployments"].pop(deployment, None)
        record["traffic"].pop(deployment, None)

    try:
        endpoint_records.update(store, endpoint, forget)
    except endpoint_records.EndpointNotFound:
        pass


def _local_artifact_missing(endpoint: str, deployment: str, artifact: str, kind: str):
    """azure-ai-ml's error for a local deployment that lacks a local file or setting it needs."""
    error = RequiredLocalArtifactsNotFoundError(
        endpoint_name=endpoint, required_artifact=artifact, required_artifact_type=kind, deployment_name=deployment
    )
    # azure-ai-ml 1.35 leaves this message unformatted (a tuple's text): the same words, formatted
    error.args = (
        f"Local endpoints only support local artifacts. 'Local deployment ({endpoint} / {deployment})' did not "
        f"contain required local artifact '{artifact}' of type '{kind}'.",
    )
    return error


class OnlineDeploymentOperations(Offline):
    """Deployments: ``begin_create_or_update``, ``get``, ``list``, ``get_logs``, ``begin_delete``; with
    ``local=True``, those of the local endpoints azure-ai-ml runs in Docker."""

    _azure_class = AzureOnlineDeploymentOperations

    def __init__(self, client):
        self._store: LocalStore = client._store

    def begin_create_or_update(
        self,
        deployment: ManagedOnlineDeployment,
        *,
        local: bool = False,
        vscode_debug: bool = False,
        skip_script_validation: bool = False,
        local_enable_gpu: bool = False,
        **kwargs,
    ):
        """Start the deployment's inference server (replacing a running one of the name) and wait until it
        answers; a server that fails to start raises with the end of its log.  New deployments take no traffic
        until the endpoint's ``traffic`` gives them some, as on Azure.  An MLflow model deploys without
        ``code_configuration``: the server runs the scoring script Azure generates for it.

        ``local=True``: a deployment of a local endpoint (made if it does not exist, as azure-ai-ml does), checked
        as azure-ai-ml checks local ones (local files, an environment with an image); the entity is returned, not
        a poller."""
        if vscode_debug and not local:
            raise InvalidVSCodeRequestError(
                msg="VSCode Debug is only support for local endpoints. Please set local to True."
            )
        if not local:
            self._deploy(deployment, local=False)
            return done(self.get(deployment.name, deployment.endpoint_name))
        if vscode_debug:
            raise not_available(
                "online_deployments.begin_create_or_update(vscode_debug=True)",
                "VS Code's dev container is Docker's; read the server's log with online_deployments.get_logs(..., "
                "local=True)",
            )
        if local_enable_gpu and shutil.which("nvidia-smi") is None:  # as azure-ai-ml checks, in its words
            raise LocalDeploymentGPUNotAvailable(
                msg="Nvidia GPU is not available in your local system. Use nvidia-smi command to see the available GPU"
            )
        endpoint = endpoint_records.get(self._store, _key(deployment.endpoint_name, True))
        verb = "Updating" if endpoint and deployment.name in endpoint["deployments"] else "Creating"
        with _reporting(f"{verb} local deployment ({deployment.endpoint_name} / {deployment.name}) "):
            self._deploy(deployment, local=True)
        return self.get(deployment.name, deployment.endpoint_name, local=True)

    def _deploy(self, deployment: ManagedOnlineDeployment, local: bool) -> None:
        store = self._store
        endpoint, name = deployment.endpoint_name, deployment.name
        label = f"{'Local deployment' if local else 'Deployment'} {name!r} of endpoint {endpoint!r}"
        if local:
            if not endpoint or not ENDPOINT_NAME.match(endpoint):
                raise invalid(
                    f"{label}: the endpoint's name must be 3 to 32 letters, digits and '-', starting with a letter.",
                    ErrorTarget.ONLINE_DEPLOYMENT,
                )
        else:
            _endpoint_or_raise(store, endpoint)
        if not name or not ENDPOINT_NAME.match(name):
            raise invalid(
                f"{label}: the name must be 3 to 32 letters, digits and '-', starting with a letter.",
                ErrorTarget.ONLINE_DEPLOYMENT,
            )
        if local:
            self._check_local(deployment)
        model = self._model(label, deployment.model, local, endpoint, name)
        code = deployment.code_configuration
        variables = {str(k): str(v) for k, v in (deployment.environment_variables or {}).items()}
        if code is None:
            if not mlflow_models.is_mlflow(model["framework"]):
                raise invalid(
                    f"{label}: model {model['name']}:{model['version']} is a {model['framework'] or 'custom'} model, "
                    "and only an MLflow model (type mlflow_model) deploys without code_configuration and "
                    "environment (Azure generates its scoring script and environment). Give code_configuration="
                    "CodeConfiguration(code=..., scoring_script=...) and environment=Environment(...).",
                    ErrorTarget.ONLINE_DEPLOYMENT,
                )
            mlflow_models.check_folder(
                f"{label}: model {model['name']}:{model['version']}",
                Path(model["source"]),
                ErrorTarget.ONLINE_DEPLOYMENT,
            )
            variables.setdefault("MLFLOW_MODEL_FOLDER", Path(model["source"]).name)
            if deployment.environment is not None:
                env = self._environment(label, deployment.environment, variables)
            else:  # as Azure builds it from the model's conda.yaml: this interpreter when it has those packages
                env = mlflow_models.environment(model, variables)
            source, entry_script = None, str(serving.MLFLOW_SCORING_SCRIPT)
        else:
            if not code.scoring_script:
                raise invalid(f"{label}: code_configuration has no scoring_script.", ErrorTarget.ONLINE_DEPLOYMENT)
            env = self._environment(label, deployment.environment, variables)
            source, entry_script = Path(str(code.code or ".")).resolve(), code.scoring_script
        if (deployment.instance_count or 1) > 1 and not local:
            warn_ignored(label, "instance_count", "one server on this machine serves it")
        python = _python(label, env)
        record_name = _key(endpoint, local)
        if local and endpoint_records.get(store, record_name) is None:  # azure-ai-ml needs no local endpoint first
            endpoint_records.create_or_update(store, record_name, "key", [])
        key = endpoint_records.service_name(record_name, name)
        with store.name_lock("service", key):  # one change of this deployment at a time, its switch included
            old = _endpoint_or_raise(store, endpoint, local)["deployments"].get(name)
            old_service = _service(_endpoint_or_raise(store, endpoint, local), name) if old else None
            # an update starts its server beside the running one, and switches once it answers (a rolling update)
            service = key if old_service is None else f"{key}.{uuid.uuid4().hex[:8]}"
            if old_service is None and service_records.get(store, service) is not None:
                _remove_service(store, service)  # left by a deployment whose endpoint record lost it
            service_records.claim(
                store,
                service,
                "ManagedOnline",
                str(store.service_dir(service)),
                not local,
                [f"{model['name']}:{model['version']}"],
            )
            try:
                paths = serving.lay_out(store, service, source, entry_script, [model])
                variables = dict(env.get("environment_variables") or {})
                spec = {
                    "name": service,
                    "port": None,
                    **{k: paths[k] for k in ("entry_script", "app_root", "model_dir")},
                    "environment_variables": variables,
                    "workers": int(variables.get("WORKER_COUNT", 1)),
                    "instance_type": deployment.instance_type,
                    "instance_count": deployment.instance_count,
                    "tags": deployment.tags or {},
                    "description": deployment.description,
                }
                with store.write_lock():  # the endpoint's keys as they are now: a regeneration waits for this
                    keys = _endpoint_or_raise(store, endpoint, local)["keys"]  # none for a local endpoint
                    serving.write_spec(Path(paths["folder"]), spec, keys)
                serving.note(store, service, [f"Warning: {w}" for w in snapshot.warnings_for(env)])
                pid = serving.start(store, service, python)
                service_records.set_state(store, service, "Transitioning", pid=pid)
            except serving.ServingError as exc:
                service_records.delete(store, service)
                raise invalid(f"{label}: {exc}", ErrorTarget.ONLINE_DEPLOYMENT) from None
            except BaseException:
                _remove_service(store, service)
                raise
            entry = {
                "model": f"{model['name']}:{model['version']}",
                "instance_type": deployment.instance_type,
                "instance_count": deployment.instance_count or 1,
                "code": str(source) if source else None,
                "scoring_script": code.scoring_script if code else None,
                "environment": env["name"],
                "created": time.time(),
                "service": service,
            }
            if old_service is not None:
                try:
                    self._wait(service, label)
                except BaseException:  # the new server failed: the old one goes on serving, as on Azure
                    log = _log_tail(store, service, 40)
                    _remove_service(store, service)
                    message = (
                        f"{label}: the update failed to start, so the deployment keeps serving as it was. "
                        f"The end of the new server's log:\n{log}"
                    )
                    if local:
                        raise _failed_locally(endpoint, name, message) from None
                    raise HttpResponseError(message=message) from None
            try:
                endpoint_records.update(
                    store, record_name, lambda record: record["deployments"].__setitem__(name, entry)
                )
            except endpoint_records.EndpointNotFound:  # deleted while this deployment started: its server goes too
                _remove_service(store, service)
                if local:
                    raise LocalEndpointNotFoundError(endpoint_name=endpoint) from None
                raise not_found("online endpoint", endpoint, store, _names(store)) from None
            if old_service is not None:
                _remove_service(store, old_service)  # switched: requests now reach the new server
        if old_service is None:
            try:
                self._wait(service, label)
            except HttpResponseError as exc:
                if local:
                    raise _failed_locally(endpoint, name, exc.message) from None
                raise

    def _check_local(self, deployment: ManagedOnlineDeployment) -> None:
        """What azure-ai-ml checks of a local deployment before it builds its container, in its words."""
        endpoint, name = deployment.endpoint_name, deployment.name
        code = deployment.code_configuration
        if code is not None:
            if not code.code or not Path(str(code.code)).resolve().exists():
                raise _local_artifact_missing(endpoint, name, "code_configuration.code", str(str))
            if not code.scoring_script:
                raise _local_artifact_missing(endpoint, name, "code_configuration.scoring_script", str(str))
        environment = deployment.environment
        if environment is None or (
            isinstance(environment, Environment)
            and not (environment.image or (environment.build is not None and environment.build.path))
        ):
            raise _local_artifact_missing(
                endpoint, name, "environment.image or environment.build.path", str(Environment)
            )

    def _model(self, label: str, model, local: bool, endpoint: str, deployment: str) -> dict:
        if isinstance(model, str) and model.startswith("azureml:") and not model.startswith("azureml://"):
            ref = model.removeprefix("azureml:")
            name, version = ref.split("@", 1) if "@" in ref else (ref.rsplit(":", 1) + ["latest"])[:2]
        elif isinstance(model, Model) and model.path and (model._is_anonymous or model.version is None):
            return self._inline_model(label, model, local, endpoint, deployment)
        elif isinstance(model, Model) and model.name and model.version:
            name, version = model.name, model.version
        else:
            raise not_available(
                f"{label}: model={model!r}",
                "deploy a registered model (ml_client.models.create_or_update(Model(...)) first, then pass it or "
                "'azureml:name:version'), or a Model(path=...) of files on this machine",
            )
        try:
            return model_records.get(self._store, name, None if version == "latest" else int(version))
        except (model_records.ModelRecordNotFound, ValueError):
            raise invalid(
                f"{label}: model {name}:{version} is not registered in the local workspace (it has: "
                f"{', '.join(model_records.names(self._store)) or 'none'}).",
                ErrorTarget.ONLINE_DEPLOYMENT,
            ) from None

    def _inline_model(self, label: str, model: Model, local: bool, endpoint: str, deployment: str) -> dict:
        """A ``Model(path=...)`` given in the deployment.  A local deployment uses its files where they are (as
        azure-ai-ml's Docker endpoints mount them); a deployment of the workspace registers it first, as Azure
        does (an anonymous one, named by its content's hash, once)."""
        path = str(model.path)
        if re.match(r"^[a-z][a-z0-9+.-]*:/", path):
            raise not_available(
                f"{label}: model path {path}",
                "register the model first (ml_client.models.create_or_update(Model(...))) and deploy it",
            )
        source = Path(path).resolve()
        if not source.exists():
            if local:
                raise _local_artifact_missing(endpoint, deployment, "model.path", str(str))
            raise invalid(f"{label}: the model's path {path!r} does not exist.", ErrorTarget.ONLINE_DEPLOYMENT)
        kind = model.type or AssetTypes.CUSTOM_MODEL
        if mlflow_models.is_mlflow(kind):
            mlflow_models.check_folder(f"{label}: its model {path!r}", source, ErrorTarget.ONLINE_DEPLOYMENT)
        if local:
            return {"name": model.name, "version": model.version or "1", "source": str(source), "framework": kind}
        if model._is_anonymous:
            found = model_records.versions(self._store, model.name)
            if found:
                return found[0]
        return model_records.register(
            self._store,
            model.name,
            model_records.keep_copy(self._store, source),
            source.name,
            tags=model.tags,
            properties=model.properties,
            description=model.description,
            framework=kind,
        )

    def _environment(self, label: str, environment, variables) -> dict:
        variables = {str(k): str(v) for k, v in (variables or {}).items()}
        if isinstance(environment, Environment):
            return environment_spec(environment, variables)
        if isinstance(environment, str) and environment.startswith(CURATED):
            warn_ignored(label, f"environment={environment}", "a curated environment is this machine's Python")
            return curated_spec(environment, variables)
        raise not_available(
            f"{label}: environment={environment!r}",
            "pass Environment(conda_file=..., image=...) itself, as the v2 notebooks do",
        )

    def _wait(self, service: str, label: str) -> None:
        """Until the server answers (init() has run), or has died: then it fails with its log."""
        store = self._store
        deadline = time.time() + START_TIMEOUT_S
        while True:
            row = service_records.get(store, service)
            if row["pid"] and not serving.server_alive(store, service):
                service_records.set_state(store, service, "Failed", _log_tail(store, service, 40))
                serving.stop(store, service, grace=2)
                break
            port = serving.port_of(store, service)
            if port and _healthy(port):
                service_records.set_state(store, service, "Healthy")
                return
            if time.time() > deadline:
                service_records.set_state(store, service, "Failed", f"no answer within {START_TIMEOUT_S} s")
                serving.stop(store, service, grace=2)
                break
            time.sleep(0.5)
        raise HttpResponseError(
            message=f"{label} failed to start. The end of its log (online_deployments.get_logs):\n"
            + _log_tail(store, service, 40)
        )

    def _record(self, name: str, endpoint_name: str, local: bool) -> dict:
        """The endpoint's record, with deployment ``name`` in it (else azure-ai-ml's error for it)."""
        if local:
            record = endpoint_records.get(self._store, _key(endpoint_name, True))
            if record is None or name not in record["deployments"]:
                raise LocalEndpointNotFoundError(endpoint_name=endpoint_name, deployment_name=name)
            return record
        record = _endpoint_or_raise(self._store, endpoint_name)
        if name not in record["deployments"]:
            raise not_found(
                f"deployment of endpoint {endpoint_name!r}:", name, self._store, list(record["deployments"])
            )
        return record

    def get(self, name: str, endpoint_name: str, *, local: bool = False) -> ManagedOnlineDeployment:
        record = self._record(name, endpoint_name, local)
        info = record["deployments"][name]
        row = service_records.get(self._store, _service(record, name)) or {}
        state = {"Healthy": "Succeeded", "Transitioning": "Updating"}.get(row.get("state"), "Failed")
        if local and state == "Succeeded" and not serving.server_alive(self._store, _service(record, name)):
            state = "Failed"  # as azure-ai-ml shows a local deployment whose container has exited
        return ManagedOnlineDeployment(
            name=name,
            endpoint_name=endpoint_name,
            model=f"azureml:{info['model']}",
            instance_type="local" if local else info["instance_type"],
            instance_count=info["instance_count"],
            provisioning_state=state,
        )

    def list(self, endpoint_name: str, *, local: bool = False) -> list[ManagedOnlineDeployment]:
        """The endpoint's deployments; with ``local=True``, every local deployment (azure-ai-ml lists all of
        Docker's, whatever ``endpoint_name`` says)."""
        if local:
            return [
                self.get(d, endpoint, local=True)
                for endpoint in _names(self._store, local=True)
                for d in endpoint_records.get(self._store, _key(endpoint, True))["deployments"]
            ]
        return [self.get(n, endpoint_name) for n in _endpoint_or_raise(self._store, endpoint_name)["deployments"]]

    def get_logs(
        self, name: str, endpoint_name: str, lines: int | None = None, *, container_type=None, local: bool = False
    ) -> str:
        """The server's log: the inference server's start-up, init() output, one line per request."""
        record = self._record(name, endpoint_name, local)
        return _log_tail(self._store, _service(record, name), lines or 5000)

    def begin_delete(self, name: str, endpoint_name: str, *, local: bool = False):
        """Stop and remove the deployment; with ``local=True``, a local one, and None is returned (as azure-ai-ml
        does), not a poller."""
        self._record(name, endpoint_name, local)
        _remove_deployment(self._store, _key(endpoint_name, local), name)
        return None if local else done(None)


def _failed_locally(endpoint: str, deployment: str, detail: str) -> LocalEndpointInFailedStateError:
    """azure-ai-ml's error for a local deployment whose server is not running, with what its log says."""
    error = LocalEndpointInFailedStateError(endpoint_name=endpoint, deployment_name=deployment)
    error.args = (f"{error.args[0]}\n{detail}",)
    return error


def _python(label: str, env: dict) -> str:
    """This interpreter when it has the environment's packages, else one built by the job environments' builder."""
    missing = snapshot.missing_packages(env)
    if not missing:
        return sys.executable
    if env["user_managed"]:
        raise invalid(f"{label}: this interpreter lacks {'; '.join(missing)}.", ErrorTarget.ONLINE_DEPLOYMENT)
    try:
        return envs.ensure(dict(env, pip=[*env["pip"], "azureml-inference-server-http"]), lambda line: None)
    except envs.EnvironmentBuildError as exc:
        raise invalid(f"{label}: the environment could not be built. {exc}", ErrorTarget.ONLINE_DEPLOYMENT) from None


def _healthy(port: int) -> bool:
    try:
        with serving.loopback_open(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(store: LocalStore, service: str, lines: int) -> str:
    try:
        text = (store.service_dir(service) / "service.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


class _Answer:
    """An HTTP answer in the shape azure-ai-ml's ``validate_response`` and azure-core's errors read."""

    def __init__(self, status: int, content: bytes, reason: str = ""):
        self.status_code, self.content, self.reason, self.headers, self.request = status, content, reason, {}, None

    def text(self, encoding=None) -> str:
        return self.content.decode(errors="replace")

    def json(self):
        return json.loads(self.content)
