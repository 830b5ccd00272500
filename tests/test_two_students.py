"""A class in one workspace: two students, ana and ben, run notebooks 00 to 07 at the same time in ONE local
workspace, each in kernels of their own (``AML_PREFIX=ana`` and ``AML_PREFIX=ben``), with the smallest settings.

Each must get their own runs (in their own experiments, tagged with their name), their own models and their own
web service, and neither may read, replace or delete the other's. Both pause before 07-deploy's clean-up cell,
so the test sees the two services side by side; then each deletes its own.

It takes several minutes of two cores (two walkthroughs at once), so it runs in ``make test-samples``, not in
``make test``."""

from __future__ import annotations

import os
import threading
import time

import pytest
from support import PROJECT

from helpers.walkthrough import registry_unreachable

pytestmark = pytest.mark.samples

STUDENTS = ("ana", "ben")
NOTEBOOKS = sorted((PROJECT / "notebooks").glob("0[0-7]-*.ipynb"))
#: The smallest settings that still exercise every step (accuracy floors lowered: this checks the plumbing)
SMALLEST = {
    "AML_EPOCHS": "2",  # with 1, get_metrics() gives a number, not a list: 03-train indexes it (reported)
    "AML_SWEEP_RUNS": "2",
    "AML_SWEEP_CONCURRENT": "1",
    "AML_SWEEP_SEED": "8",
    "AML_DIGITS_TO_SHOW": "10",
    "AML_SERVICE_CHECK_DIGITS": "250",
    "AML_ACCURACY_FLOOR": "0.5",
    "AML_SWEEP_TOLERANCE": "0.5",
}
PAUSE_S = 900


def _cleanup_cell(path) -> int | None:
    """The index of the first code cell after 07-deploy's "## Clean up" heading (the test pauses before it)."""
    import nbformat

    cells = nbformat.read(path, as_version=4).cells
    heading = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Clean up")),
                   None)  # fmt: skip
    return next((i for i, c in enumerate(cells) if heading is not None and i > heading and c.cell_type == "code"),
                None)  # fmt: skip


def test_two_students_share_one_workspace(tmp_path, monkeypatch):
    import aml_offline
    from aml_offline import notebooks

    from helpers import data

    root = tmp_path / "ws"
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(root))
    data.fetch_mnist(progressbar=False)  # the data cache is shared: fill it once, before the two start
    deploy = next(p for p in NOTEBOOKS if p.name.startswith("07-"))
    pause_before = _cleanup_cell(deploy)
    assert pause_before is not None, "07-deploy has a '## Clean up' section whose first code cell deletes the service"
    both_deployed, go_on = threading.Barrier(3, timeout=PAUSE_S), threading.Barrier(3, timeout=PAUSE_S)
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def student(name: str) -> None:
        env = dict(os.environ, **registry_unreachable(), **SMALLEST, AML_PREFIX=name,
                   AZUREML_LOCAL_ROOT=str(root), AML_WORK_DIR=str(tmp_path / name / "work"))  # fmt: skip
        env.pop("AML_SERVICE_NAME", None)
        code_cells = []

        def on_cell(index, cell, took, error):
            code_cells.append(index)
            if path is deploy and error is None and _next_code(index) == pause_before:
                both_deployed.wait()  # the service is up and checked: let the test look at both
                go_on.wait()

        def _next_code(index):
            return next((i for i, c in enumerate(book_cells) if i > index and c.cell_type == "code"), None)

        start = time.monotonic()
        try:
            for path in NOTEBOOKS:
                import nbformat

                book_cells = nbformat.read(path, as_version=4).cells
                _, failure = notebooks.execute(path, tmp_path / name / "out", workdir=path.parent, env=env,
                                               timeout=600, on_cell=on_cell)  # fmt: skip
                if failure:
                    index, cell, exc = failure
                    failures[name] = f"{path.name} cell {index}: {exc.ename}: {exc.evalue}"[:2000]
                    return
        except BaseException as exc:  # noqa: BLE001  (reported by the test below)
            failures.setdefault(name, f"{type(exc).__name__}: {exc}")
        finally:
            seconds[name] = time.monotonic() - start
            if name in failures:
                both_deployed.abort()
                go_on.abort()

    threads = [threading.Thread(target=student, args=(name,), name=f"student-{name}") for name in STUDENTS]
    for thread in threads:
        thread.start()
    try:
        try:
            both_deployed.wait()
        except threading.BrokenBarrierError:
            pytest.fail(f"a student's walkthrough failed: {failures}")
        services = _side_by_side(aml_offline)
        go_on.wait()
    finally:
        if not go_on.broken and go_on.n_waiting:
            go_on.abort()
        for thread in threads:
            thread.join(timeout=PAUSE_S)
        print(f"Two students, notebooks 00 to 07 at once: {seconds}")
        aml_offline.stop_everything(root)
    assert not failures, failures
    _each_has_their_own(aml_offline, services)


def _side_by_side(aml_offline) -> dict[str, str]:
    """While both paused before deleting: two services, one each, each serving the student's own model."""
    from aml_offline import Workspace

    ws = Workspace.from_config()
    found = {}
    for name in STUDENTS:
        other = next(s for s in STUDENTS if s != name)
        service_name = f"{name}-keras-mnist-svc"
        assert service_name in ws.webservices, f"{name}'s service, beside {other}'s: {sorted(ws.webservices)}"
        service = ws.webservices[service_name]
        assert service.state == "Healthy", (service_name, service.state)
        served = [model.name for model in service.models]
        assert served and all(m.startswith(f"{name}-") for m in served), f"{name}'s service serves {served}"
        found[name] = service.scoring_uri
    assert "keras-mnist-svc" not in ws.webservices, "no service without a prefix"
    return found


def _each_has_their_own(aml_offline, services) -> None:
    from aml_offline import Experiment, Model, Workspace

    ws = Workspace.from_config()
    assert not ws.webservices, f"each deleted their own service, and only that: {sorted(ws.webservices)}"
    unprefixed = [e for e in ws.experiments if e.startswith("keras-mnist")]
    assert not unprefixed, f"experiments without a student's prefix: {unprefixed}"
    for name in STUDENTS:
        other = next(s for s in STUDENTS if s != name)
        runs = list(Experiment(ws, f"{name}-keras-mnist").get_runs())
        assert runs and any(r.get_status() == "Completed" for r in runs), f"{name}'s training run"
        assert all(r.get_tags().get("student") == name for r in runs), f"only {name}'s runs in {name}'s experiment"
        sweeps = list(Experiment(ws, f"{name}-keras-mnist-tune").get_runs())
        assert sweeps and all(r.get_tags().get("student") == name for r in sweeps), f"{name}'s sweep"
        own_runs = {r.id for r in runs} | {c.id for s in sweeps for c in s.get_children()}
        for base in ("keras-mnist", "keras-mlp-mnist"):
            model = Model(ws, name=f"{name}-{base}")
            assert model.run_id in own_runs, f"{name}'s model {model.name} comes from {name}'s own run"
            assert model.run_id not in _ids(Experiment, ws, other), f"not from {other}'s"
    with pytest.raises(Exception):  # noqa: B017  (the twin's and azureml-core's "not found" errors differ)
        Model(ws, name="keras-mnist")


def _ids(experiment_cls, ws, student: str) -> set[str]:
    runs = list(experiment_cls(ws, f"{student}-keras-mnist").get_runs())
    sweeps = list(experiment_cls(ws, f"{student}-keras-mnist-tune").get_runs())
    return {r.id for r in runs} | {c.id for s in sweeps for c in s.get_children()}
