"""Web services of the local workspace (twins of ``Model.deploy`` and ``azureml.core.Webservice``).

``Model.deploy(ws, name, [model], inference_config, deployment_config)`` starts a
real HTTP server on 127.0.0.1 (``runtime/azureml_local_serving.py``) that runs the
scoring script through Azure ML's inference server package, with the model
files laid out as Azure lays them out (``AZUREML_MODEL_DIR``).  The service
keeps running in the background, as on Azure, until ``service.delete()``;
deploying again under the same name with ``overwrite=True`` replaces it.

``AciWebservice.deploy_configuration(auth_enabled=True)`` turns key
authentication on (``get_keys()``, ``regen_key()``, 401 without a key);
``LocalWebservice.deploy_configuration(port=...)`` picks the port.  Other
settings are recorded (CPU and memory, shown by ``serialize()``) or warned about
(SSL, DNS labels, App Insights, networks): there is nothing to size or certify
on one machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from azureml.exceptions import WebserviceException

from helpers.aml.local._common import stop_process_group, warn_ignored
from helpers.aml.local.store import LocalStore, read_json, write_json

SERVER = Path(__file__).resolve().parent / "runtime" / "azureml_local_serving.py"
NAME_RULE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
STATES = ("Transitioning", "Healthy", "Unhealthy", "Failed")
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

    existing = _row(store, name)
    if existing is not None:
        if not overwrite:
            raise WebserviceException(
                f"A service named {name!r} already exists: pass overwrite=True to replace it, or delete it first."
            )
        Webservice(workspace, name).delete()

    python = _service_python(inference_config.environment, show_output)

    folder = store.root / "services" / name
    shutil.rmtree(folder, ignore_errors=True)
    app_root = folder / "app"
    source = Path(inference_config.source_directory or ".").resolve()
    from helpers.aml.local.executor import _snapshot_filter

    shutil.copytree(source, app_root, ignore=_snapshot_filter(source))
    entry_script = (app_root / inference_config.entry_script).resolve()
    if not entry_script.is_file():
        raise WebserviceException(f"Entry script {inference_config.entry_script!r} not found in {source}.")
    model_root = folder / "azureml-models"
    for model in models:
        model.download(target_dir=str(model_root / model.name / str(model.version)), exist_ok=True)
    model_dir = model_root / models[0].name / str(models[0].version) if len(models) == 1 else model_root

    port = getattr(deployment_config, "port", None)
    keys = [getattr(deployment_config, "primary_key", None) or secrets.token_urlsafe(24),
            getattr(deployment_config, "secondary_key", None) or secrets.token_urlsafe(24)] if auth else []  # fmt: skip
    write_json(folder / "keys.json", {"keys": keys})
    env = inference_config.environment
    spec = {
        "name": name,
        "port": port,
        "entry_script": str(entry_script),
        "app_root": str(app_root),
        "model_dir": str(model_dir),
        "environment_variables": dict(getattr(env, "environment_variables", None) or {}),
        "workers": int((getattr(env, "environment_variables", None) or {}).get("WORKER_COUNT", 1)),
        # recorded, not enforced: one machine has nothing to size
        "cpu_cores": getattr(deployment_config, "cpu_cores", None),
        "memory_gb": getattr(deployment_config, "memory_gb", None),
        "tags": getattr(deployment_config, "tags", None) or {},
        "description": getattr(deployment_config, "description", None),
    }
    write_json(folder / "service.json", spec)
    log = open(folder / "service.log", "ab")
    proc = subprocess.Popen(
        [python, str(SERVER), str(folder)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=str(folder),
    )  # fmt: skip
    log.close()
    compute_type = "ACI" if kind.startswith("Aci") else "Local"
    with store.write_lock(), store.db() as db:
        db.execute(
            "INSERT INTO services (name, compute_type, state, pid, folder, auth_enabled, models, created, error) "
            "VALUES (?, ?, 'Transitioning', ?, ?, ?, ?, ?, '')",
            (name, compute_type, proc.pid, str(folder), int(auth), json.dumps([m.id for m in models]), time.time()),
        )
    service = Webservice(workspace, name)
    if show_output:
        service.wait_for_deployment(show_output=True)
    return service


def _service_python(env, show_output: bool) -> str:
    """This interpreter when it has the inference environment's packages, else a built environment's
    (the same builder and cache as runs: built once, reused by runs and services alike)."""
    from helpers.aml.local import envs
    from helpers.aml.local.executor import _unsatisfied
    from helpers.aml.local.submit import _environment_spec

    if env is None:
        return sys.executable
    spec = _environment_spec(env)
    missing = [p for p in (_unsatisfied(line) for line in spec["pip"]) if p]
    if not missing:
        return sys.executable
    if spec["user_managed"]:
        raise WebserviceException(
            f"The inference environment is user-managed, and this interpreter ({sys.executable}) lacks: "
            + "; ".join(missing)
            + ". Install them, or let Azure ML manage the environment."
        )
    # The server needs Azure's inference server in the environment (azureml-defaults brings it on Azure).
    spec["pip"] = [*spec["pip"], "azureml-inference-server-http"]
    lines: list[str] = []
    say = print if show_output else lines.append
    try:
        return envs.ensure(spec, say)
    except envs.EnvironmentBuildError as exc:
        raise WebserviceException(f"The inference environment could not be built. {exc}") from None


def _row(store: LocalStore, name: str):
    with store.db() as db:
        return db.execute("SELECT * FROM services WHERE name = ?", (name,)).fetchone()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Webservice:
    """A deployed local service (twin of ``azureml.core.Webservice`` / ``AciWebservice``)."""

    def __init__(self, workspace, name):
        self.workspace = workspace
        self.name = name
        self._store: LocalStore = workspace._store
        row = _row(self._store, name)
        if row is None:
            raise WebserviceException(
                f"WebserviceNotFound: no service named {name!r} in the local workspace. "
                f"Services: {', '.join(Webservice.list_names(workspace)) or 'none'}."
            )
        self._folder = Path(row["folder"])
        self.compute_type = row["compute_type"]
        self.auth_enabled = bool(row["auth_enabled"])
        self.created_time = row["created"]

    # --- state -------------------------------------------------------------------------------
    @property
    def _endpoint(self) -> dict:
        return read_json(self._folder / "endpoint.json") or {}

    @property
    def _pid(self) -> int | None:
        row = _row(self._store, self.name)
        return row["pid"] if row else None

    @property
    def state(self) -> str:
        row = _row(self._store, self.name)
        if row is None:
            return "Deleted"
        if row["state"] in ("Healthy", "Transitioning") and not _alive(row["pid"]):
            return "Failed" if row["state"] == "Transitioning" else "Unhealthy"
        return row["state"]

    @property
    def error(self) -> str | None:
        row = _row(self._store, self.name)
        return (row["error"] or None) if row else None

    @property
    def scoring_uri(self) -> str | None:
        port = self._endpoint.get("port")
        return f"http://127.0.0.1:{port}/score" if port else None

    @property
    def swagger_uri(self) -> str | None:
        port = self._endpoint.get("port")
        return f"http://127.0.0.1:{port}/swagger.json" if port else None

    @property
    def models(self) -> list:
        from helpers.aml.local.models import Model

        row = _row(self._store, self.name)
        ids = json.loads(row["models"]) if row else []
        return [Model(self.workspace, id=model_id) for model_id in ids]

    def _set_state(self, state: str, error: str = "") -> None:
        with self._store.write_lock(), self._store.db() as db:
            db.execute("UPDATE services SET state = ?, error = ? WHERE name = ?", (state, error, self.name))

    def wait_for_deployment(self, show_output=False, timeout_sec=None):
        """Wait until the server answers (init() has run) or has failed; a failure raises with its log."""
        deadline = time.time() + (timeout_sec or 600)
        if show_output:
            print(f"Local service {self.name!r}: starting Azure ML's inference server", end="", flush=True)
        while True:
            row = _row(self._store, self.name)
            if row["state"] != "Transitioning":
                break
            if not _alive(row["pid"]):
                self._set_state("Failed", self._log_tail(40))
                break
            if self.scoring_uri and self._healthy():
                self._set_state("Healthy")
                break
            if time.time() > deadline:
                self._set_state("Failed", f"The service did not answer within {timeout_sec} s.")
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
            with urllib.request.urlopen(self.scoring_uri.removesuffix("score"), timeout=2) as resp:
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
            with urllib.request.urlopen(request, timeout=300) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            content = exc.read().decode(errors="replace")
            raise WebserviceException(
                f"Received bad response from service: status {exc.code}, content {content}"
            ) from None

    # --- lifecycle ----------------------------------------------------------------------------
    def delete(self):
        """Stop the server (its whole process group) and forget the service."""
        pid = self._pid
        if pid is not None and _alive(pid):
            stop_process_group(pid, grace=10)
        with self._store.write_lock(), self._store.db() as db:
            db.execute("DELETE FROM services WHERE name = ?", (self.name,))
        shutil.rmtree(self._folder, ignore_errors=True)

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
        services = [Webservice(workspace, n) for n in Webservice.list_names(workspace)]
        if compute_type:
            services = [s for s in services if s.compute_type.lower() == compute_type.lower()]
        if model_name:
            services = [s for s in services if any(m.name == model_name for m in s.models)]
        if model_id:
            services = [s for s in services if any(m.id == model_id for m in s.models)]
        return services

    @staticmethod
    def list_names(workspace) -> list[str]:
        with workspace._store.db() as db:
            return [r["name"] for r in db.execute("SELECT name FROM services ORDER BY name")]

    def __repr__(self):
        return f"Webservice(name={self.name}, compute_type={self.compute_type}, state={self.state}, " \
            f"scoring_uri={self.scoring_uri})"  # fmt: skip


def stop_all(store: LocalStore) -> int:
    """Stop every service of a workspace folder (test clean-up); returns how many were running."""
    from helpers.aml.local.workspace import Workspace

    ws = Workspace._for_store(store)
    names = Webservice.list_names(ws)
    for name in names:
        Webservice(ws, name).delete()
    return len(names)
