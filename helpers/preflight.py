"""`make preflight` (``python -m helpers.preflight``): before the day, run the whole walkthrough on Azure ML.

An instructor with a subscription runs every notebook (the v1 track, the Chainer track, the v2 track) in Azure
mode with the smallest settings (1 epoch, a 2-run sweep, 2 nodes of the cheapest size), deletes what it created
and writes a dated report: each notebook passed or its first error, its minutes, and an estimate of what was
billed (VM size × minutes).  The settings reach the notebooks the way a workshop's do: as the environment
variables their parameters cells read (``AML_EPOCHS``, ``AML_SWEEP_RUNS``, ``AML_VM_SIZE`` ...).

Without a workspace ``config.json`` (or with ``AZUREML_MODE=local``) it stops at once with one line: it never
falls back to the local workspace.  See docs/instructors.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import aml_offline

from helpers._scripts import PROJECT_ROOT

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
REPORT_DIR = PROJECT_ROOT / "build" / "preflight"
#: A cell may wait for an image build and for nodes to start: allow an hour
CELL_TIMEOUT_S = 3600

#: The cheapest size the walkthrough runs on (2 vCPUs, 7 GB; a CPU family new subscriptions have quota for)
CHEAPEST_SIZE = "Standard_D2_v2"
#: The pre-flight's own cluster, so that deleting it at the end never touches a cluster of the class
CLUSTER = "aml-preflight"
#: 07-deploy's web service (Azure Container Instances): the pre-flight's own name
SERVICE = "keras-mnist-preflight"
#: v2/05's online endpoint: its name must be unique in the Azure region, hence a random suffix per check
ENDPOINT_PREFIX = "keras-mnist-pf-"
#: The pre-flight's prefix for what the notebooks name (helpers.names): its runs and models stand apart from the class's
PREFIX = "preflight"
#: The models the notebooks register (04, 06, the Chainer track, v2/05), under the pre-flight's prefix
MODELS = tuple(f"{PREFIX}-{name}" for name in ("keras-mnist", "keras-mlp-mnist", "chainer-dnn-mnist", "keras-mnist-v2"))

#: The smallest settings that still run every notebook, as the variables the notebooks read
SMALLEST = {
    "AML_EPOCHS": "1",
    "AML_CHAINER_EPOCHS": "1",
    "AML_SWEEP_RUNS": "2",
    "AML_SWEEP_CONCURRENT": "2",
    "AML_WORKERS": "2",
    "AML_MAX_NODES": "2",
    "AML_DIGITS_TO_SHOW": "10",
    "AML_SERVICE_CHECK_DIGITS": "250",
    # One epoch checks the plumbing, not the accuracy: the floors the notebooks assert are lowered.
    "AML_ACCURACY_FLOOR": "0.85",
    "AML_CHAINER_ACCURACY_FLOOR": "0.8",
    "AML_SWEEP_TOLERANCE": "0.5",
}
#: Notebooks that train on the cluster, and the setting that says how many nodes they use at once (1 if none)
CLUSTER_NODES = {
    "03-train": None,
    "06-tune": "AML_SWEEP_CONCURRENT",
    "08-distributed": "AML_WORKERS",
    "chainer/train-and-register-chainer": None,
    "v2/03-train": None,
    "v2/04-tune": "AML_SWEEP_CONCURRENT",
}
#: Notebooks that serve the model on resources of their own, named in their code
SERVING = {"07-deploy", "v2/05-register-deploy"}

PASSED, FAILED, NOT_RUN = "passed", "FAILED", "not run"


def preflight_settings(environ: Mapping[str, str], *, vm_size: str | None, token: str, work_dir: Path) -> dict:
    """The variables every notebook's kernel gets on top of this process's environment: Azure mode, the smallest
    settings, the pre-flight's own names.  The size is ``vm_size``, else ``AML_VM_SIZE``, else the cheapest."""
    return {
        "AZUREML_MODE": "azure",
        **SMALLEST,
        "AML_VM_SIZE": vm_size or environ.get("AML_VM_SIZE") or CHEAPEST_SIZE,
        "AML_CLUSTER": CLUSTER,
        "AML_PREFIX": PREFIX,
        "AML_SERVICE_NAME": SERVICE,
        "AML_V2_ENDPOINT": ENDPOINT_PREFIX + token,
        "AML_WORK_DIR": str(work_dir),
    }


def notebook_key(path: Path, notebook_dir: Path = NOTEBOOK_DIR) -> str:
    """``03-train``, ``v2/03-train``, ``chainer/train-and-register-chainer``."""
    return path.relative_to(notebook_dir).with_suffix("").as_posix()


def track_of(key: str) -> str:
    """The v2 notebooks need only each other; the v1 ones and the Chainer track need 00 to 02."""
    return "v2" if key.startswith("v2/") else "v1"


@dataclass(frozen=True)
class Usage:
    """What a notebook paid for while it ran: ``units`` of ``what`` (cluster nodes, a container, an instance)."""

    what: str
    units: int


def usage_of(key: str, settings: Mapping[str, str], source: str = "") -> Usage | None:
    """The paid resources a notebook keeps busy while it runs, or None (it works from this machine only).

    ``source`` is the notebook's code: what 07 and v2/05 deploy on is read from it."""
    if key in CLUSTER_NODES:
        setting = CLUSTER_NODES[key]
        nodes = int(settings[setting]) if setting else 1
        if setting == "AML_SWEEP_CONCURRENT":
            nodes = min(nodes, int(settings["AML_SWEEP_RUNS"]))
        if source and not re.search(r"\bcompute(_target)?\s*=", source):  # SDK v2's serverless compute
            return Usage("serverless compute node (Azure picks the size)", nodes)
        return Usage(f"{settings['AML_VM_SIZE']} cluster node", min(nodes, int(settings["AML_MAX_NODES"])))
    if key in SERVING:
        instance = re.search(r"instance_type\s*=\s*\"([^\"]+)\"", source)
        if instance:
            count = re.search(r"instance_count\s*=\s*(\d+)", source)
            return Usage(f"{instance.group(1)} endpoint instance", int(count.group(1)) if count else 1)
        cores = re.search(r"cpu_cores\s*=\s*([\d.]+)", source)
        memory = re.search(r"memory_gb\s*=\s*([\d.]+)", source)
        if cores and memory:
            return Usage(f"container instance ({cores.group(1)} vCPU, {memory.group(1)} GB)", 1)
        return Usage("serving resources (size not found in the notebook)", 1)
    return None


@dataclass
class Result:
    """One notebook's outcome."""

    key: str
    status: str = NOT_RUN
    minutes: float | None = None
    error: str = ""
    usage: Usage | None = None


def first_error(ename: str, evalue: str) -> str:
    """An error in one line: its name and its first informative line (azureml-core puts the message in JSON)."""
    lines = [line.strip() for line in (evalue or "").splitlines() if line.strip() and line.strip() != f"{ename}:"]
    message = next((line.split('"message": ', 1)[1].strip('",') for line in lines if '"message": ' in line), None)
    text = f"{ename}: {message or (lines[0] if lines else '')}"
    return text if len(text) <= 300 else text[:297] + "..."


def blocked_by(key: str, results: list[Result], keep_going: bool = False) -> str | None:
    """The notebook of the same track that failed earlier (then this one is not run), or None."""
    if keep_going:
        return None
    failed = [r.key for r in results if r.status != PASSED and track_of(r.key) == track_of(key)]
    return failed[0] if failed else None


@dataclass(frozen=True)
class Step:
    """One clean-up step: ``action`` on ``name``, and why."""

    action: str
    name: str
    why: str


def cleanup_plan(settings: Mapping[str, str], *, keep_cluster: bool = False, delete_models: bool = False) -> list:
    """What the clean-up does, in order: jobs first (a cluster with running jobs cannot go), the cluster last."""
    steps = [
        Step("cancel active jobs", "jobs submitted during the check", "a notebook stopped halfway leaves them"),
        Step("delete web service", settings["AML_SERVICE_NAME"], "07-deploy deletes it; this catches a stop halfway"),
        Step("delete endpoint", settings["AML_V2_ENDPOINT"], "v2/05 deletes it; this catches a stop halfway"),
    ]
    if delete_models:
        steps.append(Step("delete model versions", ", ".join(MODELS), "the versions registered during the check"))
    if keep_cluster:
        steps.append(Step("scale cluster to zero", settings["AML_CLUSTER"], "kept: 0 nodes after 2 idle minutes"))
    else:
        steps.append(Step("delete cluster", settings["AML_CLUSTER"], "the pre-flight's own cluster"))
    return steps


def node_minutes(results: list[Result]) -> dict[str, float]:
    """Minutes × units, summed per kind of resource (an estimate: a notebook's wall-clock time)."""
    total: dict[str, float] = {}
    for r in results:
        if r.usage and r.minutes:
            total[r.usage.what] = total.get(r.usage.what, 0.0) + r.minutes * r.usage.units
    return total


def render_report(*, started: datetime, finished: datetime | None, mode_line: str, settings: Mapping[str, str],
                  results: list[Result], cleanup: list[tuple[Step, str]], cluster_minutes: float | None,
                  out_dir: Path) -> str:  # fmt: skip
    """The report, in Markdown."""
    ran = [r for r in results if r.status != NOT_RUN]
    failed = [r for r in results if r.status != PASSED]
    cleanup_failed = [s for s, outcome in cleanup if outcome.startswith(FAILED)]
    if finished is None:
        verdict = f"**Still running**: {len(ran)} of {len(results)} notebooks so far."
    elif failed:
        verdict = f"**{len(failed)} of {len(results)} notebooks failed or did not run**: see the first error below."
    else:
        verdict = f"**All {len(results)} notebooks passed.**"
    took = f" It took {(finished - started).total_seconds() / 60:.0f} min." if finished else ""
    lines = [
        f"# Pre-flight check, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"{verdict}{took}",
        "",
        mode_line,
        "",
        "## Notebooks",
        "",
        "| notebook | result | minutes | first error |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        minutes = f"{r.minutes:.1f}" if r.minutes is not None else ""
        lines.append(f"| {r.key} | {r.status} | {minutes} | {r.error.replace('|', '/')} |")
    lines += ["", "## Clean-up", ""]
    if cleanup:
        lines += ["| step | name | outcome |", "| --- | --- | --- |"]
        lines += [f"| {s.action} | {s.name} | {outcome.replace('|', '/')} |" for s, outcome in cleanup]
        if cleanup_failed:
            lines += ["", "**Some steps failed**: delete what they name by hand in Azure ML studio (ml.azure.com), "
                      "or it goes on costing money."]  # fmt: skip
    else:
        lines.append("Not done yet.")
    lines += [
        "",
        "## What was billed (an estimate)",
        "",
        "Each notebook's wall-clock minutes × the nodes or instances it kept busy. It includes waiting for images "
        "to build and nodes to start, and misses nodes that idled before scaling down; it does not count this "
        "machine, storage, the container registry or image builds. Multiply by your region's prices; Azure Cost "
        "Management shows the real charge a day or so later.",
        "",
    ]
    used = node_minutes(results)
    if used:
        lines += ["| resource | minutes × units |", "| --- | --- |"]
        lines += [f"| {what} | {minutes:.1f} |" for what, minutes in sorted(used.items())]
    else:
        lines.append("Nothing that bills by the minute ran.")
    if cluster_minutes is not None:
        nodes = settings["AML_MAX_NODES"]
        lines += ["", f"At most: the cluster `{settings['AML_CLUSTER']}` existed for {cluster_minutes:.0f} min with "
                      f"up to {nodes} nodes of {settings['AML_VM_SIZE']} ({cluster_minutes * int(nodes):.0f} "
                      "node-minutes)."]  # fmt: skip
    lines += [
        "",
        "## Settings",
        "",
        "Given to every notebook as environment variables (the notebooks read them; nothing in them is changed):",
        "",
        "| variable | value |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value} |" for name, value in settings.items()]
    lines += ["", f"Executed notebooks, with their outputs and each kernel's log: `{out_dir}`", ""]
    return "\n".join(lines)


def check_can_start(notebook_dir: Path = NOTEBOOK_DIR) -> str:
    """Stop with one line unless the notebooks would run in Azure mode; returns the line that names the workspace.

    Sets ``AZUREML_MODE=azure`` in this process (the kernels inherit it): a missing config is an error, never a
    quiet run on the local workspace."""
    value = os.environ.get("AZUREML_MODE", "").strip().lower()
    if value == "local":
        raise SystemExit(
            "Pre-flight check not started: it runs the walkthrough on Azure ML, but AZUREML_MODE=local asks for "
            "the offline local workspace. Unset it (unset AZUREML_MODE) and put the workspace's config.json in "
            "the project folder."
        )
    if value not in ("", "azure"):
        raise SystemExit(f"Pre-flight check not started: AZUREML_MODE={value!r} is not a mode; unset it.")
    os.environ["AZUREML_MODE"] = "azure"
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            aml_offline.activate(notebook_dir)
    except aml_offline.ModeError as exc:
        raise SystemExit(f"Pre-flight check not started (it runs on Azure ML): {exc}") from None
    return said.getvalue().strip()


def check_signed_in() -> None:
    """The notebooks run headless: they cannot show a sign-in prompt, so a sign-in must exist before they start."""
    from azure.identity import DefaultAzureCredential

    try:
        DefaultAzureCredential().get_token("https://management.azure.com/.default")
    except Exception as exc:  # noqa: BLE001  (any failure means the same thing here)
        raise SystemExit(
            "Pre-flight check not started: no Azure sign-in found, and the notebooks run headless, where they "
            f"cannot ask you to sign in. Run az login first. ({first_error(type(exc).__name__, str(exc))})"
        ) from None


class _Azure:
    """The workspace through the two SDKs, connected on first use: the clean-up's only calls to Azure."""

    def __init__(self, notebook_dir: Path):
        self.folder = str(notebook_dir)

    @cached_property
    def ws(self):
        from azureml.core import Workspace

        return Workspace.from_config(path=self.folder)

    @cached_property
    def ml_client(self):
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        return MLClient.from_config(credential=DefaultAzureCredential(), path=self.folder)


def _utc(moment: datetime | None) -> datetime:
    """A time from Azure as an aware UTC time (the SDKs give naive UTC times in places); None is long ago."""
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def carry_out(step: Step, azure: _Azure, started: datetime) -> str:
    """Do one clean-up step on Azure; returns what happened, in a few words."""
    from azure.core.exceptions import ResourceNotFoundError

    ml = azure.ml_client
    if step.action == "cancel active jobs":
        from azure.ai.ml.constants import ListViewType

        active = [j for j in ml.jobs.list(list_view_type=ListViewType.ACTIVE_ONLY)
                  if j.creation_context and _utc(j.creation_context.created_at) >= started]  # fmt: skip
        for job in active:
            ml.jobs.begin_cancel(job.name).result()
        return f"cancelled {', '.join(j.name for j in active)}" if active else "none active"
    if step.action == "delete web service":
        from azureml.core.webservice import Webservice
        from azureml.exceptions import WebserviceException

        try:
            service = Webservice(azure.ws, step.name)
        except WebserviceException:
            return "not there (the notebook deleted it, or never made it)"
        service.delete()
        return "deleted"
    if step.action == "delete endpoint":
        try:
            ml.online_endpoints.get(step.name)
        except ResourceNotFoundError:
            return "not there (the notebook deleted it, or never made it)"
        ml.online_endpoints.begin_delete(name=step.name).result()
        return "deleted"
    if step.action == "delete model versions":
        from azureml.core import Model

        gone = []
        for name in MODELS:
            for model in Model.list(azure.ws, name=name):
                if model.created_time and _utc(model.created_time) >= started:
                    model.delete()
                    gone.append(f"{model.name}:{model.version}")
        return f"deleted {', '.join(gone)}" if gone else "none registered"
    if step.action in ("delete cluster", "scale cluster to zero"):
        try:
            cluster = ml.compute.get(step.name)
        except ResourceNotFoundError:
            return "not there (02-compute never made it)"
        if step.action == "delete cluster":
            ml.compute.begin_delete(step.name).result()
            return "deleted"
        cluster.min_instances, cluster.idle_time_before_scale_down = 0, 120
        ml.compute.begin_update(cluster).result()
        return "min nodes 0, scales down after 120 s idle"
    raise ValueError(f"unknown clean-up step {step.action!r}")


def notebook_code(path: Path) -> str:
    """A notebook's code cells, one after another."""
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def run_notebook(path: Path, key: str, out_dir: Path, env: dict, timeout: int) -> Result:
    """Execute one notebook in Azure mode until its first failing cell; its executed copy goes to ``out_dir``."""
    from aml_offline import notebooks

    def on_cell(index, cell, seconds, error):
        print(f"  {'ok' if error is None else 'FAILED':6} {seconds:6.0f}s cell {index}", flush=True)

    start = time.monotonic()
    result = Result(key)
    try:
        _, failure = notebooks.execute(path, out_dir, env=env, timeout=timeout, on_cell=on_cell)
    except Exception as exc:  # noqa: BLE001  (the kernel did not start, say: the report says so)
        failure, result.error = None, "before the first cell: " + first_error(type(exc).__name__, str(exc))
    result.minutes = (time.monotonic() - start) / 60
    if failure:
        index, _, exc = failure
        result.error = f"cell {index}: {first_error(exc.ename, exc.evalue)}"
    result.status = FAILED if result.error else PASSED
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.preflight",
        description="Before the day: run the walkthrough on Azure ML with the smallest settings, delete what it "
        "made, and write a dated report to build/preflight/ (docs/instructors.md).",
    )
    parser.add_argument("--vm-size", help=f"the cluster's size (default: AML_VM_SIZE, else {CHEAPEST_SIZE})")
    parser.add_argument("--keep-cluster", action="store_true", help="scale the cluster to zero instead of deleting")
    parser.add_argument("--delete-models", action="store_true", help="delete the model versions it registered")
    parser.add_argument("--keep-going", action="store_true", help="run a track's notebooks after one failed")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT_S, help="seconds a cell may run")
    args = parser.parse_args(argv)

    mode_line = check_can_start().split("; ")[0]  # "Azure ML mode: workspace '...' (resource group ...) from ..."
    check_signed_in()
    from helpers.walkthrough import walkthrough_notebooks

    started = datetime.now(UTC)
    out_dir = REPORT_DIR / f"{started:%Y-%m-%d-%H%M%S}"
    report = out_dir / "report.md"
    settings = preflight_settings(os.environ, vm_size=args.vm_size, token=secrets.token_hex(3),
                                  work_dir=out_dir / "work")  # fmt: skip
    env = dict(os.environ, **settings, PYTHONUNBUFFERED="1")
    paths = walkthrough_notebooks()
    results = [Result(notebook_key(p)) for p in paths]
    cleanup: list[tuple[Step, str]] = []
    cluster_since = cluster_until = None

    def write(finished: datetime | None = None) -> None:
        cluster_minutes = None
        if cluster_since is not None:
            cluster_minutes = ((cluster_until or time.monotonic()) - cluster_since) / 60
        report.write_text(render_report(started=started, finished=finished, mode_line=mode_line, settings=settings,
                                        results=results, cleanup=cleanup, cluster_minutes=cluster_minutes,
                                        out_dir=out_dir))  # fmt: skip

    out_dir.mkdir(parents=True)
    print(f"{mode_line}\nPre-flight check: {len(paths)} notebooks, report in {report}", flush=True)
    try:
        for index, (path, result) in enumerate(zip(paths, results, strict=True)):
            blocker = blocked_by(result.key, results[:index], args.keep_going)
            if blocker:
                result.error = f"{blocker} did not pass"
                continue
            print(f"Running {result.key} ...", flush=True)
            if result.key.endswith("02-compute") and cluster_since is None:
                cluster_since = time.monotonic()
            done = run_notebook(path, result.key, out_dir / Path(result.key).parent, env, args.cell_timeout)
            result.status, result.minutes, result.error = done.status, done.minutes, done.error
            result.usage = usage_of(result.key, settings, notebook_code(path))
            print(f"  {result.status} in {result.minutes:.1f} min {result.error}", flush=True)
            write()
    except KeyboardInterrupt:
        print("Interrupted: cleaning up (Ctrl-C again stops the clean-up too; then delete by hand)", flush=True)
        running = next((r for r in results if r.status == NOT_RUN and not r.error), None)
        if running:
            running.status, running.error = FAILED, "interrupted (Ctrl-C)"
    finally:
        azure = _Azure(NOTEBOOK_DIR)
        for step in cleanup_plan(settings, keep_cluster=args.keep_cluster, delete_models=args.delete_models):
            print(f"Clean-up: {step.action} {step.name} ...", flush=True)
            try:
                outcome = carry_out(step, azure, started)
            except Exception as exc:  # noqa: BLE001  (the report names what is left to delete by hand)
                outcome = f"{FAILED}: {first_error(type(exc).__name__, str(exc))}"
            cleanup.append((step, outcome))
            print(f"  {outcome}", flush=True)
        if cluster_since is not None:
            cluster_until = time.monotonic()
        write(finished=datetime.now(UTC))
    print(f"\n{report.read_text()}")
    passed = all(r.status == PASSED for r in results)
    return 0 if passed and not any(outcome.startswith(FAILED) for _, outcome in cleanup) else 1


if __name__ == "__main__":
    sys.exit(main())
