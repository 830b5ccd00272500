"""``ml_client.jobs`` of the local workspace (twin of ``azure.ai.ml.operations.JobOperations``).

A ``command(...)`` job becomes a run of the same records and supervisor as a v1 ``ScriptRunConfig``: its
``code`` folder is the snapshot, its inputs are made local (``azureml:name:version`` data assets, local
folders, web files), ``${{inputs.x}}`` in the command is replaced by their values, and the command runs with
``MLFLOW_TRACKING_URI`` / ``MLFLOW_RUN_ID`` pointing the script's ``mlflow`` at the job's run.  A
``.sweep(...)`` job is a run of the same sweep supervisor as HyperDrive, with the same sampling and
early-termination rules, judging the primary metric the trials log with ``mlflow``.

A job is named after its MLflow run id (as on Azure, where ``mlflow.get_run(job.name)`` finds it), unless
``name=`` gives it a name.  The experiment is ``experiment_name``, else the current folder's name (Azure's
default), so v1 runs and v2 jobs of one experiment share its history.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from azure.ai.ml import Output
from azure.ai.ml.constants import AssetTypes, ListViewType
from azure.ai.ml.entities import CommandJob, Job, JobResourceConfiguration, JobService, PipelineJob
from azure.ai.ml.entities._builders.command import Command
from azure.ai.ml.entities._builders.sweep import Sweep
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, JobException
from azure.ai.ml.operations import JobOperations as AzureJobOperations
from azure.ai.ml.operations._run_history_constants import RunHistoryConstants
from azure.ai.ml.sweep import SweepJob

from aml_offline.execution import data, snapshot, sweep_rules, sweeper, watch
from aml_offline.execution.supervisor import start_supervisor
from aml_offline.execution.sweeper import SYSTEM_TAG
from aml_offline.facade_v2 import pipelines
from aml_offline.facade_v2._common import done, invalid, not_found, service_error
from aml_offline.facade_v2.environments import CURATED as CURATED  # endpoints.py reads these three from here
from aml_offline.facade_v2.environments import curated_spec as curated_spec
from aml_offline.facade_v2.environments import environment_spec as environment_spec
from aml_offline.facade_v2.environments import job_environment
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import compute as compute_records
from aml_offline.records import datasets as dataset_records
from aml_offline.records import datastores as datastore_records
from aml_offline.records import models as model_records
from aml_offline.records import runs as run_records
from aml_offline.records.runs import DRIVER_LOG
from aml_offline.records.status import TERMINAL, current_status

DEFAULT_DURATION = 2592000
#: The in-script ``Run.get_context()`` of the local workspace (a v2 script that also uses azureml-core gets it)
RUNTIME_DIR = Path(__file__).resolve().parent.parent / "facade" / "runtime"
#: SDK v2's sweep early-termination policies by their ``type``, as the sweep rules name them
POLICIES = {"bandit": "Bandit", "median_stopping": "MedianStopping", "truncation_selection": "TruncationSelection"}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in some containers)
        return "local"


#: Azure's rule for a job's name
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
#: What a job runs on when it names no compute: Azure's serverless compute (here, this machine with no queue)
SERVERLESS = "serverless"
#: Input and output types the local workspace passes as a file or a folder (a model is its folder, an MLTable its
#: folder with the MLTable file, as Azure mounts them)
MODEL_TYPES = (AssetTypes.CUSTOM_MODEL, AssetTypes.MLFLOW_MODEL, AssetTypes.TRITON_MODEL)
PATH_TYPES = (AssetTypes.URI_FOLDER, AssetTypes.URI_FILE, AssetTypes.MLTABLE, *MODEL_TYPES)
#: A datastore's files, short (``azureml://datastores/<name>/paths/<path>``) or long (with the workspace's ids)
DATASTORE_PATH = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?"
    r"workspaces/[^/]+/)?datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$"
)
#: A job's files: ``azureml://jobs/<job>/outputs/<output name, or artifacts>/paths/<path>``
JOB_OUTPUT_PATH = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?:/paths/(?P<path>.*))?$")
#: Where Azure keeps a job's default output (its logs and ./outputs), as its ``outputs["default"]`` names it
DEFAULT_OUTPUT = "azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{name}"
#: The tag that keeps a job archived (``jobs.archive``): Azure's run history calls it hidden
ARCHIVED_TAG = "azureml.archived"


class JobOperations(Offline):
    """Submit, follow, cancel and read jobs of the local workspace, as ``ml_client.jobs`` does on Azure."""

    _azure_class = AzureJobOperations

    def __init__(self, client):
        self._client = client
        self._store = client._store

    # --- submit -------------------------------------------------------------------------------
    def create_or_update(
        self, job, *, description=None, compute=None, tags=None, experiment_name=None, skip_validation=False, **kwargs
    ) -> Job:
        """Submit a ``command(...)`` job, a sweep of one or a ``@dsl.pipeline`` job; returns the job at once (it runs
        in the background)."""
        if isinstance(job, Command):
            job = job._to_job()
        elif isinstance(job, Sweep):
            job = job._to_job()
        if isinstance(job, PipelineJob):  # a @dsl.pipeline's job: the pipeline executor runs it (pipelines.py)
            if description is not None:
                job.description = description
            experiment = experiment_name or job.experiment_name or Path.cwd().name
            return self.get(pipelines.submit(self, job, experiment=experiment, compute=compute, tags=tags))
        if not isinstance(job, CommandJob | SweepJob):
            raise not_available(
                f"jobs.create_or_update({type(job).__name__})",
                "the local workspace runs command jobs, sweep jobs and pipeline jobs (no AutoML, "
                "Spark or data-transfer jobs)",
            )
        if description is not None:
            job.description = description
        if compute is not None:
            job.compute = compute
        if tags:
            job.tags = {**(job.tags or {}), **tags}
        experiment = experiment_name or job.experiment_name or Path.cwd().name
        if job.name and not JOB_NAME.fullmatch(job.name):
            raise invalid(
                f"Job name {job.name!r}: Azure takes letters, digits, '-' and '_' (up to 255, starting with a "
                "letter or digit)."
            )
        if job.name:
            warn_ignored(
                f"Job {job.name!r}", "name= for MLflow",
                "locally MLflow gives the run an id of its own, so mlflow.get_run(job.name) finds it only for jobs "
                "named by the local workspace; leave name= out to have both",
            )  # fmt: skip
        if job.name and self._exists(job.name):
            raise invalid(f"A job named {job.name!r} exists already: jobs are never replaced; give another name.")
        record = _quiet(job._to_dict())
        if isinstance(job, CommandJob):
            spec = self._command_spec(
                job,
                job.command,
                job.code,
                job.environment,
                job.environment_variables,
                job.inputs,
                job.outputs,
                getattr(job.limits, "timeout", None),
                job.compute,
            )
            spec.update(run_id=job.name or None, run_name=job.display_name or job.name, parent_run_id=None, job=record)
            run_records.create(self._store, experiment, spec, job.tags or {}, _user())
            start_supervisor(self._store, spec)
        else:
            spec = self._sweep_spec(job)
            spec.update(run_id=job.name or None, run_name=job.display_name or job.name, job=record)
            system = {SYSTEM_TAG + "primary_metric_config": json.dumps(spec["primary_metric"])}
            run_records.create(self._store, experiment, spec, {**(job.tags or {}), **system}, _user())
            start_supervisor(self._store, spec, module="aml_offline.execution.sweeper")
        return self.get(spec["run_id"])

    def _exists(self, name: str) -> bool:
        try:
            run_records.spec_of(self._store, name)
            return True
        except run_records.RunNotFound:
            return False

    def _command_spec(self, job, command, code, environment, variables, inputs, outputs, timeout, compute) -> dict:
        label = job.name or job.display_name or "the job"
        if not command:
            raise invalid(f"Job {label}: command(...) needs a command, such as 'python train.py'.")
        source = self._code_folder(code, label)
        try:  # as Azure does when it uploads the code
            snapshot.check_size(source, skip=[self._store.root])
        except snapshot.SnapshotError as exc:
            raise invalid(f"Job {label}: {exc}") from None
        job_inputs, datasets = {}, []
        for name, value in (inputs or {}).items():
            item = self._input(label, name, value)
            job_inputs[name] = item
            if "dataset" in item:
                datasets.append(item["dataset"])
        return {
            "type": "azureml.scriptrun",
            "sdk": "v2",
            "source_directory": str(source),
            "script": command,
            "command": command,
            "inputs": job_inputs,
            "outputs": self._outputs(label, outputs),
            "arguments": [],
            "display_arguments": [command],
            "input_datasets": datasets,
            "target": self._target(label, compute),
            "environment": self._environment(label, environment, variables),
            "max_run_duration_seconds": int(timeout or DEFAULT_DURATION),
            "workers": 1,
            "runtime_dir": str(RUNTIME_DIR),
        }

    def _code_folder(self, code, label: str) -> Path:
        if code is None:  # a command with no code of its own runs in an empty folder
            empty = self._store.root / "empty-code"
            empty.mkdir(parents=True, exist_ok=True)
            return empty
        code = str(code)
        if code.startswith("azureml:"):
            raise not_available(f"Job {label}: code={code!r}", "registered code assets are Azure's; pass a folder")
        source = Path(code).resolve()
        if not source.is_dir():
            raise invalid(f"Job {label}: code={code!r} is not a folder ({source}).")
        return source

    def _input(self, label: str, name: str, value) -> dict:
        """One input as the supervisor takes it: a literal, or files made local before the job runs."""
        if isinstance(value, dict):  # a sweep job's inputs come as their dicts
            value = SimpleNamespace(**value) if "path" in value else value.get("default", value.get("value"))
        if not hasattr(value, "type") or not hasattr(value, "path"):
            return {"value": value if isinstance(value, str) else json.dumps(value)}
        kind, path = value.type, value.path
        if kind not in PATH_TYPES:
            raise not_available(
                f"Job {label}: input {name!r} of type {kind}",
                "the local workspace passes uri_folder, uri_file, mltable and model (custom_model, mlflow_model, "
                "triton_model) inputs",
            )
        if path is None:
            raise invalid(f"Job {label}: input {name!r} has no path.")
        path = str(path)
        mode = "download" if getattr(value, "mode", None) == "download" else "mount"
        entry = {"name": None, "version": None, "mode": mode, "input_name": name}
        where = f"Job {label}: input {name!r}"
        if path.startswith("azureml:") and not path.startswith("azureml://"):
            asset_name, version = _asset_reference(where, path)
            if kind in MODEL_TYPES:
                try:
                    record = model_records.get(self._store, asset_name, None if version == "latest" else version)
                except model_records.ModelRecordNotFound as exc:
                    raise invalid(f"{where} names model {path!r}: {exc} Register it with ml_client.models."
                                  "create_or_update(Model(...)) first.") from None  # fmt: skip
                entry.update(name=record["name"], version=record["version"], paths=[record["source"]])
            else:
                try:
                    record = dataset_records.get(self._store, asset_name, version)
                except dataset_records.DatasetRecordNotFound:
                    known = ", ".join(dataset_records.names(self._store)) or "none"
                    raise invalid(
                        f"{where} names data asset {path!r}, which the local workspace does not have (its data "
                        f"assets: {known}). Create it with ml_client.data.create_or_update(Data(...)) first "
                        "(notebooks/v2/01-data)."
                    ) from None
                entry.update(name=record["name"], version=record["version"], paths=record["paths"])
        elif path.startswith("azureml://"):
            entry["paths"] = [str(self._azureml_path(where, path))]
        elif path.startswith(("wasbs://", "abfss://", "adl://", "s3://", "gs://")):
            raise not_available(
                f"{where} at {path}",
                "cloud storage accounts cannot be reached offline; use a data asset, a datastore path "
                "(azureml://datastores/...), a local path or a web file",
            )
        elif path.startswith(("http://", "https://")):
            if kind != AssetTypes.URI_FILE and path.endswith("/"):
                raise not_available(
                    f"{where}: the web folder {path}",
                    "a folder on the web cannot be listed over plain HTTP (Azure lists it through Azure Storage); "
                    "name its files as uri_file inputs, or download them and pass the local folder",
                )
            if kind not in (AssetTypes.URI_FILE, AssetTypes.URI_FOLDER):
                raise not_available(f"{where}: a {kind} at {path}", "pass it from a local folder")
            entry["paths"] = [path]  # fetched by the data layer when the job runs: SHA-256 recorded, then checked
        else:
            local = Path(path).resolve()
            if not local.exists():
                raise invalid(f"{where} path {path} does not exist.")
            entry["paths"] = [str(local)]
        if kind == AssetTypes.MLTABLE and not (Path(entry["paths"][0]) / "MLTable").is_file():
            raise invalid(f"{where} of type mltable: {path} is not a folder with an MLTable file.")
        if kind == AssetTypes.URI_FILE and not data.is_url(entry["paths"][0]) and Path(entry["paths"][0]).is_dir():
            raise invalid(f"{where} of type uri_file: {path} is a folder; use type uri_folder.")
        return {"dataset": entry, "type": kind}

    def _azureml_path(self, where: str, path: str) -> Path:
        """A datastore's file or folder (``azureml://datastores/<name>/paths/<path>``, the workspace's folder
        ``datastores/<name>/``) or a job's (``azureml://jobs/<job>/outputs/<output>/paths/<path>``)."""
        store = self._store
        match = DATASTORE_PATH.match(path)
        if match:
            try:
                datastore_records.get(store, match.group("datastore"))
            except datastore_records.DatastoreNotFound:
                known = ", ".join(datastore_records.all_records(store))
                raise invalid(f"{where}: {path} names datastore {match.group('datastore')!r}, which the local "
                              f"workspace does not have (its datastores: {known}).") from None  # fmt: skip
            local = datastore_records.folder(store, match.group("datastore")) / match.group("path").strip("/")
        else:
            match = JOB_OUTPUT_PATH.match(path)
            if not match:
                raise not_available(f"{where} at {path}", "the local workspace reads azureml://datastores/<name>/"
                                    "paths/<path> and azureml://jobs/<job>/outputs/<output>/paths/<path>")  # fmt: skip
            try:
                spec = run_records.spec_of(store, match.group("job"))
            except run_records.RunNotFound:
                raise invalid(f"{where}: {path} names job {match.group('job')!r}, which the local workspace "
                              "does not have.") from None  # fmt: skip
            output, inner = match.group("output"), (match.group("path") or "").strip("/")
            if output == "artifacts":
                local = Path(spec["artifact_dir"]) / inner
            else:
                found = run_records.output_location(store, spec, output)
                if found is None:
                    known = ", ".join(run_records.output_names(spec)) or "none"
                    raise invalid(f"{where}: job {spec['run_id']} has no output {output!r} (its outputs: {known}).")
                local = found[1] / inner
        if not local.exists():
            raise invalid(f"{where}: {path} does not exist in the local workspace ({local}).")
        return local

    def _outputs(self, label: str, outputs) -> dict:
        """Each named output: its type and where it goes (a datastore and a path in it, ``{run-id}`` standing for
        the job's name), as Azure writes it: ``azureml/<job>/<output>/`` of the default datastore unless
        ``Output(path="azureml://datastores/<name>/paths/...")`` says where."""
        found = {}
        for name, value in (outputs or {}).items():
            if value is None:
                continue
            read = value.get if isinstance(value, dict) else lambda key, obj=value: getattr(obj, key, None)
            kind, path, mode = read("type") or AssetTypes.URI_FOLDER, read("path"), read("mode")
            if kind not in PATH_TYPES:
                raise not_available(f"Job {label}: output {name!r} of type {kind}",
                                    "the local workspace writes file and folder outputs")  # fmt: skip
            if mode == "direct":
                warn_ignored(f"Job {label}: output {name!r}", "mode='direct'", "the command gets a local folder")
            if read("name") or read("version"):
                warn_ignored(f"Job {label}: output {name!r}", "name= and version=",
                             "register the output after the job with ml_client.data or ml_client.models")  # fmt: skip
            if path is None:
                datastore = datastore_records.default_name(self._store)
                relative = run_records.OUTPUT_PATH.replace("{name}", name)
                if kind == AssetTypes.URI_FILE:  # Azure's name for the file is not known offline: the output's
                    relative += name
            else:
                path = str(path).replace("${{name}}", "{run-id}").replace("${{output_name}}", name)
                path = path.replace("${{default_datastore}}", datastore_records.default_name(self._store))
                match = DATASTORE_PATH.match(path)
                if not match:
                    raise invalid(f"Job {label}: output {name!r} path {path!r}: an output goes to a datastore, "
                                  "azureml://datastores/<datastore>/paths/<path>.")  # fmt: skip
                datastore, relative = match.group("datastore"), match.group("path")
                try:
                    datastore_records.get(self._store, datastore)
                except datastore_records.DatastoreNotFound:
                    raise invalid(f"Job {label}: output {name!r} names datastore {datastore!r}, which the local "
                                  "workspace does not have.") from None  # fmt: skip
            found[name] = {"type": kind, "datastore": datastore, "path": relative}
        return found

    def _target(self, label: str, compute) -> str:
        if compute is None or str(compute) in (SERVERLESS, f"azureml:{SERVERLESS}"):
            return SERVERLESS  # Azure runs it on serverless compute; here, this machine with no queue
        name = str(compute).removeprefix("azureml:").rstrip("/").rsplit("/computes/", 1)[-1]
        if name == "local":
            return name
        if compute_records.get(self._store, name) is None:
            known = ", ".join(compute_records.names(self._store)) or "none"
            # Azure's service refuses the job at submit with these words (seen in Azure/AML-Kubernetes#118 and
            # microsoft/physical-ai-toolchain#318: "(UserError) Unknown compute target '<name>'"); the details are
            # the local workspace's
            raise service_error(
                f"Unknown compute target '{name}'.",
                details=[{"code": "LocalWorkspace", "message": (
                    f"Job {label}: the local workspace has no compute named '{name}' (it has: {known}). Create it "
                    f"with ml_client.compute.begin_create_or_update(AmlCompute(name='{name}', ...)) first, or leave "
                    "compute= out to run on serverless compute.")}],
            )  # fmt: skip
        return name

    def _environment(self, label: str, environment, variables) -> dict:
        """The job's environment, whichever way it is named (an ``Environment``, a registered one, a curated one:
        see ``environments.job_environment``); a curated one this machine cannot serve is refused here, at submit."""
        return job_environment(self._client, f"Job {label}", environment, variables)

    def _sweep_spec(self, job: SweepJob) -> dict:
        label = job.name or job.display_name or "the sweep job"
        trial = job.trial
        algorithm = job.sampling_algorithm
        kind = (algorithm if isinstance(algorithm, str) else getattr(algorithm, "type", "random")).lower()
        if kind not in ("random", "grid"):
            raise not_available(
                f"Sweep {label}: sampling_algorithm={kind!r}",
                "Bayesian sampling needs Azure ML's optimisation service; use 'random' or 'grid'",
            )
        space = {}
        for name, expression in (job.search_space or {}).items():
            rest = expression._to_rest_object()
            space[name] = ["choice", [list(rest[1][0])]] if rest[0] == "choice" else rest
        if not space:
            raise invalid(f"Sweep {label}: its search space is empty; give inputs such as Choice([...]).")
        seed = getattr(algorithm, "seed", None)
        generator = {
            "name": kind.upper(),
            "parameter_space": space,
            "properties": {"rngSeed": seed} if seed is not None else {},
        }
        policy = {"name": "Default", "properties": {}}
        early = job.early_termination
        if early is not None:
            name = POLICIES.get(early.type)
            if name is None:
                raise not_available(f"Sweep {label}: early termination {early.type!r}")
            props = {
                "evaluation_interval": early.evaluation_interval or 1,
                "delay_evaluation": early.delay_evaluation or 0,
            }
            if name == "Bandit":
                # azure-ai-ml's BanditPolicy defaults both slacks to 0: the one given is the non-zero one
                slack = [a for a in ("slack_factor", "slack_amount") if getattr(early, a, None)]
                if not slack:
                    raise invalid(f"Sweep {label}: BanditPolicy needs slack_factor= or slack_amount= (above 0).")
                props[slack[0]] = getattr(early, slack[0])
            elif getattr(early, "truncation_percentage", None) is not None:
                props["truncation_percentage"] = early.truncation_percentage
            policy = {"name": name, "properties": props}
        try:
            sweep_rules.check_policy(policy)
        except sweep_rules.SweepError as exc:
            raise invalid(f"Sweep {label}: {exc}") from None
        if job.objective is None or not job.objective.primary_metric:
            raise invalid(f"Sweep {label}: .sweep(...) needs primary_metric= and goal=.")
        limits = job.limits
        if limits is None or not limits.max_total_trials:
            raise invalid(f"Sweep {label}: set_limits(max_total_trials=...) is needed (Azure needs it too).")
        trial_timeout = getattr(limits, "trial_timeout", None)
        child = self._command_spec(
            job,
            trial.command,
            trial.code,
            trial.environment,
            trial.environment_variables,
            job.inputs,
            job.outputs,
            trial_timeout,
            job.compute,
        )
        spec = sweeper.sweep_spec(
            child, generator, policy,
            primary_metric={"name": job.objective.primary_metric, "goal": job.objective.goal.lower()},
            max_total_runs=limits.max_total_trials,
            max_concurrent_runs=limits.max_concurrent_trials,
            max_duration_minutes=limits.timeout / 60 if limits.timeout else None,
            seed=seed,
        )  # fmt: skip
        return {**spec, "sdk": "v2"}

    # --- read --------------------------------------------------------------------------------------
    def _spec(self, name: str) -> dict:
        try:
            return run_records.spec_of(self._store, name)
        except run_records.RunNotFound:
            raise not_found("job", name, self._store) from None

    def get(self, name: str) -> Job:
        """The job as azure-ai-ml's ``CommandJob`` / ``SweepJob`` (or a v1 run's, read as a command job)."""
        spec = self._spec(name)
        return self._entity(spec)

    def _entity(self, spec: dict) -> Job:
        record = dict(spec.get("job") or {})
        if record and not spec.get("parent_run_id"):
            record.pop("name", None)
            job = Job._load(data=record)
            if isinstance(job, Command | Sweep):
                job = job._to_job()
        else:  # a sweep's trial (a command job with the trial's values), or a v1 run (its script, as a command)
            inputs = {
                k: v.get("value", (v.get("dataset") or {}).get("name")) for k, v in spec.get("inputs", {}).items()
            }
            command = spec.get("command") or " ".join(
                ["python", spec.get("script") or "", *spec.get("display_arguments", [])]
            )
            job = CommandJob(
                command=command,
                code=spec.get("source_directory"),
                inputs=inputs,
                compute=None if spec.get("target") == SERVERLESS else spec.get("target"),
                environment=spec.get("environment", {}).get("name"),
            )
        tags = run_records.mlflow_tags(self._store, spec)
        job.name = spec["run_id"]
        job.display_name = record.get("display_name") or spec["run_id"]
        job.experiment_name = spec["experiment"]
        job._status = watch.status(self._store, spec)
        job.tags = run_records.user_tags(tags)
        job.properties = {
            **run_records.properties_of(tags),
            "azureml.local.run_folder": str(self._store.run_dir(spec["run_id"])),
            "mlflow.runId": spec["mlflow_run_id"],
        }
        if tags.get("azureml.error"):
            job.properties["azureml.error"] = tags["azureml.error"][-2000:]
        if tags.get("azureml.cancel_reason"):
            job.properties["azureml.cancelReason"] = tags["azureml.cancel_reason"]
        if isinstance(job, SweepJob):
            best = run_records.properties_of(tags).get("best_child_run_id")
            if best:
                job.properties["best_child_run_id"] = best
        self._as_azure_reports(job, spec)
        return job

    def _as_azure_reports(self, job: Job, spec: dict) -> None:
        """What Azure's answer adds to the job: each named output's path, the ``default`` output (the job's logs
        and ./outputs), the studio link (here, the job's page in ``aml-offline mlflow-ui``), and for a serverless
        job the resources it ran with."""
        outputs = getattr(job, "outputs", None)
        if isinstance(outputs, dict):
            for name in run_records.output_names(spec):
                datastore, path = run_records.output_location(self._store, spec, name)
                if datastore is None:
                    continue  # recorded before outputs had paths: among the job's own files
                relative = path.relative_to(datastore_records.folder(self._store, datastore)).as_posix()
                kind = spec["outputs"][name]["type"]
                uri = f"azureml://datastores/{datastore}/paths/{relative}" + (
                    "" if kind == AssetTypes.URI_FILE else "/"
                )
                if isinstance(outputs.get(name), Output):
                    outputs[name].path = uri
                else:
                    outputs[name] = Output(type=kind, path=uri, mode="rw_mount")
            default = DEFAULT_OUTPUT.format(name=spec["run_id"])
            outputs.setdefault("default", Output(type=AssetTypes.URI_FOLDER, path=default, mode="rw_mount"))
        studio = JobService(endpoint=self._studio_url(spec), type="Studio")
        job.services = {**(getattr(job, "services", None) or {}), "Studio": studio}
        if spec.get("target") == SERVERLESS and isinstance(job, CommandJob):
            # azure-ai-ml sends no compute for a serverless job and Azure picks a size; what its answer puts in
            # compute and resources is not known offline: compute stays None, resources say one instance
            job.compute = None
            if job.resources is None:
                job.resources = JobResourceConfiguration(instance_count=1)

    def _studio_url(self, spec: dict) -> str:
        """The job's page in the MLflow UI that ``aml-offline mlflow-ui`` serves (Azure's is its studio page)."""
        experiment = self._store.experiment_id(spec["experiment"], create=False) or "0"
        port = os.environ.get("MLFLOW_PORT", "5000")  # the port aml-offline mlflow-ui listens on
        return f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{spec['mlflow_run_id']}"

    def list(self, *, parent_job_name=None, list_view_type=ListViewType.ACTIVE_ONLY, **kwargs) -> list[Job]:
        """Jobs, newest first (across experiments): the top-level ones (``list_view_type``: active ones, archived
        ones or all, as on Azure), or a sweep's trials (``parent_job_name``, archived or not, as on Azure)."""
        store = self._store
        if parent_job_name is not None:
            parent = self._spec(parent_job_name)
            ids = run_records.search(store, parent["experiment"], parent=parent_job_name)
        else:
            ids = []
            for exp in store.mlflow.search_experiments():
                ids += run_records.search(store, exp.name)
        specs = [run_records.spec_of(store, run_id) for run_id in ids]  # search lists only created runs
        if parent_job_name is None:
            view = str(getattr(list_view_type, "value", list_view_type) or ListViewType.ACTIVE_ONLY.value).lower()
            if view not in ("activeonly", "archivedonly", "all"):
                raise invalid(f"jobs.list: list_view_type {list_view_type!r}: use azure.ai.ml.constants.ListViewType.")
            if view != "all":
                archived = {s["run_id"] for s in specs if run_records.mlflow_tags(store, s).get(ARCHIVED_TAG) == "true"}
                specs = [s for s in specs if (s["run_id"] in archived) == (view == "archivedonly")]
        specs.sort(key=lambda spec: spec.get("created", 0), reverse=True)
        return [self._entity(spec) for spec in specs]

    def archive(self, name: str) -> None:
        """Hide the job from ``jobs.list()`` (``list_view_type=ListViewType.ARCHIVED_ONLY`` lists it)."""
        run_records.set_tags(self._store, self._spec(name), {ARCHIVED_TAG: "true"})

    def restore(self, name: str) -> None:
        """List an archived job again."""
        run_records.remove_tags(self._store, self._spec(name), [ARCHIVED_TAG])

    # --- follow -----------------------------------------------------------------------------------
    def stream(self, name: str) -> None:
        """Print the job's log as it is written until it ends, in azure-ai-ml's shape (``RunId``, ``Web View``, a
        ``Streaming user_logs/std_log.txt`` header, the log, the ``Execution Summary``); a failed job raises
        ``JobException`` with its error as Azure's run history gives it.  (Azure prints nothing of the log for a
        job that had already ended; here a job ends in seconds, so its log is printed whole then.)"""
        spec = self._spec(name)
        log_name = spec.get("log", DRIVER_LOG)
        log = Path(spec["artifact_dir"]) / log_name
        web = self._studio_url(spec)  # Azure prints its studio link; here the job's page in aml-offline mlflow-ui
        out = sys.stdout
        out.write(f"RunId: {name}\nWeb View: {web}\n")
        header = f"\nStreaming {log_name}\n" + "=" * (10 + len(log_name)) + "\n\n"
        offset = 0
        while True:
            status = watch.status(self._store, spec)
            offset = _print_from(log, offset, header=header if offset == 0 else "")
            if status in TERMINAL:
                break
            time.sleep(0.5)
        _print_from(log, offset, whole=True, header=header if offset == 0 else "")
        out.write(f"\nExecution Summary\n=================\nRunId: {name}\nWeb View: {web}\n\n")
        out.flush()
        if status == "Failed":
            tags = run_records.mlflow_tags(self._store, spec)
            # the shape of Azure's run-history error (``RunDetails.error.as_dict()``)
            error = {
                "error": {"code": "UserError", "message": tags.get("azureml.error", "unknown error"),
                          "message_parameters": {}, "details": []},
                "time": "0001-01-01T00:00:00.000Z",
            }  # fmt: skip
            raise JobException(
                message=f"Exception : \n {json.dumps(error, indent=4)} ",
                target=ErrorTarget.JOB,
                no_personal_data_message="Exception raised on failed job.",
                error_category=ErrorCategory.SYSTEM_ERROR,
            )

    def begin_cancel(self, name: str, **kwargs):
        """Ask the job (a sweep: and its trials) to stop; its supervisor ends every process and marks it Canceled."""
        spec = self._spec(name)
        if current_status(self._store, spec) not in TERMINAL:
            watch.request_cancel(self._store, spec, f"canceled by the user at {time.strftime('%H:%M:%S')}")
        return done(None)

    def download(self, name: str, *, download_path=".", output_name=None, all=False) -> None:
        """As azure-ai-ml lays a job's files out: the default output (its ``outputs/``, ``logs/``, ``user_logs/``)
        into ``download_path/artifacts/``, a named output into ``download_path/named-outputs/<name>/``.  Without
        ``output_name`` only the default output comes; ``all=True`` brings every one.  An output the job does not
        have brings nothing, as on Azure (which only logs it)."""
        spec = self._spec(name)
        status = watch.status(self._store, spec)
        if status not in TERMINAL:  # azure-ai-ml's check and words
            terminal = RunHistoryConstants.TERMINAL_STATUSES
            msg = f"This job is in state {status}. Download is allowed only in states {terminal}"
            raise JobException(message=msg, target=ErrorTarget.JOB, no_personal_data_message=msg,
                               error_category=ErrorCategory.USER_ERROR)  # fmt: skip
        target = Path(download_path)
        artifacts = "artifacts"
        if spec.get("type") == "hyperdrive":  # as azure-ai-ml: the best trial's, then the sweep's logs
            tags = run_records.mlflow_tags(self._store, spec)
            best = run_records.properties_of(tags).get("best_child_run_id")
            if best:
                self.download(best, download_path=download_path, output_name=output_name, all=all)
            if output_name:
                return
            artifacts, output_name, all = "hd-artifacts", None, False
        wanted = None if (all and not output_name) else {output_name or "default"}
        for item in ["default", *run_records.output_names(spec)]:
            if wanted is not None and item not in wanted:
                continue
            if item == "default":
                shutil.copytree(Path(spec["artifact_dir"]), target / artifacts, dirs_exist_ok=True)
                continue
            _, source = run_records.output_location(self._store, spec, item)
            destination = target / "named-outputs" / item
            if source.is_dir():
                shutil.copytree(source, destination, dirs_exist_ok=True)
            elif source.is_file():  # a uri_file output: the file, in its output's folder
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination / source.name)


def _asset_reference(where: str, path: str) -> tuple[str, str]:
    """``azureml:name:version``, ``azureml:name@latest`` (or ``azureml:name``): the asset's name and version."""
    asset = path.removeprefix("azureml:")
    name, version = asset.split("@", 1) if "@" in asset else (asset.rsplit(":", 1) + ["latest"])[:2]
    if version != "latest" and not str(version).isdigit():
        raise invalid(f"{where} names {path!r}: use name:version or name@latest.")
    return name, version


def _quiet(record: dict) -> dict:
    """The job's dict without an inline environment's bare name, which azure-ai-ml warns about each time it reads
    the job back (it registers such an environment anonymously, without the name, on Azure too)."""
    for holder in (record, record.get("trial") or {}):
        env = holder.get("environment")
        if isinstance(env, dict) and env.get("name") and not env.get("version"):
            holder["environment"] = {k: v for k, v in env.items() if k != "name"}
    return record


def _print_from(path: Path, offset: int, whole: bool = False, header: str = "") -> int:
    """Print what the log has past ``offset`` (whole lines, unless ``whole``), after ``header`` when there is any."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return offset
    if not whole:
        if b"\n" not in chunk:
            return offset
        chunk = chunk[: chunk.rindex(b"\n") + 1]  # whole lines only
    if not chunk:
        return offset
    sys.stdout.write(header + chunk.decode(errors="replace"))
    sys.stdout.flush()
    return offset + len(chunk)
