"""Experiments and runs of the local workspace (twins of ``azureml.core.Experiment`` / ``Run``).

``Experiment.submit(ScriptRunConfig)`` records a run in the MLflow store, then
starts a supervisor process (``helpers.aml.local.executor``) that takes the run
through the states Azure ML shows (Queued, Preparing, Running, Finalizing, then
Completed, Failed or Canceled) and really executes the script.  The ``Run``
object here reads that history; any process can create one for a run id.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from azureml.exceptions import ActivityFailedException, UserErrorException

from helpers.aml.local._common import warn_ignored
from helpers.aml.local.store import LocalStore, read_json, write_json

TERMINAL = ("Completed", "Failed", "Canceled")
MLFLOW_STATUS = {
    "NotStarted": "SCHEDULED",
    "Queued": "SCHEDULED",
    "Preparing": "SCHEDULED",
    "Running": "RUNNING",
    "Finalizing": "RUNNING",
    "Completed": "FINISHED",
    "Failed": "FAILED",
    "Canceled": "KILLED",
}
DRIVER_LOG = "user_logs/std_log.txt"
#: Each worker's output in a multi-worker run, named as on Azure ML.
WORKER_LOG = "user_logs/std_log_process_{index}.txt"
STATUS_TAG = "azureml.status"
KIND_PREFIX = "azureml.metrickind."
STRING_PREFIX = "azureml.metricstr."
PROPERTY_PREFIX = "azureml.property."


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Experiment:
    """A named group of runs in the local workspace (twin of ``azureml.core.Experiment``)."""

    def __init__(
        self,
        workspace,
        name,
        _skip_name_validation=False,
        _id=None,
        _archived_time=None,
        _create_in_cloud=True,
        _experiment_dto=None,
        **kwargs,
    ):
        if not name or not str(name).replace("-", "").replace("_", "").isalnum():
            raise UserErrorException(
                f"Experiment name {name!r} is not valid: use letters, digits, '-' and '_' (as on Azure)."
            )
        self.workspace = workspace
        self.name = name

    @property
    def _store(self) -> LocalStore:
        return self.workspace._store

    @property
    def id(self) -> str:
        return self._store.experiment_id(self.name)

    def submit(self, config, tags=None, **kwargs):
        """Submit a ``ScriptRunConfig``: returns the new run at once, running in the background."""
        from azureml.core import ScriptRunConfig

        if isinstance(config, ScriptRunConfig):
            from helpers.aml.local.submit import submit_script_run

            return submit_script_run(self, config, tags or {}, **kwargs)
        if type(config).__name__ == "HyperDriveConfig":
            from helpers.aml.local.hyperdrive import submit_hyperdrive

            return submit_hyperdrive(self, config, tags or {})
        raise UserErrorException(
            f"The local workspace runs ScriptRunConfig and HyperDriveConfig submissions; got "
            f"{type(config).__name__}. Estimators are gone from azureml-core: wrap the script in a ScriptRunConfig."
        )

    def get_runs(self, type=None, tags=None, properties=None, include_children=False) -> Iterator[Run]:
        """The experiment's runs, newest first (children only with ``include_children``)."""
        exp_id = self._store.experiment_id(self.name, create=False)
        if exp_id is None:
            return
        for info in self._store.mlflow.search_runs([exp_id], order_by=["attributes.start_time DESC"]):
            run_tags = info.data.tags
            if "azureml.run_id" not in run_tags:
                continue
            if not include_children and run_tags.get("azureml.parent_run_id"):
                continue
            if tags and any(run_tags.get(k) != v for k, v in _as_dict(tags).items()):
                continue
            if properties and any(run_tags.get(PROPERTY_PREFIX + k) != v for k, v in _as_dict(properties).items()):
                continue
            if type is not None:
                warn_ignored("Experiment.get_runs", "type")
            yield load_run(self, run_tags["azureml.run_id"])

    def __repr__(self):
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"


def load_run(experiment: Experiment, run_id: str) -> Run:
    """The run with this id, as the class its type calls for (``HyperDriveRun`` for a sweep)."""
    run = Run(experiment, run_id)
    if run.type == "hyperdrive":
        from helpers.aml.local.hyperdrive import HyperDriveRun

        return HyperDriveRun(experiment, run_id)
    return run


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    return {k: None for k in value}


class Run:
    """A run in the local workspace's history (twin of ``azureml.core.Run``)."""

    def __init__(self, experiment, run_id, outputs=None, **kwargs):
        self.experiment = experiment
        self._run_id = run_id
        self._dir = experiment._store.run_dir(run_id)
        spec = read_json(self._dir / "run.json")
        if spec is None:
            raise UserErrorException(
                f"No run {run_id!r} in experiment {experiment.name!r} of the local workspace "
                f"({experiment._store.root})."
            )
        self._spec = spec

    # --- identity ----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._run_id

    @property
    def number(self) -> int:
        return self._spec.get("number", 0)

    @property
    def type(self) -> str:
        return self._spec.get("type", "azureml.scriptrun")

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def parent(self):
        parent = self._spec.get("parent_run_id")
        return load_run(self.experiment, parent) if parent else None

    @property
    def properties(self) -> dict:
        return self.get_properties()

    @property
    def tags(self) -> dict:
        return self.get_tags()

    @property
    def _store(self) -> LocalStore:
        return self.experiment._store

    @property
    def _mlflow_id(self) -> str:
        return self._spec["mlflow_run_id"]

    @property
    def _artifacts(self) -> Path:
        return Path(self._spec["artifact_dir"])

    @property
    def _log_name(self) -> str:
        return self._spec.get("log", DRIVER_LOG)

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """As azureml-core: inside a locally submitted script the local run, else an offline run."""
        from azureml.core import Run as AzureRun

        return AzureRun.get_context(allow_offline, used_for_context_manager, **kwargs)

    def _mlflow_run(self):
        return self._store.mlflow.get_run(self._mlflow_id)

    # --- status ----------------------------------------------------------------------------
    def get_status(self) -> str:
        status = self._mlflow_run().data.tags.get(STATUS_TAG, "NotStarted")
        if status not in TERMINAL and not self._supervisor_alive():
            time.sleep(0.5)  # it may have just finished: read once more before declaring it lost
            status = self._mlflow_run().data.tags.get(STATUS_TAG, "NotStarted")
            if status not in TERMINAL and not self._supervisor_alive():
                from helpers.aml.local.executor import set_status

                set_status(
                    self._store,
                    self._spec,
                    "Failed",
                    error="The local run supervisor stopped unexpectedly (the machine restarted or it was "
                    "killed). Submit the run again.",
                )
                status = "Failed"
        return status

    def _supervisor_alive(self) -> bool:
        import psutil

        pid = (read_json(self._dir / "supervisor.json") or {}).get("pid")
        if pid is None:
            return time.time() - self._spec.get("created", 0) < 60  # not started yet
        try:
            proc = psutil.Process(pid)
            return proc.status() != psutil.STATUS_ZOMBIE and "helpers.aml.local." in " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def get_details(self) -> dict:
        info = self._mlflow_run()
        tags = info.data.tags
        details = {
            "runId": self.id,
            "target": self._spec.get("target", "local"),
            "status": self.get_status(),
            "startTimeUtc": tags.get("azureml.start_time"),
            "endTimeUtc": tags.get("azureml.end_time"),
            "services": {},
            "properties": self.get_properties(),
            "inputDatasets": self._spec.get("input_datasets", []),
            "outputDatasets": [],
            "runDefinition": {
                "script": self._spec.get("script"),
                "arguments": self._spec.get("display_arguments", []),
                "target": self._spec.get("target", "local"),
                "environment": self._spec.get("environment", {}),
                "nodeCount": self._spec.get("workers", 1),
            },
            "logFiles": {name: str(self._artifacts / name) for name in self._log_names},
            "submittedBy": self._spec.get("submitted_by"),
        }
        if tags.get("azureml.cancel_reason"):
            details["cancelReason"] = tags["azureml.cancel_reason"]
        error = tags.get("azureml.error")
        if error:
            details["error"] = {"error": {"code": "UserError", "message": error}}
        return details

    @property
    def _log_names(self) -> list[str]:
        """The run's log, then each worker's in a multi-worker run."""
        workers = self._spec.get("workers", 1)
        return [self._log_name] + ([WORKER_LOG.format(index=i) for i in range(workers)] if workers > 1 else [])

    def get_details_with_logs(self) -> dict:
        details = self.get_details()
        details["logFiles"] = {name: self._read_log(name) for name in self._log_names}
        return details

    def _read_log(self, name: str | None = None) -> str:
        try:
            return (self._artifacts / (name or self._log_name)).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True):
        """Wait for the run to end; with ``show_output`` stream its log as it is written."""
        if show_output:
            print(f"RunId: {self.id}")
            print(f"Web View: {self.get_portal_url()}\n")
            print(f"Streaming {self._log_name}\n{'=' * (10 + len(self._log_name))}\n")
        offset = 0
        while True:
            status = self.get_status()
            if show_output:
                offset = self._print_log_from(offset)
            if status in TERMINAL:
                break
            time.sleep(0.5)
        if show_output:
            self._print_log_from(offset)
            print(f"\nExecution Summary\n=================\nRunId: {self.id}\nWeb View: {self.get_portal_url()}\n")
        details = self.get_details()
        if status == "Failed" and raise_on_error:
            error = details.get("error", {}).get("error", {}).get("message", "unknown error")
            raise ActivityFailedException(
                error_details=json.dumps(
                    {"error": {"code": "UserError", "message": error, "run_id": self.id}}, indent=4
                )
            )
        return details

    def _print_log_from(self, offset: int) -> int:
        try:
            with open(self._artifacts / self._log_name, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            return offset
        if b"\n" in chunk:
            chunk = chunk[: chunk.rindex(b"\n") + 1]  # whole lines only
            print(chunk.decode(errors="replace"), end="", flush=True)
            return offset + len(chunk)
        return offset

    def cancel(self):
        """Ask the run to stop; its supervisor ends the whole process tree and marks it Canceled."""
        if self.get_status() in TERMINAL:
            return
        (self._dir / "cancel_requested").write_text(f"canceled by the user at {utc_now()}")
        for child in self.get_children():
            child.cancel()

    def get_portal_url(self) -> str:
        return f"local run folder {self._dir} (browse all runs with `make mlflow-ui`)"

    # --- children (used by HyperDrive and distributed runs) -------------------------------
    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None, _rehydrate_runs=True):
        """The runs this one started (HyperDrive's trials), newest first."""
        exp_id = self._store.experiment_id(self.experiment.name, create=False)
        found = self._store.mlflow.search_runs(
            [exp_id],
            filter_string=f"tags.`azureml.parent_run_id` = '{self.id}'",
            order_by=["attributes.start_time DESC"],
        )
        for info in found:
            run = load_run(self.experiment, info.data.tags["azureml.run_id"])
            if tags and any(run.get_tags().get(k) != v for k, v in _as_dict(tags).items()):
                continue
            if status is None or run.get_status() == status:
                yield run
            if recursive:
                yield from run.get_children(recursive=True, tags=tags, status=status)

    # --- metrics ---------------------------------------------------------------------------
    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False) -> dict:
        """Metrics as Azure returns them: logged once a value, logged repeatedly a list."""
        info = self._mlflow_run()
        client = self._store.mlflow
        metrics: dict = {}
        for tag, kind in info.data.tags.items():
            if not tag.startswith(KIND_PREFIX):
                continue
            key = tag[len(KIND_PREFIX) :]
            if name is not None and key != name:
                continue
            if kind == "string":
                values = json.loads(info.data.tags.get(STRING_PREFIX + key, "[]"))
                metrics[key] = values[0] if len(values) == 1 else values
            elif kind == "image":
                metrics[key] = info.data.tags.get(STRING_PREFIX + key)
            elif kind in ("row", "table"):
                columns = json.loads(info.data.tags.get(STRING_PREFIX + key, "[]"))
                table = {c: self._history(client, f"{key}/{c}") for c in columns}
                if kind == "row" and all(len(v) == 1 for v in table.values()):
                    table = {c: v[0] for c, v in table.items()}
                metrics[key] = table
            else:
                values = self._history(client, key)
                metrics[key] = values if kind == "list" or len(values) != 1 else values[0]
        return metrics

    def _history(self, client, key: str) -> list:
        history = sorted(client.get_metric_history(self._mlflow_id, key), key=lambda m: (m.step, m.timestamp))
        return [_number(m.value) for m in history]

    # --- tags and properties ----------------------------------------------------------------
    def get_tags(self) -> dict:
        return {k: v for k, v in self._mlflow_run().data.tags.items() if not k.startswith(("azureml.", "mlflow."))}

    def get_properties(self) -> dict:
        tags = self._mlflow_run().data.tags
        return {k[len(PROPERTY_PREFIX) :]: v for k, v in tags.items() if k.startswith(PROPERTY_PREFIX)}

    def tag(self, key, value=None):
        with self._store.write_lock():
            self._store.mlflow.set_tag(self._mlflow_id, key, "" if value is None else str(value))

    def set_tags(self, tags):
        for key, value in _as_dict(tags).items():
            self.tag(key, value)

    def add_properties(self, properties):
        current = self.get_properties()
        with self._store.write_lock():
            for key, value in properties.items():
                if key in current and current[key] != str(value):
                    raise UserErrorException(f"Run property {key!r} is already set; properties are immutable.")
                self._store.mlflow.set_tag(self._mlflow_id, PROPERTY_PREFIX + key, str(value))

    # --- files -----------------------------------------------------------------------------------
    def get_file_names(self) -> list[str]:
        root = self._artifacts
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        source = self._artifacts / name
        if not source.is_file():
            raise UserErrorException(
                f"Run {self.id} has no file {name!r}. Its files: {', '.join(self.get_file_names()) or 'none'}."
            )
        target = Path(output_file_path) if output_file_path else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def download_files(
        self,
        prefix=None,
        output_directory=None,
        output_paths=None,
        batch_size=100,
        append_prefix=True,
        timeout_seconds=None,
    ):
        names = [n for n in self.get_file_names() if prefix is None or n.startswith(prefix)]
        out = Path(output_directory or ".")
        if output_paths is not None and len(output_paths) != len(names):
            raise UserErrorException("output_paths must name one path for each downloaded file.")
        for i, name in enumerate(names):
            if output_paths is not None:
                target = Path(output_paths[i])
            elif append_prefix or prefix is None:
                target = out / name
            else:
                target = out / Path(name).relative_to(prefix)
            self.download_file(name, target)

    # --- models ---------------------------------------------------------------------------------
    def register_model(
        self,
        model_name,
        model_path=None,
        tags=None,
        properties=None,
        model_framework=None,
        model_framework_version=None,
        description=None,
        datasets=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
        **kwargs,
    ):
        from helpers.aml.local.models import register_from_run

        for arg in ("datasets", "sample_input_dataset", "sample_output_dataset", "resource_configuration"):
            if locals()[arg] is not None:
                warn_ignored("Run.register_model", arg)
        return register_from_run(
            self,
            model_name,
            model_path,
            tags,
            properties,
            description,
            model_framework,
            model_framework_version,
        )

    # --- display ----------------------------------------------------------------------------------
    def __repr__(self):
        return (
            f"Run(Experiment: {self.experiment.name},\nId: {self.id},\nType: {self.type},\nStatus: {self.get_status()})"
        )

    def _repr_html_(self):
        return (
            "<table><tr><th>Experiment</th><th>Id</th><th>Type</th><th>Status</th><th>Run folder</th></tr>"
            f"<tr><td>{self.experiment.name}</td><td>{self.id}</td><td>{self.type}</td>"
            f"<td>{self.get_status()}</td><td>{self._dir}</td></tr></table>"
        )


def _number(value: float):
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


# --- submitting ---------------------------------------------------------------------------------


def new_run_id(experiment_name: str) -> str:
    """Azure's shape: ``<experiment>_<unix time>_<8 hex>``."""
    return f"{experiment_name}_{int(time.time())}_{uuid.uuid4().hex[:8]}"


def create_run_record(experiment: Experiment, spec: dict, tags: dict) -> Run:
    """Create the MLflow run and the run folder for ``spec``; returns the local Run."""
    store = experiment._store
    client = store.mlflow
    exp_id = store.experiment_id(experiment.name)
    run_id = spec["run_id"]
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(parents=True)
    with store.write_lock():
        number = sum(1 for _ in (store.root / "runs").iterdir())
        mlrun = client.create_run(
            exp_id,
            run_name=run_id,
            tags={
                "azureml.run_id": run_id,
                STATUS_TAG: "NotStarted",
                "azureml.parent_run_id": spec.get("parent_run_id") or "",
                "mlflow.source.name": spec.get("script") or "",
                "mlflow.user": spec.get("submitted_by") or "",
                **{k: str(v) for k, v in tags.items()},
            },
        )
        client.update_run(mlrun.info.run_id, status="SCHEDULED")
    artifact_dir = Path(mlrun.info.artifact_uri.removeprefix("file://"))
    (artifact_dir / "user_logs").mkdir(parents=True, exist_ok=True)
    spec.update(
        mlflow_run_id=mlrun.info.run_id,
        artifact_dir=str(artifact_dir),
        experiment=experiment.name,
        root=str(store.root),
        number=number,
        created=time.time(),
        submitted_by=spec.get("submitted_by") or _user(),
    )
    write_json(run_dir / "run.json", spec)
    return Run(experiment, run_id)


def start_supervisor(run: Run, module: str = "helpers.aml.local.executor") -> None:
    """Start the run's supervisor in its own session, so the run outlives a restarted kernel."""
    log = open(run._dir / "supervisor.log", "ab")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(run._dir)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        cwd=str(run._store.root),
    )
    log.close()
    write_json(run._dir / "supervisor.json", {"pid": proc.pid})


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in some containers)
        return "local"
