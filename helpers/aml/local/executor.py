"""A local run's supervisor: ``python -m helpers.aml.local.executor RUN_DIR``.

It takes one run through Azure ML's states and really executes it:

Queued      waits for a free node of the compute target (``max_nodes`` caps how many
            of its runs execute at once: one file lock per node)
Preparing   copies the source folder into the run's working folder (honouring
            ``.amlignore``, else ``.gitignore``), resolves dataset arguments to local
            folders of verified files, checks the environment's packages
Running     runs the script in a subprocess of its own session, its output going to
            the driver log, while metrics it logs are read into the run history
Finalizing  reads the last metrics, turns ``./outputs`` and ``./logs`` into run files
then        Completed, Failed (with the script's own error lines) or Canceled
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

from helpers.aml.local._common import stop_process_group
from helpers.aml.local.runs import (
    DRIVER_LOG,
    KIND_PREFIX,
    MLFLOW_STATUS,
    PROPERTY_PREFIX,
    STATUS_TAG,
    STRING_PREFIX,
    TERMINAL,
    WORKER_LOG,
    utc_now,
)
from helpers.aml.local.store import LocalStore, read_json

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
#: Azure ML runtime metapackages that a local interpreter with azureml-core stands in for.
STAND_INS = {"azureml-defaults": "azureml-core"}
POLL_S = 0.25


class RunCanceled(Exception):
    pass


class RunFailed(Exception):
    pass


def set_status(store: LocalStore, spec: dict, status: str, error: str | None = None, reason: str | None = None):
    """Record a state change in the MLflow run (tag + MLflow's own status)."""
    client = store.mlflow
    run_id = spec["mlflow_run_id"]
    with store.write_lock():
        current = client.get_run(run_id).data.tags.get(STATUS_TAG)
        if current in TERMINAL:
            return
        client.set_tag(run_id, STATUS_TAG, status)
        if status == "Running":
            client.set_tag(run_id, "azureml.start_time", utc_now())
        if error:
            client.set_tag(run_id, "azureml.error", error[-6000:])
        if reason:
            client.set_tag(run_id, "azureml.cancel_reason", reason)
        if status in TERMINAL:
            client.set_tag(run_id, "azureml.end_time", utc_now())
            client.set_terminated(run_id, MLFLOW_STATUS[status])
        else:
            client.update_run(run_id, status=MLFLOW_STATUS[status])


class Supervisor:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.spec = read_json(run_dir / "run.json")
        self.store = LocalStore.get(Path(self.spec["root"]))
        self.client = self.store.mlflow
        self.artifacts = Path(self.spec["artifact_dir"])
        self.wd = run_dir / "wd"
        self.log = open(self.artifacts / DRIVER_LOG, "ab", buffering=0)
        self.events_offset = 0
        self.steps: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.strings: dict[str, list] = {}
        self.columns: dict[str, set] = {}
        self.procs: list[subprocess.Popen] = []  # the script: one process, or one per worker
        self.failed_log: str | None = None  # the log of the worker that failed a multi-worker run
        self.python = sys.executable  # or a built environment's interpreter (helpers.aml.local.envs)
        self.deadline = time.time() + float(self.spec.get("max_run_duration_seconds") or 2592000)

    # --- helpers ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.log.write(f"[{stamp}] {text}\n".encode())

    def status(self, status: str, **kwargs) -> None:
        self.say(f"Status: {status}")
        set_status(self.store, self.spec, status, **kwargs)

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
            self.status("Completed")
            return 0
        except RunCanceled as exc:
            self.kill()
            self.finalize()
            reason = str(exc)
            self.say(f"Canceled: {reason}")
            self.status("Canceled", reason=reason)
            return 0
        except RunFailed as exc:
            self.kill()
            self.finalize()
            self.say(f"Error: {exc}")
            self.status("Failed", error=str(exc))
            return 1
        except Exception as exc:  # noqa: BLE001  (the run must end Failed, never hang)
            self.kill()
            self.say(traceback.format_exc())
            self.status("Failed", error=f"The local run supervisor failed: {exc!r}")
            return 1
        finally:
            for slot in slots:
                slot.release()
            self.log.close()

    def acquire_nodes(self, count: int) -> list:
        """One lock per node the run needs, taken all at once (a run never holds some while waiting)."""
        target = self.spec.get("target", "local")
        if target == "local":
            return []
        with self.store.db() as db:
            row = db.execute("SELECT max_nodes FROM compute WHERE name = ?", (target,)).fetchone()
        if row is None:
            raise RunFailed(f"Compute target {target!r} no longer exists in the local workspace.")
        slots = self.store.compute_slot_locks(target, int(row["max_nodes"]))
        if count > len(slots):
            raise RunFailed(f"The run needs {count} nodes; {target} has max_nodes={len(slots)}.")
        waited = False
        while True:
            taken = []
            for lock in slots:
                try:
                    lock.acquire(timeout=0)
                    taken.append(lock)
                except Exception:  # noqa: BLE001  (filelock.Timeout: that node is busy)
                    continue
                if len(taken) == count:
                    nodes = ", ".join(str(slots.index(lock)) for lock in taken)
                    self.say(f"Got node{'s' if count > 1 else ''} {nodes} of {len(slots)} on {target}")
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
        shutil.copytree(source, self.wd, ignore=_snapshot_filter(source), dirs_exist_ok=True)
        self.check_environment(self.spec["environment"])
        args, env_vars = [], {}
        for arg in self.spec["arguments"]:
            if isinstance(arg, dict):
                path = self.resolve_dataset(arg["dataset"])
                env_vars[f"AZUREML_DATAREFERENCE_{arg['dataset']['input_name']}"] = path
                args.append(path)
            else:
                args.append(arg)
        return args, env_vars

    def check_environment(self, env: dict) -> None:
        if env.get("docker_image"):
            self.say(
                f"Warning: Docker image {env['docker_image']} is not built locally: "
                "the run uses this machine's Python environment."
            )
        missing = []
        for line in env.get("pip", []):
            problem = _unsatisfied(line)
            if problem:
                missing.append(problem)
        for conda in env.get("conda", []):
            name, _, version = conda.partition("=")
            if name == "python" and version:
                have = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
                if not (have + ".").startswith(version + "."):
                    self.say(f"Warning: the environment asks for python={version}; this run uses {have}.")
            elif name not in ("pip",):
                self.say(f"Warning: conda package {conda!r} is not checked locally (pip packages are).")
        if missing and env.get("user_managed"):
            raise RunFailed(
                f"Environment {env['name']!r} is user-managed, and this interpreter ({sys.executable}) lacks: "
                + "; ".join(missing)
                + ". Install them (pyproject.toml, then `make install`), or let Azure ML manage the environment."
            )
        if missing:
            from helpers.aml.local import envs

            self.say(f"Environment {env['name']!r}: this interpreter lacks " + "; ".join(missing))
            try:
                self.python = envs.ensure(env, self.say)
            except envs.EnvironmentBuildError as exc:
                raise RunFailed(str(exc)) from None
            return
        self.say(f"Environment {env['name']!r}: all {len(env.get('pip', []))} pip packages satisfied")

    def resolve_dataset(self, ds: dict) -> str:
        from helpers.aml.local.datasets import materialize

        folder = materialize(self.store, ds, say=self.say)
        if ds["mode"] == "download":
            target = self.wd / "datasets" / ds["input_name"]
            shutil.copytree(folder, target, dirs_exist_ok=True)
            folder = target
        self.say(f"Dataset {ds['name'] or ds['input_name']!r} ({ds['mode']}) at {folder}")
        return str(folder)

    def execute(self, args: list[str], extra_env: dict) -> int:
        env = dict(os.environ)
        env.update(extra_env)
        env.update(
            AZUREML_LOCAL_RUN_DIR=str(self.dir),
            AZUREML_RUN_ID=self.spec["run_id"],
            AZUREML_EXPERIMENT_NAME=self.spec["experiment"],
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
            PYTHONPATH=os.pathsep.join(filter(None, [str(RUNTIME_DIR), env.get("PYTHONPATH")])),
        )
        command = [self.python, self.spec["script"], *args]
        self.say(f"Running: {' '.join(command[1:])}")
        workers = self.spec.get("workers", 1)
        if workers == 1:
            self.procs = [self.start(command, env, self.log)]
        else:
            self.procs = self.start_workers(command, env, workers)
        while self.first_failure() is None and any(proc.poll() is None for proc in self.procs):
            self.ingest_events()
            self.check_cancel()
            time.sleep(POLL_S)
        self.ingest_events()
        failed = self.first_failure()  # read again: a process may have ended between the two checks above
        if failed is not None and workers > 1:
            self.failed_log = WORKER_LOG.format(index=failed)
            self.say(f"Worker {failed} exited with code {self.procs[failed].returncode}: stopping the other workers")
            self.kill()
        code = self.procs[failed].returncode if failed is not None else 0
        self.say(f"Script exited with code {code}")
        return code

    def start(self, command: list[str], env: dict, log) -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=self.wd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )  # fmt: skip

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
                procs.append(self.start(command, worker_env, log))
            address = json.loads(worker_env["TF_CONFIG"])["cluster"]["worker"][index]
            self.say(f"Worker {index} of {workers} at {address}: log in {WORKER_LOG.format(index=index)}")
        return procs

    def kill(self) -> None:
        """End the script (every worker) and everything it started."""
        for proc in self.procs:
            if proc.poll() is None:
                stop_process_group(proc.pid)
                proc.wait()

    def finalize(self) -> None:
        self.ingest_events()
        for folder in ("outputs", "logs"):
            src = self.wd / folder
            if src.is_dir():
                shutil.copytree(src, self.artifacts / folder, dirs_exist_ok=True)

    def error_lines(self, code: int) -> str:
        """The script's own error (from the failed worker's log): its last traceback, else its last lines."""
        text = (self.artifacts / (self.failed_log or DRIVER_LOG)).read_text(errors="replace")
        script_part = text.split("] Running: ", 1)[-1]
        lines = [ln for ln in script_part.splitlines() if not re.match(r"^\[\d{4}-\d\d-\d\d [\d:]+\] ", ln)]
        start = max((i for i, ln in enumerate(lines) if ln.startswith("Traceback")), default=None)
        tail = lines[start:] if start is not None else lines[-15:]
        who = f"{self.spec['script']} ({self.failed_log})" if self.failed_log else self.spec["script"]
        return f"Script {who} exited with code {code}:\n" + "\n".join(tail[-40:])

    # --- metrics and files the script logged ----------------------------------------------------
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
        events = [json.loads(line) for line in chunk.decode().splitlines() if line.strip()]
        self.record(events)

    def record(self, events: list[dict]) -> None:
        from mlflow.entities import Metric

        metrics, tags = [], {}
        run_id = self.spec["mlflow_run_id"]

        def metric(key, value, ts, step=None):
            if step is None:
                step = self.steps.get(key, 0)
            self.steps[key] = step + 1
            metrics.append(Metric(key, float(value), int(ts * 1000), step))

        for ev in events:
            kind, name, value, ts = ev["kind"], ev["name"], ev["value"], ev["time"]
            if kind == "scalar":
                if _is_number(value):
                    metric(name, value, ts, ev.get("step"))
                    self.kind(tags, name, "scalar")
                else:
                    self.strings.setdefault(name, []).append(value)
                    tags[STRING_PREFIX + name] = json.dumps(self.strings[name])
                    self.kind(tags, name, "string")
            elif kind == "list":
                for item in value:
                    if _is_number(item):
                        metric(name, item, ts)
                self.kind(tags, name, "list")
            elif kind in ("row", "table"):
                for col, val in value.items():
                    for item in val if kind == "table" else [val]:
                        if _is_number(item):
                            metric(f"{name}/{col}", item, ts)
                self.columns.setdefault(name, set()).update(value)
                tags[STRING_PREFIX + name] = json.dumps(sorted(self.columns[name]))
                self.kind(tags, name, kind)
            elif kind == "image":
                shutil.copyfile(self.dir / "files" / value, self.artifacts / value)
                uri = f"aml://artifactId/ExperimentRun/dcid.{self.spec['run_id']}/{value}"
                tags[STRING_PREFIX + name] = uri
                self.kind(tags, name, "image")
            elif kind == "file":
                target = self.artifacts / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.dir / "files" / value, target)
            elif kind == "tag":
                tags[name] = value
            elif kind == "property":
                tags[PROPERTY_PREFIX + name] = value
        if metrics or tags:
            from mlflow.entities import RunTag

            with self.store.write_lock():
                for i in range(0, max(len(metrics), 1), 900):  # MLflow's batch limit is 1000 metrics
                    self.client.log_batch(
                        run_id,
                        metrics=metrics[i : i + 900],
                        tags=[RunTag(k, str(v)) for k, v in tags.items()] if i == 0 else [],
                    )

    def kind(self, tags: dict, name: str, kind: str) -> None:
        if self.kinds.get(name) != kind:
            self.kinds[name] = kind
            tags[KIND_PREFIX + name] = kind


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


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unsatisfied(requirement: str) -> str | None:
    """None when this interpreter satisfies a pip requirement line, else what is missing."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return f"{requirement} (not a requirement this check understands)"
    if req.marker is not None and not req.marker.evaluate():
        return None
    name = STAND_INS.get(req.name.lower(), req.name)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return requirement
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return f"{requirement} (installed: {version})"
    return None


def _snapshot_filter(source: Path):
    """``shutil.copytree`` ignore function for ``.amlignore`` (or else ``.gitignore``) patterns."""
    import pathspec

    for name in (".amlignore", ".gitignore"):
        file = source / name
        if file.is_file():
            spec = pathspec.PathSpec.from_lines("gitwildmatch", file.read_text().splitlines())
            break
    else:
        return None

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(source)
        skipped = set()
        for n in names:
            path = (rel / n).as_posix()
            if spec.match_file(path) or (Path(folder, n).is_dir() and spec.match_file(path + "/")):
                skipped.add(n)
        return skipped

    return ignore


def main(argv: list[str]) -> int:
    return Supervisor(Path(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
