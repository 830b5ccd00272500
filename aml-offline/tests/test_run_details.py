"""The run view (``aml_offline.run_details.RunDetails``) on run objects that offer only azureml-core's public Run API.

The fakes stand in for a real Azure run: they have ``__slots__`` for their public attributes and no private
ones, and any attribute starting with ``_`` that the view asks for is recorded (and fails the test), so
nothing local-only is used.  Each fake steps through its statuses one ``get_status()`` call at a time.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from aml_offline import run_details
from aml_offline.run_details import RunDetails

PRIVATE_ASKED: list[str] = []
PORTAL = "https://ml.azure.com/runs/{id}?wsid=/subscriptions/0000/resourcegroups/rg/workspaces/ws&tid=0000"


class Script:
    """What a fake run goes through: statuses in order, and what it has logged at each step."""

    def __init__(self, statuses, metrics=None, logs=None, details=None, files=()):
        self.statuses, self.step, self.status_calls = list(statuses), -1, 0
        self.metrics = metrics or (lambda step: {})
        self.logs = logs or {"user_logs/std_log.txt": lambda step: "\n".join(f"line {i}" for i in range(step + 1))}
        self.details, self.files = details or {}, list(files)
        self.fail_metrics_once = False


class PublicRun:
    """A run with only public methods and attributes, as ``azureml.core.Run`` documents them."""

    __slots__ = ("id", "type", "experiment", "script")

    def __init__(self, run_id, script, type="azureml.scriptrun"):
        self.id, self.type, self.script = run_id, type, script
        self.experiment = SimpleNamespace(name="fake-experiment")

    def __getattr__(self, name):
        if name.startswith("_"):
            PRIVATE_ASKED.append(f"{type(self).__name__}.{name}")
        raise AttributeError(name)

    def get_status(self):
        s = self.script
        s.status_calls += 1
        s.step = min(s.step + 1, len(s.statuses) - 1)
        return s.statuses[s.step]

    def get_details(self):
        s = self.script
        status = s.statuses[max(s.step, 0)]
        return {
            "runId": self.id, "target": "gpu-cluster", "status": status,
            "startTimeUtc": "2026-01-02T03:04:05.678Z", "endTimeUtc": "2026-01-02T03:09:00.000Z"
            if status in run_details.TERMINAL else None,
            "properties": {}, "runDefinition": {"nodeCount": 1, "target": "gpu-cluster"},
            "logFiles": {name: f"https://blob.example/{name}?sas" for name in s.logs},
            **s.details,
        }  # fmt: skip

    def get_details_with_logs(self):
        details = self.get_details()
        details["logFiles"] = {name: text(max(self.script.step, 0)) for name, text in self.script.logs.items()}
        return details

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        if self.script.fail_metrics_once:
            self.script.fail_metrics_once = False
            raise ConnectionError("the service did not answer")
        return self.script.metrics(max(self.script.step, 0))

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None):
        return iter(())

    def get_file_names(self):
        return list(self.script.files) + list(self.script.logs)

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        if name not in self.script.logs:
            raise FileNotFoundError(name)
        Path(output_file_path).write_text(self.script.logs[name](max(self.script.step, 0)))

    def get_portal_url(self):
        return PORTAL.format(id=self.id)

    def get_tags(self):
        return {}

    def get_properties(self):
        return {}


class PublicSweep(PublicRun):
    """A HyperDrive parent: children, their hyperparameters and the primary metric in its tags, as on Azure."""

    __slots__ = ("children",)

    def __init__(self, run_id, script, children):
        super().__init__(run_id, script, type="hyperdrive")
        self.children = children

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None):
        return iter(self.children)

    def get_tags(self):
        return {"_aml_system_primary_metric_config": json.dumps({"name": "Accuracy", "goal": "maximize"})}

    def get_hyperparameters(self):
        return {c.id: json.dumps({"--learning-rate": 0.001 * (i + 1), "--batch-size": 50})
                for i, c in enumerate(self.children)}  # fmt: skip

    def get_metrics(self):
        return {c.id: c.get_metrics() for c in self.children}

    def get_children_sorted_by_primary_metric(self, top=0, reverse=False, discard_no_metric=False):
        hyper = self.get_hyperparameters()
        rows = []
        for c in self.children:
            values = c.get_metrics().get("Accuracy") or []
            rows.append({"run_id": c.id, "hyperparameters": hyper[c.id],
                         "best_primary_metric": max(values) if values else None, "status": c.get_status()})  # fmt: skip
        return sorted(rows, key=lambda r: -(r["best_primary_metric"] or 0))


def accuracy(step):
    return {"Accuracy": [0.8 + 0.01 * i for i in range(step)], "Loss": [0.5 - 0.01 * i for i in range(step)]}


@pytest.fixture(autouse=True)
def fast_and_clean(monkeypatch):
    monkeypatch.setattr(run_details, "REFRESH_S", 0.05)
    PRIVATE_ASKED.clear()
    yield
    assert PRIVATE_ASKED == [], "the view used attributes outside the public Run API"


def follow(view: RunDetails, run, timeout: float = 20) -> None:
    """Show the view, wait for its thread to end, and check polling really stopped."""
    view.show()
    assert view._thread is not None, "the run had not ended: the view should follow it"
    view._thread.join(timeout)
    assert not view._thread.is_alive(), "polling did not stop when the run ended"
    calls = run.script.status_calls
    time.sleep(10 * run_details.REFRESH_S)
    assert run.script.status_calls == calls, "the view kept polling after the run ended"


def test_single_run_shows_status_link_metrics_outputs_and_log_and_stops_when_completed():
    script = Script(
        ["Queued", "Preparing", "Running", "Running", "Running", "Completed"],
        metrics=lambda step: {
            **accuracy(step),
            **({"Final test accuracy": 0.9712} if step >= 5 else {}),
            "Accuracy vs Loss": "aml://artifactId/ExperimentRun/dcid.keras-mnist_1700000000_abcd/Accuracy vs Loss.png",
        },
        files=["outputs/model/model.keras", "outputs/model/metadata.json"],
    )
    run = PublicRun("keras-mnist_1700000000_abcd", script)
    view = RunDetails(run)
    follow(view, run)

    summary = view._summary.value
    assert "class='aml-run-status'>Completed<" in summary
    assert "keras-mnist_1700000000_abcd" in summary and "fake-experiment" in summary and "gpu-cluster" in summary
    assert f"href='{PORTAL.format(id=run.id).replace('&', '&amp;')}'" in summary, "a link to Azure ML studio"
    assert "View run in Azure ML studio" in summary and "target='_blank'" in summary
    assert "outputs/model/model.keras" in summary and "Workers" not in summary
    assert "Final test accuracy" in view._metrics.value and "0.9712" in view._metrics.value
    assert "image: Accuracy vs Loss.png" in view._metrics.value and "aml://" not in view._metrics.value
    assert view._chart.value.startswith(b"\x89PNG")
    assert "line 5" in view._log.value and "user_logs/std_log.txt" in view._log.value
    assert view._error.value == "" and view._children.value == ""


def test_a_local_run_folder_is_text_not_a_link():
    class LocalFolderRun(PublicRun):
        __slots__ = ()

        def get_portal_url(self):
            return "local run folder /tmp/x (browse all runs with `make mlflow-ui`)"

    view = RunDetails(LocalFolderRun("r1", Script(["Completed"])))
    view.show()
    assert view._thread is None, "an ended run is shown once, with no thread"
    assert "<a " not in view._summary.value and "make mlflow-ui" in view._summary.value


def test_hyperdrive_parent_shows_one_line_per_child_and_which_were_stopped():
    children = [
        PublicRun("HD_abc_0", Script(["Running", "Completed"], metrics=lambda s: accuracy(3))),
        PublicRun("HD_abc_1", Script(["Running", "Canceled"], metrics=lambda s: accuracy(2),
                                     details={"cancelReason": "Early termination by BanditPolicy at interval 2"})),
        PublicRun("HD_abc_2", Script(["Failed"], details={"error": {"error": {"message": "out of memory"}}})),
    ]  # fmt: skip
    sweep = PublicSweep("HD_abc", Script(["Running", "Running", "Completed"]), children)
    view = RunDetails(sweep)
    follow(view, sweep)

    table = view._children.value
    assert "class='aml-sweep-children'" in table and table.count("<tr class='aml-child ") == 3
    assert "3 child runs, 1 stopped early or canceled" in table and "Best Accuracy" in table
    rows = {row.split("<td>")[1].split("</td>")[0]: row for row in table.split("<tr class='aml-child ")[1:]}
    assert set(rows) == {"0", "1", "2"}
    assert "Completed" in rows["0"] and "0.8200" in rows["0"] and "learning-rate=0.001" in rows["0"]
    assert "Canceled" in rows["1"] and "Early termination by BanditPolicy at interval 2" in rows["1"]
    assert "Failed" in rows["2"] and "out of memory" in rows["2"]
    assert view._chart.value.startswith(b"\x89PNG"), "one accuracy line per child"
    assert "class='aml-run-status'>Completed<" in view._summary.value


def test_two_worker_run_shows_each_workers_log():
    logs = {
        "user_logs/std_log.txt": lambda s: "supervisor: started 2 workers",
        "user_logs/std_log_process_0.txt": lambda s: "\n".join(f"worker 0 epoch {i}" for i in range(s + 1)),
        "user_logs/std_log_process_1.txt": lambda s: "\n".join(f"worker 1 epoch {i}" for i in range(s + 1)),
    }
    script = Script(["Running", "Running", "Completed"], metrics=accuracy, logs=logs,
                    details={"runDefinition": {"nodeCount": 2}})  # fmt: skip
    run = PublicRun("keras-mnist-distributed_1", script)
    view = RunDetails(run)
    follow(view, run)

    assert "<span class='aml-run-workers'>2</span>" in view._summary.value
    log = view._log.value
    assert log.count("class='aml-worker-log'") == 2
    assert "Worker 0: user_logs/std_log_process_0.txt" in log and "worker 0 epoch 2" in log
    assert "Worker 1: user_logs/std_log_process_1.txt" in log and "worker 1 epoch 2" in log
    assert log.index("supervisor: started") < log.index("worker 0 epoch") < log.index("worker 1 epoch")


def test_a_failed_refresh_is_shown_in_the_view_and_the_view_recovers():
    script = Script(["Running", "Running", "Running", "Completed"], metrics=accuracy)
    run = PublicRun("r2", script)
    view = RunDetails(run)
    script.fail_metrics_once = True
    view.show()
    assert "class='aml-run-error'" in view._error.value and "ConnectionError" in view._error.value
    assert "the service did not answer" in view._error.value, "the error says what failed"
    view._thread.join(20)
    assert "class='aml-run-status'>Completed<" in view._summary.value
    assert "aml-run-error-recovered" in view._error.value


def test_a_failed_run_shows_its_error():
    script = Script(["Failed"], details={"error": {"error": {"code": "UserError", "message": "No module named x"}}})
    view = RunDetails(PublicRun("r3", script))
    view.show()
    assert "class='aml-run-status'>Failed<" in view._summary.value and "No module named x" in view._summary.value


def test_the_view_stands_outside_the_local_workspace():
    """The run view imports nothing of the twin (it reads runs through the public Run API, so it serves Azure runs
    too); the local facade's RunDetails, and the package's, are this class."""
    from aml_offline import RunDetails as PackageRunDetails
    from aml_offline.facade import RunDetails as LocalRunDetails

    tree = ast.parse(Path(run_details.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.startswith(("aml_offline", "helpers"))]
    assert LocalRunDetails is RunDetails and PackageRunDetails is RunDetails
