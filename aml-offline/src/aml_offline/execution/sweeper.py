"""A sweep's supervisor: ``python -m aml_offline.execution.sweeper RUN_DIR``.

It samples parameter sets with the rules in :mod:`.sweep_rules`, records each as
an ordinary child run of the sweep (its arguments plus ``--name value`` for each
hyperparameter, as HyperDrive does) and supervises it in a thread of this
process (a child starts in the time its script needs, not the seconds a new
supervisor process needs), keeps at most ``max_concurrent_runs`` going (the
cluster's ``max_nodes`` caps them too, through the node locks), reads their
primary metric as they log it, and cancels the children the early-termination
policy stops.  It ends Completed when every child has ended, Canceled when it
was canceled, and Failed only when every child failed.

The children's hyperparameters are the parent's tags ``_aml_system_<child id>``
(JSON), where azureml-core's ``HyperDriveRun.get_hyperparameters`` reads them.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path

from aml_offline.execution import ledger, sweep_rules
from aml_offline.execution.supervisor import Supervisor
from aml_offline.records import runs as run_records
from aml_offline.records import status as run_status
from aml_offline.records.runs import PROPERTY_PREFIX
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore, read_json

HYPERDRIVE_LOG = "azureml-logs/hyperdrive.txt"
NO_LIMIT_MINUTES = 10080.0  # Azure's default for a sweep's max duration: a week


def sweep_spec(child: dict, generator: dict, policy: dict, *, primary_metric: dict, max_total_runs,
               max_concurrent_runs, max_duration_minutes, seed) -> dict:  # fmt: skip
    """The spec of a sweep (either SDK's) whose children run ``child``, as this sweeper reads it."""
    return {
        "type": "hyperdrive",
        "parent_run_id": None,
        "log": HYPERDRIVE_LOG,
        "script": child["script"],
        "target": child["target"],
        "child": child,
        "generator": generator,
        "policy": policy,
        "primary_metric": primary_metric,
        "max_total_runs": int(max_total_runs),
        "max_concurrent_runs": int(max_concurrent_runs or max_total_runs),
        "max_duration_minutes": float(max_duration_minutes or NO_LIMIT_MINUTES),
        "seed": int(seed) if seed is not None else random.SystemRandom().randrange(2**31),
    }


SYSTEM_TAG = "_aml_system_"
POLL_S = 0.5  # how often the sweep reads its children and applies the policy


class SweepSupervisor:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.spec = read_json(run_dir / "run.json")
        self.store = LocalStore.get(Path(self.spec["root"]))
        log_path = Path(self.spec["artifact_dir"]) / HYPERDRIVE_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab", buffering=0)
        self.children: dict[str, dict] = {}  # run id -> {"spec", "status", "config"}
        self.stopped: dict[str, str] = {}
        self.threads: list[threading.Thread] = []
        self.metric_name = self.spec["primary_metric"]["name"]
        self.maximize = self.spec["primary_metric"]["goal"].lower() == "maximize"
        self.deadline = time.time() + 60 * self.spec["max_duration_minutes"]

    def say(self, text: str) -> None:
        self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n".encode())

    def status(self, status: str, **kwargs) -> None:
        self.say(f"Status: {status}")
        run_status.set_status(self.store, self.spec, status, **kwargs)

    def run(self) -> int:
        try:
            spec = self.spec
            self.status("Running")
            pending = sweep_rules.configurations(spec["generator"], spec["max_total_runs"], spec["seed"])
            self.say(
                f"Sweep: {spec['generator']['name'].lower()} sampling (seed {spec['seed']}), at most "
                f"{spec['max_total_runs']} runs, {spec['max_concurrent_runs']} at a time, policy "
                f"{spec['policy'].get('name')}, primary metric {self.metric_name} ({spec['primary_metric']['goal']})"
            )
            exhausted = False
            while True:
                if (self.dir / "cancel_requested").exists():
                    self.cancel_children("the HyperDrive run was canceled")
                    self.wait_children()
                    self.status("Canceled", reason="canceled by the user")
                    return 0
                if time.time() > self.deadline:
                    self.say(f"max_duration_minutes ({spec['max_duration_minutes']}) reached: canceling active runs")
                    self.cancel_children("the HyperDrive run reached max_duration_minutes")
                    self.wait_children()
                    break
                self.refresh()
                self.apply_policy()
                active = [rid for rid, c in self.children.items() if c["status"] not in TERMINAL]
                while not exhausted and len(active) < spec["max_concurrent_runs"]:
                    config = next(pending, None)
                    if config is None:
                        exhausted = True
                        break
                    active.append(self.launch(config))
                if exhausted and not active:
                    break
                time.sleep(POLL_S)
            for thread in self.threads:
                thread.join(timeout=60)
            self.finish()
            return 0
        except Exception as exc:  # noqa: BLE001  (the parent must end, never hang)
            self.say(traceback.format_exc())
            self.cancel_children("the HyperDrive run failed")
            self.wait_children(timeout=30)
            self.status("Failed", error=f"The local HyperDrive supervisor failed: {exc!r}")
            return 1
        finally:
            self.log.close()

    def launch(self, config: dict) -> str:
        number = len(self.children)
        child = json.loads(json.dumps(self.spec["child"]))
        extra = sweep_rules.as_arguments(config)
        v2 = child.get("command") is not None
        # HyperDrive names a child <sweep>_<n>; an SDK v2 trial is named after its MLflow run id (None here), as
        # every v2 job is, so mlflow.get_run(trial.name) finds it as on Azure
        child.update(run_id=None if v2 else f"{self.spec['run_id']}_{number}", parent_run_id=self.spec["run_id"],
                     run_name=f"{self.spec['run_id']}_{number}", hyperparameters=config)  # fmt: skip
        if v2:  # the values fill ${{search_space.name}}
            child["inputs"] = {**child["inputs"], **{k: {"value": v} for k, v in config.items()}}
            child["display_arguments"] = child["display_arguments"] + extra
        else:  # HyperDrive passes them as --name value
            child.update(arguments=child["arguments"] + extra, display_arguments=child["display_arguments"] + extra)
        child = run_records.create(self.store, self.spec["experiment"], child, {}, self.spec["submitted_by"])
        child_id = child["run_id"]
        run_records.set_tags(self.store, self.spec, {SYSTEM_TAG + child_id: json.dumps(config)})
        self.start_child(child)
        self.children[child_id] = {"spec": child, "status": "NotStarted", "config": config}
        self.say(f"Started child {child_id}: {' '.join(extra)}")
        return child_id

    def start_child(self, child: dict) -> None:
        """Supervise the child in a thread of this process: it shares the loaded MLflow client, which saves
        the seconds a supervisor process of its own takes to start (the node locks still cap the cluster)."""
        ledger.record(self.store, ledger.run_owner(child["run_id"]), "supervisor", os.getpid(), note="sweep thread")
        supervisor = Supervisor(self.store.run_dir(child["run_id"]), store=self.store)
        thread = threading.Thread(target=supervisor.run, name=f"child-{child['run_id']}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def refresh(self) -> None:
        for child_id, child in self.children.items():
            if child["status"] not in TERMINAL:
                status = run_status.current_status(self.store, child["spec"])
                if status != child["status"] and status in TERMINAL:
                    self.say(f"Child {child_id}: {status}")
                child["status"] = status

    def histories(self) -> dict[str, list[float]]:
        """Every child's primary-metric values; a finished child's are read once and kept."""
        result = {}
        for child_id, child in self.children.items():
            if "final_history" in child:
                result[child_id] = child["final_history"]
                continue
            result[child_id] = run_records.numeric_history(self.store, child_id, self.metric_name)
            if child["status"] in TERMINAL:  # its supervisor has ingested its last values
                child["final_history"] = result[child_id]
        return result

    def apply_policy(self) -> None:
        active = {rid for rid, c in self.children.items() if c["status"] not in TERMINAL and rid not in self.stopped}
        if not active:
            return
        for child_id, reason in sweep_rules.to_stop(
            self.spec["policy"], self.maximize, self.histories(), active
        ).items():
            self.stopped[child_id] = reason
            self.say(f"Early termination of {child_id}: {reason}")
            (self.store.run_dir(child_id) / "cancel_requested").write_text(f"Early termination: {reason}")

    def cancel_children(self, reason: str) -> None:
        for child_id, child in self.children.items():
            if child["status"] not in TERMINAL:
                (self.store.run_dir(child_id) / "cancel_requested").write_text(f"Canceled: {reason}")

    def wait_children(self, timeout: float = 120) -> None:
        end = time.time() + timeout
        while time.time() < end:
            self.refresh()
            if all(c["status"] in TERMINAL for c in self.children.values()):
                return
            time.sleep(POLL_S / 2)

    def finish(self) -> None:
        statuses = [c["status"] for c in self.children.values()]
        histories = self.histories()
        pick = max if self.maximize else min
        best = {rid: pick(vals) for rid, vals in histories.items() if vals}
        summary = ", ".join(f"{statuses.count(s)} {s.lower()}" for s in TERMINAL if statuses.count(s))
        self.say(f"All {len(statuses)} child runs ended: {summary or 'none started'}")
        if best:
            best_id = pick(best, key=best.get)
            run_records.set_tags(
                self.store,
                self.spec,
                {PROPERTY_PREFIX + "best_child_run_id": best_id, PROPERTY_PREFIX + "score": str(best[best_id])},
            )
            self.say(f"Best child: {best_id} with {self.metric_name} {best[best_id]:.4g}")
        if statuses and all(s == "Failed" for s in statuses):
            first = next(iter(self.children.values()))["spec"]
            error = run_records.mlflow_tags(self.store, first).get("azureml.error", "")
            self.status("Failed", error=f"Every child run failed. The first one's error:\n{error}")
        else:
            self.status("Completed")


def main(argv: list[str]) -> int:
    ledger.become_subreaper()
    try:
        return SweepSupervisor(Path(argv[0])).run()
    finally:
        ledger.stop_descendants(grace=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
