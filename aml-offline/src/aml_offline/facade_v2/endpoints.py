"""``ml_client.online_endpoints`` and ``ml_client.online_deployments`` of the local workspace (twins of
azure-ai-ml's ``OnlineEndpointOperations`` and ``OnlineDeploymentOperations``).

An endpoint is a record (auth mode, keys, traffic); each of its deployments is a web service of the same
serving layer v1's ``Model.deploy`` uses: Azure ML's inference server under gunicorn on 127.0.0.1, the model
laid out as on Azure (``AZUREML_MODEL_DIR``), the server recorded in the ledger and stopped by
``begin_delete``.  Key auth (``auth_mode="key"``) is checked in front of ``/score`` (401 without a key).
Traffic goes to one deployment: the one with the largest share (a split is recorded, with a warning).
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from azure.ai.ml._utils._endpoint_utils import validate_response
from azure.ai.ml.entities import Environment, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from azure.ai.ml.entities._endpoint.online_endpoint import EndpointAuthKeys
from azure.ai.ml.exceptions import ErrorTarget
from azure.ai.ml.operations import OnlineDeploymentOperations as AzureOnlineDeploymentOperations
from azure.ai.ml.operations import OnlineEndpointOperations as AzureOnlineEndpointOperations
from azure.core.exceptions import HttpResponseError

from aml_offline.execution import envs, serving, snapshot
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


def _endpoint_or_raise(store: LocalStore, name: str) -> dict:
    record = endpoint_records.get(store, name)
    if record is None:
        raise not_found("online endpoint", name, store, endpoint_records.names(store))
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


class OnlineEndpointOperations(Offline):
    """Endpoints: ``begin_create_or_update``, ``get``, ``list``, ``get_keys``, ``begin_regenerate_keys``,
    ``invoke``, ``begin_delete``."""

    _azure_class = AzureOnlineEndpointOperations

    def __init__(self, client):
        self._store: LocalStore = client._store

    def begin_create_or_update(self, endpoint: ManagedOnlineEndpoint, *, local: bool = False):
        """Create the endpoint (with two keys), or update its traffic, description and tags."""
        if local:
            raise not_available(
                "online_endpoints.begin_create_or_update(local=True)",
                "azure-ai-ml's local endpoints need Docker; the local workspace serves without it: leave local= out",
            )
        name = endpoint.name or ""
        if not ENDPOINT_NAME.match(name):
            raise invalid(
                f"Endpoint name {name!r} is not valid: 3 to 32 letters, digits and '-', starting with a "
                "letter (as on Azure).",
                ErrorTarget.ONLINE_ENDPOINT,
            )
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

    def get(self, name: str, *, local: bool = False) -> ManagedOnlineEndpoint:
        record = _endpoint_or_raise(self._store, name)
        routed = _routed(record)
        port = _port(self._store, name, routed) if routed else None
        return ManagedOnlineEndpoint(
            name=name,
            auth_mode=record["auth_mode"],
            description=record.get("description"),
            tags=record.get("tags") or {},
            traffic=dict(record.get("traffic") or {}),
            scoring_uri=f"http://127.0.0.1:{port}/score" if port else None,
            openapi_uri=f"http://127.0.0.1:{port}/swagger.json" if port else None,
            provisioning_state="Succeeded",
            location="local",
        )

    def list(self, *, local: bool = False) -> list[ManagedOnlineEndpoint]:
        return [self.get(name) for name in endpoint_records.names(self._store)]

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
        text, as azure-ai-ml returns it.  An answer other than 200 raises ``HttpResponseError`` with it."""
        # as azure-ai-ml 1.35 does: the payload is request_file's JSON, read first (so no request_file is its
        # TypeError, and input_data, a batch endpoint's argument, is not sent)
        with open(request_file, "rb") as f:
            body = json.dumps(json.loads(f.read())).encode()
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

    def begin_delete(self, name=None, *, local: bool = False):
        """Delete the endpoint and every deployment of it: their servers and everything they started stop."""
        record = _endpoint_or_raise(self._store, name)
        for deployment in list(record["deployments"]):
            _remove_deployment(self._store, name, deployment)
        endpoint_records.delete(self._store, name)
        return done(None)


def _remove_service(store: LocalStore, service: str) -> None:
    serving.stop(store, service, grace=5)
    service_records.delete(store, service)
    serving.remove_folder(store, service)


def _remove_deployment(store: LocalStore, endpoint: str, deployment: str) -> None:
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


class OnlineDeploymentOperations(Offline):
    """Deployments: ``begin_create_or_update``, ``get``, ``list``, ``get_logs``, ``begin_delete``."""

    _azure_class = AzureOnlineDeploymentOperations

    def __init__(self, client):
        self._store: LocalStore = client._store

    def begin_create_or_update(
        self,
        deployment: ManagedOnlineDeployment,
        *,
        local: bool = False,
        skip_script_validation: bool = False,
        **kwargs,
    ):
        """Start the deployment's inference server (replacing a running one of the name) and wait until it
        answers; a server that fails to start raises with the end of its log.  New deployments take no traffic
        until the endpoint's ``traffic`` gives them some, as on Azure."""
        if local:
            raise not_available(
                "online_deployments.begin_create_or_update(local=True)",
                "azure-ai-ml's local endpoints need Docker; leave local= out",
            )
        store = self._store
        endpoint, name = deployment.endpoint_name, deployment.name
        label = f"Deployment {name!r} of endpoint {endpoint!r}"
        _endpoint_or_raise(store, endpoint)
        if not name or not ENDPOINT_NAME.match(name):
            raise invalid(
                f"{label}: the name must be 3 to 32 letters, digits and '-', starting with a letter.",
                ErrorTarget.ONLINE_DEPLOYMENT,
            )
        model = self._model(label, deployment.model)
        code = deployment.code_configuration
        if code is None or not code.scoring_script:
            raise not_available(
                f"{label}: no code_configuration",
                "no-code (MLflow) deployments are Azure's; give CodeConfiguration(code=..., scoring_script=...)",
            )
        env = self._environment(label, deployment.environment, deployment.environment_variables)
        if (deployment.instance_count or 1) > 1:
            warn_ignored(label, "instance_count", "one server on this machine serves it")
        python = _python(label, env)
        key = endpoint_records.service_name(endpoint, name)
        with store.name_lock("service", key):  # one change of this deployment at a time, its switch included
            old = _endpoint_or_raise(store, endpoint)["deployments"].get(name)
            old_service = _service(_endpoint_or_raise(store, endpoint), name) if old else None
            # an update starts its server beside the running one, and switches once it answers (a rolling update)
            service = key if old_service is None else f"{key}.{uuid.uuid4().hex[:8]}"
            if old_service is None and service_records.get(store, service) is not None:
                _remove_service(store, service)  # left by a deployment whose endpoint record lost it
            service_records.claim(
                store,
                service,
                "ManagedOnline",
                str(store.service_dir(service)),
                True,
                [f"{model['name']}:{model['version']}"],
            )
            try:
                paths = serving.lay_out(
                    store, service, Path(str(code.code or ".")).resolve(), code.scoring_script, [model]
                )
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
                    serving.write_spec(Path(paths["folder"]), spec, _endpoint_or_raise(store, endpoint)["keys"])
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
                "code": str(Path(str(code.code or ".")).resolve()),
                "scoring_script": code.scoring_script,
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
                    raise HttpResponseError(
                        message=f"{label}: the update failed to start, so the deployment keeps serving as it was. "
                        f"The end of the new server's log:\n{log}"
                    ) from None
            try:
                endpoint_records.update(store, endpoint, lambda record: record["deployments"].__setitem__(name, entry))
            except endpoint_records.EndpointNotFound:  # deleted while this deployment started: its server goes too
                _remove_service(store, service)
                raise not_found("online endpoint", endpoint, store, endpoint_records.names(store)) from None
            if old_service is not None:
                _remove_service(store, old_service)  # switched: requests now reach the new server
        if old_service is None:
            self._wait(service, label)
        return done(self.get(name, endpoint))

    def _model(self, label: str, model) -> dict:
        if isinstance(model, str) and model.startswith("azureml:") and not model.startswith("azureml://"):
            ref = model.removeprefix("azureml:")
            name, version = ref.split("@", 1) if "@" in ref else (ref.rsplit(":", 1) + ["latest"])[:2]
        elif isinstance(model, Model) and model.name and model.version:
            name, version = model.name, model.version
        else:
            raise not_available(
                f"{label}: model={model!r}",
                "deploy a registered model: ml_client.models."
                "create_or_update(Model(...)) first, then pass it or 'azureml:name:version'",
            )
        try:
            return model_records.get(self._store, name, None if version == "latest" else int(version))
        except (model_records.ModelRecordNotFound, ValueError):
            raise invalid(
                f"{label}: model {name}:{version} is not registered in the local workspace (it has: "
                f"{', '.join(model_records.names(self._store)) or 'none'}).",
                ErrorTarget.ONLINE_DEPLOYMENT,
            ) from None

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

    def get(self, name: str, endpoint_name: str, *, local: bool = False) -> ManagedOnlineDeployment:
        record = _endpoint_or_raise(self._store, endpoint_name)
        if name not in record["deployments"]:
            raise not_found(
                f"deployment of endpoint {endpoint_name!r}:", name, self._store, list(record["deployments"])
            )
        info = record["deployments"][name]
        row = service_records.get(self._store, _service(record, name)) or {}
        state = {"Healthy": "Succeeded", "Transitioning": "Updating"}.get(row.get("state"), "Failed")
        return ManagedOnlineDeployment(
            name=name,
            endpoint_name=endpoint_name,
            model=f"azureml:{info['model']}",
            instance_type=info["instance_type"],
            instance_count=info["instance_count"],
            provisioning_state=state,
        )

    def list(self, endpoint_name: str, *, local: bool = False) -> list[ManagedOnlineDeployment]:
        return [self.get(n, endpoint_name) for n in _endpoint_or_raise(self._store, endpoint_name)["deployments"]]

    def get_logs(
        self, name: str, endpoint_name: str, lines: int | None = None, *, container_type=None, local: bool = False
    ) -> str:
        """The server's log: the inference server's start-up, init() output, one line per request."""
        self.get(name, endpoint_name)
        record = _endpoint_or_raise(self._store, endpoint_name)
        return _log_tail(self._store, _service(record, name), lines or 5000)

    def begin_delete(self, name: str, endpoint_name: str, *, local: bool = False):
        self.get(name, endpoint_name)
        _remove_deployment(self._store, endpoint_name, name)
        return done(None)


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
