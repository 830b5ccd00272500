"""Test session set-up: offline, in a fresh temporary local workspace, with test-sized parameters.

The notebooks run under nbval in the same session (``notebooks/`` is collected
first, in file order); their kernels inherit these environment variables.  Every
notebook cell's stderr is checked against an explicit list of expected noise.

The walkthrough runs as a student's does after ``make install`` with the wifi gone:
each notebook's kernel (and every run it starts) sees the package index, the
proxies and the MNIST mirrors on a closed 127.0.0.1 port, uv and pip told to stay
offline, and the job environments ``make install`` built.  A notebook that needed
the network fails.

``make test`` runs two pytest-xdist workers. The SDK v1 walkthrough (its notebooks, the Chainer track, the
solutions, then ``tests/test_walkthrough_results.py``, which reads what they left, then
``notebooks/99-cleanup.ipynb``, which deletes what they left running) stays together, in order, on one worker.
The SDK v2 track (``notebooks-zh_TW/v2/``: see V2_TRACK; it needs nothing of v1's) runs in order on the other,
at the same time, in a workspace of its own in a folder both workers know; the other tests share the workers
after that. Each worker has a session folder of its own.
"""

import os
import re
import socket
import tempfile
import time
from pathlib import Path

import pytest

from helpers.walkthrough import registry_unreachable

_SESSION = tempfile.mkdtemp(prefix="azureml-walkthrough-tests-")
#: A folder every process of this test run knows: made by the first (pytest-xdist's controller, or the only
#: process), inherited by the workers it starts. The v2 track's workspace lives there.
_SHARED = Path(os.environ.setdefault("AZUREML_TESTS_SHARED", tempfile.mkdtemp(prefix="azureml-walkthrough-shared-")))
V2_WORKSPACE = _SHARED / "v2-workspace"
#: Written when the v2 track's last notebook cell has run (passed or not)
V2_DONE = _SHARED / "v2-track.done"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Tests never touch the internet: mirrors point at a closed local port, so the
# data layer falls back to the offline sample at once.
os.environ.update(
    AZUREML_MODE="local",
    AZUREML_LOCAL_ROOT=os.path.join(_SESSION, "workspace"),
    AML_WORK_DIR=os.path.join(_SESSION, "work"),
    MNIST_CACHE_DIR=os.path.join(_SESSION, "mnist-cache"),
    MNIST_MIRRORS=f"http://127.0.0.1:{_closed_port()}/mnist/",
    AZUREML_ENV_CACHE=os.path.join(_SESSION, "envs"),  # built job environments (the Chainer one): once a session
    # the project's job-environment locks wherever a test runs (the tests' own folders are outside the project)
    AZUREML_ENV_LOCKS=os.path.join(os.path.dirname(os.path.abspath(__file__)), "locks"),
)
# Test-sized parameters, through the same variables a workshop would set.
os.environ.setdefault("AML_EPOCHS", "3")
os.environ.setdefault("AML_DIGITS_TO_SHOW", "20")
os.environ.setdefault("AML_SWEEP_RUNS", "4")
os.environ.setdefault("AML_SWEEP_CONCURRENT", "2")
os.environ.setdefault("AML_SWEEP_SEED", "8")
os.environ.setdefault("AML_CHAINER_EPOCHS", "5")


#: What the walkthrough's kernels see on top of the session's variables (the job environments: make install's)
WALKTHROUGH_ENV = registry_unreachable()
#: The walkthrough: the notebooks, in order, then the checks of what they left in the session's workspace
WALKTHROUGH = ("notebooks/", "tests/test_walkthrough_results.py::")
#: The SDK v2 track: a unit of work of its own, in its own workspace (V2_WORKSPACE). make test runs it in
#: Traditional Chinese (notebooks-zh_TW/v2/: the same code cells, the helpers' words and plots in Chinese, the
#: CJK font); make test-samples runs the English one (AML_TEST_ENGLISH_V2=1). Each is a walkthrough's worth of CPU.
V2_TRACK = ("notebooks/v2/", "notebooks-zh_TW/v2/")
_ENGLISH_V2 = bool(os.environ.get("AML_TEST_ENGLISH_V2"))
collect_ignore = ["notebooks-zh_TW"] if _ENGLISH_V2 else ["notebooks/v2"]
_last_v2_item: list[str] = []
#: The clean-up notebook: the walkthrough's last item (pytest collects it after 08, before the sub-folders' notebooks)
CLEANUP = "notebooks/99-"


def pytest_collection_modifyitems(session, config, items):
    """Move 99-cleanup's cells after the rest of the walkthrough: after the Chainer, solutions and v2 notebooks
    and after the checks of what they left (tests/test_walkthrough_results.py), keeping the cells' own order."""
    _last_v2_item[:] = [item.nodeid for item in items if item.nodeid.startswith(V2_TRACK)][-1:]
    cleanup = [item for item in items if item.nodeid.startswith(CLEANUP)]
    if not cleanup:
        return
    rest = [item for item in items if not item.nodeid.startswith(CLEANUP)]
    walkthrough = [index for index, item in enumerate(rest) if item.nodeid.startswith(WALKTHROUGH)]
    at = walkthrough[-1] + 1 if walkthrough else len(rest)
    items[:] = rest[:at] + cleanup + rest[at:]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist: the walkthrough is one unit of work for one worker, in order; every other test is a unit.

    (xdist's own ``--dist loadgroup`` marks groups in node ids, which pytest 9.2's structured ids ignore.)"""
    from xdist.scheduler import LoadScopeScheduling

    class WalkthroughTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(V2_TRACK):
                return "walkthrough-v2"
            return "walkthrough" if nodeid.startswith(WALKTHROUGH) else nodeid

    return WalkthroughTogether(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """A notebook's kernel starts in its first cell's set-up: start it with the network gone."""
    if not item.path.suffix == ".ipynb":
        return (yield)
    saved = {name: os.environ.get(name) for name in [*WALKTHROUGH_ENV, "AZUREML_ENV_CACHE", "AZUREML_LOCAL_ROOT"]}
    os.environ.update(WALKTHROUGH_ENV)
    os.environ.pop("AZUREML_ENV_CACHE")  # the job environments make install built, as make run uses them
    if item.nodeid.startswith(V2_TRACK):
        os.environ["AZUREML_LOCAL_ROOT"] = str(V2_WORKSPACE)
    try:
        return (yield)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: stderr lines a notebook cell may print: TensorFlow's start-up messages. Anything else fails the cell.
EXPECTED_STDERR = [
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* in other operations, rebuild TensorFlow",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"computation placer already registered",
    r"Could not find cuda drivers on your machine, GPU will not be used",
    r"failed call to cuInit",
    r"TF-TRT Warning",
    r"XLA service .* initialized for platform",
    r"StreamExecutor \[\d+\]",
    r"disabling MLIR crash reproducer",
    r"Compiled cluster using XLA",
    r"^\s*$",
]
_EXPECTED = re.compile("|".join(f"(?:{p})" for p in EXPECTED_STDERR))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None) or []
    unexpected = [
        line
        for out in outputs
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
        for line in out.get("text", "").splitlines()
        if not _EXPECTED.search(line)
    ]
    if unexpected:
        pytest.fail("Unexpected stderr output in this cell:\n" + "\n".join(unexpected[:20]), pytrace=False)
    return result


def pytest_runtest_logfinish(nodeid, location):
    if _last_v2_item and nodeid == _last_v2_item[0]:
        V2_DONE.touch()


@pytest.fixture()
def v2_track_workspace():
    """The v2 track's workspace folder, once its notebooks have run (they may be running on the other worker)."""
    if not _last_v2_item:
        pytest.skip("the v2 notebooks are not part of this test session")
    deadline = time.monotonic() + 1800
    while not V2_DONE.exists():
        if time.monotonic() > deadline:
            pytest.fail("the v2 notebooks did not finish within 30 minutes of this test starting")
        time.sleep(2)
    return V2_WORKSPACE


def pytest_sessionfinish(session, exitstatus):
    """Stop anything a notebook or test left running in the session's workspace (a failed cell's service, say);
    then remove the session's folder when everything passed (after a failure it stays, to look into)."""
    import aml_offline

    aml_offline.stop_everything(os.environ["AZUREML_LOCAL_ROOT"])
    if V2_WORKSPACE.exists():
        aml_offline.stop_everything(V2_WORKSPACE)
    controller = not hasattr(session.config, "workerinput")  # the process that made the shared folder
    if exitstatus == 0:
        import shutil

        shutil.rmtree(_SESSION, ignore_errors=True)
        if controller:
            shutil.rmtree(_SHARED, ignore_errors=True)
    else:
        print(f"\nThe test session's workspace and files are kept in {_SESSION} (the v2 track's in {_SHARED})")
