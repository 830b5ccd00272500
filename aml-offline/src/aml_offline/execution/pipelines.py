"""A pipeline run's supervisor: ``python -m aml_offline.execution.pipelines RUN_DIR``.

One executor for step graphs, whichever SDK described them.  A facade turns its pipeline (SDK v1's
``Pipeline`` of steps, SDK v2's ``@dsl.pipeline``) into a *graph* of plain data, and :func:`submit` records the
pipeline run and starts this supervisor.  Each step of the graph is::

    {"node_id": "1a2b3c4d", "name": "train", "step_type": "PythonScriptStep", "kind": "run" | "sweep",
     "allow_reuse": True, "after": [node ids it runs after besides its inputs' producers],
     "inputs":  {name: {"mode": "mount" | "download", "source": SOURCE}},
     "outputs": {name: {"datastore": "workspaceblobstore", "path": "azureml/{run-id}/name", ...}},
     "run": the template of an ordinary run spec (what :class:`~.supervisor.Supervisor` runs),
     "sweep": for a HyperDrive step, the sweep's settings (:func:`~.sweeper.sweep_spec`)}

A SOURCE is another step's output (``{"node": id, "output": name}``), files (``{"dataset": {"name", "version",
"paths"}}``), a datastore folder (``{"datastore", "path"}``) or a pipeline parameter (``{"parameter": name}``,
whose value is one of those).  In the run template, ``{"input": name}`` and ``{"output": name}`` stand for the
step's data (in ``arguments``, or in a command's ``inputs``) and ``{"parameter": name}`` for a parameter's value.

The supervisor runs the steps in dependency order, every step whose inputs are ready at once (a cluster's
``max_nodes`` still caps how many run on it, through its node locks).  Each step is a child run of the pipeline
run, recorded like any run and supervised in a thread of this process by the run supervisor (a HyperDrive step:
the sweep supervisor), as a sweep supervises its trials.  Data passes through the workspace's datastore folders: a
step writes its outputs to ``datastores/<datastore>/<path>`` and the steps that read them get a copy, mounted
read-only or downloaded.

Reuse, as Azure does it: before a step with ``allow_reuse`` runs, its :func:`reuse_key` is looked up among the
completed step runs of the workspace; when one matches and its outputs are still there, the step is not run: it is
recorded as a reused step run (``azureml.ReusedStepRun``, tagged with the run it reuses) and its consumers read
that run's outputs.

A failing step fails the pipeline, naming the step, after the other running steps are canceled (with
``continue_on_step_failure`` the steps that do not depend on it go on).  Canceling the pipeline cancels its running
steps, whose supervisors end their processes through the ledger.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

from aml_offline.execution import data, ledger, snapshot
from aml_offline.execution.supervisor import Supervisor, start_supervisor
from aml_offline.execution.sweeper import SYSTEM_TAG, SweepSupervisor, sweep_spec
from aml_offline.records import datastores as datastore_records
from aml_offline.records import pipelines as pipeline_records
from aml_offline.records import runs as run_records
from aml_offline.records import status as run_status
from aml_offline.records.runs import PROPERTY_PREFIX
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore, read_json, write_json

PIPELINE_RUN = "azureml.PipelineRun"
STEP_RUN = "azureml.StepRun"
REUSED_STEP_RUN = "azureml.ReusedStepRun"
#: The pipeline run's log, named as Azure names it
PIPELINE_LOG = "logs/azureml/executionlogs.txt"
POLL_S = 0.25
#: How long a canceled step may take to stop its processes before it is marked Canceled regardless
STOP_WAIT_S = 60
#: Keys of a step's run template that do not change what the step computes (left out of the reuse key)
VOLATILE = ("source_directory", "runtime_dir", "max_run_duration_seconds", "display_arguments", "input_datasets")
#: A run record's own fields, kept when a step's run spec is written into the record made at submit
RECORD_KEYS = ("run_id", "parent_run_id", "name", "display_name", "run_name", "mlflow_run_id", "artifact_dir",
               "experiment", "root", "number", "created", "submitted_by")  # fmt: skip


class PipelineError(ValueError):
    """A graph the executor cannot run; the message names the step."""


# --- submitting ------------------------------------------------------------------------------------------------


def check_snapshots(store: LocalStore, graph: dict) -> None:
    """Each step's source folder is within Azure's snapshot limits (else :class:`snapshot.SnapshotError`)."""
    for source in dict.fromkeys(step["run"]["source_directory"] for step in graph["steps"]):
        snapshot.check_size(Path(source), skip=[store.root])


def take_snapshots(store: LocalStore, graph: dict, folder: Path) -> dict:
    """The graph with each step's source folder copied into ``folder/<node id>/`` (as Azure takes a snapshot at
    submit or publish time: later edits to the scripts do not change what runs) and the copy's content hash
    recorded for reuse (:func:`snapshot.content_hash`: each file's path and bytes)."""
    graph = copy.deepcopy(graph)
    for step in graph["steps"]:
        target = folder / step["node_id"]
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        snapshot.copy_snapshot(Path(step["run"]["source_directory"]), target, skip=[store.root])
        step["run"]["source_directory"] = str(target)
        step["snapshot"] = snapshot.content_hash(target)
    return graph


def submit(store: LocalStore, experiment: str, graph: dict, *, parameters: dict, tags: dict, submitted_by: str,
           continue_on_step_failure: bool = False, regenerate_outputs: bool = False, parent_run_id: str | None = None,
           published_pipeline_id: str | None = None, snapshots: bool = True, mlflow_ids: bool = False,
           extra: dict | None = None) -> dict:  # fmt: skip
    """Record a pipeline run of ``graph`` with these parameter values and start its supervisor; returns its spec.

    Its id (and its step runs') is a GUID, as SDK v1's pipeline runs' are, or with ``mlflow_ids`` the MLflow run's
    id, as SDK v2 names its jobs; ``extra`` adds to its spec.  The steps' source folders are copied into the run's
    folder (``snapshots/<node id>/``) first, unless ``snapshots`` is False (a published pipeline's were copied when
    it was published)."""
    check(graph)
    if snapshots:
        check_snapshots(store, graph)
    spec = {
        **(extra or {}),
        "type": PIPELINE_RUN,
        "run_id": None if mlflow_ids else str(uuid.uuid4()),
        "parent_run_id": parent_run_id,
        "run_name": graph.get("name"),
        "log": PIPELINE_LOG,
        "graph": graph,
        "parameters": parameters,
        "continue_on_step_failure": bool(continue_on_step_failure),
        "regenerate_outputs": bool(regenerate_outputs),
        "published_pipeline_id": published_pipeline_id,
        "environment": {},
    }
    spec = run_records.create(store, experiment, spec, tags, submitted_by)
    run_id = spec["run_id"]
    try:
        if snapshots:
            spec["graph"] = take_snapshots(store, graph, store.run_dir(run_id) / "snapshots")
        spec["step_runs"] = {
            step["node_id"]: create_step_run(store, spec, step, mlflow_ids)["run_id"] for step in graph["steps"]
        }
    except Exception as exc:
        run_status.set_status(store, spec, "Failed", error=f"Preparing the pipeline run failed: {exc!r}")
        raise
    write_json(store.run_dir(run_id) / "run.json", spec)
    start_supervisor(store, spec, module="aml_offline.execution.pipelines")
    return spec


def create_step_run(store: LocalStore, pipeline: dict, step: dict, mlflow_ids: bool = False) -> dict:
    """The run record of a step, made when the pipeline is submitted (by the submitting process, whose MLflow is
    open: the pipeline's supervisor need not open it); it stays NotStarted until its step starts or is reused, and
    ends Canceled if its step never runs."""
    spec = {
        **(step.get("record") or {}),  # what a facade keeps in the step run's record (SDK v2: the node's job)
        "type": STEP_RUN,
        "run_id": None if mlflow_ids else str(uuid.uuid4()),
        "parent_run_id": pipeline["run_id"],
        "name": step["name"],
        "display_name": step["name"],
        "run_name": step["name"],
        "target": step["run"].get("target"),
        "environment": {},
        "step": {"node_id": step["node_id"], "pipeline_run_id": pipeline["run_id"], "step_type": step["step_type"],
                 "name": step["name"], "outputs": {}, "started": False},
    }  # fmt: skip
    tags = {
        "azureml.nodeid": step["node_id"],
        "azureml.pipeline": pipeline["run_id"],
        PROPERTY_PREFIX + "StepType": step["step_type"],
        PROPERTY_PREFIX + "azureml.nodeid": step["node_id"],
        PROPERTY_PREFIX + "azureml.pipelinerunid": pipeline["run_id"],
    }
    return run_records.create(store, pipeline["experiment"], spec, tags, pipeline["submitted_by"])


def check(graph: dict) -> None:
    """Every input's producer is a step of the graph, and the steps form no cycle (else :class:`PipelineError`)."""
    steps = {s["node_id"]: s for s in graph["steps"]}
    for step in graph["steps"]:
        for name, item in step["inputs"].items():
            source = item["source"]
            if "node" in source and source["node"] not in steps:
                raise PipelineError(f"Input {name} on step {step['name']} is not connected to any previous step.")
            if "node" in source and source["output"] not in steps[source["node"]]["outputs"]:
                raise PipelineError(
                    f"Input {name} on step {step['name']} reads output {source['output']!r} of step "
                    f"{steps[source['node']]['name']}, which has no such output."
                )
    colour: dict[str, int] = {}

    def visit(node: str) -> None:
        colour[node] = 1
        for before in dependencies(steps[node]):
            if colour.get(before) == 1:
                raise PipelineError(f"Cycle detected including node {steps[node]['name']}({node})")
            if before not in colour:
                visit(before)
        colour[node] = 2

    for node in steps:
        if node not in colour:
            visit(node)


def dependencies(step: dict) -> list[str]:
    """The node ids a step waits for: those it runs after, and the producers of its inputs."""
    found = list(step.get("after", []))
    found += [i["source"]["node"] for i in step["inputs"].values() if "node" in i["source"]]
    return list(dict.fromkeys(found))


def fill(value, parameters: dict):
    """``value`` with every ``{"parameter": name}`` replaced by that parameter's value."""
    if isinstance(value, dict):
        if set(value) == {"parameter"}:
            return parameters[value["parameter"]]
        return {k: fill(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, parameters) for v in value]
    return value


def reuse_key(step: dict, parameters: dict, inputs: dict) -> str:
    """What identifies a step's work, hashed (SHA-256): its type, name and version, its snapshot's content hash,
    its run template (script or command, arguments, environment, compute target, node count) with the pipeline
    parameters filled in, a sweep's settings, its outputs' names and paths, and ``inputs`` (each input's identity:
    the run that produced it and the output's name, or the files' names and paths, never their content)."""
    run = {k: v for k, v in step["run"].items() if k not in VOLATILE}
    what = {
        "step_type": step["step_type"],
        "name": step["name"],
        "version": step.get("version"),
        "snapshot": step.get("snapshot"),
        "run": fill(run, parameters),
        "sweep": fill(step.get("sweep"), parameters),
        "outputs": {
            k: {f: v.get(f) for f in ("datastore", "path", "type", "training_output")}
            for k, v in step["outputs"].items()
        },
        "inputs": inputs,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


# --- running a step --------------------------------------------------------------------------------------------


class StepSupervisor(Supervisor):
    """The run supervisor, for a step: it also makes local the inputs the script does not name in its arguments
    (Azure hands them over all the same: ``Run.get_context().input_datasets`` and ``AZUREML_DATAREFERENCE_<name>``)
    and creates the outputs it does not name, runs a CommandStep's own program, and hands an output that is one
    file (a HyperDrive step's metrics or best model file) over as that file."""

    def prepare(self) -> tuple[list[str], dict]:
        args, env = super().prepare()
        if self.spec.get("command") is not None:
            return args, env
        inputs = json.loads(env.get("AZUREML_LOCAL_INPUTS") or "{}")
        for ds in self.spec.get("extra_inputs", []):
            inputs[ds["input_name"]] = env[f"AZUREML_DATAREFERENCE_{ds['input_name']}"] = self.resolve_dataset(ds)
        env["AZUREML_LOCAL_INPUTS"] = json.dumps(inputs)
        outputs = [a["output"] for a in self.spec["arguments"] if isinstance(a, dict) and "output" in a]
        for output in outputs + self.spec.get("extra_outputs", []):
            folder = Path(output["folder"].replace("{run-id}", self.spec["run_id"]))
            if output not in outputs:
                folder.mkdir(parents=True, exist_ok=True)
                self.say(f"Output {output['name']!r} at {folder}")
            env[f"AZUREML_DATAREFERENCE_{output['name']}"] = str(folder)
        return args, env

    def resolve_dataset(self, ds: dict) -> str:
        folder = super().resolve_dataset(ds)
        if ds.get("is_file"):
            return str(Path(folder) / data.file_name(ds["paths"][0]))
        return folder

    def end(self, status: str, **why) -> int:
        self.final = {"status": status, **why}  # what the pipeline's supervisor says of a failed step
        return super().end(status, **why)

    def start(self, command: list[str], env: dict, log, role: str):
        program = self.spec.get("program")
        if program:  # a CommandStep: `python x.py` runs in the step's interpreter, anything else as it is
            command = [self.python if program in ("python", "python3") else program, *command[2:]]
        return super().start(command, env, log, role)


class StepSweepSupervisor(SweepSupervisor):
    """The sweep supervisor, for a HyperDrive step: its trials are supervised as steps (:class:`StepSupervisor`)."""

    def start_child(self, child: dict) -> None:
        ledger.record(self.store, ledger.run_owner(child["run_id"]), "supervisor", os.getpid(), note="sweep thread")
        supervisor = StepSupervisor(self.store.run_dir(child["run_id"]), store=self.store)
        thread = threading.Thread(target=supervisor.run, name=f"child-{child['run_id']}", daemon=True)
        thread.start()
        self.threads.append(thread)


# --- the pipeline ----------------------------------------------------------------------------------------------


class PipelineSupervisor:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.spec = read_json(run_dir / "run.json")
        self.store = LocalStore.get(Path(self.spec["root"]))
        log_path = Path(self.spec["artifact_dir"]) / PIPELINE_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab", buffering=0)
        self.graph = self.spec["graph"]
        self.params = self.spec.get("parameters") or {}
        self.steps = {s["node_id"]: s for s in self.graph["steps"]}
        # node id -> {"status", "run_id", "spec" (None until it starts), "outputs", "produced_by", "reused", "key"}
        self.state: dict[str, dict] = {
            node: {"status": "NotStarted", "run_id": run_id, "spec": None}
            for node, run_id in self.spec["step_runs"].items()
        }
        self.threads: dict[str, threading.Thread] = {}
        self.workers: dict[str, Supervisor | SweepSupervisor] = {}
        for state in self.state.values():  # this process supervises every step run until it ends
            ledger.record(self.store, ledger.run_owner(state["run_id"]), "supervisor", os.getpid(), note="pipeline")

    def say(self, text: str) -> None:
        try:
            self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n".encode())
        except OSError:
            pass

    def status(self, status: str, **why) -> None:
        self.say(f"Status: {status}")
        run_status.set_status(self.store, self.spec, status, **why)

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Run the steps to the pipeline's end; its final status is set once every step run has ended (a step that
        never started ends Canceled, saying why), so a reader who sees it final finds the steps final too."""
        final: tuple[str, dict] = ("Failed", {"error": "The local pipeline supervisor stopped before it began."})
        try:
            self.status("Running")
            names = ", ".join(s["name"] for s in self.graph["steps"])
            self.say(f"Pipeline of {len(self.steps)} steps ({names}); parameters {json.dumps(self.params)}")
            final = self.loop()
        except Exception as exc:  # noqa: BLE001  (the pipeline must end, never hang)
            self.say(traceback.format_exc())
            self.stop_steps("the pipeline's supervisor failed")
            final = ("Failed", {"error": f"The local pipeline supervisor failed: {exc!r}"})
        finally:
            try:
                for thread in self.threads.values():
                    thread.join(timeout=STOP_WAIT_S)
                for node, state in self.state.items():
                    if state["spec"] is None:  # never started: its record says why
                        spec = run_records.spec_of(self.store, state["run_id"])
                        run_status.set_status(self.store, spec, "Canceled", reason=self.not_run_reason(node))
                    ledger.mark_ended(self.store, ledger.run_owner(state["run_id"]))
                self.pipeline_outputs()
                self.status(final[0], **final[1])
            finally:
                ledger.mark_ended(self.store, ledger.run_owner(self.spec["run_id"]))
                self.log.close()
        return 1 if final[0] == "Failed" else 0

    def loop(self) -> tuple[str, dict]:
        while True:
            if self.canceled():
                return self.cancel()
            self.refresh()
            failed = [n for n, s in self.state.items() if s["status"] in ("Failed", "Canceled")]
            if failed and self.canceled():  # a step canceled because the pipeline is being canceled
                return self.cancel()
            if failed and not self.spec.get("continue_on_step_failure"):
                self.stop_steps(f"step {self.steps[failed[0]]['name']} {self.state[failed[0]]['status'].lower()}")
                return self.end()
            self.skip_unreachable()
            ready = [n for n in self.steps if self.is_ready(n)]
            for node in ready:
                try:
                    self.start_step(node)
                except PipelineError as exc:  # an input that is not there: the step cannot start
                    self.say(f"Error: {exc}")
                    self.stop_steps(f"step {self.steps[node]['name']} could not start")
                    return "Failed", {"error": str(exc)}
            active = [n for n, s in self.state.items() if s["status"] not in (*TERMINAL, "NotStarted", "Skipped")]
            if not ready and not active:
                return self.end()
            time.sleep(POLL_S)

    def pipeline_outputs(self) -> None:
        """The pipeline's own outputs (``graph["outputs"]``: ``{name: {"node", "output"}}``, SDK v2's
        ``return {...}`` of a ``@dsl.pipeline``) are where the steps that produced them wrote them."""
        found = {}
        for name, source in (self.graph.get("outputs") or {}).items():
            out = (self.state[source["node"]].get("outputs") or {}).get(source["output"])
            if out is not None:
                kind = self.steps[source["node"]]["outputs"][source["output"]].get("type") or "uri_folder"
                found[name] = {"type": kind, "datastore": out["datastore"], "path": out["path"]}
        if found:
            with self.store.write_lock():
                spec = run_records.spec_of(self.store, self.spec["run_id"])
                spec["outputs"] = found
                write_json(self.store.run_dir(self.spec["run_id"]) / "run.json", spec)

    def not_run_reason(self, node: str) -> str:
        bad = [self.steps[n]["name"] for n, s in self.state.items() if s["status"] in ("Failed", "Canceled")]
        if bad:
            return f"Not run: the pipeline run ended after step {', '.join(bad)} did not complete."
        return "Not run: the pipeline run ended before this step could start."

    def canceled(self) -> bool:
        return (self.dir / "cancel_requested").exists()

    def cancel(self) -> tuple[str, dict]:
        """The pipeline run was asked to stop: cancel its running steps."""
        reason = (self.dir / "cancel_requested").read_text().strip() or "canceled by the user"
        self.stop_steps(f"the pipeline run was canceled ({reason})")
        return "Canceled", {"reason": reason}

    def end(self) -> tuple[str, dict]:
        bad = [n for n, s in self.state.items() if s["status"] in ("Failed", "Canceled")]
        if not bad:
            return "Completed", {}
        steps = ", ".join(f"{self.steps[n]['name']} ({self.state[n]['status']}, step run {self.state[n]['run_id']})"
                          for n in bad)  # fmt: skip
        skipped = [self.steps[n]["name"] for n, s in self.state.items() if s["status"] in ("Skipped", "NotStarted")]
        tail = f" Not run, as a failed step came before them: {', '.join(skipped)}." if skipped else ""
        errors = []
        for node in bad:  # the step's own error, as its supervisor (a thread here) recorded it
            final = getattr(self.workers.get(node), "final", None) or {}
            if final.get("error"):
                lines = final["error"].strip().splitlines()
                errors.append(f"\n{self.steps[node]['name']}: " + "\n".join(lines[:1] + lines[1:][-12:]))
        error = (f"Pipeline has some failed steps: {steps}. See the step run's error and log for more details."
                 f"{tail}{''.join(errors)}")  # fmt: skip
        return "Failed", {"error": error}

    def is_ready(self, node: str) -> bool:
        return self.state[node]["status"] == "NotStarted" and all(
            self.state[before]["status"] == "Completed" for before in dependencies(self.steps[node])
        )

    def skip_unreachable(self) -> None:
        """With continue_on_step_failure: a step that depends on a failed one never runs."""
        changed = True
        while changed:
            changed = False
            for node, state in self.state.items():
                if state["status"] == "NotStarted" and any(
                    self.state[b]["status"] in ("Failed", "Canceled", "Skipped") for b in dependencies(self.steps[node])
                ):
                    state["status"] = "Skipped"
                    self.say(f"Step {self.steps[node]['name']}: not run, a step it depends on did not complete")
                    changed = True

    def refresh(self) -> None:
        for node, state in self.state.items():
            if state.get("spec") is None or state["status"] in (*TERMINAL, "Skipped"):
                continue
            status = run_status.current_status(self.store, state["spec"])
            if status == "NotStarted" and state.get("started"):
                continue  # its supervisor thread has not recorded Queued yet (start_step)
            if status in TERMINAL and node in self.threads:
                self.threads[node].join(timeout=STOP_WAIT_S)  # its supervisor has finished its clean-up
            if status == "Completed":
                self.completed(node)
            state["status"] = status
            if status in TERMINAL:
                self.say(f"Step {self.steps[node]['name']}: {status} (run {state['run_id']})")

    def stop_steps(self, reason: str) -> None:
        """Cancel every running step and wait for its processes to end."""
        running = [n for n, s in self.state.items() if s.get("spec") and s["status"] not in TERMINAL]
        for node in running:
            (self.store.run_dir(self.state[node]["run_id"]) / "cancel_requested").write_text(f"Canceled: {reason}")
            self.say(f"Canceling step {self.steps[node]['name']}: {reason}")
        end = time.time() + STOP_WAIT_S
        for node in running:
            thread = self.threads.get(node)
            if thread is not None:
                thread.join(timeout=max(0.0, end - time.time()))
            spec = self.state[node]["spec"]
            if run_status.current_status(self.store, spec) not in TERMINAL:  # its supervisor did not stop in time
                ledger.stop(self.store, ledger.run_owner(spec["run_id"]), grace=2)
                run_status.set_status(self.store, spec, "Canceled", reason=f"Canceled: {reason}")
            self.state[node]["status"] = run_status.current_status(self.store, spec)

    # --- one step -------------------------------------------------------------------------------------------
    def sources(self, step: dict) -> tuple[dict, dict]:
        """Each input's files (the dataset the supervisor makes local) and identity (what the reuse key hashes)."""
        files, identities = {}, {}
        for name, item in step["inputs"].items():
            source = item["source"]
            if "parameter" in source:
                source = self.params[source["parameter"]]
            if "node" in source:
                producer = self.state[source["node"]]
                output = producer["outputs"][source["output"]]
                path = datastore_records.folder(self.store, output["datastore"]) / output["path"]
                files[name] = {"name": None, "version": None, "paths": [str(path)], "is_file": output.get("is_file")}
                identities[name] = {"run": producer["produced_by"], "output": source["output"]}
            elif "datastore" in source:
                path = datastore_records.folder(self.store, source["datastore"]) / source["path"].strip("/")
                if not path.exists():
                    raise PipelineError(
                        f"Step {step['name']}: input {name} names {source['path']!r} in datastore "
                        f"{source['datastore']!r}, which does not exist ({path}): upload it first."
                    )
                files[name] = {"name": None, "version": None, "paths": [str(path)], "is_file": path.is_file()}
                identities[name] = {"datastore": source["datastore"], "path": source["path"]}
            else:
                files[name] = {k: source["dataset"].get(k) for k in ("name", "version", "paths")}
                identities[name] = dict(files[name])
            mode = "download" if item.get("mode") == "download" else "mount"
            if "dataset" in source and mode == "mount":  # as Azure mounts a dataset of one file: the file's path
                files[name]["is_file"] = _one_file(source["dataset"].get("paths") or [])
            files[name].update(mode=mode, input_name=name)
            identities[name] = {**identities[name], "mode": mode}
        return files, identities

    def start_step(self, node: str) -> None:
        step, state = self.steps[node], self.state[node]
        files, identities = self.sources(step)
        key = reuse_key(step, self.params, identities)
        if step.get("allow_reuse", True) and not self.spec.get("regenerate_outputs"):
            entry = self.reusable(key)
            if entry is not None:
                return self.reuse(node, key, entry)
        run_id = state["run_id"]
        outputs = {
            name: {"datastore": out["datastore"], "path": out["path"].replace("{run-id}", run_id).strip("/"),
                   "type": out.get("type"), "pipeline_output_name": out.get("pipeline_output_name")}
            for name, out in step["outputs"].items()
        }  # fmt: skip
        run = self.bind(step, files, sweep=step["kind"] == "sweep")
        if step["kind"] == "sweep":
            run = sweep_spec(run, **fill(step["sweep"], self.params))
            self.store.mirror(self.record(node)["mlflow_run_id"], "tags",
                              {SYSTEM_TAG + "primary_metric_config": json.dumps(run["primary_metric"])})  # fmt: skip
        else:
            run["type"] = STEP_RUN
        spec = self.update_record(node, run, outputs=outputs, reuse_key=key, started=True)
        # Queued from now on, here: its supervisor thread records Queued when it gets going, and until then a status
        # read still says NotStarted, which must neither start the step a second time nor end the pipeline early
        state.update(spec=spec, outputs=outputs, produced_by=run_id, reused=False, key=key, started=True,
                     status="Queued")  # fmt: skip
        run_dir = self.store.run_dir(run_id)
        worker = StepSweepSupervisor(run_dir) if step["kind"] == "sweep" else StepSupervisor(run_dir, store=self.store)
        thread = threading.Thread(target=worker.run, name=f"step-{step['name']}", daemon=True)
        self.threads[node], self.workers[node] = thread, worker
        thread.start()
        self.say(f"Step {step['name']} (node {node}): started as run {run_id}")

    def record(self, node: str) -> dict:
        return run_records.spec_of(self.store, self.state[node]["run_id"])

    def update_record(self, node: str, run: dict, **step_info) -> dict:
        """Write what the step runs into its run record (made at submit), keeping the record's own fields."""
        with self.store.write_lock():
            spec = self.record(node)
            kept = {k: spec[k] for k in RECORD_KEYS}
            spec = {**spec, **run, **kept, "step": {**spec["step"], **step_info}}
            write_json(self.store.run_dir(spec["run_id"]) / "run.json", spec)
        return spec

    def bind(self, step: dict, files: dict, sweep: bool) -> dict:
        """The step's run spec: its template with the parameters' values, its inputs' files and its outputs'
        folders (``{run-id}`` stays for the supervisor to fill in: a sweep's trials each write their own)."""
        run = fill(copy.deepcopy(step["run"]), self.params)
        environment = run.get("environment") or {}
        environment["environment_variables"] = {k: str(v) for k, v in
                                                (environment.get("environment_variables") or {}).items()}  # fmt: skip
        used: set[tuple[str, str]] = set()

        def output(name: str) -> dict:
            used.add(("output", name))
            out = step["outputs"][name]
            folder = datastore_records.folder(self.store, out["datastore"]) / out["path"].strip("/")
            return {"name": name, "folder": str(folder), "register": out.get("register")}

        def dataset(name: str) -> dict:
            used.add(("input", name))
            return dict(files[name])

        if run.get("command") is not None:  # an SDK v2 command: its inputs are named in the command
            for name, item in list(run.get("inputs", {}).items()):
                if isinstance(item, dict) and "input" in item:
                    files_of = {k: v for k, v in dataset(item["input"]).items() if k != "is_file"}
                    run["inputs"][name] = {"dataset": files_of, "type": item.get("type", "uri_folder")}
            return run
        args = []
        for arg in run["arguments"]:
            if isinstance(arg, dict) and "input" in arg:
                args.append({"dataset": dataset(arg["input"])})
            elif isinstance(arg, dict) and "output" in arg:
                args.append({"output": output(arg["output"])})
            else:
                args.append(str(arg))
        run["arguments"] = args
        run["display_arguments"] = [
            a if isinstance(a, str) else f"Output:{a['output']['name']}" if "output" in a
            else f"Input:{a['dataset']['input_name']}"
            for a in args
        ]  # fmt: skip
        run["input_datasets"] = [a["dataset"] for a in args if isinstance(a, dict) and "dataset" in a]
        run["extra_inputs"] = [dataset(n) for n in step["inputs"] if ("input", n) not in used]
        run["extra_outputs"] = [] if sweep else [output(n) for n in step["outputs"] if ("output", n) not in used]
        return run

    # --- reuse -------------------------------------------------------------------------------------------
    def reusable(self, key: str) -> dict | None:
        entry = pipeline_records.reusable(self.store, key)
        if entry is None:
            return None
        try:
            spec = run_records.spec_of(self.store, entry["run_id"])
        except run_records.RunNotFound:
            pipeline_records.forget_reusable(self.store, key)
            return None
        if run_status.current_status(self.store, spec) != "Completed":
            return None
        for out in entry["outputs"].values():
            if not (datastore_records.folder(self.store, out["datastore"]) / out["path"]).exists():
                self.say(f"Run {entry['run_id']} cannot be reused: its output {out['path']} is gone")
                pipeline_records.forget_reusable(self.store, key)
                return None
        return entry

    def reuse(self, node: str, key: str, entry: dict) -> None:
        step, state = self.steps[node], self.state[node]
        reused = {k: entry[k] for k in ("run_id", "pipeline_run_id", "node_id", "experiment")}
        outputs = {
            name: {
                "type": step["outputs"][name].get("type") or "uri_folder",
                "datastore": out["datastore"],
                "path": out["path"],
            }
            for name, out in entry["outputs"].items()
            if name in step["outputs"]
        }
        spec = self.update_record(node, {"type": REUSED_STEP_RUN, "outputs": outputs}, outputs=entry["outputs"],
                                  reuse_key=key, reused=reused, started=True)  # fmt: skip
        reuse_tags = {
            "azureml.reusedrunid": entry["run_id"],
            "azureml.reusednodeid": entry["node_id"],
            "azureml.reusedpipeline": entry["pipeline_run_id"],
        }
        properties = {PROPERTY_PREFIX + k: v for k, v in {**reuse_tags, "azureml.isreused": "true"}.items()}
        self.store.mirror(spec["mlflow_run_id"], "tags", {**reuse_tags, **properties})
        run_status.set_status(self.store, spec, "Completed")
        state.update(status="Completed", spec=spec, outputs=entry["outputs"], produced_by=entry["run_id"],
                     reused=True, key=key)  # fmt: skip
        self.say(
            f"Step {step['name']} (node {node}): reused run {entry['run_id']} of pipeline run "
            f"{entry['pipeline_run_id']} (nothing it depends on changed)"
        )

    def completed(self, node: str) -> None:
        """A step run has completed: a sweep's outputs are its best trial's; remember the run for reuse."""
        step, state = self.steps[node], self.state[node]
        if step["kind"] == "sweep":
            self.sweep_outputs(step, state)
        for out in state["outputs"].values():
            out["is_file"] = (datastore_records.folder(self.store, out["datastore"]) / out["path"]).is_file()
        self.store_outputs(state)
        pipeline_records.record_reusable(self.store, state["key"], {
            "run_id": state["run_id"], "pipeline_run_id": self.spec["run_id"], "node_id": node,
            "experiment": self.spec["experiment"], "name": step["name"], "outputs": state["outputs"],
        })  # fmt: skip

    def store_outputs(self, state: dict) -> None:
        """Keep the outputs as they turned out (a file or a folder) in the step run's spec."""
        with self.store.write_lock():
            spec = run_records.spec_of(self.store, state["run_id"])
            spec["step"]["outputs"] = state["outputs"]
            write_json(self.store.run_dir(state["run_id"]) / "run.json", spec)
        state["spec"] = spec

    def sweep_outputs(self, step: dict, state: dict) -> None:
        """A HyperDrive step's outputs: the metrics of every trial (``TrainingOutput("Metrics")``, a JSON file),
        the best trial's model file (``TrainingOutput("Model", model_file=...)``) or the best trial's folder."""
        spec = state["spec"]
        tags = run_records.mlflow_tags(self.store, spec)
        best = run_records.properties_of(tags).get("best_child_run_id")
        trials = run_records.search(self.store, spec["experiment"], parent=spec["run_id"])
        for name, out in state["outputs"].items():
            target = datastore_records.folder(self.store, out["datastore"]) / out["path"]
            training = step["outputs"][name].get("training_output") or {}
            if training.get("type") == "Metrics":
                target.parent.mkdir(parents=True, exist_ok=True)
                metrics = {trial: run_records.read_values(self.store, trial) for trial in trials}
                target.write_text(json.dumps(metrics))
                self.say(f"Output {name}: the metrics of {len(trials)} trials")
                continue
            if best is None:
                target.mkdir(parents=True, exist_ok=True)
                self.say(f"Output {name}: no best trial (no trial logged the primary metric); left empty")
                continue
            best_spec = run_records.spec_of(self.store, best)
            if training.get("type") == "Model":
                source = Path(best_spec["artifact_dir"]) / (training.get("model_file") or "outputs")
            else:
                template = step["outputs"][name]["path"].replace("{run-id}", best).strip("/")
                source = datastore_records.folder(self.store, out["datastore"]) / template
            if source.is_file():
                out["path"] = f"{out['path']}/{source.name}"
                target = target / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            elif source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                self.say(f"Output {name}: the best trial {best} has no {source}; left empty")
                continue
            self.say(f"Output {name}: from the best trial {best}")


def _one_file(paths: list[str]) -> bool:
    """Whether a dataset's paths name one file (a web address of a file, or a file on this machine), not a
    folder or a pattern."""
    if len(paths) != 1 or any(c in paths[0] for c in "*?["):
        return False
    if data.is_url(paths[0]):
        return not paths[0].endswith("/")
    return Path(paths[0]).is_file()


def main(argv: list[str]) -> int:
    ledger.become_subreaper()
    try:
        return PipelineSupervisor(Path(argv[0])).run()
    finally:
        ledger.stop_descendants(grace=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
