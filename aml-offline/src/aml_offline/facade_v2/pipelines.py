"""SDK v2 pipelines and components of the local workspace.

A ``@dsl.pipeline`` function builds azure-ai-ml's own ``PipelineJob`` (its nodes are ``command`` components: made
with ``command(...)``, loaded with ``load_component``, or got from ``ml_client.components``).
``ml_client.jobs.create_or_update(pipeline_job)`` hands it to :func:`submit`, which reads each node into a step of
the plain step graph that :mod:`aml_offline.execution.pipelines` runs, the executor SDK v1's pipelines use: each
node's command runs as a command job (``${{inputs.x}}`` / ``${{outputs.x}}`` filled in) that is a child job of the
pipeline job, in dependency order, data passing through datastore folders, and unchanged deterministic nodes reused.
``ml_client.components`` (:class:`ComponentOperations`) keeps components in the workspace, each version with a copy
of its code.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import CommandComponent, Component, PipelineJob
from azure.ai.ml.entities._builders.command import Command
from azure.ai.ml.entities._job.pipeline._io.base import NodeOutput, PipelineInput, PipelineOutput
from azure.ai.ml.operations import ComponentOperations as AzureComponentOperations

from aml_offline.execution import pipelines as executor
from aml_offline.execution import snapshot
from aml_offline.facade_v2._common import invalid, not_found
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import components as component_records

#: A node output bound to an output of the pipeline: ``${{parent.outputs.<name>}}``
PIPELINE_OUTPUT = re.compile(r"^\$\{\{\s*parent\.outputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
COMMAND_NODE = "command"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no user name in some containers)
        return "local"


# --- pipeline jobs -------------------------------------------------------------------------------------------


def submit(jobs, job: PipelineJob, *, experiment: str, compute=None, tags=None) -> str:
    """Run a ``PipelineJob`` (``jobs`` is the client's ``JobOperations``); returns the pipeline job's name."""
    label = job.display_name or job.name or "the pipeline job"
    if job.name and jobs._exists(job.name):
        raise invalid(f"A job named {job.name!r} exists already: jobs are never replaced; give another name.")
    graph = _graph(jobs, job, label, compute)
    if job.settings is not None and getattr(job.settings, "continue_on_step_failure", None):
        continue_on_step_failure = True
    else:
        continue_on_step_failure = False
    record = job._to_dict()
    record.pop("name", None)
    try:
        spec = executor.submit(
            jobs._store, experiment, graph, parameters={}, tags={**(job.tags or {}), **(tags or {})},
            submitted_by=_user(), continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=bool(job.settings is not None and job.settings.force_rerun), mlflow_ids=not job.name,
            extra={"sdk": "v2", "job": record, "display_name": job.display_name, "outputs": {}},
        )  # fmt: skip
    except snapshot.SnapshotError as exc:
        raise invalid(f"Pipeline job {label}: {exc}") from None
    except executor.PipelineError as exc:
        raise invalid(f"Pipeline job {label}: {exc}") from None
    return spec["run_id"]


def _graph(jobs, job: PipelineJob, label: str, compute) -> dict:
    """The pipeline job's nodes as the executor's steps (each a command job's spec, as ``jobs`` makes it)."""
    settings = job.settings
    default_compute = compute or job.compute or (settings.default_compute if settings is not None else None)
    force_rerun = bool(settings is not None and settings.force_rerun)
    steps, outputs = [], {}
    for name, node in (job.jobs or {}).items():
        if not isinstance(node, Command):
            kind = getattr(node, "type", type(node).__name__)
            raise not_available(
                f"Pipeline job {label}: node {name!r} of type {kind}",
                "the local workspace runs command nodes (command(...), load_component of a command component)",
            )
        component = _component(jobs._client, node.component, label, name)
        step_inputs, literal, bound = {}, {}, {}
        for input_name, node_input in (node.inputs or {}).items():
            value = node_input._data
            if isinstance(value, PipelineInput):  # the pipeline's input: its value, or the function's default
                given = (job.inputs or {}).get(value._port_name)
                value = given._data if given is not None else value._data
            if isinstance(value, NodeOutput):
                producer = value._owner.name if value._owner is not None else None
                if producer not in job.jobs:
                    raise invalid(f"Pipeline job {label}: input {input_name!r} of node {name!r} reads an output of a "
                                  "node that is not in the pipeline.")  # fmt: skip
                defined = component.inputs.get(input_name)
                bound[input_name] = {"input": input_name, "type": getattr(defined, "type", None) or "uri_folder"}
                mode = "download" if getattr(node_input, "mode", None) == "download" else "mount"
                step_inputs[input_name] = {"mode": mode, "source": {"node": producer, "output": value._port_name}}
            elif value is None:
                default = getattr(component.inputs.get(input_name), "default", None)
                if default is not None:
                    literal[input_name] = default
            else:
                literal[input_name] = value
        node_outputs = {}
        for output_name, node_output in (node.outputs or {}).items():
            data = node_output._data
            path = getattr(node_output, "path", None)
            bound_to = PIPELINE_OUTPUT.match(str(data)) if isinstance(data, str | PipelineOutput) else None
            if bound_to:  # ${{parent.outputs.x}}: an output of the pipeline
                pipeline_output = bound_to.group(1)
                outputs[pipeline_output] = {"node": name, "output": output_name}
                path = getattr((job.outputs or {}).get(pipeline_output), "path", None)
            if isinstance(path, str) and path.startswith("${{"):
                path = None
            defined = component.outputs.get(output_name)
            kind = getattr(node_output, "type", None) or getattr(defined, "type", None) or AssetTypes.URI_FOLDER
            node_outputs[output_name] = {"type": kind, "path": path, "mode": getattr(node_output, "mode", None)}
        code = _code_folder(component)
        environment = node.environment or component.environment
        variables = {**(getattr(component, "environment_variables", None) or {}),
                     **(node.environment_variables or {})}  # fmt: skip
        node.name = name  # the node's label in errors
        spec = jobs._command_spec(node, component.command, code, environment, variables, literal, node_outputs,
                                  getattr(node.limits, "timeout", None) if node.limits else None,
                                  node.compute or default_compute)  # fmt: skip
        spec["inputs"].update(bound)
        spec["display_arguments"] = [component.command]
        steps.append({
            "node_id": name,
            "name": name,
            "step_type": COMMAND_NODE,
            "kind": "run",
            "allow_reuse": bool(getattr(component, "is_deterministic", True)) and not force_rerun,
            "version": component.version,
            "after": [],
            "inputs": step_inputs,
            "outputs": {k: {**v, "pipeline_output_name": None} for k, v in spec["outputs"].items()},
            "run": spec,
            "record": {"job": {"display_name": name}},  # jobs.list(parent_job_name=...) names the child after its node
        })  # fmt: skip
    if not steps:
        raise invalid(f"Pipeline job {label} has no nodes: call components in the @dsl.pipeline function.")
    return {"name": job.display_name, "steps": steps, "parameters": {}, "outputs": outputs}


def _component(client, component, label: str, node: str) -> CommandComponent:
    """A node's component: the one it holds, or a registered one it names (``azureml:name:version``)."""
    if isinstance(component, str):
        reference = component.removeprefix("azureml:")
        name, version = reference.split("@", 1)[0], None
        if ":" in reference:
            name, version = reference.rsplit(":", 1)
        component = client.components.get(name, version=version)
    if not isinstance(component, CommandComponent):
        raise not_available(
            f"Pipeline job {label}: node {node!r} with a {type(component).__name__}",
            "the local workspace runs command components",
        )
    return component


def _code_folder(component: CommandComponent) -> str | None:
    """The component's code folder: relative to the YAML it was loaded from (or the folder it was made in)."""
    code = component.code
    if code is None:
        return None
    code = str(code)
    if code.startswith("azureml:"):
        raise not_available(f"Component {component.name}: code {code!r}", "registered code assets are Azure's")
    path = Path(code)
    if not path.is_absolute():
        path = Path(getattr(component, "_base_path", None) or ".") / path
    return str(path.resolve())


# --- components ----------------------------------------------------------------------------------------------


class ComponentOperations(Offline):
    """``ml_client.components``: command components kept in the local workspace, each version with its code."""

    _azure_class = AzureComponentOperations

    def __init__(self, client):
        self._client = client
        self._store = client._store

    def create_or_update(self, component, version=None, *, skip_validation=False, **kwargs) -> Component:
        """Register a command component (a new version, unless the newest one is the same); returns it as the
        workspace keeps it (its code: the copy taken now)."""
        if not isinstance(component, CommandComponent):
            raise not_available(
                f"components.create_or_update({type(component).__name__})",
                "the local workspace keeps command components",
            )
        if version is not None:
            component.version = str(version)
        if not component.name:
            raise invalid("components.create_or_update: the component needs a name.")
        code = _code_folder(component)
        definition = component._to_dict()
        definition.pop("code", None)
        definition.pop("version", None)
        if code is not None:
            try:
                definition["code_hash"] = snapshot.content_hash(Path(code))
            except (OSError, snapshot.SnapshotError) as exc:
                raise invalid(f"Component {component.name}: its code {code} cannot be read ({exc}).") from None
        for key in kwargs:
            if key not in ("is_anonymous", "skip_if_no_change"):
                warn_ignored("components.create_or_update", key)
        try:
            record = component_records.register(
                self._store, component.name, component.version, definition, Path(code) if code else None,
                copy_code=lambda source, target: snapshot.copy_snapshot(source, target, skip=[self._store.root]),
            )  # fmt: skip
        except component_records.ComponentConflict as exc:
            raise invalid(str(exc)) from None
        except ValueError as exc:
            raise invalid(str(exc)) from None
        return _entity(record)

    def get(self, name, version=None, label=None) -> Component:
        """A version of a component, or its newest (``version`` None, or ``label="latest"``)."""
        if version and label:
            raise invalid("Cannot specify both version and label.")
        if label not in (None, "latest"):
            raise not_available(f"components.get(label={label!r})", "the local workspace knows the label 'latest'")
        try:
            return _entity(component_records.get(self._store, name, version))
        except component_records.ComponentNotFound:
            raise not_found("component", f"{name}:{version}" if version else name, self._store,
                            component_records.names(self._store)) from None  # fmt: skip
        except ValueError as exc:
            raise invalid(str(exc)) from None

    def list(self, name=None, *, list_view_type=None, **kwargs) -> list[Component]:
        """Each component's newest version, or every version of ``name`` (newest first)."""
        if name is not None:
            return [_entity(record) for record in component_records.versions(self._store, name)]
        return [_entity(component_records.versions(self._store, n)[0]) for n in component_records.names(self._store)]


def _entity(record: dict) -> Component:
    data = {**record["definition"], "name": record["name"], "version": record["version"]}
    data.pop("code_hash", None)
    if record.get("code"):
        data["code"] = record["code"]
    return Component._load(data=data)
