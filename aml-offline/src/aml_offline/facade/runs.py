"""Experiments and runs of the local workspace (twins of ``azureml.core.Experiment`` / ``Run``,
and of ``azureml.train.hyperdrive.HyperDriveRun``).

``Experiment.submit(ScriptRunConfig)`` turns the configuration into a plain spec,
records the run and starts its supervisor
(:mod:`aml_offline.execution.supervisor`), which takes it through the states
Azure ML shows and really executes the script; ``submit(HyperDriveConfig)`` does
the same with the sweep supervisor.  The ``Run`` objects here read the records;
any process can create one for a run id.
"""

from __future__ import annotations

import getpass
import json
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from azureml._base_sdk_common.common import check_valid_resource_name
from azureml._model_management._util import model_name_validation
from azureml.core import Experiment as AzureExperiment
from azureml.core import Run as AzureRun
from azureml.core import ScriptRunConfig
from azureml.exceptions import ActivityFailedException, SnapshotException, UserErrorException
from azureml.train.hyperdrive import HyperDriveConfig
from azureml.train.hyperdrive import HyperDriveRun as AzureHyperDriveRun

from aml_offline.execution import snapshot, sweep_rules, sweeper, watch
from aml_offline.execution.supervisor import start_supervisor
from aml_offline.execution.sweeper import SYSTEM_TAG
from aml_offline.facade._base import Offline, not_available, warn_ignored
from aml_offline.facade.datasets import DatasetConsumptionConfig, FileDataset
from aml_offline.facade.environments import environment_spec
from aml_offline.facade.models import Model
from aml_offline.records import compute as compute_records
from aml_offline.records import filters
from aml_offline.records import models as model_records
from aml_offline.records import runs as run_records
from aml_offline.records.runs import DRIVER_LOG, WORKER_LOG
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore

DEFAULT_DURATION = 2592000  # ScriptRunConfig.MAX_DURATION_SECONDS_DEFAULT
#: What a script's ``Run.get_context()`` returns inside a local run (put first on its PYTHONPATH).
RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in some containers)
        return "local"


class Experiment(Offline):
    """A named group of runs in the local workspace (twin of ``azureml.core.Experiment``)."""

    _azure_class = AzureExperiment

    def __init__(self, workspace, name, _skip_name_validation=False, _id=None, _archived_time=None,
                 _create_in_cloud=True, _experiment_dto=None, **kwargs):  # fmt: skip
        if not _skip_name_validation:  # azureml-core's own check, with its words (the name becomes a folder here)
            check_valid_resource_name(name, "Experiment")
        self.workspace = workspace
        self.name = name

    @property
    def _store(self) -> LocalStore:
        return self.workspace._store

    @property
    def id(self) -> str:
        return self._store.experiment_id(self.name)

    def submit(self, config, tags=None, **kwargs):
        """Submit a ``ScriptRunConfig`` or ``HyperDriveConfig``: returns the run at once; it runs in the background."""
        if isinstance(config, ScriptRunConfig):
            spec = script_run_spec(self, config)
            spec["run_id"] = run_records.new_run_id(self.name)
            spec["parent_run_id"] = None
            run_records.create(self._store, self.name, spec, tags or {}, _user())
            start_supervisor(self._store, spec)
            return Run(self, spec["run_id"])
        if isinstance(config, HyperDriveConfig):
            spec = hyperdrive_spec(self, config)
            # As Azure tags a sweep: azureml-core's HyperDriveRun and run views read the primary metric from here.
            system = {SYSTEM_TAG + "primary_metric_config": json.dumps(config._primary_metric_config)}
            run_records.create(self._store, self.name, spec, {**(tags or {}), **system}, _user())
            start_supervisor(self._store, spec, module="aml_offline.execution.sweeper")
            return HyperDriveRun(self, spec["run_id"], hyperdrive_config=config)
        raise UserErrorException(
            f"The local workspace runs ScriptRunConfig and HyperDriveConfig submissions; got "
            f"{type(config).__name__}. Estimators are gone from azureml-core: wrap the script in a ScriptRunConfig."
        )

    def get_runs(self, type=None, tags=None, properties=None, include_children=False) -> Iterator[Run]:
        """The experiment's runs, newest first (children only with ``include_children``).

        ``tags`` / ``properties``: ``"key"`` (has it), ``{"key": "value"}``, or a list of ``"key"`` and
        ``["key", "value"]`` items; every condition must hold.
        """
        try:
            ids = run_records.search(self._store, self.name, include_children=include_children, tags=tags,
                                     properties=properties)  # fmt: skip
        except filters.FilterError as exc:
            raise UserErrorException(str(exc)) from None
        for run_id in ids:
            run = load_run(self, run_id)
            if type is None or run.type == type:
                yield run

    def __repr__(self):
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"


def load_run(experiment: Experiment, run_id: str) -> Run:
    """The run with this id, as the class its type calls for (``HyperDriveRun`` for a sweep)."""
    run = Run(experiment, run_id)
    return HyperDriveRun(experiment, run_id) if run.type == "hyperdrive" else run


class Run(Offline):
    """A run in the local workspace's history (twin of ``azureml.core.Run``)."""

    _azure_class = AzureRun

    def __init__(self, experiment, run_id, outputs=None, **kwargs):
        self.experiment = experiment
        self._run_id = run_id
        try:
            self._spec = run_records.spec_of(experiment._store, run_id)
        except run_records.RunNotFound:
            raise UserErrorException(
                f"No run {run_id!r} in experiment {experiment.name!r} of the local workspace "
                f"({experiment._store.root})."
            ) from None
        self._dir = experiment._store.run_dir(run_id)

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
        return AzureRun.get_context(allow_offline, used_for_context_manager, **kwargs)

    # --- status ----------------------------------------------------------------------------
    def get_status(self) -> str:
        """The run's status; a run whose supervisor died is marked Failed here, and its processes stopped."""
        return watch.status(self._store, self._spec)

    def get_details(self) -> dict:
        tags = run_records.mlflow_tags(self._store, self._spec)
        details = {
            "runId": self.id,
            "target": self._spec.get("target", "local"),
            "status": self.get_status(),
            "startTimeUtc": tags.get("azureml.start_time"),
            "endTimeUtc": tags.get("azureml.end_time"),
            "services": {},
            "properties": run_records.properties_of(tags),
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
                )  # fmt: skip
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
        watch.request_cancel(self._store, self._spec, f"canceled by the user at {time.strftime('%H:%M:%S')}")
        for child in self.get_children():
            child.cancel()

    def get_portal_url(self) -> str:
        return f"local run folder {self._dir} (browse all runs with `make mlflow-ui`)"

    # --- children (HyperDrive's trials) ------------------------------------------------------------
    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True) -> Iterator[Run]:  # fmt: skip
        """The runs this one started (HyperDrive's trials), newest first, filtered as azureml-core filters."""
        try:
            ids = run_records.search(self._store, self.experiment.name, parent=self.id, tags=tags,
                                     properties=properties)  # fmt: skip
        except filters.FilterError as exc:
            raise UserErrorException(str(exc)) from None
        for run_id in ids:
            run = load_run(self.experiment, run_id)
            if (status is None or run.get_status() == status) and (type is None or run.type == type):
                yield run
            if recursive:
                yield from run.get_children(recursive=True, tags=tags, properties=properties, type=type,
                                            status=status)  # fmt: skip

    # --- metrics ---------------------------------------------------------------------------
    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False) -> dict:
        """Metrics as Azure returns them: logged once a value, logged repeatedly a list (text included)."""
        metrics = run_records.read_values(self._store, self.id, name)
        if recursive:
            return {self.id: metrics, **{c.id: c.get_metrics(name) for c in self.get_children(recursive=True)}}
        return metrics

    def _log(self, name, kind, value, step=None):
        run_records.append_values(self._store, self._spec, [{"name": name, "kind": kind, "value": value,
                                                               "time": time.time(), "step": step}])  # fmt: skip

    def log(self, name, value, description="", step=None):
        self._log(name, "scalar", value, step)

    def log_list(self, name, value, description=""):
        self._log(name, "list", list(value))

    def log_row(self, name, description=None, **kwargs):
        self._log(name, "row", kwargs)

    def log_table(self, name, value, description=""):
        self._log(name, "table", dict(value))

    # --- tags and properties ----------------------------------------------------------------
    def get_tags(self) -> dict:
        return run_records.user_tags(run_records.mlflow_tags(self._store, self._spec))

    def get_properties(self) -> dict:
        return run_records.properties_of(run_records.mlflow_tags(self._store, self._spec))

    def tag(self, key, value=None):
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags):
        try:
            run_records.set_tags(self._store, self._spec, tags if isinstance(tags, dict) else {k: "" for k in tags})
        except run_records.BadTag as exc:
            raise UserErrorException(str(exc)) from None

    def remove_tags(self, tags):
        run_records.remove_tags(self._store, self._spec, [tags] if isinstance(tags, str) else list(tags))

    def add_properties(self, properties):
        try:
            run_records.add_properties(self._store, self._spec, properties)
        except run_records.PropertyConflict as exc:
            raise UserErrorException(str(exc)) from None

    # --- files -----------------------------------------------------------------------------------
    def get_file_names(self) -> list[str]:
        root = self._artifacts
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        source = (self._artifacts / name).resolve()
        if not source.is_relative_to(self._artifacts.resolve()) or not source.is_file():
            raise UserErrorException(
                f"Run {self.id} has no file {name!r}. Its files: {', '.join(self.get_file_names()) or 'none'}."
            )
        target = Path(output_file_path) if output_file_path else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def download_files(self, prefix=None, output_directory=None, output_paths=None, batch_size=100,
                       append_prefix=True, timeout_seconds=None):  # fmt: skip
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
    def register_model(self, model_name, model_path=None, tags=None, properties=None, model_framework=None,
                       model_framework_version=None, description=None, datasets=None, sample_input_dataset=None,
                       sample_output_dataset=None, resource_configuration=None, **kwargs):  # fmt: skip
        """Register one of the run's files or folders (``outputs/...``) as the next version of ``model_name``."""
        model_name_validation(model_name)  # azureml-core's rule and words (a quote would break the registry's look-up)
        for arg in ("datasets", "sample_input_dataset", "sample_output_dataset", "resource_configuration"):
            if locals()[arg] is not None:
                warn_ignored("Run.register_model", arg)
        if not model_path:
            raise UserErrorException("register_model needs model_path: a file or folder among the run's files.")
        files = self.get_file_names()
        path = posixpath.normpath(str(model_path).replace("\\", "/")).strip("/")  # "./outputs/x" is "outputs/x"
        if path not in files and not any(f.startswith(path + "/") for f in files):
            raise UserErrorException(
                f"model_path {model_path!r} is not among the files of run {self.id}. "
                f"Its files: {', '.join(files) or 'none (did the script save into ./outputs?)'}."
            )
        record = model_records.register(
            self._store, model_name, self._artifacts / path, path, tags=tags, properties=properties,
            description=description, framework=model_framework, framework_version=model_framework_version,
            run=self._spec,
        )  # fmt: skip
        return Model._from_record(self.experiment.workspace, record)

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


class HyperDriveRun(Run):
    """Twin of ``azureml.train.hyperdrive.HyperDriveRun``: the parent of a sweep's child runs."""

    _azure_class = AzureHyperDriveRun
    RUN_TYPE = "hyperdrive"

    def __init__(self, experiment, run_id, hyperdrive_config=None, **kwargs):
        super().__init__(experiment, run_id)
        self._hyperdrive_config = hyperdrive_config

    @property
    def hyperdrive_config(self):
        """The ``HyperDriveConfig`` submitted, or (for a run loaded by id) its recorded settings."""
        if self._hyperdrive_config is not None:
            return self._hyperdrive_config
        spec = self._spec
        return SimpleNamespace(
            _primary_metric_config=spec["primary_metric"],
            _generator_config=spec["generator"],
            _policy_config=spec["policy"],
            _max_total_runs=spec["max_total_runs"],
            _max_concurrent_runs=spec["max_concurrent_runs"],
            _max_duration_minutes=spec["max_duration_minutes"],
            _resume_from=None,
        )

    @property
    def _metric(self) -> tuple[str, bool]:
        config = self._spec["primary_metric"]
        return config["name"], config["goal"].lower() == "maximize"

    def get_hyperparameters(self) -> dict:
        """``{child run id: JSON of its hyperparameters}``, as azureml-core returns them."""
        prefix = SYSTEM_TAG + self.id + "_"
        tags = run_records.mlflow_tags(self._store, self._spec)
        return {k[len(SYSTEM_TAG) :]: v for k, v in tags.items() if k.startswith(prefix)}

    def get_children_sorted_by_primary_metric(self, top=0, reverse=False, discard_no_metric=False) -> list[dict]:
        """Children by their best primary metric: run id, hyperparameters, best value, status."""
        name, maximize = self._metric
        pick = max if maximize else min
        hyperparameters = self.get_hyperparameters()
        ranked, no_metric = [], []
        for run in self.get_children():
            values = run_records.numeric_history(self._store, run.id, name)
            child = {
                "run_id": run.id,
                "hyperparameters": hyperparameters.get(run.id),
                "best_primary_metric": pick(values) if values else None,
                "status": run.get_status(),
            }
            (ranked if child["best_primary_metric"] is not None else no_metric).append(child)
        ranked.sort(key=lambda c: c["best_primary_metric"], reverse=maximize != reverse)
        result = ranked + ([] if discard_no_metric else no_metric)
        return result if top == 0 else result[:top]

    def get_best_run_by_primary_metric(self, include_failed=True, include_canceled=True, include_resume_from_runs=True):
        """The child with the best primary metric (None when no child logged it)."""
        for child in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if (child["status"] == "Failed" and not include_failed) or (
                child["status"] == "Canceled" and not include_canceled
            ):
                continue
            return Run(self.experiment, child["run_id"])
        return None

    def get_metrics(self) -> dict:
        """``{child run id: its metrics}`` for every child, as ``HyperDriveRun.get_metrics`` returns."""
        return {run.id: run.get_metrics() for run in self.get_children()}

    def get_diagnostics(self):
        raise not_available("HyperDriveRun.get_diagnostics", "Azure does not offer it for HyperDrive runs either")

    def fail(self):
        raise UserErrorException("fail is not supported for HyperDrive runs (as on Azure).")


# --- submitting -------------------------------------------------------------------------------------------


def script_run_spec(experiment: Experiment, config: ScriptRunConfig) -> dict:
    """Everything the supervisor needs to run a ``ScriptRunConfig``, as plain JSON."""
    source = Path(config.source_directory or ".").resolve()
    if not source.is_dir():
        raise UserErrorException(f"source_directory {source} does not exist.")
    if config.command:
        raise UserErrorException(
            "The local workspace runs script= submissions, not command=; pass script and arguments."
        )
    if not config.script or not (source / config.script).is_file():
        raise UserErrorException(f"Script {config.script!r} not found in source_directory {source}.")
    try:  # as Azure does at submit time; the workspace's own folder is never part of a snapshot
        snapshot.check_size(source, skip=[experiment._store.root])
    except snapshot.SnapshotError as exc:
        raise SnapshotException(str(exc)) from None
    rc = config.run_config
    target = _target_name(experiment.workspace, rc.target)
    workers = _worker_count(experiment.workspace, rc, target)
    arguments, display, inputs = [], [], []
    for arg in config.arguments or []:
        encoded = _encode_argument(arg)
        arguments.append(encoded)
        if isinstance(encoded, dict):
            inputs.append(encoded["dataset"])
            display.append(f"DatasetConsumptionConfig:{encoded['dataset']['input_name']}")
        else:
            display.append(encoded)
    return {
        "type": "azureml.scriptrun",
        "source_directory": str(source),
        "script": config.script,
        "arguments": arguments,
        "display_arguments": display,
        "input_datasets": inputs,
        "target": target,
        "environment": environment_spec(rc.environment),
        "max_run_duration_seconds": rc.max_run_duration_seconds or DEFAULT_DURATION,
        "workers": workers,
        "runtime_dir": str(RUNTIME_DIR),
    }


def _worker_count(workspace, rc, target: str) -> int:
    """How many processes the run starts: ``worker_count`` for TensorFlow multi-worker runs, else 1."""
    if not rc.node_count or rc.node_count <= 1:
        return 1
    if rc.framework != "TensorFlow":
        warn_ignored("ScriptRunConfig", "distributed_job_config", f"{rc.framework} jobs run as one process locally")
        return 1
    if rc.tensorflow.parameter_server_count:
        raise UserErrorException(
            f"TensorflowConfiguration(parameter_server_count={rc.tensorflow.parameter_server_count}): the local "
            "workspace runs MultiWorkerMirroredStrategy clusters only; pass parameter_server_count=0."
        )
    workers = int(rc.tensorflow.worker_count)
    if target != "local":
        max_nodes = compute_records.get(workspace._store, target)["max_nodes"]
        if workers > max_nodes:
            raise UserErrorException(
                f"worker_count={workers} needs {workers} nodes, but cluster {target!r} has max_nodes={max_nodes}: "
                "ask for fewer workers or scale the cluster up (notebook 02-compute)."
            )
    return workers


def _encode_argument(arg):
    if isinstance(arg, DatasetConsumptionConfig):
        return {"dataset": arg._to_spec()}
    if isinstance(arg, FileDataset):
        raise UserErrorException("Pass a dataset argument as dataset.as_mount() or dataset.as_download(), as on Azure.")
    if type(arg).__module__.startswith("azureml."):
        raise UserErrorException(
            f"Argument {arg!r} is an Azure ML object the local workspace cannot pass to a script: use a dataset "
            "of the local workspace (Dataset.get_by_name(ws, ...).as_mount() after aml_offline.boundary.activate()), "
            "or a plain value."
        )
    return str(arg)


def _target_name(workspace, target) -> str:
    name = getattr(target, "name", target) or "local"
    if name != "local" and compute_records.get(workspace._store, name) is None:
        raise UserErrorException(
            f"Compute target {name!r} does not exist in the local workspace: create it first "
            "(notebook 02-compute) or use 'local'."
        )
    return name


def hyperdrive_spec(experiment: Experiment, config: HyperDriveConfig) -> dict:
    """Check a ``HyperDriveConfig`` and turn it into the sweep supervisor's spec."""
    if config._run_config is None:
        raise UserErrorException(
            "The local workspace sweeps a ScriptRunConfig: pass HyperDriveConfig(run_config=ScriptRunConfig(...)). "
            "Estimators and pipelines are not supported."
        )
    generator = config._generator_config
    if generator["name"] not in ("RANDOM", "GRID"):
        raise UserErrorException(
            "BayesianParameterSampling needs Azure ML's Bayesian optimisation service; the local workspace runs "
            "RandomParameterSampling and GridParameterSampling. Use RandomParameterSampling, or run on Azure."
        )
    try:
        sweep_rules.check_policy(config._policy_config)
    except sweep_rules.SweepError as exc:
        raise UserErrorException(str(exc)) from None
    if config._resume_from or config._resume_child_runs:
        raise UserErrorException("resume_from / resume_child_runs are not supported by the local workspace.")
    child = script_run_spec(experiment, config._run_config)
    seed = sweep_rules.seed_of(generator)
    spec = sweeper.sweep_spec(
        child, generator, config._policy_config,
        primary_metric=config._primary_metric_config,
        max_total_runs=config._max_total_runs,
        max_concurrent_runs=config._max_concurrent_runs,
        max_duration_minutes=config._max_duration_minutes,
        seed=seed,
    )  # fmt: skip
    return {**spec, "run_id": f"HD_{uuid.uuid4()}"}
