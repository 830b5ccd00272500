"""The instructor's pre-flight check (``python -m helpers.preflight``, ``make preflight``).

It cannot run here (it needs a subscription). What is tested: it refuses at once, in one line, without a
workspace config and with ``AZUREML_MODE=local``, and starts nothing; and its pure parts (the settings it
gives the notebooks, which notebooks run after a failure, the clean-up plan, the usage estimate, the report)
against the real notebooks where they read them.  Azure itself is not faked: the clean-up's calls to Azure are
not tested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import PROJECT

from helpers import preflight
from helpers.preflight import FAILED, NOT_RUN, PASSED, Result, Usage
from helpers.walkthrough import registry_unreachable, walkthrough_notebooks

NOTEBOOK_DIR = PROJECT / "notebooks"


def _code(path: Path) -> str:
    return preflight.notebook_code(path)


def _no_config_here() -> None:
    """Running the check for real must be impossible: no workspace config where the notebooks would find one."""
    from aml_offline.mode import find_config  # the package's own search (a test may use its private parts)

    found = find_config(NOTEBOOK_DIR)
    if found is not None:
        pytest.skip(f"a workspace config is here ({found}): this test would start a real pre-flight check")


def _refusal(command: list[str], **env) -> subprocess.CompletedProcess:
    """Run ``command`` in the project with the network gone and ``env`` on top; it must end within seconds."""
    base = {k: v for k, v in os.environ.items() if k != "AZUREML_MODE"}
    before = set(preflight.REPORT_DIR.glob("*")) if preflight.REPORT_DIR.is_dir() else set()
    start = time.monotonic()
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=120,
                          env=base | registry_unreachable() | env)  # fmt: skip
    assert time.monotonic() - start < 30, "it fails fast"
    after = set(preflight.REPORT_DIR.glob("*")) if preflight.REPORT_DIR.is_dir() else set()
    assert after == before, "no report folder: nothing started"
    return done


@pytest.mark.parametrize("mode", ["", "azure"])
def test_without_a_workspace_config_it_refuses_in_one_line(mode):
    _no_config_here()
    done = _refusal([sys.executable, "-m", "helpers.preflight"], **({"AZUREML_MODE": mode} if mode else {}))
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Pre-flight check not started (it runs on Azure ML): ")
    assert f"no config.json in {NOTEBOOK_DIR} or its parents" in lines[0] and "Download config file" in lines[0]


def test_with_azureml_mode_local_it_refuses_in_one_line():
    done = _refusal([sys.executable, "-m", "helpers.preflight"], AZUREML_MODE="local")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Pre-flight check not started: it runs the walkthrough on Azure ML, but AZUREML_MODE=local asks for the "
        "offline local workspace. Unset it (unset AZUREML_MODE) and put the workspace's config.json in the "
        "project folder."
    ]


def test_make_preflight_refuses_the_same_way():
    # -o: take .venv as installed (the tests run in it), so make runs the target's own recipe only
    done = _refusal(["make", "-s", "-o", ".venv/.installed", "preflight"], AZUREML_MODE="local")
    assert done.returncode != 0
    assert done.stderr.splitlines()[0].startswith("Pre-flight check not started: it runs the walkthrough on Azure")


def test_settings_are_the_smallest_and_the_variables_the_notebooks_read(tmp_path):
    settings = preflight.preflight_settings({"AML_EPOCHS": "20"}, vm_size=None, token="a1b2c3", work_dir=tmp_path)
    assert settings["AZUREML_MODE"] == "azure"
    assert (settings["AML_EPOCHS"], settings["AML_SWEEP_RUNS"]) == ("1", "2"), "the instructor's 20 epochs lose"
    assert settings["AML_VM_SIZE"] == preflight.CHEAPEST_SIZE
    assert settings["AML_WORK_DIR"] == str(tmp_path)
    # Azure's name rules: a cluster 2 to 16 characters, an endpoint 3 to 32, both a letter first
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]", settings["AML_CLUSTER"])
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]", settings["AML_V2_ENDPOINT"])
    assert settings["AML_V2_ENDPOINT"].endswith("a1b2c3")

    read = "\n".join(_code(p) for p in walkthrough_notebooks())
    # AZUREML_MODE is read by aml_offline, AML_PREFIX by helpers.names, which every notebook imports
    assert "from helpers.names import" in read
    unread = [n for n in settings if n not in ("AZUREML_MODE", "AML_PREFIX") and f'os.environ.get("{n}"' not in read]
    assert unread == [], "every setting is a variable some notebook reads"


def test_the_size_comes_from_the_option_then_aml_vm_size(tmp_path):
    def size(environ, option):
        return preflight.preflight_settings(environ, vm_size=option, token="x", work_dir=tmp_path)["AML_VM_SIZE"]

    assert size({"AML_VM_SIZE": "Standard_DS3_v2"}, None) == "Standard_DS3_v2"
    assert size({"AML_VM_SIZE": "Standard_DS3_v2"}, "Standard_F4s_v2") == "Standard_F4s_v2"


def test_the_cheapest_size_is_a_current_cpu_size_on_the_list_of_names_that_exist():
    names = pytest.importorskip("aml_offline.azure_names")
    size = names.vm_size(preflight.CHEAPEST_SIZE)
    assert size is not None and size["gpus"] == 0, "a CPU size Azure runs today"
    assert size["vcpus"] == min(s["vcpus"] for s in names.VM_SIZES), "the smallest on the list"


def test_usage_is_read_from_the_real_notebooks(tmp_path):
    settings = preflight.preflight_settings({}, vm_size=None, token="x", work_dir=tmp_path)
    paths = {preflight.notebook_key(p): p for p in walkthrough_notebooks()}
    assert set(preflight.CLUSTER_NODES) | preflight.SERVING <= set(paths), "every notebook named is a notebook"
    used = {key: preflight.usage_of(key, settings, _code(path)) for key, path in paths.items()}
    node = f"{preflight.CHEAPEST_SIZE} cluster node"
    assert used["03-train"] == used["v2/03-train"] == used["chainer/train-and-register-chainer"] == Usage(node, 1)
    assert used["06-tune"] == used["v2/04-tune"] == used["08-distributed"] == Usage(node, 2)
    assert used["07-deploy"] == Usage("container instance (1 vCPU, 2 GB)", 1)
    assert re.fullmatch(r"Standard_\w+ endpoint instance", used["v2/05-register-deploy"].what)
    assert used["00-setup"] is None and used["02-compute"] is None and used["v2/01-data"] is None
    serverless = preflight.usage_of("v2/03-train", settings, 'job = command(code="../../scripts", command="...")')
    assert serverless == Usage("serverless compute node (Azure picks the size)", 1)


def test_a_failure_stops_its_own_track_only():
    results = [Result("00-setup", PASSED), Result("01-dataset", FAILED), Result("v2/00-connect", PASSED)]
    assert preflight.blocked_by("02-compute", results) == "01-dataset"
    assert preflight.blocked_by("chainer/train-and-register-chainer", results) == "01-dataset"
    assert preflight.blocked_by("v2/01-data", results) is None
    assert preflight.blocked_by("02-compute", results, keep_going=True) is None
    assert [preflight.track_of(preflight.notebook_key(p)) for p in walkthrough_notebooks()].count("v2") == 6


def test_the_first_error_is_one_line():
    azure = 'UserError:\n{\n    "error": {\n        "message": "Not enough quota for Standard_D2_v2 in eastus",\n'
    assert preflight.first_error("ComputeTargetException", azure) == (
        "ComputeTargetException: Not enough quota for Standard_D2_v2 in eastus"
    )
    assert preflight.first_error("AssertionError", "accuracy 0.5\nmore") == "AssertionError: accuracy 0.5"
    assert len(preflight.first_error("ValueError", "x" * 1000)) == 300


def test_the_clean_up_cancels_first_deletes_the_cluster_last_and_touches_only_its_own_names(tmp_path):
    settings = preflight.preflight_settings({}, vm_size=None, token="x", work_dir=tmp_path)
    plan = preflight.cleanup_plan(settings)
    assert [s.action for s in plan] == ["cancel active jobs", "delete web service", "delete endpoint", "delete cluster"]
    assert {s.name for s in plan[1:]} == {preflight.CLUSTER, preflight.SERVICE, settings["AML_V2_ENDPOINT"]}
    kept = preflight.cleanup_plan(settings, keep_cluster=True, delete_models=True)
    assert [s.action for s in kept][-2:] == ["delete model versions", "scale cluster to zero"]
    assert "delete cluster" not in [s.action for s in kept]


def test_the_report(tmp_path):
    settings = preflight.preflight_settings({}, vm_size=None, token="x", work_dir=tmp_path)
    node = Usage(f"{preflight.CHEAPEST_SIZE} cluster node", 1)
    results = [
        Result("02-compute", PASSED, 3.0),
        Result("03-train", PASSED, 10.0, usage=node),
        Result("06-tune", FAILED, 5.0, "cell 9: AssertionError: x | y", Usage(node.what, 2)),
        Result("07-deploy", NOT_RUN, error="06-tune did not pass"),
    ]
    plan = preflight.cleanup_plan(settings)
    cleanup = [(plan[0], "none active"), (plan[-1], f"{FAILED}: HttpResponseError: denied")]
    started = datetime(2026, 12, 5, 14, 32, tzinfo=UTC)
    report = preflight.render_report(started=started, finished=started + timedelta(minutes=21), mode_line="Azure ML",
                                     settings=settings, results=results, cleanup=cleanup, cluster_minutes=19.0,
                                     out_dir=tmp_path)  # fmt: skip
    assert report.startswith("# Pre-flight check, 2026-12-05 14:32 UTC\n\n**2 of 4 notebooks failed or did not run**")
    assert "It took 21 min." in report
    assert "| 03-train | passed | 10.0 |  |" in report
    assert "| 06-tune | FAILED | 5.0 | cell 9: AssertionError: x / y |" in report
    assert "| 07-deploy | not run |  | 06-tune did not pass |" in report
    assert "| delete cluster | aml-preflight | FAILED: HttpResponseError: denied |" in report
    assert "**Some steps failed**: delete what they name by hand" in report
    assert "## What was billed (an estimate)" in report
    assert f"| {node.what} | 20.0 |" in report, "10 min × 1 node + 5 min × 2 nodes"
    assert "existed for 19 min with up to 2 nodes" in report and "(38 node-minutes)" in report
    assert "| AML_EPOCHS | 1 |" in report

    passing = preflight.render_report(started=started, finished=started, mode_line="", settings=settings,
                                      results=results[:2], cleanup=[], cluster_minutes=None,
                                      out_dir=tmp_path)  # fmt: skip
    assert "**All 2 notebooks passed.**" in passing and "At most" not in passing


def test_the_instructor_material_documents_it():
    guide = (PROJECT / "docs" / "instructors.md").read_text()
    assert "## Before the day: pre-flight check" in guide and "make preflight" in guide
    assert preflight.CHEAPEST_SIZE in guide and preflight.CLUSTER in guide and preflight.SERVICE in guide
    assert preflight.SMALLEST["AML_EPOCHS"] == "1" and "1 epoch" in guide


def test_the_preflight_names_its_runs_and_models_apart_from_the_class(tmp_path):
    settings = preflight.preflight_settings({}, vm_size=None, token="a1b2c3", work_dir=tmp_path)
    assert settings["AML_PREFIX"] == preflight.PREFIX
    assert all(name.startswith(preflight.PREFIX + "-") for name in preflight.MODELS)
