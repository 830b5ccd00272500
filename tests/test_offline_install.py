"""Locked installs, and installs from a wheelhouse with the package registry unreachable.

The offline test gathers a small wheelhouse from the registry (a few small packages,
the build tools and a Chainer job environment without azureml-core), then, with the
index on a closed 127.0.0.1 port, a fresh uv cache and (where we may) no network at
all, installs a fresh environment through ``make install`` and builds the Chainer job
environment from that wheelhouse alone.  The full wheelhouse is ``make wheelhouse``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
from aml_offline.execution import envs
from support import PROJECT

from helpers import locks, wheelhouse

#: Chainer's job environment without azureml-core (about 60 packages): the same source build, a small wheelhouse.
SMALL_CHAINER_ENV = {"name": "chainer-offline-test", "pip": ["chainer==7.8.1", "numpy>=1.26,<2", "setuptools<60"],
                     "conda": ["python=3.11", "pip"]}  # fmt: skip


def test_every_lock_is_current():
    problems = locks.check()
    assert problems == [], "run `make lock`: " + "; ".join(problems)
    chainer = locks.read_env(PROJECT / "scripts" / "chainer-env.yml")
    assert envs.lock_for(chainer) == locks.LOCKS / "chainer-mnist-env.txt"
    pinned = locks.pins(locks.LOCKS / "chainer-mnist-env.txt")
    assert pinned["chainer"] == "7.8.1" and pinned["numpy"].startswith("1.") and pinned["azureml-core"]
    # the scoring and training environments are satisfied by the project's lock: no lock of their own
    assert [env["name"] for env in locks.job_envs()] == ["chainer-mnist-env"]


def test_a_job_environment_uses_its_lock_only_when_made_from_the_same_packages():
    chainer = locks.read_env(PROJECT / "scripts" / "chainer-env.yml")
    assert envs.plan(chainer)["lock"]["file"] == "chainer-mnist-env.txt"
    changed = dict(chainer, pip=[*chainer["pip"], "six"])
    assert "lock" not in envs.plan(changed) and envs.lock_for(changed) is None
    assert envs.key(changed) != envs.key(chainer)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _offline(command: list[str]) -> list[str]:
    """``command`` in a network namespace with no interfaces up, when this machine lets us make one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *command]
    return command


@pytest.fixture(scope="module")
def small_wheelhouse(tmp_path_factory):
    """A small wheelhouse and its locks, gathered from the registry (files come from the download cache after
    the first time)."""
    root = tmp_path_factory.mktemp("offline")
    lock_dir = root / "locks"
    project_lock = lock_dir / "project.txt"
    locks.compile_lock([f"uv=={locks.pins(locks.PROJECT_LOCK)['uv']}", "six"], project_lock)
    locks.lock_job_env(SMALL_CHAINER_ENV, lock_dir / f"{SMALL_CHAINER_ENV['name']}.txt")
    house = root / "wheelhouse"
    done = wheelhouse.gather(house, [project_lock, locks.BUILD_LOCK, lock_dir / "chainer-offline-test.txt"],
                             mnist=False, progress=False)  # fmt: skip
    print(f"Small wheelhouse: {done['packages']} files, {done['bytes'] / 2**20:.0f} MiB in {done['seconds']:.0f} s")
    return root, project_lock, house


def _no_registry_env(root) -> dict:
    closed = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV")}
    env.update(UV_INDEX_URL=f"{closed}/simple", PIP_INDEX_URL=f"{closed}/simple", UV_OFFLINE="1",
               HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed,
               UV_CACHE_DIR=str(root / "uv-cache"), PIP_NO_CACHE_DIR="1")  # fmt: skip
    return env


def test_the_wheelhouse_holds_one_file_per_locked_package_for_this_machine(small_wheelhouse):
    _, _, house = small_wheelhouse
    names = sorted(p.name for p in house.iterdir())
    assert "chainer-7.8.1.tar.gz" in names  # Chainer has only a source package: built at install time
    assert any(n.startswith("numpy-1.26.") and n.endswith(".whl") for n in names)
    assert any(n.startswith("setuptools-69.") for n in names) and any(n.startswith("wheel-") for n in names)
    assert len([n for n in names if n.startswith("numpy-")]) == 1


def test_a_fresh_install_and_the_chainer_job_environment_come_from_the_wheelhouse_alone(small_wheelhouse):
    root, project_lock, house = small_wheelhouse
    env = _no_registry_env(root)
    venv = root / "venv"
    install = subprocess.run(
        _offline(["make", "-C", str(PROJECT), "install", f"VENV={venv}", f"LOCK={project_lock}",
                  f"WHEELHOUSE={house}", "JOB_ENVS=no"]),
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert f"Installing from the wheelhouse {house} only" in install.stdout
    check = subprocess.run([venv / "bin" / "python", "-c", "import six, uv; print(uv.find_uv_bin())"],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr

    env.update(AZUREML_ENV_LOCKS=str(root / "locks"), AZUREML_ENV_CACHE=str(root / "envs"), WHEELHOUSE=str(house))
    build = subprocess.run(
        _offline([sys.executable, "-c", "import sys; from aml_offline.execution import envs; "
                  f"print('PYTHON', envs.ensure({SMALL_CHAINER_ENV!r}, print))"]),
        env=env, cwd=PROJECT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "Installing the lock" in build.stdout and f"Installing from the wheelhouse {house}" in build.stdout
    assert "Built chainer==7.8.1" in build.stdout  # from its source package, with setuptools<70 from the wheelhouse
    python = build.stdout.split("PYTHON ")[-1].strip()
    versions = subprocess.run([python, "-c", "import chainer, numpy; print(chainer.__version__, numpy.__version__)"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert versions.startswith("7.8.1 1.26.")


def test_a_package_missing_from_the_wheelhouse_fails_the_build_saying_so(small_wheelhouse, tmp_path):
    root, _, house = small_wheelhouse
    env = _no_registry_env(tmp_path)
    env.update(AZUREML_ENV_LOCKS=str(tmp_path / "no-locks"), AZUREML_ENV_CACHE=str(tmp_path / "envs"),
               WHEELHOUSE=str(house))  # fmt: skip
    spec = {"name": "not-in-the-wheelhouse", "pip": ["requests"], "conda": []}
    build = subprocess.run(
        _offline([sys.executable, "-c", f"from aml_offline.execution import envs; envs.ensure({spec!r}, print)"]),
        env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode != 0
    assert "EnvironmentBuildError" in build.stderr and "lacks a package it needs" in build.stderr
