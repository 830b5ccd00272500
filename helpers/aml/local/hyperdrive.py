"""HyperDrive in the local workspace: ``Experiment.submit(HyperDriveConfig)`` runs a real sweep.

The parent run's supervisor (``python -m helpers.aml.local.hyperdrive RUN_DIR``)
samples parameter sets with the rules in :mod:`helpers.aml.local.sweep`, submits
each as an ordinary local child run of the ``ScriptRunConfig`` (its arguments plus
``--name value`` for each hyperparameter, as HyperDrive does; each child's
supervisor is a thread of the sweep's process, so a child starts in the time its
script needs, not the seconds a new supervisor process needs), keeps at most
``max_concurrent_runs`` of them going (the cluster's ``max_nodes`` caps them too,
through the compute node locks), reads their primary metric as they log it, and
cancels the children the early-termination policy stops.  It ends Completed when
every child has ended, Canceled when it was canceled, and Failed only when every
child failed.

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
import uuid
from pathlib import Path
from types import SimpleNamespace

from azureml.exceptions import UserErrorException

from helpers.aml.local import sweep
from helpers.aml.local.runs import TERMINAL, Run, create_run_record, start_supervisor
from helpers.aml.local.store import LocalStore, read_json, write_json

HYPERDRIVE_LOG = "azureml-logs/hyperdrive.txt"
SYSTEM_TAG = "_aml_system_"
POLL_S = 1.0


def submit_hyperdrive(experiment, config, tags: dict) -> HyperDriveRun:
    """Check a ``HyperDriveConfig``, record the parent run and start its supervisor."""
    from helpers.aml.local.submit import script_run_spec

    if config._run_config is None:
        raise UserErrorException(
            "The local workspace sweeps a ScriptRunConfig: pass HyperDriveConfig(run_config=ScriptRunConfig(...)). "
            "Estimators and pipelines are not supported."
        )
    generator = config._generator_config
    if generator["name"] not in ("RANDOM", "GRID"):
        raise UserErrorException(
            "BayesianParameterSampling needs Azure ML's Bayesian optimisation service; the local workspace runs "
            "RandomParameterSampling and GridParameterSampling. Use RandomParameterSampling, or run on Azure."
        )
    try:
        sweep.check_policy(config._policy_config)
    except sweep.SweepError as exc:
        raise UserErrorException(str(exc)) from None
    if config._resume_from or config._resume_child_runs:
        raise UserErrorException("resume_from / resume_child_runs are not supported by the local workspace.")
    child = script_run_spec(experiment, config._run_config)
    seed = sweep.seed_of(generator)
    run_id = f"HD_{uuid.uuid4()}"
    spec = {
        "type": "hyperdrive",
        "run_id": run_id,
        "parent_run_id": None,
        "log": HYPERDRIVE_LOG,
        "script": child["script"],
        "target": child["target"],
        "child": child,
        "generator": generator,
        "policy": config._policy_config,
        "primary_metric": config._primary_metric_config,
        "max_total_runs": int(config._max_total_runs),
        "max_concurrent_runs": int(config._max_concurrent_runs or config._max_total_runs),
        "max_duration_minutes": float(config._max_duration_minutes or 10080),
        "seed": seed if seed is not None else random.SystemRandom().randrange(2**31),
    }
    run = create_run_record(experiment, spec, tags)
    start_supervisor(run, module="helpers.aml.local.hyperdrive")
    return HyperDriveRun(experiment, run_id, hyperdrive_config=config)


class HyperDriveRun(Run):
    """Twin of ``azureml.train.hyperdrive.HyperDriveRun``: the parent of a sweep's child runs."""

    RUN_TYPE = "hyperdrive"

    def __init__(self, experiment, run_id, hyperdrive_config=None, **kwargs):
        super().__init__(experiment, run_id)
        self._hyperdrive_config = hyperdrive_config

    @property
    def hyperdrive_config(self):
        """The ``HyperDriveConfig`` submitted, or (for a run loaded by id) its recorded settings."""
        if self._hyperdrive_config is not None:
            return self._hyperdrive_config
        spec = self._spec
        return SimpleNamespace(
            _primary_metric_config=spec["primary_metric"],
            _generator_config=spec["generator"],
            _policy_config=spec["policy"],
            _max_total_runs=spec["max_total_runs"],
            _max_concurrent_runs=spec["max_concurrent_runs"],
            _max_duration_minutes=spec["max_duration_minutes"],
            _resume_from=None,
        )

    @property
    def _metric(self) -> tuple[str, bool]:
        config = self._spec["primary_metric"]
        return config["name"], config["goal"].lower() == "maximize"

    def get_hyperparameters(self) -> dict:
        """``{child run id: JSON of its hyperparameters}``, as azureml-core returns them."""
        prefix = SYSTEM_TAG + self.id + "_"
        return {k[len(SYSTEM_TAG) :]: v for k, v in self.get_tags().items() if k.startswith(prefix)}

    def get_children_sorted_by_primary_metric(self, top=0, reverse=False, discard_no_metric=False) -> list[dict]:
        """Children by their best primary metric: run id, hyperparameters, best value, status."""
        name, maximize = self._metric
        pick = max if maximize else min
        hyperparameters = self.get_hyperparameters()
        ranked, no_metric = [], []
        for run in self.get_children():
            values = run.get_metrics(name).get(name)
            best = pick(values) if isinstance(values, list) and values else values
            child = {
                "run_id": run.id,
                "hyperparameters": hyperparameters.get(run.id),
                "best_primary_metric": best if best != [] else None,
                "status": run.get_status(),
            }
            (ranked if child["best_primary_metric"] is not None else no_metric).append(child)
        ranked.sort(key=lambda c: c["best_primary_metric"], reverse=maximize != reverse)
        result = ranked + ([] if discard_no_metric else no_metric)
        return result if top == 0 else result[:top]

    def get_best_run_by_primary_metric(self, include_failed=True, include_canceled=True, include_resume_from_runs=True):
        """The child with the best primary metric (None when no child logged it)."""
        for child in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if (child["status"] == "Failed" and not include_failed) or (
                child["status"] == "Canceled" and not include_canceled
            ):
                continue
            return Run(self.experiment, child["run_id"])
        return None

    def get_metrics(self) -> dict:
        """``{child run id: its metrics}`` for every child, as ``HyperDriveRun.get_metrics`` returns."""
        return {run.id: run.get_metrics() for run in self.get_children()}

    def get_diagnostics(self):
        raise UserErrorException("get_diagnostics is not supported for HyperDrive runs (as on Azure).")

    def fail(self):
        raise UserErrorException("fail is not supported for HyperDrive runs (as on Azure).")


# --- the parent's supervisor ----------------------------------------------------------------------


class SweepSupervisor:
    def __init__(self, run_dir: Path):
        from helpers.aml.local.runs import Experiment
        from helpers.aml.local.workspace import Workspace

        self.dir = run_dir
        self.spec = read_json(run_dir / "run.json")
        self.store = LocalStore.get(Path(self.spec["root"]))
        self.experiment = Experiment(Workspace._for_store(self.store), self.spec["experiment"])
        self.client = self.store.mlflow
        log_path = Path(self.spec["artifact_dir"]) / HYPERDRIVE_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab", buffering=0)
        self.children: dict[str, dict] = {}  # run id -> {"run", "mlflow_id", "status", "config"}
        self.stopped: dict[str, str] = {}
        self.threads: list[threading.Thread] = []
        self.metric_name = self.spec["primary_metric"]["name"]
        self.maximize = self.spec["primary_metric"]["goal"].lower() == "maximize"
        self.deadline = time.time() + 60 * self.spec["max_duration_minutes"]

    def say(self, text: str) -> None:
        self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n".encode())

    def status(self, status: str, **kwargs) -> None:
        from helpers.aml.local.executor import set_status

        self.say(f"Status: {status}")
        set_status(self.store, self.spec, status, **kwargs)

    def run(self) -> int:
        try:
            spec = self.spec
            self.status("Running")
            pending = sweep.configurations(spec["generator"], spec["max_total_runs"], spec["seed"])
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
        child_id = f"{self.spec['run_id']}_{number}"
        child = json.loads(json.dumps(self.spec["child"]))
        extra = sweep.as_arguments(config)
        child.update(
            run_id=child_id,
            parent_run_id=self.spec["run_id"],
            arguments=child["arguments"] + extra,
            display_arguments=child["display_arguments"] + extra,
            hyperparameters=config,
        )
        with self.store.write_lock():
            self.client.set_tag(self.spec["mlflow_run_id"], SYSTEM_TAG + child_id, json.dumps(config))
        run = create_run_record(self.experiment, child, {})
        self.start_child(run)
        self.children[child_id] = {"run": run, "mlflow_id": run._mlflow_id, "status": "NotStarted", "config": config}
        self.say(f"Started child {child_id}: {' '.join(extra)}")
        return child_id

    def start_child(self, run: Run) -> None:
        """Supervise the child in a thread of this process: it shares the loaded MLflow client, which saves
        the seconds a supervisor process of its own takes to start (the node locks still cap the cluster)."""
        from helpers.aml.local.executor import Supervisor

        write_json(run._dir / "supervisor.json", {"pid": os.getpid()})
        thread = threading.Thread(target=Supervisor(run._dir).run, name=f"child-{run.id}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def refresh(self) -> None:
        for child_id, child in self.children.items():
            if child["status"] not in TERMINAL:
                status = child["run"].get_status()
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
            history = self.client.get_metric_history(child["mlflow_id"], self.metric_name)
            result[child_id] = [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
            if child["status"] in TERMINAL:  # its supervisor has ingested its last metrics
                child["final_history"] = result[child_id]
        return result

    def apply_policy(self) -> None:
        active = {rid for rid, c in self.children.items() if c["status"] not in TERMINAL and rid not in self.stopped}
        if not active:
            return
        for child_id, reason in sweep.to_stop(self.spec["policy"], self.maximize, self.histories(), active).items():
            self.stopped[child_id] = reason
            self.say(f"Early termination of {child_id}: {reason}")
            (self.children[child_id]["run"]._dir / "cancel_requested").write_text(f"Early termination: {reason}")

    def cancel_children(self, reason: str) -> None:
        for child in self.children.values():
            if child["status"] not in TERMINAL:
                (child["run"]._dir / "cancel_requested").write_text(f"Canceled: {reason}")

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
            with self.store.write_lock():
                from helpers.aml.local.runs import PROPERTY_PREFIX

                self.client.set_tag(self.spec["mlflow_run_id"], PROPERTY_PREFIX + "best_child_run_id", best_id)
                self.client.set_tag(self.spec["mlflow_run_id"], PROPERTY_PREFIX + "score", str(best[best_id]))
            self.say(f"Best child: {best_id} with {self.metric_name} {best[best_id]:.4g}")
        if statuses and all(s == "Failed" for s in statuses):
            first = self.children[next(iter(self.children))]["run"]
            error = first.get_details().get("error", {}).get("error", {}).get("message", "")
            self.status("Failed", error=f"Every child run failed. The first one's error:\n{error}")
        else:
            self.status("Completed")


def main(argv: list[str]) -> int:
    return SweepSupervisor(Path(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
