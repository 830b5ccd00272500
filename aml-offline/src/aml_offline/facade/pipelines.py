"""Pipelines of the local workspace (twins of ``azureml.pipeline.core``'s workspace-bound classes).

``Pipeline(ws, steps)`` reads azureml's own step objects (``PythonScriptStep``, ``CommandStep``, ``HyperDriveStep``
and what they hold: ``PipelineData``, ``PipelineParameter``, ``OutputFileDatasetConfig``, datasets, data references,
``StepSequence``, which build without a workspace and stay azureml's; ``PipelineParameter`` is a subclass of azureml's
that also holds this workspace's file datasets) into the plain step graph that the execution
layer runs (:mod:`aml_offline.execution.pipelines`): every step a run of this workspace, a child of the pipeline run,
with its data in the datastore folders.  ``experiment.submit(pipeline, pipeline_parameters=...)`` and
``pipeline.submit(...)`` start it; ``PipelineRun`` and ``StepRun`` read it, with azureml-pipeline's names, words
and statuses (a completed pipeline or step is ``Finished``, as the pipeline service says; its run record, in
``get_details()``, says ``Completed``).  ``pipeline.publish()`` keeps the graph and its snapshots in the workspace,
so ``PublishedPipeline.get(ws, id).submit(...)`` re-runs it; schedules and pipeline endpoints need Azure's services
and say so.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from pathlib import Path

from azureml.core.runconfig import RunConfiguration
from azureml.data.constants import _DATASET_ARGUMENT_TEMPLATE, _DATASET_OUTPUT_ARGUMENT_TEMPLATE
from azureml.data.data_reference import DataReference
from azureml.data.datapath import DataPath
from azureml.data.dataset_consumption_config import DatasetConsumptionConfig as AzureConsumption
from azureml.data.output_dataset_config import OutputDatasetConfig, OutputFileDatasetConfig
from azureml.exceptions import ActivityFailedException, SnapshotException, UserErrorException
from azureml.pipeline.core import Module as AzureModule
from azureml.pipeline.core import Pipeline as AzurePipeline
from azureml.pipeline.core import PipelineData, PipelineStep, StepSequence
from azureml.pipeline.core import PipelineDraft as AzurePipelineDraft
from azureml.pipeline.core import PipelineEndpoint as AzurePipelineEndpoint
from azureml.pipeline.core import PipelineRun as AzurePipelineRun
from azureml.pipeline.core import PortDataReference as AzurePortDataReference
from azureml.pipeline.core import PublishedPipeline as AzurePublishedPipeline
from azureml.pipeline.core import Schedule as AzureSchedule
from azureml.pipeline.core import StepRun as AzureStepRun
from azureml.pipeline.core import StepRunOutput as AzureStepRunOutput
from azureml.pipeline.core.graph import InputPortBinding, OutputPortBinding, ParamDef, PipelineDataset, _PipelineIO
from azureml.pipeline.core.graph import PipelineParameter as AzurePipelineParameter
from azureml.pipeline.core.module import Module
from azureml.pipeline.core.pipeline_output_dataset import PipelineOutputAbstractDataset
from azureml.pipeline.steps import CommandStep, HyperDriveStep, PythonScriptStep
from azureml.pipeline.steps import HyperDriveStepRun as AzureHyperDriveStepRun

from aml_offline.execution import pipelines as executor
from aml_offline.execution import snapshot, sweep_rules, watch
from aml_offline.facade._base import Offline, not_available, warn_ignored
from aml_offline.facade.datasets import DatasetConsumptionConfig, FileDataset, TabularDataset
from aml_offline.facade.datastores import Datastore, relative_path
from aml_offline.facade.environments import environment_spec
from aml_offline.facade.runs import (
    DEFAULT_DURATION,
    RUN_CLASSES,
    RUNTIME_DIR,
    Experiment,
    HyperDriveRun,
    Run,
    _target_name,
    _user,
    _worker_count,
)
from aml_offline.records import pipelines as pipeline_records
from aml_offline.records import runs as run_records
from aml_offline.records.status import TERMINAL

#: azureml-pipeline's words for a run's state: the pipeline service says Finished where run history says Completed
PIPELINE_STATUS = {"Completed": "Finished", "Queued": "Running", "Preparing": "Running", "Finalizing": "Running"}
STEP_STATUS = {"Completed": "Finished", "Preparing": "Queued", "Finalizing": "Running"}
ENDED = ("Finished", "Failed", "Canceled")
#: Parameters a HyperDriveStep keeps for the service, not for the script
HYPERDRIVE_METADATA = ("PrimaryMetricGoal", "PrimaryMetricName", "HyperDriveRunConfig", "HDReuseHashableRunConfig")
PUBLISHED_ENDPOINT = "aml-offline://{root}/pipelines/published/{id}"
WHY_SCHEDULE = (
    "schedules are run by Azure ML's scheduler service. Offline, submit the published pipeline yourself "
    "(PublishedPipeline.get(ws, id).submit(ws, experiment_name)) when it is due"
)
WHY_ENDPOINT = (
    "pipeline endpoints are REST endpoints of Azure ML's service. Offline, publish the pipeline "
    "(pipeline.publish()) and submit it by id (PublishedPipeline.get(ws, id).submit(...))"
)


# --- from azureml's steps to the executor's graph -------------------------------------------------------------


def _refusing(name: str, why: str):
    def refuse(*args, **kwargs):
        raise not_available(name, why)

    refuse.__not_available_offline__ = True  # the coverage table reads the mark
    return staticmethod(refuse)


WHY_TABULAR = (
    "a run of the local workspace gets files, not a tabular dataset: pass a file dataset "
    "(Dataset.File.from_files(...)) and read the files with pandas in the script"
)


def _plain_parameter(name: str, value):
    """A pipeline parameter's value as plain data: a number or text, a DataPath's datastore and path, or a file
    dataset's files (``{"dataset": {"name", "version", "paths"}}``)."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, DataPath):
        return {"datastore": value.datastore_name, "path": relative_path(value.path_on_datastore or "")}
    if isinstance(value, FileDataset):
        return {"dataset": {"name": value.name, "version": value.version, "paths": list(value._paths)}}
    if isinstance(value, TabularDataset):
        raise not_available(f"PipelineParameter {name!r} holding a TabularDataset", WHY_TABULAR)
    raise not_available(
        f"PipelineParameter {name!r} of type {type(value).__name__}",
        "the local workspace takes numbers, text, booleans, DataPath values and file datasets",
    )


def _parameter_kind(value) -> str:
    """What kind of value a plain parameter is, in azureml's words (for a value of the wrong kind at submit)."""
    if isinstance(value, dict):
        return "FileDataset" if "dataset" in value else "DataPath"
    return type(value).__name__


class PipelineParameter(Offline, AzurePipelineParameter):
    """``azureml.pipeline.core.PipelineParameter``, which also takes the local workspace's datasets as its default
    value (azureml's own checks for its own dataset classes); a subclass of azureml's, so its steps take it as
    the parameter it is."""

    _azure_class = AzurePipelineParameter

    def __init__(self, name, default_value):
        if isinstance(default_value, FileDataset | TabularDataset):
            self.name = name
            self.default_value = default_value
            return
        super().__init__(name, default_value)


def _training_output(output) -> dict | None:
    training = getattr(output, "_training_output", None)
    if training is None:
        return None
    return {"type": training.type, "model_file": training.model_file, "metric": training.metric,
            "iteration": training.iteration}  # fmt: skip


class _GraphBuilder:
    """azureml's steps, as the plain graph the executor runs (what azureml's ``_PipelineGraphBuilder`` builds for
    the service: closure, run-after order, ``StepSequence``), with azureml's words for what it refuses."""

    def __init__(self, workspace, default_datastore, default_source_directory, resolve_closure):
        self.workspace = workspace
        self.default_datastore = default_datastore
        self.default_source_directory = default_source_directory
        self.resolve_closure = resolve_closure
        self.nodes: dict[int, str] = {}  # id(step) -> node id
        self.steps: dict[int, PipelineStep] = {}
        self.after: dict[int, list[PipelineStep]] = {}
        self.parameters: dict[str, object] = {}

    # --- which steps, in which order ------------------------------------------------------------------
    def collection(self, item) -> list[PipelineStep]:
        if isinstance(item, PipelineData):
            if item._producer is None:
                raise ValueError(
                    f"Cannot build graph as step output [{item._name}] does not have a producer. "
                    "Please add to the outputs list of the step that produces it"
                )
            item = item._producer
        if isinstance(item, PipelineStep):
            return self.step(item)
        if isinstance(item, StepSequence):
            groups = [self.collection(part) for part in item]
            for before, after in zip(groups, groups[1:], strict=False):
                for step in after:
                    self.after[id(step)].extend(before)
            return [step for group in groups for step in group]
        if isinstance(item, list | tuple):
            return [step for part in item for step in self.collection(part)]
        raise NotImplementedError(f"Can not add object of type {type(item).__name__} to Pipeline.")

    def step(self, step: PipelineStep) -> list[PipelineStep]:
        if id(step) in self.nodes:
            return [step]
        self.nodes[id(step)] = uuid.uuid4().hex[:8]
        self.steps[id(step)] = step
        self.after[id(step)] = []
        added = [step]
        for producer in _producers(step):
            if id(producer) not in self.nodes:
                if not self.resolve_closure:
                    raise ValueError(
                        f"Step {step.name} reads an output of step {producer.name}, which is not in the pipeline: "
                        "add it to the steps, or leave resolve_closure on."
                    )
                added += self.step(producer)
        for before in step.run_after_steps:
            if id(before) not in self.nodes:
                if not self.resolve_closure:
                    raise ValueError(
                        f"Step {step.name} runs after step {before.name}, which is not in the pipeline: add it to the "
                        "steps, or leave resolve_closure on."
                    )
                added += self.step(before)
            self.after[id(step)].append(before)
        return added

    def graph(self, name) -> dict:
        steps = [self.plain(self.steps[key], node) for key, node in self.nodes.items()]
        return {"name": name, "steps": steps, "parameters": dict(self.parameters)}

    # --- one step ------------------------------------------------------------------------------------
    def plain(self, step: PipelineStep, node: str) -> dict:
        if not isinstance(step, PythonScriptStep | CommandStep | HyperDriveStep):
            why = {
                "EstimatorStep": "Estimators are gone from azureml-core: use a PythonScriptStep (with a "
                "RunConfiguration for its environment)",
                "ModuleStep": "modules are Azure ML resources: use a PythonScriptStep",
                "MpiStep": "MPI jobs need several nodes: use a PythonScriptStep",
            }.get(type(step).__name__, "it runs on an Azure service; the local workspace runs PythonScriptStep, "
                                       "CommandStep and HyperDriveStep")  # fmt: skip
            raise not_available(f"{type(step).__name__} (step {step.name!r})", why)
        inputs = [self.input(step, item) for item in step._inputs]
        names = [name for name, _, _ in inputs]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"[{duplicate}] is repeated. Input port names must be unique.")
        outputs = dict(self.output(step, item) for item in step._outputs)
        arguments = [self.argument(step, arg, inputs) for arg in step._arguments]
        variables = {}
        for name, value in (step._params or {}).items():
            if name in HYPERDRIVE_METADATA:
                continue
            if isinstance(value, AzurePipelineParameter):
                self.parameter(value)
                value = {"parameter": value.name}
            variables[ParamDef._param_name_to_env_variable(name)] = value if isinstance(value, dict) else str(value)
        if getattr(step, "_runconfig_pipeline_params", None):
            warn_ignored(f"Step {step.name}", "runconfig_pipeline_params", "its run configuration is used as given")
        plain = {
            "node_id": node,
            "name": step.name,
            "step_type": type(step).__name__,
            "kind": "sweep" if isinstance(step, HyperDriveStep) else "run",
            "allow_reuse": bool(step._allow_reuse),
            "version": step._version,
            "after": [self.nodes[id(before)] for before in self.after[id(step)]],
            "inputs": {name: entry for name, entry, _ in inputs},
            "outputs": outputs,
        }
        if isinstance(step, HyperDriveStep):
            plain.update(self.hyperdrive(step, arguments, variables))
        elif isinstance(step, CommandStep):
            source = step._source_directory or self.default_source_directory
            plain["run"] = self.run_template(step, source, step._command, step._runconfig, step._compute_target,
                                             arguments, variables, program=step._command)  # fmt: skip
        else:
            source = Module.process_source_directory(
                step.name, step._source_directory or self.default_source_directory, step._script_name
            )
            plain["run"] = self.run_template(step, source, step._script_name, step._runconfig, step._compute_target,
                                             arguments, variables)  # fmt: skip
        return plain

    def run_template(self, step, source, script, runconfig, target, arguments, variables, program=None) -> dict:
        """What the run supervisor runs for the step (as a ScriptRunConfig's spec), ``{"input"/"output"/
        "parameter": name}`` standing for its data and parameters."""
        rc = runconfig if runconfig is not None else RunConfiguration()
        if target is None:
            target = rc.target
        if isinstance(target, tuple):
            target = target[0]
        target = _target_name(self.workspace, target)
        environment = environment_spec(rc.environment)
        environment["environment_variables"] = {**environment["environment_variables"], **variables}
        template = {
            "source_directory": str(Path(source).resolve()),
            "script": script,
            "arguments": arguments,
            "target": target,
            "environment": environment,
            "max_run_duration_seconds": rc.max_run_duration_seconds or DEFAULT_DURATION,
            "workers": _worker_count(self.workspace, rc, target),
            "runtime_dir": str(RUNTIME_DIR),
        }
        if program is not None:
            template["program"] = program
        return template

    def hyperdrive(self, step: HyperDriveStep, arguments: list, variables: dict) -> dict:
        config = step._hyperdrive_config
        if config.estimator is not None or config._run_config is None:
            raise UserErrorException(
                f"HyperDriveStep {step.name}: the local workspace sweeps a ScriptRunConfig; Estimators are gone from "
                "azureml-core: pass HyperDriveConfig(run_config=ScriptRunConfig(...))."
            )
        generator = config._generator_config
        if generator["name"] not in ("RANDOM", "GRID"):
            raise UserErrorException(
                f"HyperDriveStep {step.name}: BayesianParameterSampling needs Azure ML's Bayesian optimisation "
                "service; the local workspace runs RandomParameterSampling and GridParameterSampling."
            )
        try:
            sweep_rules.check_policy(config._policy_config)
        except sweep_rules.SweepError as exc:
            raise UserErrorException(f"HyperDriveStep {step.name}: {exc}") from None
        if config._resume_from or config._resume_child_runs:
            raise UserErrorException("resume_from / resume_child_runs are not supported by the local workspace.")
        src = config._run_config
        source = Module.process_source_directory(step.name, src.source_directory or ".", src.script)
        run = self.run_template(step, source, src.script, src.run_config, src.run_config.target, arguments, variables)
        sweep = {
            "generator": generator,
            "policy": config._policy_config,
            "primary_metric": config._primary_metric_config,
            "max_total_runs": config._max_total_runs,
            "max_concurrent_runs": config._max_concurrent_runs,
            "max_duration_minutes": config._max_duration_minutes,
            "seed": sweep_rules.seed_of(generator),
        }
        return {"run": run, "sweep": sweep}

    def parameter(self, parameter: AzurePipelineParameter) -> None:
        value = _plain_parameter(parameter.name, parameter.default_value)
        if parameter.name in self.parameters and self.parameters[parameter.name] != value:
            raise Exception(  # azureml's own words and type
                f"Pipeline parameters with same name {parameter.name} but different values "
                f"{self.parameters[parameter.name]}, {value} used"
            )
        self.parameters[parameter.name] = value

    # --- data --------------------------------------------------------------------------------------------
    def datastore_name(self, datastore) -> str:
        if datastore is None:
            datastore = self.default_datastore
        name = getattr(datastore, "name", datastore)
        Datastore(self.workspace, name)  # it exists (else azureml-core's UserErrorException, naming the others)
        return name

    def input(self, step, item) -> tuple[str, dict, object]:
        """``(input name, {"mode", "source"}, the object it reads)`` for one item of a step's inputs."""
        mode = "mount"
        if isinstance(item, InputPortBinding):
            name, mode, obj = item.name, item.bind_mode or "mount", item.bind_object
        elif isinstance(item, PipelineOutputAbstractDataset):
            name, mode, obj = item.input_name, item._input_mode or "mount", item._pipeline_data
        elif isinstance(item, AzureConsumption):
            name, mode, obj = item.name, item.mode, item.dataset
        elif isinstance(item, DataReference):
            name, mode, obj = item.data_reference_name, item.mode or "mount", item
        elif isinstance(item, AzurePortDataReference | PipelineData | _PipelineIO):
            name, obj = item.name, item
            if isinstance(item, _PipelineIO) and item._datapath_compute_binding is not None:
                mode = item._datapath_compute_binding._mode
        elif isinstance(item, PipelineDataset):
            name, mode, obj = item.name, item.bind_mode or "mount", item.dataset
        else:
            raise not_available(f"Step {step.name}: an input of type {type(item).__name__}")
        if mode == "direct":
            mode = "mount"  # the script gets the files' folder: the local run's input_datasets are folders
        if mode not in ("mount", "download"):
            raise not_available(f"Step {step.name}: input {name} in mode {mode!r}", "use mount or download")
        return name, {"mode": mode, "source": self.source(step, name, obj)}, obj

    def source(self, step, name, obj) -> dict:
        if isinstance(obj, AzurePipelineParameter):  # a dataset parameter: its value is chosen at submit
            if not isinstance(obj.default_value, FileDataset | TabularDataset):
                raise not_available(
                    f"Step {step.name}: input {name} from pipeline parameter {obj.name!r} of type "
                    f"{type(obj.default_value).__name__}",
                    "a step input's parameter holds a dataset (or, through DataPathComputeBinding, a DataPath)",
                )
            self.parameter(obj)
            return {"parameter": obj.name}
        if isinstance(obj, PipelineData | OutputPortBinding | OutputDatasetConfig):
            producer = obj._producer
            if isinstance(obj, OutputDatasetConfig):
                if type(obj) is not OutputFileDatasetConfig and not hasattr(obj, "_output_file_dataset_config"):
                    raise not_available(f"Step {step.name}: input {name} ({type(obj).__name__})")
                if hasattr(obj, "_output_file_dataset_config"):  # read_delimited_files() and friends: the files
                    warn_ignored(f"Step {step.name}", f"input {name} as a tabular dataset",
                                 "the step gets the output's files")  # fmt: skip
            if producer is None:
                raise ValueError(f"Input {name} on step {step.name} is not connected to any previous step")
            return {"node": self.nodes_for(producer, step), "output": _output_of(producer, obj)}
        if isinstance(obj, FileDataset):
            return {"dataset": {"name": obj.name, "version": obj.version, "paths": list(obj._paths)}}
        if isinstance(obj, TabularDataset):
            raise not_available(f"Step {step.name}: input {name} (a TabularDataset)", WHY_TABULAR)
        if isinstance(obj, AzurePortDataReference):
            return {"datastore": obj.datastore_name, "path": relative_path(obj.path_on_datastore or "")}
        if isinstance(obj, DataReference):
            return {"datastore": self.datastore_name(obj.datastore), "path": relative_path(obj.path_on_datastore or "")}
        if isinstance(obj, _PipelineIO):
            if obj._datapath_param is not None:
                self.parameter(obj._datapath_param)
                return {"parameter": obj._datapath_param.name}
            return {"datastore": obj._datapath.datastore_name, "path": relative_path(obj._datapath.path_on_datastore)}
        raise not_available(
            f"Step {step.name}: input {name} ({type(obj).__name__})",
            "the local workspace reads its own datasets (Dataset.File), datastore paths and other steps' outputs",
        )

    def nodes_for(self, producer, step) -> str:
        if id(producer) not in self.nodes:  # only with resolve_closure=False, which step() has refused already
            raise ValueError(f"Input on step {step.name} is connected to step {producer.name}, not in the pipeline")
        return self.nodes[id(producer)]

    def output(self, step, item) -> tuple[str, dict]:
        register = None
        if isinstance(item, PipelineOutputAbstractDataset):  # pipeline_data.as_dataset().register(...)
            if item._registration_name:
                register = {"name": item._registration_name, "description": None, "tags": {}}
            item = item._pipeline_data
        if isinstance(item, PipelineData | OutputPortBinding):
            name = item._output_name if isinstance(item, PipelineData) else item.name
            datastore = item.datastore if isinstance(item, PipelineData) else (item.datastore or item._datastore_name)
            return name, {
                "datastore": self.datastore_name(datastore),
                "path": f"azureml/{{run-id}}/{name}",
                "pipeline_output_name": item._pipeline_output_name if isinstance(item, PipelineData)
                else item.pipeline_output_name,
                "training_output": _training_output(item),
                "register": register,
            }  # fmt: skip
        if isinstance(item, OutputFileDatasetConfig):
            if item.destination:
                datastore, path = item.destination[0], item.destination[1] if len(item.destination) > 1 else ""
            else:
                datastore, path = None, "dataset/{run-id}/{output-name}"
            reg = item._registration
            return item.name, {
                "datastore": self.datastore_name(datastore),
                "path": relative_path(str(path or "").replace("{output-name}", item.name)) or item.name,
                "pipeline_output_name": None,
                "training_output": None,
                "register": {"name": reg.name, "description": reg.description, "tags": reg.tags or {}} if reg else None,
            }
        raise not_available(f"Step {step.name}: an output of type {type(item).__name__}")

    def argument(self, step, arg, inputs):
        """One of a step's arguments: text, or ``{"input"/"output"/"parameter": name}``."""
        if isinstance(arg, str):
            for template, kind in (
                (_DATASET_ARGUMENT_TEMPLATE, "input"),
                (_DATASET_OUTPUT_ARGUMENT_TEMPLATE, "output"),
            ):
                prefix = template.format("")
                if arg.startswith(prefix):
                    return {kind: arg[len(prefix) :]}
            return arg
        if isinstance(arg, AzurePipelineParameter):
            self.parameter(arg)
            return {"parameter": arg.name}
        if isinstance(arg, PipelineData | OutputPortBinding) and any(out is arg for out in step._outputs):
            return {"output": arg._output_name if isinstance(arg, PipelineData) else arg.name}
        if isinstance(arg, PipelineOutputAbstractDataset) and any(out is arg for out in step._outputs):
            return {"output": arg._pipeline_data._output_name}
        for name, _, obj in inputs:  # an input: the object itself, or what its binding reads
            item = next((i for i in step._inputs if _input_name(i) == name), None)
            if arg is obj or arg is item:
                return {"input": name}
        if isinstance(arg, InputPortBinding | AzureConsumption):
            return {"input": arg.name}
        if isinstance(arg, DataReference | AzurePortDataReference):
            return {"input": arg.data_reference_name}
        return str(arg)


def _input_name(item) -> str | None:
    try:
        return PipelineStep._get_input_port_name(item)
    except (AttributeError, ValueError):
        return getattr(item, "name", None)


def _producers(step: PipelineStep) -> list[PipelineStep]:
    """The steps whose outputs a step reads."""
    found = []
    for item in step._inputs:
        obj = item
        if isinstance(item, InputPortBinding):
            obj = item.bind_object
        elif isinstance(item, PipelineOutputAbstractDataset):
            obj = item._pipeline_data
        elif isinstance(item, AzureConsumption):
            obj = item.dataset
        data = isinstance(obj, PipelineData | OutputPortBinding | OutputDatasetConfig)
        producer = getattr(obj, "_producer", None) if data else None
        if isinstance(producer, PipelineStep) and producer is not step:
            found.append(producer)
    return found


def _output_of(producer: PipelineStep, obj) -> str:
    """The name of the producer's output that ``obj`` (what a later step reads) is."""
    for out in producer._outputs:
        inner = out._pipeline_data if isinstance(out, PipelineOutputAbstractDataset) else out
        if inner is obj or out is obj:
            return inner._output_name if isinstance(inner, PipelineData) else inner.name
        if isinstance(obj, OutputDatasetConfig) and isinstance(inner, OutputDatasetConfig):
            if inner._origin is obj._origin:
                return inner.name
    if isinstance(obj, PipelineData):  # a copy azureml made (an input renamed INPUT_x): the same output name
        return obj._output_name
    return obj.name


def _parameter_values(graph: dict, given: dict | None) -> dict:
    """The graph's parameters with the values given at submit, checked as azureml checks them."""
    values = dict(graph["parameters"])
    for key, value in (given or {}).items():
        if key not in values:
            raise Exception(f"Pipeline parameter with name {key} does not exist")  # azureml's words and type
        plain = _plain_parameter(key, value)
        if isinstance(values[key], dict) != isinstance(plain, dict) or (
            isinstance(plain, dict) and _parameter_kind(plain) != _parameter_kind(values[key])
        ):
            raise TypeError(
                f"Pipeline parameter with name {key} is of incorrect type {type(value).__name__}. Expected type: "
                f"{_parameter_kind(values[key])}"
            )
        values[key] = plain
    return values


def _submit(experiment, graph: dict, pipeline_parameters=None, *, continue_on_step_failure=False,
            regenerate_outputs=False, parent_run_id=None, tags=None, published_pipeline_id=None,
            snapshots=True) -> PipelineRun:  # fmt: skip
    values = _parameter_values(graph, pipeline_parameters)
    for step in graph["steps"]:
        what = "This step is eligible to reuse a previous run's output" if step["allow_reuse"] and not \
            regenerate_outputs else "This step will run and generate new outputs"  # fmt: skip
        print(f"Created step {step['name']} [{step['node_id']}][{step['step_type']}], ({what})")
    try:
        spec = executor.submit(
            experiment._store, experiment.name, graph, parameters=values, tags=tags or {}, submitted_by=_user(),
            continue_on_step_failure=continue_on_step_failure, regenerate_outputs=regenerate_outputs,
            parent_run_id=parent_run_id, published_pipeline_id=published_pipeline_id, snapshots=snapshots,
        )  # fmt: skip
    except snapshot.SnapshotError as exc:
        raise SnapshotException(str(exc)) from None
    except executor.PipelineError as exc:
        raise ValueError(str(exc)) from None
    print("Submitted PipelineRun", spec["run_id"])
    run = PipelineRun(experiment, spec["run_id"])
    print("Link to Azure Machine Learning Portal:", run.get_portal_url())
    return run


def _submit_arguments(kwargs: dict) -> dict:
    """What ``experiment.submit(pipeline, **kwargs)`` passes on, read as azureml-pipeline's ``_submit_pipeline``
    reads it."""
    out = {"continue_on_step_failure": False, "regenerate_outputs": False, "pipeline_parameters": None}
    for key, value in kwargs.items():
        if key in ("continue_on_step_failure", "regenerate_outputs", "pipeline_parameters"):
            out[key] = value
        elif key == "pipeline_params":
            out["pipeline_parameters"] = value
            logging.warning("The 'pipeline_params' argument is deprecated. Please use 'pipeline_parameters' instead.")
        elif key in ("parent_run_id", "_parent_run_id"):
            out["parent_run_id"] = value
        elif key in ("enable_email_notification", "credential_passthrough") and value:
            warn_ignored("Experiment.submit", key, "the local workspace sends no mail and runs as you")
    return out


# --- the pipeline ---------------------------------------------------------------------------------------------


class Pipeline(Offline):
    """Twin of ``azureml.pipeline.core.Pipeline``: azureml's steps, run by the local workspace."""

    _azure_class = AzurePipeline

    def __init__(self, workspace, steps, description=None, default_datastore=None, default_source_directory=None,
                 resolve_closure=True, _workflow_provider=None, _service_endpoint=None, **kwargs):  # fmt: skip
        for key, value in kwargs.items():
            if key != "enable_email_notification":
                raise ValueError(f"parameter {key} is not recognized for Pipeline ")
            if value:
                warn_ignored("Pipeline", key, "the local workspace sends no mail")
        self._workspace = workspace
        self._name = description
        self._description = description
        builder = _GraphBuilder(
            workspace,
            default_datastore if default_datastore is not None else workspace.get_default_datastore(),
            default_source_directory or str(Path.cwd()),
            resolve_closure,
        )
        builder.collection(steps)
        self._graph = builder.graph(description)

    @property
    def _store(self):
        return self._workspace._store

    def service_endpoint(self) -> str:
        return f"the local workspace in {self._store.root}"

    def validate(self) -> list[str]:
        """Errors in the pipeline (a cycle of steps, for one); an empty list when it can run."""
        try:
            executor.check(self._graph)
        except executor.PipelineError as exc:
            return [str(exc)]
        return []

    def submit(self, experiment_name, pipeline_parameters=None, continue_on_step_failure=False,
               regenerate_outputs=False, parent_run_id=None, credential_passthrough=None,
               **kwargs) -> PipelineRun:  # fmt: skip
        """Run the pipeline in experiment ``experiment_name`` (as ``Experiment(ws, name).submit(pipeline)``)."""
        for key in kwargs:
            if key != "enable_email_notification":
                raise ValueError(f"parameter {key} is not recognized for Pipeline ")
        experiment = Experiment(self._workspace, experiment_name)
        return _submit(experiment, self._graph, pipeline_parameters, continue_on_step_failure=continue_on_step_failure,
                       regenerate_outputs=regenerate_outputs, parent_run_id=parent_run_id)  # fmt: skip

    def _submit_locally(self, experiment, tags=None, parent_run_id=None, **kwargs) -> PipelineRun:
        """``experiment.submit(pipeline, ...)`` (the local workspace's Experiment calls this)."""
        args = _submit_arguments(kwargs)
        args.setdefault("parent_run_id", parent_run_id)
        return _submit(experiment, self._graph, args.pop("pipeline_parameters"), tags=tags, **args)

    def publish(self, name=None, description=None, version=None, continue_on_step_failure=None) -> PublishedPipeline:
        """Keep the pipeline, with snapshots of its steps' source folders, so it can be submitted again by id."""
        return _publish(self._workspace, self._graph, name, description, version, continue_on_step_failure)

    load_yaml = _refusing("Pipeline.load_yaml", "YAML pipelines are made of ModuleSteps, which are Azure resources")

    def __repr__(self):
        names = ", ".join(step["name"] for step in self._graph["steps"])
        return f"Pipeline(Steps: {names}; the local workspace)"


def _publish(workspace, graph, name, description, version, continue_on_step_failure) -> PublishedPipeline:
    store = workspace._store
    pipeline_id = str(uuid.uuid4())
    try:
        executor.check(graph)
        executor.check_snapshots(store, graph)
        graph = executor.take_snapshots(store, graph, pipeline_records.published_folder(store, pipeline_id))
    except snapshot.SnapshotError as exc:
        raise SnapshotException(str(exc)) from None
    except executor.PipelineError as exc:
        raise ValueError(str(exc)) from None
    record = pipeline_records.publish(store, {
        "id": pipeline_id, "name": name, "description": description, "version": version,
        "continue_on_step_failure": bool(continue_on_step_failure), "graph": graph, "graph_id": str(uuid.uuid4()),
        "created_by": _user(),
    })  # fmt: skip
    return PublishedPipeline._from_record(workspace, record)


class PublishedPipeline(Offline):
    """Twin of ``azureml.pipeline.core.PublishedPipeline``: a pipeline kept in the workspace, submitted by id."""

    _azure_class = AzurePublishedPipeline

    def __init__(self, name, graph_id, description, version, published_pipeline_id, status, endpoint,
                 total_run_steps, workspace, continue_on_step_failure=None, _pipeline_provider=None,
                 _service_endpoint=None, **kwargs):  # fmt: skip
        self._name = name
        self._graph_id = graph_id
        self._description = description
        self._version = version
        self._published_pipeline_id = published_pipeline_id
        self._status = status
        self._endpoint = endpoint
        self._total_run_steps = total_run_steps
        self._workspace = workspace
        self._continue_on_step_failure = continue_on_step_failure

    @classmethod
    def _from_record(cls, workspace, record: dict) -> PublishedPipeline:
        endpoint = PUBLISHED_ENDPOINT.format(root=workspace._store.root, id=record["id"])
        return cls(record["name"], record["graph_id"], record["description"], record["version"], record["id"],
                   record["status"], endpoint, len(record["graph"]["steps"]), workspace,
                   record["continue_on_step_failure"])  # fmt: skip

    name = property(lambda self: self._name)
    id = property(lambda self: self._published_pipeline_id)
    graph_id = property(lambda self: self._graph_id)
    description = property(lambda self: self._description)
    version = property(lambda self: self._version)
    status = property(lambda self: self._status)
    total_run_steps = property(lambda self: self._total_run_steps)
    continue_on_step_failure = property(lambda self: self._continue_on_step_failure)

    @property
    def endpoint(self) -> str:
        """Where Azure serves the pipeline's REST endpoint; offline an address that names the record (REST calls
        cannot reach it: submit with ``submit``)."""
        return self._endpoint

    def _record(self) -> dict:
        return pipeline_records.get_published(self._workspace._store, self.id)

    @staticmethod
    def get(workspace, id, _workflow_provider=None, _service_endpoint=None) -> PublishedPipeline:
        try:
            record = pipeline_records.get_published(workspace._store, id)
        except pipeline_records.PublishedPipelineNotFound as exc:
            raise UserErrorException(str(exc)) from None
        return PublishedPipeline._from_record(workspace, record)

    @staticmethod
    def list(workspace, active_only=True, _service_endpoint=None) -> list[PublishedPipeline]:
        return [PublishedPipeline._from_record(workspace, r)
                for r in pipeline_records.list_published(workspace._store, active_only)]  # fmt: skip

    def submit(self, workspace, experiment_name, pipeline_parameters=None, _workflow_provider=None,
               _service_endpoint=None, parent_run_id=None, continue_on_step_failure=None) -> PipelineRun:  # fmt: skip
        """Run the published pipeline (its scripts as they were when it was published)."""
        return self._run(Experiment(workspace, experiment_name), pipeline_parameters, parent_run_id,
                         continue_on_step_failure, tags=None)  # fmt: skip

    def _submit_locally(self, experiment, tags=None, parent_run_id=None, **kwargs) -> PipelineRun:
        args = _submit_arguments(kwargs)
        return self._run(experiment, args["pipeline_parameters"], args.get("parent_run_id", parent_run_id),
                         kwargs.get("continue_on_step_failure"), tags=tags)  # fmt: skip

    def _run(self, experiment, parameters, parent_run_id, continue_on_step_failure, tags) -> PipelineRun:
        record = self._record()
        if record["status"] != pipeline_records.ACTIVE:
            raise UserErrorException(f"Published pipeline {self.id} is {record['status']}: enable() it first.")
        if continue_on_step_failure is None:
            continue_on_step_failure = record["continue_on_step_failure"]
        return _submit(experiment, record["graph"], parameters, continue_on_step_failure=continue_on_step_failure,
                       parent_run_id=parent_run_id, tags=tags, published_pipeline_id=self.id,
                       snapshots=False)  # fmt: skip

    def enable(self):
        self._status = pipeline_records.set_status(self._workspace._store, self.id, pipeline_records.ACTIVE)["status"]

    def disable(self):
        self._status = pipeline_records.set_status(self._workspace._store, self.id, pipeline_records.DISABLED)["status"]

    def get_step_names(self) -> list[str]:
        return [step["name"] for step in self._record()["graph"]["steps"]]

    def __repr__(self):
        return f"Pipeline(Name: {self.name},\nId: {self.id},\nStatus: {self.status},\nEndpoint: {self.endpoint})"

    def _repr_html_(self):
        return (
            "<table><tr><th>Name</th><th>Id</th><th>Status</th><th>Endpoint</th></tr>"
            f"<tr><td>{self.name}</td><td>{self.id}</td><td>{self.status}</td><td>{self.endpoint}</td></tr></table>"
        )


# --- runs ------------------------------------------------------------------------------------------------------


def _step_run(experiment, run_id: str) -> StepRun:
    """A child of a pipeline run as azureml-pipeline rehydrates it: a reused step is the run it reused."""
    spec = run_records.spec_of(experiment._store, run_id)
    reused = (spec.get("step") or {}).get("reused")
    if spec.get("type") == executor.REUSED_STEP_RUN and reused:
        return StepRun(experiment, reused["run_id"], reused["pipeline_run_id"], reused["node_id"], _is_reused=True,
                       _current_node_id=spec["step"]["node_id"])  # fmt: skip
    return StepRun(experiment, run_id)


class PipelineRun(Run):
    """Twin of ``azureml.pipeline.core.PipelineRun``: a run of a pipeline, whose children are its steps' runs."""

    _azure_class = AzurePipelineRun

    def __init__(self, experiment, run_id, _service_endpoint=None, **kwargs):
        super().__init__(experiment, run_id)
        if self._spec.get("type") != executor.PIPELINE_RUN:
            raise UserErrorException(f"Run {run_id} is not a pipeline run (its type is {self._spec.get('type')}).")

    @staticmethod
    def get(workspace, run_id, _service_endpoint=None) -> PipelineRun:
        try:
            experiment = run_records.spec_of(workspace._store, run_id)["experiment"]
        except run_records.RunNotFound:
            raise UserErrorException(f"Pipeline run {run_id!r} was not found in the local workspace.") from None
        return PipelineRun(Experiment(workspace, experiment, _skip_name_validation=True), run_id)

    @staticmethod
    def get_pipeline_runs(workspace, pipeline_id, _service_endpoint=None) -> list[PipelineRun]:
        """The runs of a published pipeline, newest first."""
        store, runs = workspace._store, []
        for exp in store.mlflow.search_experiments():
            for run_id in run_records.search(store, exp.name):
                spec = run_records.spec_of(store, run_id)
                if spec.get("type") == executor.PIPELINE_RUN and spec.get("published_pipeline_id") == pipeline_id:
                    runs.append(PipelineRun(Experiment(workspace, exp.name, _skip_name_validation=True), run_id))
        return sorted(runs, key=lambda r: r._spec.get("created", 0), reverse=True)

    # --- status ------------------------------------------------------------------------------------------
    def get_status(self) -> str:
        """``Running``, then ``Finished``, ``Failed`` or ``Canceled`` (the pipeline service's words)."""
        status = super().get_status()
        return PIPELINE_STATUS.get(status, status)

    def get_details(self) -> dict:
        details = super().get_details()
        details["status"] = Run.get_status(self)  # the run record's word (Completed)
        return details

    def wait_for_completion(self, show_output=True, timeout_seconds=sys.maxsize, raise_on_error=True) -> str:
        """Wait for the pipeline run to end, showing each step's run as it goes; returns its final status."""
        print("PipelineRunId:", self.id)
        print("Link to Azure Machine Learning Portal:", self.get_portal_url())
        start = time.time()
        status = self.get_status()
        if show_output:
            old, seen = None, []
            while status not in ENDED:
                if status != old:
                    old = status
                    print("PipelineRun Status:", status)
                for step_run in sorted(self.get_steps(), key=lambda s: s._spec.get("created", 0)):
                    if step_run.id not in seen:
                        seen.append(step_run.id)
                        print("\n")
                        step_run.wait_for_completion(timeout_seconds=timeout_seconds - (time.time() - start),
                                                     raise_on_error=raise_on_error)  # fmt: skip
                        print("")
                if time.time() - start > timeout_seconds:
                    print("Timed out of waiting. Elapsed time:", time.time() - start)
                    break
                time.sleep(0.5)
                status = self.get_status()
            title = "\nPipelineRun Execution Summary"
            print(title)
            print("=" * len(title))
            print("PipelineRun Status:", status)
            error = self.get_details().get("error")
            if error and not raise_on_error:
                print("\nError:")
                print(json.dumps(error, indent=4))
        else:
            while status not in ENDED and time.time() - start <= timeout_seconds:
                time.sleep(0.5)
                status = self.get_status()
        details = self.get_details()
        if details.get("error") and raise_on_error:
            raise ActivityFailedException(error_details=json.dumps(details["error"], indent=4))
        if show_output:
            print(details)
            print("", flush=True)
        return status

    def cancel(self):
        """Cancel the pipeline run: its supervisor cancels the running steps, which end their processes."""
        if Run.get_status(self) not in TERMINAL:
            watch.request_cancel(self._store, self._spec, f"canceled by the user at {time.strftime('%H:%M:%S')}")

    # --- steps -------------------------------------------------------------------------------------------
    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True):  # fmt: skip
        """The runs of the steps that have started or were reused (a reused step: the run it reused), newest
        first; a step that has not started yet (or never ran) has none, as on Azure."""
        for run in super().get_children(tags=tags, properties=properties):
            if not (run._spec.get("step") or {}).get("started", True):
                continue
            step = _step_run(self.experiment, run.id)
            if (status is None or status in (step.get_status(), Run.get_status(step))) and (
                type is None or step.type == type
            ):
                yield step
            if recursive:
                yield from step.get_children(recursive=True)

    def get_steps(self):
        """The step runs of the steps that have started (or were reused)."""
        return self.get_children()

    def find_step_run(self, name) -> list[StepRun]:
        """The step runs of the step named ``name``."""
        return [step for step in self.get_children() if step.name == name]

    def get_pipeline_output(self, pipeline_output_name) -> PortDataReference:
        """The output named ``pipeline_output_name`` (``PipelineData(..., pipeline_output_name=...)``)."""
        for step in self.get_children():
            for name, out in step._outputs.items():
                if out.get("pipeline_output_name") == pipeline_output_name:
                    return step.get_output_data(name)
        raise UserErrorException(f"Pipeline run {self.id} has no pipeline output named {pipeline_output_name!r}.")

    get_graph = _refusing("PipelineRun.get_graph", "the local workspace keeps the graph as plain data, not a Graph")

    def publish_pipeline(self, name, description, version, continue_on_step_failure=None, **kwargs):
        """Publish the pipeline this run ran (its steps' snapshots as they ran)."""
        for key in kwargs:
            if key != "enable_email_notification":
                raise ValueError(f"parameter {key} is not recognized for method PipelineRun.publish_pipeline ")
        return _publish(self.experiment.workspace, self._spec["graph"], name, description, version,
                        continue_on_step_failure)  # fmt: skip

    def complete(self, _set_status=True):
        raise NotImplementedError("Complete is unsupported for Pipeline run.")

    def fail(self, error_details=None, error_code=None, _set_status=True):
        raise NotImplementedError("Fail is unsupported for Pipeline run.")

    def child_run(self, name=None, run_id=None, outputs=None):
        raise NotImplementedError("Child run is unsupported for Pipeline run.")


class StepRun(Run):
    """Twin of ``azureml.pipeline.core.StepRun``: the run of one step of a pipeline run."""

    _azure_class = AzureStepRun

    def __init__(self, experiment, step_run_id, pipeline_run_id=None, node_id=None, _service_endpoint=None,
                 _is_reused=False, _current_node_id=None, _reused_run_id=None, _reused_node_id=None,
                 _reused_pipeline_run_id=None, **kwargs):  # fmt: skip
        try:
            own = run_records.spec_of(experiment._store, step_run_id)["experiment"]
        except run_records.RunNotFound:
            raise UserErrorException(f"Step run {step_run_id!r} was not found in the local workspace.") from None
        if own != experiment.name:  # a reused step's run may belong to another experiment, as on Azure
            experiment = Experiment(experiment.workspace, own, _skip_name_validation=True)
        super().__init__(experiment, step_run_id)
        info = self._spec.get("step")
        if not info:
            raise UserErrorException(f"Run {step_run_id} is not the run of a pipeline step.")
        self._pipeline_run_id = pipeline_run_id or info["pipeline_run_id"]
        self._node_id = node_id or info["node_id"]
        self._is_reused = _is_reused
        self._current_node_id = _current_node_id
        self._reused_run_id = _reused_run_id
        self._reused_node_id = _reused_node_id
        self._reused_pipeline_run_id = _reused_pipeline_run_id

    @property
    def name(self) -> str:
        return self._spec["step"]["name"]

    @property
    def pipeline_run_id(self) -> str:
        return self._pipeline_run_id

    @property
    def _outputs(self) -> dict:
        return run_records.spec_of(self._store, self.id)["step"].get("outputs") or {}

    def get_status(self) -> str:
        """``NotStarted``, ``Queued``, ``Running``, then ``Finished``, ``Failed`` or ``Canceled``."""
        status = super().get_status()
        return STEP_STATUS.get(status, status)

    def get_details(self) -> dict:
        details = super().get_details()
        details["status"] = Run.get_status(self)
        return details

    def get_job_log(self) -> str:
        return self._read_log()

    def get_stdout_log(self) -> str:
        """The step's log (the local workspace keeps the script's output and errors in one log)."""
        return self._read_log()

    def get_stderr_log(self) -> str:
        return self._read_log()

    def get_outputs(self) -> dict:
        """``{output name: StepRunOutput}``."""
        return {name: StepRunOutput(None, self.pipeline_run_id, self, name, out) for name, out in self._outputs.items()}

    def get_output(self, name) -> StepRunOutput:
        outputs = self.get_outputs()
        if name not in outputs:
            raise UserErrorException(
                f"Step run {self.id} ({self.name}) has no output named {name!r}; its outputs: "
                f"{', '.join(outputs) or 'none'}."
            )
        return outputs[name]

    def get_output_data(self, name) -> PortDataReference:
        return self.get_output(name).get_port_data_reference()

    def wait_for_completion(self, show_output=True, timeout_seconds=sys.maxsize, raise_on_error=True) -> str:
        """Wait for the step run to end (with ``show_output``, streaming its log); returns its final status."""
        print("StepRunId:", self.id)
        print("Link to Azure Machine Learning Portal:", self.get_portal_url())
        start = time.time()
        status = self.get_status()
        if show_output:
            old, offset, streaming = None, 0, False
            while status not in ENDED:
                if status != old:
                    old = status
                    print("StepRun(", self.name, ") Status:", status)
                if not streaming and (self._artifacts / self._log_name).is_file():
                    streaming = True
                    print("\nStreaming " + self._log_name)
                    print("=" * (len(self._log_name) + 10))
                offset = self._print_log_from(offset)
                if time.time() - start > timeout_seconds:
                    print("Timed out of waiting. Elapsed time:", time.time() - start)
                    break
                time.sleep(0.5)
                status = self.get_status()
            if streaming:
                self._print_log_from(offset)
            title = "\nStepRun(" + self.name + ") Execution Summary"
            print(title)
            print("=" * len(title))
            print("StepRun(", self.name, ") Status:", status)
        else:
            while status not in ENDED and time.time() - start <= timeout_seconds:
                time.sleep(0.5)
                status = self.get_status()
        details = self.get_details()
        error = details.get("error")
        if show_output and error and not raise_on_error:
            print("\nError:")
            print(json.dumps(error, indent=4))
        if error and raise_on_error:
            raise ActivityFailedException(error_details=json.dumps(error, indent=4))
        if show_output:
            print(details)
            print("", flush=True)
        return status

    def cancel(self):
        if Run.get_status(self) not in TERMINAL:
            super().cancel()

    def complete(self, _set_status=True):
        raise NotImplementedError("Complete is unsupported for Step run.")

    def fail(self, error_details=None, error_code=None, _set_status=True):
        raise NotImplementedError("Fail is unsupported for Step run.")

    def child_run(self, name=None, run_id=None, outputs=None):
        raise NotImplementedError("Child run is unsupported for Step run.")


class StepRunOutput(AzureStepRunOutput):
    """An output of a step run (azureml-pipeline's class, whose data reference is the local workspace's)."""

    def get_port_data_reference(self) -> PortDataReference:
        out = self.step_output
        datastore = Datastore(self.step_run.experiment.workspace, out["datastore"])
        reference = DataReference(datastore=datastore, data_reference_name=self.name, path_on_datastore=out["path"])
        return PortDataReference(None, self.pipeline_run_id, reference, step_run=self.step_run)


class PortDataReference(AzurePortDataReference):
    """Twin of ``azureml.pipeline.core.PortDataReference``: a step's output, in a datastore folder."""

    def __init__(self, context, pipeline_run_id, data_reference, step_run=None):
        self.data_reference_name = data_reference.data_reference_name
        self._path_on_datastore = data_reference.path_on_datastore
        self.pipeline_run_id = pipeline_run_id
        self._data_reference = data_reference
        self._context = context
        self._experiment = getattr(context, "_experiment", None)
        self._step_run = step_run

    def download(self, local_path, overwrite=None, show_progress=None) -> int:
        """Copy the output's files into ``local_path``, under their path on the datastore (as Azure does:
        ``local_path/azureml/<step run id>/<output name>/...``); returns how many."""
        return self.datastore.download(local_path, prefix=self._path_on_datastore, overwrite=bool(overwrite),
                                       show_progress=show_progress is not False)  # fmt: skip


class HyperDriveStepRun(HyperDriveRun):
    """Twin of ``azureml.pipeline.steps.HyperDriveStepRun``: the sweep of a HyperDriveStep (locally the step's run
    is the sweep itself)."""

    _azure_class = AzureHyperDriveStepRun

    def __init__(self, step_run):
        step_type = step_run.properties.get("StepType", "Unknown")
        if step_type != "HyperDriveStep":
            raise ValueError("Step run with wrong type has been provided. step_type: " + step_type)
        super().__init__(step_run.experiment, step_run.id)
        self._step_run = step_run


# --- what needs Azure's services -------------------------------------------------------------------------------


class Schedule(Offline):
    """``azureml.pipeline.core.Schedule``: refused offline (Azure's scheduler runs schedules)."""

    _azure_class = AzureSchedule

    def __init__(self, *args, **kwargs):
        raise not_available("Schedule", WHY_SCHEDULE)

    create = _refusing("Schedule.create", WHY_SCHEDULE)
    create_for_pipeline_endpoint = _refusing("Schedule.create_for_pipeline_endpoint", WHY_SCHEDULE)
    get = _refusing("Schedule.get", WHY_SCHEDULE)
    list = _refusing("Schedule.list", WHY_SCHEDULE)
    get_all = _refusing("Schedule.get_all", WHY_SCHEDULE)
    get_schedules_for_pipeline_id = _refusing("Schedule.get_schedules_for_pipeline_id", WHY_SCHEDULE)


class PipelineEndpoint(Offline):
    """``azureml.pipeline.core.PipelineEndpoint``: refused offline (a REST endpoint of Azure's service)."""

    _azure_class = AzurePipelineEndpoint

    def __init__(self, *args, **kwargs):
        raise not_available("PipelineEndpoint", WHY_ENDPOINT)

    publish = _refusing("PipelineEndpoint.publish", WHY_ENDPOINT)
    get = _refusing("PipelineEndpoint.get", WHY_ENDPOINT)
    list = _refusing("PipelineEndpoint.list", WHY_ENDPOINT)


class PipelineDraft(Offline):
    """``azureml.pipeline.core.PipelineDraft``: refused offline (drafts are kept by Azure's service)."""

    _azure_class = AzurePipelineDraft
    WHY = "pipeline drafts are kept by Azure ML's service: build the Pipeline in code and publish() it"

    def __init__(self, *args, **kwargs):
        raise not_available("PipelineDraft", self.WHY)

    create = _refusing("PipelineDraft.create", WHY)
    get = _refusing("PipelineDraft.get", WHY)
    list = _refusing("PipelineDraft.list", WHY)


class PipelineModule(Offline):
    """``azureml.pipeline.core.Module``: refused offline (modules are Azure ML resources)."""

    _azure_class = AzureModule
    WHY = "modules are Azure ML resources: use a PythonScriptStep with the script in its source_directory"

    def __init__(self, *args, **kwargs):
        raise not_available("Module", self.WHY)

    create = _refusing("Module.create", WHY)
    get = _refusing("Module.get", WHY)
    process_source_directory = staticmethod(Module.process_source_directory)  # azureml's own check: no service
    module_def_builder = staticmethod(Module.module_def_builder)


#: What the boundary overlays (see ``aml_offline.facade.boundary``): the workspace-bound classes; the steps and
#: data classes stay azureml's, except ``PipelineParameter`` and ``DatasetConsumptionConfig``, whose checks know
#: only azureml's datasets (the twins are subclasses of azureml's, so the steps take them).  ``Module`` is overlaid
#: where notebooks import it, not in its own module (azureml's code imports it from there).
TWINS: dict[str, dict[str, type]] = {
    "azureml.pipeline.core": {"Pipeline": Pipeline, "PipelineRun": PipelineRun, "StepRun": StepRun,
                              "PipelineParameter": PipelineParameter,
                              "StepRunOutput": StepRunOutput, "PublishedPipeline": PublishedPipeline,
                              "PortDataReference": PortDataReference, "Schedule": Schedule,
                              "PipelineEndpoint": PipelineEndpoint, "PipelineDraft": PipelineDraft,
                              "Module": PipelineModule},
    "azureml.pipeline.core.pipeline": {"Pipeline": Pipeline},
    "azureml.pipeline.core.run": {"PipelineRun": PipelineRun, "StepRun": StepRun, "StepRunOutput": StepRunOutput},
    "azureml.pipeline.core.graph": {"PublishedPipeline": PublishedPipeline, "PortDataReference": PortDataReference,
                                    "PipelineParameter": PipelineParameter},
    "azureml.pipeline.core.schedule": {"Schedule": Schedule},
    "azureml.pipeline.core.pipeline_endpoint": {"PipelineEndpoint": PipelineEndpoint},
    "azureml.pipeline.core.pipeline_draft": {"PipelineDraft": PipelineDraft},
    "azureml.pipeline.steps": {"HyperDriveStepRun": HyperDriveStepRun},
    # DatasetConsumptionConfig("name", PipelineParameter(default_value=dataset)): azureml's checks its own datasets
    "azureml.data.dataset_consumption_config": {"DatasetConsumptionConfig": DatasetConsumptionConfig},
    "azureml.pipeline.steps.hyper_drive_step": {"HyperDriveStepRun": HyperDriveStepRun},
}  # fmt: skip


# experiment.get_runs(), Run.get(ws, id) and get_children() read pipeline and step runs as these twins
RUN_CLASSES.update({executor.PIPELINE_RUN: PipelineRun, executor.STEP_RUN: StepRun, executor.REUSED_STEP_RUN: StepRun})
