"""Turn a ``ScriptRunConfig`` into a local run: check it, write its spec, start its supervisor."""

from __future__ import annotations

from pathlib import Path

from azureml.exceptions import UserErrorException

from helpers.aml.local._common import warn_ignored
from helpers.aml.local.runs import Run, create_run_record, new_run_id, start_supervisor

DEFAULT_DURATION = 2592000  # ScriptRunConfig.MAX_DURATION_SECONDS_DEFAULT


def submit_script_run(experiment, config, tags: dict, parent_run_id: str | None = None, **kwargs) -> Run:
    spec = script_run_spec(experiment, config)
    spec["run_id"] = new_run_id(experiment.name)
    spec["parent_run_id"] = parent_run_id
    run = create_run_record(experiment, spec, tags)
    start_supervisor(run)
    return run


def script_run_spec(experiment, config) -> dict:
    """Everything the supervisor needs, as plain JSON."""
    source = Path(config.source_directory or ".").resolve()
    if not source.is_dir():
        raise UserErrorException(f"source_directory {source} does not exist.")
    if config.command:
        raise UserErrorException(
            "The local workspace runs script= submissions, not command=; pass script and arguments."
        )
    if not config.script or not (source / config.script).is_file():
        raise UserErrorException(f"Script {config.script!r} not found in source_directory {source}.")
    rc = config.run_config
    workers = _worker_count(experiment.workspace, rc)
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
        "target": _target_name(experiment.workspace, rc.target),
        "environment": _environment_spec(rc.environment),
        "max_run_duration_seconds": rc.max_run_duration_seconds or DEFAULT_DURATION,
        "workers": workers,
    }


def _worker_count(workspace, rc) -> int:
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
    target = _target_name(workspace, rc.target)
    if target != "local":
        max_nodes = workspace.compute_targets[target]._row["max_nodes"]
        if workers > max_nodes:
            raise UserErrorException(
                f"worker_count={workers} needs {workers} nodes, but cluster {target!r} has max_nodes={max_nodes}: "
                "ask for fewer workers or scale the cluster up (notebook 02-compute)."
            )
    return workers


def _encode_argument(arg):
    from helpers.aml.local.datasets import DatasetConsumptionConfig, FileDataset

    if isinstance(arg, DatasetConsumptionConfig):
        return {"dataset": arg._to_spec()}
    if isinstance(arg, FileDataset):
        raise UserErrorException("Pass a dataset argument as dataset.as_mount() or dataset.as_download(), as on Azure.")
    if type(arg).__module__.startswith("azureml."):
        raise UserErrorException(
            f"Argument {arg!r} is an Azure ML object; in local mode use the datasets from "
            "helpers.aml (the local workspace's), not azureml.core's."
        )
    return str(arg)


def _target_name(workspace, target) -> str:
    name = getattr(target, "name", target) or "local"
    if name != "local" and name not in workspace.compute_targets:
        raise UserErrorException(
            f"Compute target {name!r} does not exist in the local workspace: create it first "
            "(notebook 02-compute) or use 'local'."
        )
    return name


def _environment_spec(env) -> dict:
    deps = env.python.conda_dependencies if env is not None else None
    spec = {
        "name": getattr(env, "name", None) or "default-environment",
        "version": getattr(env, "version", None),
        "user_managed": bool(env is not None and env.python.user_managed_dependencies),
        "pip": list(deps.pip_packages) if deps is not None else [],
        "conda": list(deps.conda_packages) if deps is not None else [],
        "docker_image": getattr(getattr(env, "docker", None), "base_image", None),
    }
    return spec
