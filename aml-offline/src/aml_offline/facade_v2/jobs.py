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
import re
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import CommandJob, Environment, Job
from azure.ai.ml.entities._builders.command import Command
from azure.ai.ml.entities._builders.sweep import Sweep
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, JobException
from azure.ai.ml.operations import JobOperations as AzureJobOperations
from azure.ai.ml.sweep import SweepJob

from aml_offline.execution import snapshot, sweep_rules, sweeper, watch
from aml_offline.execution.supervisor import start_supervisor
from aml_offline.execution.sweeper import SYSTEM_TAG
from aml_offline.facade_v2._common import done, invalid, not_found
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import compute as compute_records
from aml_offline.records import datasets as dataset_records
from aml_offline.records import runs as run_records
from aml_offline.records.runs import DRIVER_LOG
from aml_offline.records.status import TERMINAL, current_status

DEFAULT_DURATION = 2592000
#: The in-script ``Run.get_context()`` of the local workspace (a v2 script that also uses azureml-core gets it)
RUNTIME_DIR = Path(__file__).resolve().parent.parent / "facade" / "runtime"
#: Azure's curated environments: locally they are this machine's Python (which has what they hold for this project)
CURATED = ("azureml://registries/azureml/", "azureml:AzureML-", "AzureML-")
#: SDK v2's sweep early-termination policies by their ``type``, as the sweep rules name them
POLICIES = {"bandit": "Bandit", "median_stopping": "MedianStopping", "truncation_selection": "TruncationSelection"}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in some containers)
        return "local"


#: Azure's rule for a job's name
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")


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
        """Submit a ``command(...)`` job or a sweep of one; returns the job at once (it runs in the background)."""
        if isinstance(job, Command):
            job = job._to_job()
        elif isinstance(job, Sweep):
            job = job._to_job()
        if not isinstance(job, CommandJob | SweepJob):
            raise not_available(
                f"jobs.create_or_update({type(job).__name__})",
                "the local workspace runs command jobs and sweep jobs (no pipelines, AutoML, "
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
            "outputs": sorted(outputs or {}),
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
        """One input as the supervisor takes it: a literal, or a data set made local before the job runs."""
        if isinstance(value, dict):  # a sweep job's inputs come as their dicts
            value = SimpleNamespace(**value) if "path" in value else value.get("default", value.get("value"))
        if not hasattr(value, "type") or not hasattr(value, "path"):
            return {"value": value if isinstance(value, str) else json.dumps(value)}
        kind, path = value.type, value.path
        if kind not in (AssetTypes.URI_FOLDER, AssetTypes.URI_FILE):
            raise not_available(
                f"Job {label}: input {name!r} of type {kind}",
                "the local workspace passes uri_folder and uri_file inputs",
            )
        if path is None:
            raise invalid(f"Job {label}: input {name!r} has no path.")
        path = str(path)
        mode = "download" if getattr(value, "mode", None) == "download" else "mount"
        entry = {"name": None, "version": None, "mode": mode, "input_name": name}
        if path.startswith("azureml:") and not path.startswith("azureml://"):
            asset = path.removeprefix("azureml:")
            asset_name, version = asset.split("@", 1) if "@" in asset else (asset.rsplit(":", 1) + ["latest"])[:2]
            if version not in ("latest", None) and not str(version).isdigit():
                raise invalid(
                    f"Job {label}: input {name!r} names data asset {path!r}: use name:version or name@latest."
                )
            try:
                record = dataset_records.get(self._store, asset_name, version)
            except dataset_records.DatasetRecordNotFound:
                known = ", ".join(dataset_records.names(self._store)) or "none"
                raise invalid(
                    f"Job {label}: input {name!r} names data asset {path!r}, which the local workspace "
                    f"does not have (its data assets: {known}). Create it with ml_client.data."
                    "create_or_update(Data(...)) first (notebooks/v2/01-data)."
                ) from None
            entry.update(name=record["name"], version=record["version"], paths=record["paths"])
        elif path.startswith(("azureml://", "wasbs://", "abfss://")):
            raise not_available(
                f"Job {label}: input {name!r} at {path}",
                "datastore paths are Azure's; use a data asset, a local folder or a web address",
            )
        elif path.startswith(("http://", "https://")):
            entry["paths"] = [path]
        else:
            local = Path(path).resolve()
            if not local.exists():
                raise invalid(f"Job {label}: input {name!r} path {path} does not exist.")
            entry["paths"] = [str(local)]
        return {"dataset": entry, "type": kind}

    def _target(self, label: str, compute) -> str:
        if compute is None:
            raise not_available(
                f"Job {label}: serverless compute (no compute=)",
                "name a cluster made with ml_client.compute.begin_create_or_update(AmlCompute(...))",
            )
        name = str(compute).removeprefix("azureml:")
        if name == "local":
            return name
        if compute_records.get(self._store, name) is None:
            known = ", ".join(compute_records.names(self._store)) or "none"
            raise invalid(
                f"Job {label}: compute {name!r} does not exist in the local workspace (it has: {known}). "
                "Create it first (notebooks/v2/02-compute)."
            )
        return name

    def _environment(self, label: str, environment, variables) -> dict:
        variables = {str(k): str(v) for k, v in (variables or {}).items()}
        if isinstance(environment, Environment):
            return environment_spec(environment, variables)
        if isinstance(environment, str) and environment.startswith(CURATED):
            warn_ignored(
                f"Job {label}",
                f"environment={environment}",
                "a curated environment runs on this machine's Python locally",
            )
            return curated_spec(environment, variables)
        if environment is None:
            raise invalid(f"Job {label}: command(...) needs an environment (an Environment(...) or a curated one).")
        raise not_available(
            f"Job {label}: environment={environment!r}",
            "registered environments are Azure's; pass Environment(conda_file=..., image=...) "
            "itself, as the v2 notebooks do",
        )

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
                compute=spec.get("target"),
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
        return job

    def list(self, *, parent_job_name=None, list_view_type=None, **kwargs) -> list[Job]:
        """Jobs, newest first (across experiments): every top-level job, or a sweep's trials (``parent_job_name``)."""
        if parent_job_name is not None:
            parent = self._spec(parent_job_name)
            ids = run_records.search(self._store, parent["experiment"], parent=parent_job_name)
        else:
            ids = []
            for exp in self._store.mlflow.search_experiments():
                ids += run_records.search(self._store, exp.name)
        specs = [run_records.spec_of(self._store, run_id) for run_id in ids]  # search lists only created runs
        specs.sort(key=lambda spec: spec.get("created", 0), reverse=True)
        return [self._entity(spec) for spec in specs]

    # --- follow -----------------------------------------------------------------------------------
    def stream(self, name: str) -> None:
        """Print the job's log as it is written until it ends, as azure-ai-ml does; a failed job raises
        ``JobException`` with its error."""
        spec = self._spec(name)
        log = Path(spec["artifact_dir"]) / spec.get("log", DRIVER_LOG)
        web = f"local run folder {self._store.run_dir(name)} (browse all jobs with `make mlflow-ui`)"
        out = sys.stdout
        out.write(f"RunId: {name}\nWeb View: {web}\n\nStreaming {spec.get('log', DRIVER_LOG)}\n")
        out.write("=" * (10 + len(spec.get("log", DRIVER_LOG))) + "\n\n")
        offset = 0
        while True:
            status = watch.status(self._store, spec)
            offset = _print_from(log, offset)
            if status in TERMINAL:
                break
            time.sleep(0.5)
        _print_from(log, offset, whole=True)
        out.write(f"\nExecution Summary\n=================\nRunId: {name}\nWeb View: {web}\n\n")
        out.flush()
        if status == "Failed":
            tags = run_records.mlflow_tags(self._store, spec)
            error = {"code": "UserError", "message": tags.get("azureml.error", "unknown error"), "job": name}
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
        """The job's files (``outputs/``, ``logs/``, ``user_logs/``) into ``download_path/artifacts/``, as Azure
        lays out the default output; named outputs into ``download_path/named-outputs/<name>/``."""
        spec = self._spec(name)
        if current_status(self._store, spec) not in TERMINAL:
            raise invalid(f"Job {name} has not ended ({current_status(self._store, spec)}): wait for it first.")
        source = Path(spec["artifact_dir"])
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
        if output_name in (None, "default") or all:
            shutil.copytree(source, target / artifacts, dirs_exist_ok=True)
        for out in spec.get("outputs", []) if (all or output_name) else []:
            if all or out == output_name:
                folder = source / "outputs" / out
                if folder.is_dir():
                    shutil.copytree(folder, target / "named-outputs" / out, dirs_exist_ok=True)


def _quiet(record: dict) -> dict:
    """The job's dict without an inline environment's bare name, which azure-ai-ml warns about each time it reads
    the job back (it registers such an environment anonymously, without the name, on Azure too)."""
    for holder in (record, record.get("trial") or {}):
        env = holder.get("environment")
        if isinstance(env, dict) and env.get("name") and not env.get("version"):
            holder["environment"] = {k: v for k, v in env.items() if k != "name"}
    return record


def _print_from(path: Path, offset: int, whole: bool = False) -> int:
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
    sys.stdout.write(chunk.decode(errors="replace"))
    sys.stdout.flush()
    return offset + len(chunk)


def curated_spec(name: str, variables: dict) -> dict:
    """A curated environment (``AzureML-...``, ``azureml://registries/azureml/...``): locally, this machine's Python."""
    return {"name": name, "version": None, "user_managed": True, "pip": [], "conda": [], "docker_image": None,
            "environment_variables": variables}  # fmt: skip


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
