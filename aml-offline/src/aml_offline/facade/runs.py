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
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from azureml._base_sdk_common.common import check_valid_resource_name
from azureml._model_management._util import model_name_validation
from azureml.core import Experiment as AzureExperiment
from azureml.core import Run as AzureRun
from azureml.core import ScriptRunConfig
from azureml.data import OutputFileDatasetConfig
from azureml.data.data_reference import DataReference
from azureml.exceptions import ActivityFailedException, SnapshotException, UserErrorException
from azureml.train.hyperdrive import HyperDriveConfig
from azureml.train.hyperdrive import HyperDriveRun as AzureHyperDriveRun

from aml_offline.execution import snapshot, sweep_rules, sweeper, watch
from aml_offline.execution.supervisor import start_supervisor
from aml_offline.execution.sweeper import SYSTEM_TAG
from aml_offline.facade._base import Offline, not_available, warn_ignored
from aml_offline.facade.datasets import DatasetConsumptionConfig, FileDataset, resolve_datastore_path
from aml_offline.facade.datastores import Datastore, relative_path
from aml_offline.facade.environments import environment_spec
from aml_offline.facade.models import Model
from aml_offline.records import compute as compute_records
from aml_offline.records import filters
from aml_offline.records import models as model_records
from aml_offline.records import runs as run_records
from aml_offline.records import status as run_status
from aml_offline.records.runs import DRIVER_LOG, WORKER_LOG
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore, write_json

OUTPUTS_DIR = "outputs"  # azureml-core's: what a run uploads when it ends
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
        return self._submit(config, tags, **kwargs)

    def start_logging(self, *args, **kwargs):
        """An interactive run, as azureml-core's: Running at once, logged to from this process, ended by
        ``complete()`` / ``fail()`` / ``cancel()`` (or the ``with`` block).  ``outputs`` (default ``./outputs``) is
        uploaded into the run when it completes; ``snapshot_directory`` (default ``.``) is kept as its snapshot."""
        return Run._start_logging(self, *args, **kwargs)

    def _submit(self, config, tags=None, parent_run_id=None, **kwargs):
        if isinstance(config, ScriptRunConfig):
            spec = script_run_spec(self, config)
            spec["run_id"] = run_records.new_run_id(self.name)
            spec["parent_run_id"] = parent_run_id
            run_records.create(self._store, self.name, spec, tags or {}, _user())
            start_supervisor(self._store, spec)
            return Run(self, spec["run_id"])
        if isinstance(config, HyperDriveConfig):
            spec = hyperdrive_spec(self, config)
            spec["parent_run_id"] = parent_run_id
            # As Azure tags a sweep: azureml-core's HyperDriveRun and run views read the primary metric from here.
            system = {SYSTEM_TAG + "primary_metric_config": json.dumps(config._primary_metric_config)}
            run_records.create(self._store, self.name, spec, {**(tags or {}), **system}, _user())
            start_supervisor(self._store, spec, module="aml_offline.execution.sweeper")
            return HyperDriveRun(self, spec["run_id"], hyperdrive_config=config)
        # A twin that submits itself (a Pipeline, a PublishedPipeline: aml_offline.facade.pipelines), with what
        # experiment.submit(config, **kwargs) passes on (pipeline_parameters=, regenerate_outputs=, ...)
        submit_locally = getattr(config, "_submit_locally", None)
        if submit_locally is not None:
            return submit_locally(self, tags=tags, parent_run_id=parent_run_id, **kwargs)
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


#: The class each run type reads as (``hyperdrive``: ``HyperDriveRun``); the pipeline twins add theirs when loaded
RUN_CLASSES: dict[str, type] = {}


def load_run(experiment: Experiment, run_id: str) -> Run:
    """The run with this id, as the class its type calls for (``HyperDriveRun`` for a sweep, ``PipelineRun`` for a
    pipeline, ``StepRun`` for one of its steps)."""
    run = Run(experiment, run_id)
    kind = RUN_CLASSES.get(run.type)
    return kind(experiment, run_id) if kind is not None else run


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

    @property
    def display_name(self) -> str:
        return self._spec.get("display_name") or self.id

    @display_name.setter
    def display_name(self, display_name):
        self._update_spec(display_name=str(display_name))
        with self._store.write_lock():
            self._store.mlflow.update_run(self._mlflow_id, name=str(display_name))

    @property
    def name(self) -> str | None:
        """Deprecated in azureml-core (use ``display_name``): the name given at ``start_logging`` / ``child_run``."""
        return self._spec.get("name")

    @property
    def description(self) -> str | None:
        return self._spec.get("description")

    @description.setter
    def description(self, description):
        self._update_spec(description=description)

    def _update_spec(self, **changes) -> None:
        with self._store.write_lock():
            spec = run_records.spec_of(self._store, self.id)
            spec.update(changes)
            write_json(self._dir / "run.json", spec)
        self._spec = spec

    @property
    def _interactive(self) -> bool:
        return bool(self._spec.get("interactive"))

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """As azureml-core: inside a locally submitted script the local run, else an offline run."""
        return AzureRun.get_context(allow_offline, used_for_context_manager, **kwargs)

    @staticmethod
    def get(workspace, run_id):
        """The run with this id, in whichever experiment of the workspace it is (``ws.get_run`` too)."""
        try:
            experiment = run_records.spec_of(workspace._store, run_id)["experiment"]
        except run_records.RunNotFound:
            raise UserErrorException(
                f"Run {run_id!r} was not found in the local workspace ({workspace._store.root})."
            ) from None
        return load_run(Experiment(workspace, experiment, _skip_name_validation=True), run_id)

    @staticmethod
    def list(experiment, type=None, tags=None, properties=None, status=None, include_children=False,
             _rehydrate_runs=True) -> Iterator[Run]:  # fmt: skip
        """The experiment's runs, newest first, filtered as azureml-core's ``Run.list`` filters them."""
        for run in experiment.get_runs(type=type, tags=tags, properties=properties, include_children=include_children):
            if status is None or run.get_status() == status:
                yield run

    @staticmethod
    def _start_logging(experiment, name=None, run_id=None, outputs=None, snapshot_directory=".",
                       display_name=None, tags=None, properties=None, description=None, **kwargs):  # fmt: skip
        """``Experiment.start_logging``: azureml-core's defaults (outputs True/None is ./outputs, False none)."""
        for arg in kwargs:
            warn_ignored("Experiment.start_logging", arg)
        outputs = None if outputs is False else OUTPUTS_DIR if outputs in (None, True) else outputs
        if outputs:  # azureml-core makes the folder it tracks, and scripts save into it at once
            Path(outputs).mkdir(parents=True, exist_ok=True)
        run = _create_interactive(experiment, name=name, run_id=run_id, outputs=outputs, parent=None,
                                  display_name=display_name, tags=tags, description=description)  # fmt: skip
        if properties:
            run.add_properties(properties)
        if snapshot_directory:
            try:
                run.take_snapshot(snapshot_directory)
            except SnapshotException as exc:
                run.fail(error_details=str(exc))
                raise SnapshotException(
                    f"Failed to take a snapshot of {snapshot_directory}. Pass snapshot_directory=None to "
                    f"start_logging to skip taking a snapshot of the given directory. ({exc.message})"
                ) from None
        return run

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
        """The run's log, then each worker's in a multi-worker run (an interactive run has none)."""
        if self._interactive:
            return [n for n in (self._log_name,) if (self._artifacts / n).is_file()]
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
        """Ask the run to stop; its supervisor ends the whole process tree and marks it Canceled.  An interactive
        run (``start_logging``) has no processes: it is marked Canceled now."""
        if self.get_status() in TERMINAL:
            return
        reason = f"canceled by the user at {time.strftime('%H:%M:%S')}"
        if self._interactive:
            run_status.set_status(self._store, self._spec, "Canceled", reason=reason)
        else:
            watch.request_cancel(self._store, self._spec, reason)
        for child in self.get_children():
            child.cancel()

    # --- interactive runs (Experiment.start_logging) ---------------------------------------------------
    def start(self):
        """Mark the run started (Running); azureml-core's ``start_logging`` and ``child_run`` do it already."""
        self._end_check("start")
        run_status.set_status(self._store, self._spec, "Running")

    def complete(self, _set_status=True):
        """Upload the tracked outputs folder into the run and mark it Completed (an interactive run's end)."""
        self._end_check("complete")
        self._upload_outputs()
        run_status.set_status(self._store, self._spec, "Completed")

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """Mark the run Failed; ``error_details`` (text or an exception) becomes its error."""
        self._end_check("fail")
        self._upload_outputs()
        text = repr(error_details) if isinstance(error_details, BaseException) else str(error_details or "")
        error = f"{error_code}: {text}" if error_code else text or "the run was marked failed (run.fail())"
        run_status.set_status(self._store, self._spec, "Failed", error=error)

    def flush(self, timeout_seconds=300):
        """Everything is written when each call returns: nothing waits in a queue."""

    def _end_check(self, what: str) -> None:
        if not self._interactive:
            raise UserErrorException(
                f"Run {self.id} was submitted: its supervisor ends it when the script exits (Run.{what} ends a run "
                "made by experiment.start_logging or child_run). Use cancel() to stop it."
            )
        status = self.get_status()
        if status in TERMINAL and what != "start":
            raise UserErrorException(f"Run {self.id} has already ended ({status}): Run.{what} cannot change it.")

    def _upload_outputs(self) -> None:
        folder = self._spec.get("outputs_dir")
        if folder and Path(folder).is_dir():
            shutil.copytree(folder, self._artifacts / OUTPUTS_DIR, dirs_exist_ok=True, ignore_dangling_symlinks=True)

    def __enter__(self):
        return self

    def __exit__(self, exit_type, value, traceback):
        """As azureml-core's run context: the block's end completes the run, an exception fails it."""
        if self.get_status() not in TERMINAL and self._interactive:
            if value is None:
                self.complete()
            else:
                self.fail(error_details=value)
        return False

    def child_run(self, name=None, run_id=None, outputs=None):
        """A child run of this one, Running at once (an interactive run, ended by its ``complete()``)."""
        return _create_interactive(self.experiment, name=name, run_id=run_id, outputs=outputs, parent=self)

    def create_children(self, count=None, tag_key=None, tag_values=None):
        """``count`` children, or one per value of ``tag_values`` tagged ``tag_key``, as azureml-core makes them."""
        if tag_key is not None and tag_values is None or tag_key is None and tag_values is not None:
            raise UserErrorException("create_children needs both tag_key and tag_values, or neither.")
        if count is None and tag_values is None:
            raise UserErrorException("create_children needs count or tag_values.")
        if count is not None and tag_values is not None and count != len(tag_values):
            raise UserErrorException("count must equal the number of tag_values.")
        children = []
        for i in range(count if count is not None else len(tag_values)):
            child = self.child_run()
            if tag_key is not None:
                child.tag(tag_key, tag_values[i])
            children.append(child)
        return children

    def submit_child(self, config, tags=None, **kwargs):
        """Submit a ``ScriptRunConfig`` (or ``HyperDriveConfig``) as a child of this run."""
        return self.experiment._submit(config, tags, parent_run_id=self.id)

    def take_snapshot(self, file_or_folder_path) -> str:
        """Keep a copy of a file or folder with the run (Azure's limits and .amlignore apply); its id."""
        source = Path(file_or_folder_path).resolve()
        if not source.exists():
            raise SnapshotException(f"{file_or_folder_path} does not exist: there is nothing to take a snapshot of.")
        snapshot_id = str(uuid.uuid4())
        target = self._dir / "snapshots" / snapshot_id
        if source.is_dir():
            try:
                snapshot.check_size(source, skip=[self._store.root])
            except snapshot.SnapshotError as exc:
                raise SnapshotException(str(exc)) from None
            snapshot.copy_snapshot(source, target, skip=[self._store.root])
        else:
            target.mkdir(parents=True)
            shutil.copy2(source, target / source.name)
        self._update_spec(snapshots=[*self._spec.get("snapshots", []), snapshot_id])
        return snapshot_id

    def get_snapshot_id(self) -> str | None:
        """The latest snapshot's id (a submitted run's is its source folder, kept in its working copy)."""
        snapshots = self._spec.get("snapshots") or []
        return snapshots[-1] if snapshots else None

    def restore_snapshot(self, snapshot_id=None, path=None) -> str:
        """The snapshot as ``<snapshot id>.zip`` in ``path`` (the system's temporary folder by default)."""
        snapshot_id = snapshot_id or self.get_snapshot_id()
        folder = self._dir / "snapshots" / str(snapshot_id)
        if not snapshot_id or not folder.is_dir():
            raise UserErrorException(
                f"Run {self.id} has no snapshot {snapshot_id!r}; its snapshots: "
                f"{', '.join(self._spec.get('snapshots') or []) or 'none'}."
            )
        target = Path(path or tempfile.gettempdir()) / f"{snapshot_id}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(folder).as_posix())
        partial.replace(target)
        return str(target)

    def get_all_logs(self, destination=None) -> list[str]:
        """Write the run's logs into ``destination`` (default ``./assets/<run id>``, as azureml-core); their paths."""
        if destination and Path(destination).exists() and not Path(destination).is_dir():
            raise UserErrorException(f"{destination} exists and is not a directory.")
        out = Path(destination or Path("assets") / self.id)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.get_details_with_logs()["logFiles"].items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            written.append(str(target))
        return written

    def get_portal_url(self) -> str:
        return f"local run folder {self._dir} (browse all runs with `aml-offline mlflow-ui`)"

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

    def log_confusion_matrix(self, name, value, description=""):
        self._log(name, "json", _as_json(value, "confusion_matrix"))

    def log_accuracy_table(self, name, value, description=""):
        self._log(name, "json", _as_json(value, "accuracy_table"))

    def log_predictions(self, name, value, description=""):
        self._log(name, "json", _as_json(value, "predictions"))

    def log_residuals(self, name, value, description=""):
        self._log(name, "json", _as_json(value, "residuals"))

    def log_image(self, name, path=None, plot=None, description=""):
        """An image file, or a matplotlib figure (``plot``), kept with the run; its metric is the image's address."""
        if (path is None) == (plot is None):
            raise UserErrorException("log_image needs exactly one of path or plot.")
        file_name = f"{name}_{int(time.time() * 1000)}.png"
        self._artifacts.mkdir(parents=True, exist_ok=True)
        if plot is not None:
            plot.savefig(self._artifacts / file_name, format="png")
        else:
            shutil.copyfile(path, self._artifacts / file_name)
        self._log(name, "image", f"aml://artifactId/ExperimentRun/dcid.{self.id}/{file_name}")

    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Keep a file (a path or an open binary stream) with the run as ``name`` (for example 'outputs/x.csv')."""
        target = self._artifact_path(name)
        if target.exists():
            raise UserErrorException(f"Run {self.id} already has a file {name!r}: upload it under another name.")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        if hasattr(path_or_stream, "read"):
            with open(partial, "wb") as f:
                shutil.copyfileobj(path_or_stream, f)
        else:
            if not Path(path_or_stream).is_file():
                raise UserErrorException(f"upload_file: {path_or_stream} is not a file.")
            shutil.copyfile(path_or_stream, partial)
        partial.replace(target)

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None, datastore_name=None):
        if len(names) != len(paths):
            raise UserErrorException("upload_files needs one name for each path.")
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(self, name, path, datastore_name=None):
        """Keep every file under the folder ``path`` with the run, under ``name/``."""
        folder = Path(path)
        if not folder.is_dir():
            raise UserErrorException(f"upload_folder: {path} is not a folder.")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        self.upload_files([f"{name}/{p.relative_to(folder).as_posix()}" for p in files], [str(p) for p in files])

    def _artifact_path(self, name) -> Path:
        text = str(name).replace("\\", "/")
        target = (self._artifacts / text).resolve()
        if not text or text.startswith("/") or not target.is_relative_to(self._artifacts.resolve()):
            raise UserErrorException(
                f"File name {name!r}: use a relative path inside the run, such as 'outputs/model.pkl' (no '..')."
            )
        return target

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


RUN_CLASSES[HyperDriveRun.RUN_TYPE] = HyperDriveRun


# --- interactive runs ----------------------------------------------------------------------------------------


def _create_interactive(experiment, *, name, run_id, outputs, parent, display_name=None, tags=None,
                        description=None) -> Run:  # fmt: skip
    """Record a run made from this process (``start_logging``, ``child_run``) and mark it Running.

    It has no supervisor: it ends when the notebook calls ``complete()`` / ``fail()`` / ``cancel()``, and a run
    left Running when the notebook goes away stays Running, as on Azure."""
    if run_id is not None:
        check_valid_resource_name(run_id, "Run")
    spec = {
        "type": "azureml.scriptrun",
        "run_id": run_id or run_records.new_run_id(experiment.name),
        "parent_run_id": parent.id if parent is not None else None,
        "interactive": True,
        "target": "sdk",  # azureml-core's SDK_TARGET: the run was made by the SDK, not submitted to a compute
        "name": name,
        "display_name": display_name or name,
        "run_name": display_name or name,
        "description": description,
        "outputs_dir": str(Path(outputs).resolve()) if outputs else None,
        "environment": {},
    }
    if run_id is not None and (experiment._store.run_dir(run_id) / "run.json").exists():
        raise UserErrorException(f"A run with id {run_id!r} already exists in the local workspace.")
    run_records.create(experiment._store, experiment.name, spec, tags or {}, _user())
    run_status.set_status(experiment._store, spec, "Running")
    return Run(experiment, spec["run_id"])


def _as_json(value, kind):
    """azureml-core takes these as a dict or its JSON text; keep the dict."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise UserErrorException(f"log_{kind}: the value must be a dict or its JSON text.") from None
    return value


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
        encoded = _encode_argument(arg, experiment.workspace)
        arguments.append(encoded)
        if isinstance(encoded, dict) and "output" in encoded:
            display.append(f"OutputFileDatasetConfig:{encoded['output']['name']}")
        elif isinstance(encoded, dict):
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
        row = compute_records.get(workspace._store, target)
        if row["type"] == compute_records.INSTANCE and workers > row["max_nodes"]:
            raise UserErrorException(
                f"worker_count={workers} needs {workers} nodes, but compute instance {target!r} has one: ask for "
                "one worker, or submit to a cluster (AmlCompute) with max_nodes >= worker_count."
            )
        if workers > row["max_nodes"]:
            raise UserErrorException(
                f"worker_count={workers} needs {workers} nodes, but cluster {target!r} has max_nodes={row['max_nodes']}"
                ": ask for fewer workers or scale the cluster up (notebook 02-compute)."
            )
    return workers


def _encode_argument(arg, workspace=None):
    if isinstance(arg, DatasetConsumptionConfig):
        return {"dataset": arg._to_spec()}
    if isinstance(arg, OutputFileDatasetConfig):
        return {"output": _output_spec(arg, workspace)}
    if isinstance(arg, DataReference):  # datastore.path("folder").as_mount() / .as_download()
        paths = resolve_datastore_path(arg.datastore, arg.path_on_datastore)
        name = arg.data_reference_name or arg.datastore.name
        mode = "download" if arg.mode == "download" else "mount"
        return {"dataset": {"name": None, "version": None, "paths": paths, "mode": mode, "input_name": name}}
    if isinstance(arg, FileDataset):
        raise UserErrorException("Pass a dataset argument as dataset.as_mount() or dataset.as_download(), as on Azure.")
    if type(arg).__module__.startswith("azureml."):
        raise UserErrorException(
            f"Argument {arg!r} is an Azure ML object the local workspace cannot pass to a script: use a dataset "
            "of the local workspace (Dataset.get_by_name(ws, ...).as_mount() after aml_offline.boundary.activate()), "
            "or a plain value."
        )
    return str(arg)


def _output_spec(output: OutputFileDatasetConfig, workspace) -> dict:
    """Where the run writes an ``OutputFileDatasetConfig``: its destination folder in a datastore (Azure's default:
    ``workspaceblobstore``, ``dataset/{run-id}/{output-name}``); ``{run-id}`` is filled in when the run starts."""
    if output.destination:
        datastore, path = output.destination[0], output.destination[1] if len(output.destination) > 1 else ""
        if isinstance(datastore, str):
            datastore = Datastore(workspace, datastore)
    else:
        datastore, path = Datastore.get_default(workspace), "dataset/{run-id}/{output-name}"
    path = relative_path(str(path).replace("{output-name}", output.name))
    reg = getattr(output, "_registration", None)
    register = {"name": reg.name, "description": reg.description, "tags": reg.tags or {}} if reg else None
    return {"name": output.name, "folder": str(datastore._folder / path), "register": register}


def _target_name(workspace, target) -> str:
    """Where the run goes: "local" (azureml-core's default: this machine, no queue; also what a ``LocalTarget`` and
    ``compute_target="local"`` name), or a cluster or compute instance of the workspace (a twin, or its name)."""
    name = getattr(target, "name", target) or "local"
    if name == "local":
        return name
    row = compute_records.get(workspace._store, name)
    if row is None:
        raise UserErrorException(
            f"Compute target {name!r} does not exist in the local workspace: create it first "
            "(ComputeTarget.create) or use 'local'."
        )
    if row["type"] == compute_records.INSTANCE and row["state"] != compute_records.RUNNING:
        raise UserErrorException(f"Compute instance {name!r} is {row['state']}: start it first (instance.start()).")
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
