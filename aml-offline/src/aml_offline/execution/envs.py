"""Separate Python environments for runs whose packages this interpreter cannot satisfy.

Azure ML builds a Docker image from an environment's conda and pip packages and
reuses it while the environment is unchanged.  The local workspace does the same
with virtual environments: when the notebook's interpreter lacks a package (or has
the wrong version, such as NumPy 2 for Chainer, which needs NumPy below 2), the
run's Preparing phase builds a virtual environment with ``uv`` from the declared
pip packages, streams the build into the run's log, and caches it under a key
made from the packages, so the next run with the same environment reuses it in
a moment.  A failed build fails the run with the installer's own error lines.

What is honoured: the pip packages (``azureml-defaults``, Azure's job runtime,
installs ``azureml-core``, which is what ``Run.get_context()`` needs), conda
packages that are also pip packages (``setuptools<60``: installed first, as conda
installs before pip), and the Python version only as a check (the environment
uses this machine's Python).  Conda-only packages and Docker images are not.

Legacy source packages are built with ``setuptools<70`` (``BUILD_CONSTRAINTS``):
Chainer 7.8.1's ``setup.py`` imports ``pkg_resources``, which newer setuptools
dropped.  The cache is ``AZUREML_ENV_CACHE``, else ``envs/`` in the package's user cache folder.

Locked builds: when the project's locks folder (``AZUREML_ENV_LOCKS``, or ``env-locks`` in its
``[tool.aml-offline]`` table: :mod:`aml_offline.settings`) holds
``<environment name>.txt`` made from the same packages (a project's lock command writes it,
with a ``requirements key`` line), the build installs exactly that file, every
package hash-checked, instead of resolving.  A lock made from other packages is
reported as out of date and the build resolves as before.  With a wheelhouse
(``WHEELHOUSE``, else the project's ``wheelhouse`` setting when that folder exists) every build installs
from that folder alone and needs no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil
from filelock import FileLock

from aml_offline import settings
from aml_offline.execution import ledger

#: What stands in locally for Azure ML's runtime metapackage inside a built environment.
ENV_STAND_INS = {"azureml-defaults": "azureml-core", "azureml-sdk": "azureml-core", "azureml-mlflow": "mlflow"}
BUILD_CONSTRAINTS = ["setuptools<70"]
NOT_PIP = {"python", "pip"}


class EnvironmentBuildError(RuntimeError):
    """The environment could not be built; the message holds the installer's error lines."""


def cache_root() -> Path:
    """Where built environments are kept: ``AZUREML_ENV_CACHE``, else ``envs/`` in the package's user cache."""
    env = os.environ.get("AZUREML_ENV_CACHE")
    return Path(env).expanduser() if env else settings.cache_root() / "envs"


def locks_dir() -> Path | None:
    """Where job-environment locks live: ``AZUREML_ENV_LOCKS``, else the project's ``env-locks`` setting."""
    return settings.env_locks()


def wheelhouse() -> Path | None:
    """The folder of package files to install from with no index: ``WHEELHOUSE`` (empty: none), else the
    project's ``[tool.aml-offline] wheelhouse`` when that folder exists."""
    return settings.wheelhouse()


def requirements(env: dict) -> list[str]:
    """The requirements a lock for ``env`` is made from: the conda packages pip also has, then the pip ones."""
    recipe = _recipe(env)
    return list(dict.fromkeys(recipe["first"] + recipe["pip"]))


def requirements_key(env: dict) -> str:
    """A hash of what a lock for ``env`` was made from; the lock file records it."""
    recipe = _recipe(env)
    made_from = {"python": recipe["python"], "requirements": requirements(env),
                 "build_constraints": recipe["build_constraints"]}  # fmt: skip
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:16]


def lock_path(env: dict) -> Path | None:
    folder = locks_dir()
    return folder / f"{env['name']}.txt" if folder else None


def lock_for(env: dict) -> Path | None:
    """The lock file made from exactly ``env``'s packages, or None (no lock, or one for other packages)."""
    path = lock_path(env)
    if path and path.is_file() and f"# requirements key: {requirements_key(env)}" in path.read_text():
        return path
    return None


#: Packages a job's built environment gets at this interpreter's version when it asks for them without one: the
#: job's MLflow writes into the workspace's store, whose database schema is this interpreter's MLflow's
SAME_AS_HERE = ("mlflow", "mlflow-skinny")


def _requirement(line: str) -> str:
    from packaging.requirements import Requirement

    req = Requirement(line)
    name = req.name.lower()
    if name in ENV_STAND_INS:
        line = line.replace(req.name, ENV_STAND_INS[name], 1)
        req = Requirement(line)
    if req.name.lower() in SAME_AS_HERE and not req.specifier and not req.url:
        try:
            return f"{line.split(';', 1)[0].strip()}=={metadata.version(req.name)}" + (
                f" ; {req.marker}" if req.marker else ""
            )
        except metadata.PackageNotFoundError:
            return line
    return line


def _conda_as_pip(spec: str) -> str:
    """A conda spec such as ``setuptools<60`` or ``numpy=1.26`` as a pip requirement."""
    if "=" in spec and not any(op in spec for op in ("==", ">=", "<=", "!=")):
        name, _, version = spec.partition("=")
        return f"{name}=={version.rstrip('*').rstrip('.')}.*" if version.count(".") < 2 else f"{name}=={version}"
    return spec


def _recipe(env: dict) -> dict:
    conda = [c for c in env.get("conda", []) if c.split("=")[0].split("<")[0].split(">")[0].strip() not in NOT_PIP]
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "first": [_conda_as_pip(c) for c in conda],
        "pip": [_requirement(p) for p in env.get("pip", [])],
        "build_constraints": BUILD_CONSTRAINTS,
    }


def plan(env: dict) -> dict:
    """What a built environment installs: first the conda packages pip also has, then the pip packages;
    with a lock for them, exactly the lock (``lock``: its file and a hash of its content)."""
    recipe = _recipe(env)
    lock = lock_for(env)
    if lock:
        recipe["lock"] = {"file": lock.name, "sha256": hashlib.sha256(lock.read_bytes()).hexdigest()[:16]}
    return recipe


def key(env: dict) -> str:
    """The cache key: a hash of what gets installed (and the Python it is built on)."""
    return hashlib.sha256(json.dumps(plan(env), sort_keys=True).encode()).hexdigest()[:16]


def python_of(folder: Path) -> Path:
    return folder / "bin" / "python"


#: How long one environment build may take (``AZUREML_ENV_BUILD_TIMEOUT``, seconds) before it is stopped
BUILD_TIMEOUT_S = 3600


def ensure(env: dict, say, *, store=None, owner: str | None = None, check=None) -> str:
    """The interpreter of a built environment for ``env``: reused when cached, else built now.

    The installer runs in the ledger of ``store`` under ``owner`` when they are given (a run's build: stopped with
    the run, whichever way it ends), and dies with the thread that started it in any case.  ``check()`` is called
    while it runs and may raise to stop it (a run canceled, or past its maximum duration, while Preparing); a build
    past ``AZUREML_ENV_BUILD_TIMEOUT`` seconds (default 3600) is stopped with an error.  Nothing half-built is
    ever reused: the marker that says an environment is whole is written last, atomically."""
    recipe = plan(env)
    folder = cache_root() / key(env)
    done = folder / ".built.json"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock"), timeout=3600):
        if done.exists():
            built = json.loads(done.read_text())
            say(f"Reusing environment {env['name']!r} built {built['built']} ({folder})")
            return str(python_of(folder))
        shutil.rmtree(folder, ignore_errors=True)  # a build that was interrupted
        uv = _uv(env)
        start = time.time()
        say(f"Building environment {env['name']!r} in {folder}: this interpreter lacks some of its packages")
        constraints = folder.parent / f".{folder.name}.build-constraints.txt"
        constraints.write_text("\n".join(recipe["build_constraints"]) + "\n")
        steps = [[uv, "venv", "--python", sys.executable, str(folder)]]
        py = str(python_of(folder))
        source = _source(env, recipe, say)
        if "lock" in recipe:
            lock = lock_for(env)
            steps.append(
                [uv, "pip", "sync", "--python", py, "--build-constraint", str(constraints), *source, str(lock)]
            )
        else:
            if recipe["first"]:
                steps.append([uv, "pip", "install", "--python", py, *source, *recipe["first"]])
            if recipe["pip"]:
                steps.append([uv, "pip", "install", "--python", py, "--build-constraint", str(constraints), *source,
                              *recipe["pip"]])  # fmt: skip
        deadline = start + float(os.environ.get("AZUREML_ENV_BUILD_TIMEOUT") or BUILD_TIMEOUT_S)
        for step in steps:
            _run(step, say, deadline=deadline, store=store, owner=owner, check=check)
        marker = done.with_name(f".built.{os.getpid()}.partial")
        marker.write_text(json.dumps({"built": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.time() - start,
                                      "plan": recipe}, indent=2))  # fmt: skip
        os.replace(marker, done)
        say(f"Built environment {env['name']!r} in {time.time() - start:.0f} s")
        return py


def can_build() -> bool:
    """Whether environments can be built here: uv, the optional extra ``envs``, is installed."""
    return importlib.util.find_spec("uv") is not None


def _uv(env: dict) -> str:
    try:
        from uv import find_uv_bin  # the optional extra "envs": most runs never build an environment
    except ImportError:
        raise EnvironmentBuildError(
            f"Environment {env['name']!r} needs packages this interpreter lacks, and building it needs uv, which is "
            "not installed: pip install 'aml-offline[envs]' (or install the packages into this environment)."
        ) from None
    return find_uv_bin()


def _source(env: dict, recipe: dict, say) -> list[str]:
    """Say where the packages come from; the installer's flags for a wheelhouse (none: the index)."""
    if "lock" in recipe:
        say(f"Installing the lock {lock_for(env)}: exact versions, every package hash-checked")
    elif lock_path(env) and lock_path(env).is_file():
        say(f"Warning: {lock_path(env)} was made from other packages than {env['name']!r} now lists: "
            "resolving them instead (lock them again: the walkthrough's `make lock`)")  # fmt: skip
    house = wheelhouse()
    if house is None:
        return []
    if not house.is_dir():
        raise EnvironmentBuildError(
            f"The wheelhouse {house} (WHEELHOUSE) is not a folder: gather one first (the walkthrough's "
            "`make wheelhouse`)"
        )
    say(f"Installing from the wheelhouse {house} only (no index, no network)")
    return ["--no-index", "--find-links", str(house)]


def _run(command: list[str], say, *, deadline: float, store=None, owner=None, check=None) -> None:
    """Run one installer step, its output going line by line into the run's log; stop it (and what it started)
    when ``check()`` raises or the deadline passes."""
    say("$ " + " ".join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command)))
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True,
               "env": dict(os.environ, NO_COLOR="1")}  # fmt: skip
    if store is not None and owner is not None:
        proc = ledger.start(store, owner, "build", command, **options)
    else:
        proc = subprocess.Popen(ledger.dying_with_parent(command), start_new_session=True, **options)
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(proc, lines, say), daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if check is not None:
                check()
            if time.time() > deadline:
                raise EnvironmentBuildError(
                    f"Building the environment took longer than its limit ({Path(command[0]).name} was stopped): "
                    "raise AZUREML_ENV_BUILD_TIMEOUT (seconds), or check the package index or wheelhouse."
                )
            time.sleep(0.2)
    except BaseException:
        _stop(proc, store, owner)
        raise
    reader.join(timeout=5)
    if store is not None and owner is not None:
        ledger.mark_ended(store, owner, ("build",))
    if proc.returncode != 0:
        tail = "\n".join(lines[-25:])
        tool = Path(command[0]).name
        hint = ""
        if "--no-index" in command:
            hint = (
                f"\nThe wheelhouse {command[command.index('--find-links') + 1]} lacks a package it needs: "
                "gather it again where the network works (the walkthrough's `make wheelhouse`), or set WHEELHOUSE= "
                "to use the index."
            )
        raise EnvironmentBuildError(f"Building the environment failed ({tool} exit {proc.returncode}):\n{tail}{hint}")


def _read_lines(proc: subprocess.Popen, lines: list[str], say) -> None:
    for line in proc.stdout:
        lines.append(line.rstrip())
        say("  " + line.rstrip())


def _stop(proc: subprocess.Popen, store, owner) -> None:
    if store is not None and owner is not None:
        ledger.stop(store, owner, ("build",), grace=2)
    else:
        try:
            ledger.kill_tree([psutil.Process(proc.pid)], grace=2)
        except psutil.Error:
            pass
    proc.wait(timeout=10)
