"""Lock files for every environment the project installs, and the install-time preparation.

    python -m helpers.locks update    # make lock: lock what changed, keep the other versions
    python -m helpers.locks upgrade   # make lock-upgrade: newest versions the bounds allow
    python -m helpers.locks check     # are the locks in step with pyproject.toml and scripts/*-env.yml? (no network)
    python -m helpers.locks prepare   # make install's last step: build the job environments, copy MNIST

The locks (all in ``locks/``, all hash-checked, all for Python 3.11 on Linux and macOS):

- ``uv.lock`` (project root) is the project's lock, from ``pyproject.toml`` with the
  ``dev`` extra; ``locks/project.txt`` is its export, which ``make install`` installs
  (``pip install -r`` reads it too), and ``locks/runtime.txt`` the same without the
  test tools (for compute instances: ``environment.yml``); ``locks/aml-offline.txt`` the
  local workspace's package (``aml-offline/``) alone, with its extras (``envs`` aside).
- ``locks/build.txt``: the build tools for source packages (setuptools for the
  project itself and for Chainer's source package, whose legacy build asks for ``wheel``).
- ``locks/<environment>.txt`` for each ``scripts/*-env.yml`` whose packages the
  project's lock does not satisfy (today the Chainer job's): the local workspace
  builds that environment from it (``aml-offline/src/aml_offline/execution/envs.py``).  The scoring
  and training environments are satisfied by the project's own, so they get none.
- ``locks/azure/<environment>.txt`` for every ``scripts/*-env.yml``: the environment as Azure ML builds it, its
  pip packages as written (``azureml-defaults`` and the CUDA extras included, where the local workspace stands
  ``azureml-core`` in for the first and ignores the second), resolved for Linux x86-64 and Python 3.11 (Azure ML's
  base images: x86-64 Ubuntu 22.04).  Every package the local workspace also runs that environment with is at the
  local version (the project's lock, or the environment's own lock above), so a local run and an Azure run use the
  same versions; the rest (``azureml-defaults``' own packages, NVIDIA's CUDA libraries) are Azure's alone.  These
  locks prove the environment resolves on Azure's platform and record what its image holds: nothing here installs
  them (they are not in the wheelhouse), and Azure's pip resolves the yml afresh when it builds the image.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
UV_LOCK = ROOT / "uv.lock"
PROJECT_LOCK = LOCKS / "project.txt"
BUILD_LOCK = LOCKS / "build.txt"
#: setuptools for the project (>=68) and Chainer 7.8.1's setup.py (<70, which still has pkg_resources).
BUILD_REQUIREMENTS = ["setuptools>=68,<70", "wheel"]
PYTHON = "3.11"
RUNTIME_LOCK = LOCKS / "runtime.txt"
#: the local workspace's package alone, with its extras but envs (uv: make install puts it in pip's cache, not
#: uv's), for the test that installs it without the walkthrough and with no index
PACKAGE_LOCK = LOCKS / "aml-offline.txt"
PACKAGE_EXTRAS = ["--extra", "v2", "--extra", "widgets", "--extra", "pytest"]
#: uv export's flags for each export of uv.lock: with the test tools (make install), without (compute instances),
#: and the aml-offline package's own dependencies
EXPORTS = {
    PROJECT_LOCK: ["--extra", "dev"],
    RUNTIME_LOCK: [],
    PACKAGE_LOCK: ["--package", "aml-offline", *PACKAGE_EXTRAS],
}
EXPORT_FLAGS = ["--frozen", "--no-emit-workspace", "--quiet"]
#: The job and inference environments as Azure ML builds them (see the module's docstring)
AZURE_LOCKS = LOCKS / "azure"
#: The platform of Azure ML's base images the notebooks build on: x86-64 Ubuntu 22.04, whose glibc is 2.35
AZURE_PLATFORM = "x86_64-manylinux_2_35"
#: conda packages that are the conda environment itself, not packages pip installs
CONDA_ONLY = {"python", "pip"}


def env_files() -> list[Path]:
    return sorted((ROOT / "scripts").glob("*-env.yml"))


def read_env(path: Path) -> dict:
    """The environment a notebook makes from ``path`` (azureml-core's own parsing), as the local workspace sees it."""
    import yaml
    from azureml.core import Environment

    name = yaml.safe_load(path.read_text())["name"]
    deps = Environment.from_conda_specification(name, str(path)).python.conda_dependencies
    return {"name": name, "pip": list(deps.pip_packages), "conda": list(deps.conda_packages)}


def pins(lock: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a requirements-style lock."""
    from packaging.utils import canonicalize_name

    found = {}
    for line in lock.read_text().splitlines():
        if line[:1].isalnum() and "==" in line:
            name, _, rest = line.partition("==")
            found[canonicalize_name(name.split("[")[0])] = rest.split(";")[0].split()[0].rstrip("\\").strip()
    return found


def unsatisfied(env: dict, lock: Path = PROJECT_LOCK) -> list[str]:
    """The requirements of ``env`` that the versions in ``lock`` do not meet (extras are not checked,
    as the local workspace does not check them)."""
    from aml_offline import environments as envs
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    have = pins(lock)
    missing = []
    for line in envs.requirements(env):
        req = Requirement(line)
        version = have.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            missing.append(line)
    return missing


def job_envs() -> list[dict]:
    """The environments that get a lock of their own: those the project's lock does not satisfy."""
    return [env for env in map(read_env, env_files()) if unsatisfied(env)]


def _uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def _run(command: list, **kwargs) -> None:
    print("$ " + " ".join(Path(str(command[0])).name if i == 0 else str(c) for i, c in enumerate(command)), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT, **kwargs)


def compile_lock(requirements: list[str], out: Path, header: str = "", upgrade: bool = False,
                 platform: str | None = None, versions: dict[str, str] | None = None) -> None:  # fmt: skip
    """Lock ``requirements`` into ``out`` for Python 3.11, with hashes: on every platform, or on ``platform`` alone
    (uv's ``--python-platform``).  ``versions`` (``{name: version}``) are taken whenever the package is needed.
    Versions already in ``out`` are kept unless ``upgrade`` (``uv pip compile`` prefers them)."""
    from aml_offline import environments as envs

    out.parent.mkdir(parents=True, exist_ok=True)
    constraints = out.parent / f".{out.stem}.build-constraints.txt"
    constraints.write_text("\n".join(envs.BUILD_CONSTRAINTS) + "\n")
    pinned = out.parent / f".{out.stem}.versions.txt"
    pinned.write_text("".join(f"{name}=={version}\n" for name, version in sorted((versions or {}).items())))
    try:
        target = ["--python-platform", platform] if platform else ["--universal"]
        flags = [*target, "--python-version", PYTHON, "--generate-hashes", "--no-header", "--quiet"]
        _run([_uv(), "pip", "compile", "-", *flags, "--build-constraint", constraints, "-o", out,
              *(["--constraint", pinned] if versions else []), *(["--upgrade"] if upgrade else [])],
             input="\n".join(requirements) + "\n", text=True)  # fmt: skip
    finally:
        constraints.unlink(missing_ok=True)
        pinned.unlink(missing_ok=True)
    # uv names the versions file among the reasons a package is there: it is a temporary file, not a reason
    body = re.sub(rf"^ *# *(via )?-c \S*{re.escape(pinned.name)}\n", "", out.read_text(), flags=re.M)
    out.write_text(header + body)


def lock_job_env(env: dict, lock: Path, source: Path | None = None, upgrade: bool = False) -> None:
    """Lock a job environment's packages into ``lock``, with the key the local workspace matches it by."""
    from aml_offline import environments as envs

    made_from = f" ({source.relative_to(ROOT)})" if source else ""
    header = (f"# The job environment {env['name']!r}{made_from}: make lock writes this file.\n"
              f"# requirements key: {envs.requirements_key(env)}\n"
              + "".join(f"#   {line}\n" for line in envs.requirements(env)))  # fmt: skip
    compile_lock(envs.requirements(env), lock, header, upgrade)


def azure_requirements(path: Path) -> list[str]:
    """What Azure's image build installs from a conda file: the conda packages pip also has (``python`` and ``pip``
    are the conda environment itself), then the pip packages exactly as written."""
    env = read_env(path)
    conda = []
    for spec in env["conda"]:
        name = spec.split("=")[0].split("<")[0].split(">")[0].strip()
        if name not in CONDA_ONLY:
            single = "=" in spec and not any(op in spec for op in ("==", ">=", "<=", "!="))
            conda.append(spec.replace("=", "==", 1) if single else spec)
    return [*conda, *env["pip"]]


def azure_key(path: Path) -> str:
    """A hash of what an Azure lock of ``path`` is made from; the lock records it."""
    from aml_offline import environments as envs

    made_from = {"python": PYTHON, "platform": AZURE_PLATFORM, "requirements": azure_requirements(path),
                 "build_constraints": envs.BUILD_CONSTRAINTS}  # fmt: skip
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:16]


def azure_lock_path(path: Path, folder: Path | None = None) -> Path:
    return (folder or AZURE_LOCKS) / f"{read_env(path)['name']}.txt"


def local_lock(path: Path) -> Path:
    """The lock the local workspace runs an environment with: the project's, or the environment's own."""
    env = read_env(path)
    return PROJECT_LOCK if not unsatisfied(env) else LOCKS / f"{env['name']}.txt"


def lock_azure_env(path: Path, upgrade: bool = False, folder: Path | None = None) -> Path:
    """Lock ``path``'s environment as Azure ML builds it (see the module's docstring) into ``folder``."""
    out = azure_lock_path(path, folder)
    local = local_lock(path)
    requirements = azure_requirements(path)
    header = (f"# The environment {read_env(path)['name']!r} ({path.relative_to(ROOT)}) as Azure ML builds it: "
              "make lock writes this file.\n"
              f"# Its pip packages as written, resolved for Linux x86-64 ({AZURE_PLATFORM}, as Azure ML's\n"
              f"# Ubuntu 22.04 base images) and Python {PYTHON}. The packages the local workspace also runs it with\n"
              f"# are at the versions of {local.relative_to(ROOT)}.\n"
              f"# azure key: {azure_key(path)}\n" + "".join(f"#   {line}\n" for line in requirements))  # fmt: skip
    compile_lock(requirements, out, header, upgrade, platform=AZURE_PLATFORM, versions=pins(local))
    return out


def azure_lock_problems(path: Path, folder: Path | None = None) -> list[str]:
    """Why the Azure lock of ``path`` is out of step (none: it is current), without the network: missing, made
    from other packages than the yml lists now, or at other versions than the local workspace runs."""
    lock = azure_lock_path(path, folder)
    name = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    if not lock.is_file():
        return [f"{path.name}: {name} is missing (make lock writes it)"]
    if f"# azure key: {azure_key(path)}\n" not in lock.read_text():
        return [f"{path.name}: {name} was made from other packages than the file lists now (run make lock)"]
    locked, local = pins(lock), pins(local_lock(path))
    moved = sorted(f"{n} {v} (local: {local[n]})" for n, v in locked.items() if n in local and local[n] != v)
    if moved:
        return [f"{path.name}: {name} has other versions than {local_lock(path).name}: {', '.join(moved)} (make lock)"]
    return []


def update(upgrade: bool = False) -> None:
    """``make lock`` / ``make lock-upgrade``: write every lock."""

    _run([_uv(), "lock", *(["--upgrade"] if upgrade else [])])
    PROJECT_LOCK.parent.mkdir(exist_ok=True)
    for export, extras in EXPORTS.items():
        _run([_uv(), "export", *EXPORT_FLAGS, *extras, "-o", export.relative_to(ROOT)])
    compile_lock(BUILD_REQUIREMENTS, BUILD_LOCK, "# Build tools for source packages: make lock writes this file\n",
                 upgrade)  # fmt: skip
    for path in env_files():
        env = read_env(path)
        lock = LOCKS / f"{env['name']}.txt"
        if not unsatisfied(env):
            print(f"{path.name}: the project's lock satisfies it, no lock of its own")
            lock.unlink(missing_ok=True)
            continue
        lock_job_env(env, lock, path, upgrade)
        print(f"{path.name}: locked in {lock.relative_to(ROOT)}")
    made = set()
    for path in env_files():
        made.add(lock_azure_env(path, upgrade))
        print(f"{path.name}: as Azure ML builds it, in {azure_lock_path(path).relative_to(ROOT)}")
    for stale in set(AZURE_LOCKS.glob("*.txt")) - made:
        stale.unlink()
        print(f"{stale.relative_to(ROOT)}: no environment file makes it any more, removed")


def check() -> list[str]:
    """What is out of step, without the network: an empty list when every lock is current."""
    from aml_offline import environments as envs

    problems = []
    done = subprocess.run([_uv(), "lock", "--check", "--offline", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        problems.append(f"uv.lock does not match pyproject.toml: {done.stderr.strip()}")
    for export, extras in EXPORTS.items():
        command = [_uv(), "export", *EXPORT_FLAGS, *extras]
        exported = subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout
        if not export.is_file() or _body(export.read_text()) != _body(exported):
            problems.append(f"{export.relative_to(ROOT)} is not the export of uv.lock")
    if not BUILD_LOCK.is_file():
        problems.append(f"{BUILD_LOCK.relative_to(ROOT)} is missing")
    for path in env_files():
        env = read_env(path)
        lock = LOCKS / f"{env['name']}.txt"
        if unsatisfied(env) and envs.lock_for(env) is None:
            problems.append(f"{path.name}: {lock.relative_to(ROOT)} is missing or was made from other packages")
        elif not unsatisfied(env) and lock.exists():
            problems.append(f"{path.name}: the project's lock satisfies it, but {lock.relative_to(ROOT)} exists")
        problems += azure_lock_problems(path)
    for stale in sorted(set(AZURE_LOCKS.glob("*.txt")) - {azure_lock_path(p) for p in env_files()}):
        problems.append(f"{stale.relative_to(ROOT)}: no scripts/*-env.yml makes it (make lock removes it)")
    return problems


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


#: Curated environments that aml-offline's sample notebooks run jobs in (their packages differ from the project's:
#: scikit-learn 1.5): built by make install, as the job environments are, so that make test runs with no network
CURATED_FOR_TESTS = ("AzureML-sklearn-1.5",)


def prepare() -> None:
    """``make install``'s last step: build every locked job environment now (from the wheelhouse when there
    is one), and put the wheelhouse's MNIST files in the data cache, so ``make run`` needs no network."""
    import shutil

    from aml_offline import environments as envs

    from helpers import data

    house = envs.wheelhouse()
    if house and (house / "mnist").is_dir():
        cache = data.cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        for name, digest in data.MNIST_SHA256.items():
            source, target = house / "mnist" / name, cache / name
            if source.is_file() and not (target.is_file() and data.sha256(target) == digest):
                if data.sha256(source) == digest:
                    shutil.copyfile(source, target)
                    print(f"MNIST: {name} from the wheelhouse into {cache}")
    for path in env_files():
        env = read_env(path)
        if envs.lock_for(env):
            envs.ensure(env, say=lambda line: print(line, flush=True))
    for name in CURATED_FOR_TESTS:  # the sample notebooks' curated environments, so make test needs no network
        envs.ensure(envs.curated(name), say=lambda line: print(line, flush=True))


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command in ("update", "upgrade"):
        update(upgrade=command == "upgrade")
        return 0
    if command == "prepare":
        prepare()
        return 0
    if command == "check":
        problems = check()
        print("\n".join(problems) if problems else "Every lock is current.")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
