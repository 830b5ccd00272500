"""A local run's supervisor: ``python -m aml_offline.execution.supervisor RUN_DIR``.

It takes one run through Azure ML's states and really executes it:

Queued      waits for a free node of the compute target (``max_nodes`` caps how many
            of its runs execute at once: one file lock per node)
Preparing   copies the source folder into the run's working folder (honouring
            ``.amlignore``, else ``.gitignore``), resolves dataset arguments to local
            folders of verified files, checks (or builds) the environment
Running     creates ``./outputs`` and ``./logs`` as Azure does, runs the script in a
            session of its own (recorded in the ledger; the kernel kills it if this
            supervisor dies), its output going to the driver log, while what it
            logs is read into the run history
Finalizing  reads the last values, stops anything the script left running, turns
            ``./outputs`` and ``./logs`` into run files
then        Completed, Failed (with the script's own error lines, or because the
            script called ``run.fail()``) or Canceled
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import psutil
from filelock import Timeout

from aml_offline import settings
from aml_offline.execution import data, envs, ledger, snapshot
from aml_offline.records import compute as compute_records
from aml_offline.records import datasets as dataset_records
from aml_offline.records import runs as run_records
from aml_offline.records import status as run_status
from aml_offline.records.runs import DRIVER_LOG, WORKER_LOG
from aml_offline.store import LocalStore, StoreError, read_json

POLL_S = 0.25
#: What an SDK v2 command refers to: ``${{inputs.name}}``, ``${{search_space.name}}``, ``${{outputs.name}}``
COMMAND_REFERENCE = re.compile(r"\$\{\{\s*(inputs|search_space|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SCRIPT_ROLES = ("script", "worker", "descendant")
#: Targets that are this machine with no queue and no node count: azureml-core's "local", and SDK v2's serverless
#: compute (a job with no ``compute=``: Azure gives it a node of its own, so it never waits for another job)
LOCAL_TARGETS = ("local", "serverless")


class RunCanceled(Exception):
    pass


class RunFailed(Exception):
    pass


def start_supervisor(store: LocalStore, spec: dict, module: str = "aml_offline.execution.supervisor") -> None:
    """Start a run's supervisor in its own session (it outlives a restarted kernel), recorded in the ledger."""
    run_dir = store.run_dir(spec["run_id"])
    with open(run_dir / "supervisor.log", "ab") as log:
        ledger.start(
            store, ledger.run_owner(spec["run_id"]), "supervisor", [sys.executable, "-m", module, str(run_dir)],
            die_with_parent=False, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **settings.exported(), "AZUREML_LOCAL_ROOT": str(store.root), "PYTHONUNBUFFERED": "1"},
            cwd=str(store.root),
        )  # fmt: skip


class Supervisor:
    def __init__(self, run_dir: Path, store: LocalStore | None = None, owns_process: bool = False):
        self.dir = run_dir
        # True when this supervisor is the whole process (not a thread of a sweep's): then every descendant
        # of the process is this run's, orphans included (the process is a subreaper)
        self.owns_process = owns_process
        self.seen: set[int] = set()
        self.next_scan = 0.0
        self.spec = read_json(run_dir / "run.json")
        self.store = store or LocalStore.get(Path(self.spec["root"]))
        self.owner = ledger.run_owner(self.spec["run_id"])
        self.artifacts = Path(self.spec["artifact_dir"])
        self.wd = run_dir / "wd"
        self.log = open(self.artifacts / DRIVER_LOG, "ab", buffering=0)
        self.events_offset = 0
        self.procs: list[subprocess.Popen] = []  # the script: one process, or one per worker
        self.failed_log: str | None = None  # the log of the worker that failed a multi-worker run
        self.script_failure: str | None = None  # what the script passed to run.fail()
        self.python = sys.executable  # or a built environment's interpreter (envs)
        self.deadline = time.time() + float(self.spec.get("max_run_duration_seconds") or 2592000)

    # --- helpers ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            self.log.write(f"[{stamp}] {text}\n".encode())
        except OSError:  # a full disk, say: the run's status still records how it ended
            pass

    def status(self, status: str, **kwargs) -> None:
        self.say(f"Status: {status}")
        run_status.set_status(self.store, self.spec, status, **kwargs)

    def check_cancel(self) -> None:
        marker = self.dir / "cancel_requested"
        if marker.exists():
            raise RunCanceled(marker.read_text().strip() or "canceled by the user")
        if time.time() > self.deadline:
            raise RunFailed(
                f"The run exceeded max_run_duration_seconds ({self.spec['max_run_duration_seconds']}) and was stopped."
            )

    # --- the states ------------------------------------------------------------------------
    def run(self) -> int:
        """Take the run through its states to a final one.  Whatever fails on the way, in the script or in this
        supervisor's own clean-up (a full disk, a dangling link in ./outputs), the run ends with its real reason:
        never left Running, to be reaped later as "supervisor stopped unexpectedly"."""
        slots = []
        try:
            self.status("Queued")
            slots = self.acquire_nodes(self.spec.get("workers", 1))
            self.status("Preparing")
            args, env = self.prepare()
            self.check_cancel()
            self.status("Running")
            code = self.execute(args, env)
            self.status("Finalizing")
            self.finalize()
            if code != 0:
                raise RunFailed(self.error_lines(code))
            if self.script_failure is not None:
                raise RunFailed(f"The script called run.fail(): {self.script_failure}")
            self.status("Completed")
            return 0
        except RunCanceled as exc:
            problems = self.clean_up()
            reason = str(exc) + "".join(f"; {p}" for p in problems)
            self.say(f"Canceled: {reason}")
            return self.end("Canceled", reason=reason)
        except RunFailed as exc:
            error = str(exc) + "".join(f"\n{p}" for p in self.clean_up())
            self.say(f"Error: {error}")
            return self.end("Failed", error=error)
        except Exception as exc:  # noqa: BLE001  (the run must end Failed, never hang)
            self.say(traceback.format_exc())
            error = f"The local run supervisor failed: {exc!r}" + "".join(f"\n{p}" for p in self.clean_up(False))
            return self.end("Failed", error=error)
        finally:
            for slot in slots:
                slot.release()
            try:
                ledger.mark_ended(self.store, self.owner)
            finally:
                self.log.close()

    def clean_up(self, finalize: bool = True) -> list[str]:
        """End the script and keep what it wrote; what fails here is said, and returned, never raised."""
        problems = []
        for what, step in (("stopping the script", self.kill), ("keeping its outputs", self.finalize)):
            if step is self.finalize and not finalize:
                continue
            try:
                step()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"While {what}, the local workspace failed: {exc!r}")
                self.say(problems[-1])
        return problems

    def end(self, status: str, **why) -> int:
        """Set the final status; if even that fails (the workspace's disk is full), try once more, shorter."""
        try:
            self.status(status, **why)
        except Exception as exc:  # noqa: BLE001
            self.say(f"Could not record the run's end ({exc!r}); trying again with a short message")
            short = {k: str(v)[:500] for k, v in why.items()}
            run_status.set_status(self.store, self.spec, status, **short)
        return 0 if status == "Canceled" else 1

    def acquire_nodes(self, count: int) -> list:
        """One lock per node the run needs, taken all at once (a run never holds some while waiting)."""
        target = self.spec.get("target", "local")
        if target in LOCAL_TARGETS:
            return []
        row = compute_records.get(self.store, target)
        if row is None:
            raise RunFailed(f"Compute target {target!r} no longer exists in the local workspace.")
        if row["type"] == compute_records.INSTANCE and row["state"] != compute_records.RUNNING:
            raise RunFailed(f"Compute instance {target!r} is {row['state']}: start it, then submit the run again.")
        try:
            slots = self.store.compute_slot_locks(target, int(row["max_nodes"]))
        except StoreError as exc:
            raise RunFailed(str(exc)) from None
        if count > len(slots):
            raise RunFailed(f"The run needs {count} nodes; {target} has max_nodes={len(slots)}.")
        waited = False
        while True:
            taken = []
            for lock in slots:
                try:
                    lock.acquire(timeout=0)
                    taken.append(lock)
                except Timeout:  # that node is busy
                    continue
                except OSError as exc:
                    for held in taken:
                        held.release()
                    raise RunFailed(
                        f"Cannot use the node lock {lock.lock_file} of {target!r} ({exc.strerror}): fix the "
                        "permissions of the workspace's locks/ folder."
                    ) from None
                if len(taken) == count:
                    nodes = ", ".join(str(slots.index(lock)) for lock in taken)
                    self.say(f"Got node{'s' if count > 1 else ''} {nodes} of {len(slots)} on {target}")
                    try:  # so list_nodes() can say which run each node serves
                        compute_records.note_holders(taken, self.spec["run_id"])
                    except OSError as exc:
                        self.say(f"Could not note this run beside its node locks ({exc.strerror}): list_nodes() "
                                 "shows these nodes without a run id")  # fmt: skip
                    return taken
            for lock in taken:
                lock.release()
            if not waited:
                self.say(f"Fewer than {count} of the {len(slots)} nodes of {target} are free: waiting in the queue")
                waited = True
            self.check_cancel()
            time.sleep(POLL_S)

    def prepare(self) -> tuple[list[str], dict]:
        source = Path(self.spec["source_directory"])
        self.say(f"Copying snapshot of {source}")
        snapshot.copy_snapshot(source, self.wd, skip=[self.store.root])
        self.check_environment(self.spec["environment"])
        if self.spec.get("command") is not None:
            return self.prepare_command()
        args, env_vars, inputs = [], {}, {}
        for arg in self.spec["arguments"]:
            if isinstance(arg, dict) and "output" in arg:  # OutputFileDatasetConfig: a folder of a datastore
                folder = Path(arg["output"]["folder"].replace("{run-id}", self.spec["run_id"]))
                folder.mkdir(parents=True, exist_ok=True)
                self.say(f"Output {arg['output']['name']!r} at {folder}")
                args.append(str(folder))
            elif isinstance(arg, dict):
                path = self.resolve_dataset(arg["dataset"])
                env_vars[f"AZUREML_DATAREFERENCE_{arg['dataset']['input_name']}"] = path
                inputs[arg["dataset"]["input_name"]] = path
                args.append(path)
            else:
                args.append(arg)
        env_vars["AZUREML_LOCAL_INPUTS"] = json.dumps(inputs)
        return args, env_vars

    def prepare_command(self) -> tuple[list[str], dict]:
        """An SDK v2 command job: its inputs made local, then ``${{inputs.x}}``, ``${{search_space.x}}`` and
        ``${{outputs.x}}`` in the command replaced by their values, as Azure does before it runs the command."""
        values, env_vars, inputs = {}, {}, {}
        for name, item in self.spec["inputs"].items():
            if "dataset" in item:
                path = self.resolve_dataset(item["dataset"])
                if item.get("type") == "uri_file":  # Azure hands a uri_file input over as the file, not its folder
                    path = str(Path(path) / data.file_name(item["dataset"]["paths"][0]))
                values[("inputs", name)] = path
                inputs[name] = path
                env_vars[f"AZURE_ML_INPUT_{name}"] = path
            else:
                values[("inputs", name)] = values[("search_space", name)] = str(item["value"])
        for name in run_records.output_names(self.spec):
            _, path = run_records.output_location(self.store, self.spec, name)
            kind = self.spec["outputs"][name].get("type") if isinstance(self.spec["outputs"], dict) else None
            (path.parent if kind == "uri_file" else path).mkdir(parents=True, exist_ok=True)  # Azure mounts it rw
            self.say(f"Output {name!r} at {path}")
            values[("outputs", name)] = str(path)
            env_vars[f"AZURE_ML_OUTPUT_{name}"] = str(path)

        def substitute(match: re.Match) -> str:
            key = (match.group(1), match.group(2))
            if key not in values:
                known = ", ".join(sorted(self.spec["inputs"])) or "none"
                raise RunFailed(
                    f"Job {self.spec['run_id']}: the command uses {match.group(0)}, but the job has no "
                    f"{key[0].replace('_', ' ')} named {key[1]!r} (its inputs: {known})."
                )
            return shlex.quote(values[key])

        text = COMMAND_REFERENCE.sub(substitute, self.spec["command"])
        if not text.strip():
            raise RunFailed(f"Job {self.spec['run_id']}: its command is empty.")
        bash = shutil.which("bash")
        if bash is None:
            raise RunFailed("Azure ML runs a command job's command with bash, which this machine lacks: install it.")
        # `python` (and `python3`) in the command is the environment's: this interpreter, or one built for the job
        shims = self.dir / "bin"
        shims.mkdir(exist_ok=True)
        for name in ("python", "python3"):  # a script, not a link: a virtual environment is found from the path run
            (shims / name).write_text(f'#!/bin/sh\nexec {shlex.quote(self.python)} "$@"\n')
            (shims / name).chmod(0o755)
        env_vars["PATH"] = os.pathsep.join([str(shims), os.environ.get("PATH", "")])
        env_vars["AZUREML_LOCAL_INPUTS"] = json.dumps(inputs)
        return [bash, "-c", text], env_vars

    def check_environment(self, env: dict) -> None:
        for warning in snapshot.warnings_for(env):
            self.say(f"Warning: {warning}")
        missing = snapshot.missing_packages(env)
        if missing and env.get("user_managed"):
            raise RunFailed(
                f"Environment {env['name']!r} is user-managed, and this interpreter ({sys.executable}) lacks: "
                + "; ".join(missing)
                + ". Install them into this environment, or let Azure ML manage the environment (user_managed off)."
            )
        if missing:
            self.say(f"Environment {env['name']!r}: this interpreter lacks " + "; ".join(missing))
            try:
                self.python = envs.ensure(env, self.say, store=self.store, owner=self.owner, check=self.check_cancel)
            except envs.EnvironmentBuildError as exc:
                raise RunFailed(str(exc)) from None
            return
        self.say(f"Environment {env['name']!r}: all {len(env.get('pip', []))} pip packages satisfied")

    def resolve_dataset(self, ds: dict) -> str:
        try:
            folder = data.materialize(self.store, ds, say=self.say)
        except data.DataError as exc:
            raise RunFailed(str(exc)) from None
        if ds["mode"] == "download":
            target = self.wd / "datasets" / ds["input_name"]
            shutil.copytree(folder, target, dirs_exist_ok=True)
            folder = target
        else:  # a mount: read-only on Azure. The run gets its own read-only copy, so a job that writes to its
            # input changes neither the registered data nor the user's folder (root can write to the copy only)
            target = self.dir / "mounts" / ds["input_name"]
            shutil.copytree(folder, target)
            data.make_read_only(target)
            folder = target
        self.say(f"Dataset {ds['name'] or ds['input_name']!r} ({ds['mode']}) at {folder}")
        return str(folder)

    def script_environment(self, extra_env: dict) -> dict:
        env = dict(os.environ)
        env.update(self.spec["environment"].get("environment_variables") or {})
        env.update(extra_env)
        env.update(
            AZUREML_LOCAL_RUN_DIR=str(self.dir),
            AZUREML_LOCAL_ROOT=str(self.store.root),
            AZUREML_RUN_ID=self.spec["run_id"],
            AZUREML_EXPERIMENT_NAME=self.spec["experiment"],
            AZUREML_PARENT_RUN_ID=self.spec.get("parent_run_id") or "",
            # as Azure ML points a job's MLflow at its workspace: mlflow.log_metric(...) lands on this run
            MLFLOW_TRACKING_URI=self.store.tracking_uri,
            MLFLOW_RUN_ID=self.spec["mlflow_run_id"],
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
            # the facade's in-script run (``Run.get_context()``), put first on the script's path by the facade
            PYTHONPATH=os.pathsep.join(filter(None, [self.spec.get("runtime_dir"), env.get("PYTHONPATH")])),
        )
        return env

    def execute(self, args: list[str], extra_env: dict) -> int:
        env = self.script_environment(extra_env)
        for folder in ("outputs", "logs"):  # Azure creates them before the script starts
            (self.wd / folder).mkdir(exist_ok=True)
        if self.spec.get("command") is not None:  # an SDK v2 command, run with bash as Azure runs it
            command = args
            self.say(f"Running (bash): {args[-1]}")
        else:
            command = [self.python, self.spec["script"], *args]
            self.say(f"Running: {' '.join(command[1:])}")
        workers = self.spec.get("workers", 1)
        if workers == 1:
            self.procs = [self.start(command, env, self.log, "script")]
        else:
            self.procs = self.start_workers(command, env, workers)
        while self.first_failure() is None and any(proc.poll() is None for proc in self.procs):
            self.ingest_events()
            self.record_descendants()
            self.check_cancel()
            time.sleep(POLL_S)
        self.ingest_events()
        failed = self.first_failure()  # read again: a process may have ended between the two checks above
        if failed is not None and workers > 1:
            self.failed_log = WORKER_LOG.format(index=failed)
            self.say(f"Worker {failed} exited with code {self.procs[failed].returncode}: stopping the other workers")
        left = ledger.stop(self.store, self.owner, SCRIPT_ROLES)
        if self.owns_process:
            left += ledger.stop_descendants(grace=2)
        if left:
            self.say(f"Stopped {left} process(es) the script left running")
        code = self.procs[failed].returncode if failed is not None else 0
        self.say(f"Script exited with code {code}")
        return code

    def start(self, command: list[str], env: dict, log, role: str) -> subprocess.Popen:
        return ledger.start(
            self.store, self.owner, role, command, cwd=self.wd, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def record_descendants(self) -> None:
        """Put the script's new descendants in the ledger (once a second), so that even one that left its
        session is stopped by pid and start time if this supervisor dies."""
        if time.time() < self.next_scan:
            return
        self.next_scan = time.time() + 1.0
        found = []
        roots = [psutil.Process()] if self.owns_process else []
        for proc in self.procs:
            try:
                roots.append(psutil.Process(proc.pid))
            except psutil.NoSuchProcess:
                continue
        for root in roots:
            try:
                found += root.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
        for child in found:
            if child.pid in self.seen or any(child.pid == p.pid for p in self.procs):
                continue
            self.seen.add(child.pid)
            try:
                if child.is_running():  # still the process children() saw (psutil compares its start time)
                    ledger.record(self.store, self.owner, "descendant", child.pid)
            except psutil.NoSuchProcess:
                continue

    def first_failure(self) -> int | None:
        """The index of the first script process that exited with an error, if any."""
        return next((i for i, proc in enumerate(self.procs) if proc.poll() not in (None, 0)), None)

    def start_workers(self, command: list[str], env: dict, workers: int) -> list[subprocess.Popen]:
        """A real TensorFlow cluster on 127.0.0.1: one process per worker, each logging to its own file."""
        procs = []
        for index, worker_env in enumerate(worker_environments(env, workers)):
            log_path = self.artifacts / WORKER_LOG.format(index=index)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab", buffering=0) as log:  # the child keeps its own copy of the file
                procs.append(self.start(command, worker_env, log, "worker"))
            address = json.loads(worker_env["TF_CONFIG"])["cluster"]["worker"][index]
            self.say(f"Worker {index} of {workers} at {address}: log in {WORKER_LOG.format(index=index)}")
        return procs

    def kill(self) -> None:
        """End the script (every worker) and everything it started."""
        ledger.stop(self.store, self.owner, SCRIPT_ROLES)
        for proc in self.procs:
            proc.poll()

    def finalize(self) -> None:
        self.ingest_events()
        self.register_outputs()
        for folder in ("outputs", "logs"):
            src = self.wd / folder
            if src.is_dir():  # a link to nothing is left out, as an upload of the folder would leave it
                shutil.copytree(src, self.artifacts / folder, dirs_exist_ok=True, ignore_dangling_symlinks=True)

    def register_outputs(self) -> None:
        """``OutputFileDatasetConfig(...).register_on_complete(name)``: the output folder becomes a file dataset."""
        for arg in self.spec.get("arguments", []):
            output = arg.get("output") if isinstance(arg, dict) else None
            if output and output.get("register"):
                folder = output["folder"].replace("{run-id}", self.spec["run_id"])
                reg = output["register"]
                try:
                    record = dataset_records.register(self.store, reg["name"], [folder], reg.get("description"),
                                                      reg.get("tags"), create_new_version=True)  # fmt: skip
                    self.say(f"Registered output {output['name']!r} as dataset {reg['name']!r} v{record['version']}")
                except dataset_records.DatasetConflict as exc:
                    self.say(f"Warning: output {output['name']!r} was not registered: {exc}")

    def error_lines(self, code: int) -> str:
        """The script's own error (from the failed worker's log): its last traceback, else its last lines."""
        text = (self.artifacts / (self.failed_log or DRIVER_LOG)).read_text(errors="replace")
        script_part = text.split("] Running: ", 1)[-1]
        lines = [ln for ln in script_part.splitlines() if not re.match(r"^\[\d{4}-\d\d-\d\d [\d:]+\] ", ln)]
        start = max((i for i, ln in enumerate(lines) if ln.startswith("Traceback")), default=None)
        tail = lines[start:] if start is not None else lines[-15:]
        who = f"{self.spec['script']} ({self.failed_log})" if self.failed_log else self.spec["script"]
        return f"Script {who} exited with code {code}:\n" + "\n".join(tail[-40:])

    # --- what the script logged ----------------------------------------------------------------
    def ingest_events(self) -> None:
        path = self.dir / "events.jsonl"
        try:
            with open(path, "rb") as f:
                f.seek(self.events_offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        if b"\n" not in chunk:
            return
        chunk = chunk[: chunk.rindex(b"\n") + 1]
        self.events_offset += len(chunk)
        events = []
        for line in chunk.decode(errors="replace").splitlines():
            if line.strip():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    self.say(f"Warning: skipped an unreadable line of events.jsonl: {line[:200]!r}")
        self.record(events)

    def record(self, events: list[dict]) -> None:
        values, tags, properties = [], {}, {}
        for ev in events:
            kind, name, value, ts = ev["kind"], ev["name"], ev.get("value"), ev["time"]
            if kind in run_records.KINDS and kind != "image":
                values.append({"name": name, "kind": kind, "value": value, "time": ts, "step": ev.get("step")})
            elif kind == "image":
                shutil.copyfile(self.dir / "files" / value, self.artifacts / value)
                uri = f"aml://artifactId/ExperimentRun/dcid.{self.spec['run_id']}/{value}"
                values.append({"name": name, "kind": "image", "value": uri, "time": ts})
            elif kind == "file":
                target = (self.artifacts / name).resolve()
                if not target.is_relative_to(self.artifacts.resolve()):  # the script checks; this is the guard
                    self.say(f"Refused the file {name!r}: it would land outside the run's folder")
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.dir / "files" / value, target)
            elif kind == "tag":
                tags[name] = value
            elif kind == "property":
                properties[name] = value
            elif kind == "error":
                self.script_failure = str(value)
                self.say(f"The script marked the run failed: {value}")
            elif kind == "complete":
                self.say("The script marked the run complete")
        run_records.append_values(self.store, self.spec, values)
        if tags:
            try:
                run_records.set_tags(self.store, self.spec, tags)
            except run_records.BadTag as exc:
                self.say(f"Warning: {exc}")
        if properties:
            try:
                run_records.add_properties(self.store, self.spec, properties)
            except run_records.PropertyConflict as exc:
                self.say(f"Warning: {exc}")


def worker_environments(env: dict, workers: int) -> list[dict]:
    """``env`` for each worker of a TensorFlow cluster on 127.0.0.1, with its own ``TF_CONFIG``.

    On Azure each worker has a node to itself; here they share this machine's cores,
    so each gets an equal share of TensorFlow's threads (unless ``env`` sets them).
    """
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return [
        {
            "TF_NUM_INTRAOP_THREADS": threads,
            "TF_NUM_INTEROP_THREADS": "1",
            **env,
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}, "environment": "cloud"}
            ),
        }
        for i in range(workers)
    ]


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (the workers bind them a moment later)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def main(argv: list[str]) -> int:
    ledger.become_subreaper()  # orphans of the script are re-parented here, and stopped with the rest
    try:
        return Supervisor(Path(argv[0]), owns_process=True).run()
    finally:
        ledger.stop_descendants(grace=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
