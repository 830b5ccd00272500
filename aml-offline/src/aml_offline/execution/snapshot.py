"""What a run or service starts from: a snapshot of the source folder, and the environment it needs.

Environments arrive as plain dicts (``name``, ``pip``, ``conda``, ``docker_image``,
``user_managed``, ``environment_variables``) made by the facade from whatever
SDK described them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from aml_offline import azure_names
from aml_offline.execution.curated_environments import ENVIRONMENTS as CURATED

#: Packages an Azure environment lists that this machine's stand in for: ``azureml-defaults`` brings what
#: ``Run.get_context()`` needs (azureml-core), and so does ``azureml-sdk``, the SDK's metapackage (a pipeline
#: step that registers a model lists it: built into an environment of its own, it would lack the local
#: workspace); ``azureml-mlflow`` is MLflow's plugin for Azure's tracking (``azureml://`` URIs), and a local
#: job's ``MLFLOW_TRACKING_URI`` is the local workspace's own store.
STAND_INS = {"azureml-defaults": "azureml-core", "azureml-sdk": "azureml-core", "azureml-mlflow": "mlflow"}


#: Azure's limits on a run's snapshot (azureml._restclient.constants): beyond them it refuses the submission.
MAX_FILES = 2000
MAX_BYTES = 300 * 1024 * 1024


class SnapshotError(ValueError):
    """The source folder cannot be taken as a snapshot; the message says why and what to do."""


class SnapshotTooLarge(SnapshotError):
    """The source folder is over Azure's snapshot limits; the message says which and what to do."""


def ignore_function(source: Path, skip=()):
    """``shutil.copytree`` ignore function: ``.amlignore`` (or else ``.gitignore``) patterns, and the folders in
    ``skip`` (the local workspace's own folder when it lies inside the source: never copied into itself)."""
    import pathspec

    spec = None
    for name in (".amlignore", ".gitignore"):
        file = source / name
        if file.is_file():
            spec = pathspec.PathSpec.from_lines("gitwildmatch", file.read_text().splitlines())
            break
    skipped_paths = {Path(p).resolve() for p in skip}

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(source)
        skipped = set()
        for n in names:
            full = Path(folder, n)
            if full.resolve() in skipped_paths:
                skipped.add(n)
                continue
            if spec is None:
                continue
            path = (rel / n).as_posix()
            if spec.match_file(path) or (full.is_dir() and spec.match_file(path + "/")):
                skipped.add(n)
        return skipped

    return ignore


class SnapshotLoop(SnapshotError):
    """A link in the source folder points back to a folder it is in: copying it would never end."""


def walk_files(source: Path, skip=()):
    """Each file of a source folder as Azure would take it (``.amlignore``, else ``.gitignore``), links to folders
    followed as the copy follows them: ``(relative path, real path)``.  A link back to a folder it lies in raises
    :class:`SnapshotLoop` naming it."""
    ignore = ignore_function(source, skip)
    for folder, dirs, names in os.walk(source, followlinks=True):
        skipped = ignore(folder, dirs + names)
        dirs[:] = [d for d in dirs if d not in skipped]
        here = Path(folder).resolve()
        for d in dirs:
            link = Path(folder, d)
            if link.is_symlink():
                target = link.resolve()
                if target == here or target in here.parents or here.is_relative_to(target):
                    raise SnapshotLoop(
                        f"{link} is a link to {target}, a folder it lies in: the snapshot would never end. Remove "
                        "the link, or list it in an .amlignore file in the source folder."
                    )
        for name in names:
            if name not in skipped:
                path = Path(folder, name)
                yield path.relative_to(source).as_posix(), path.resolve()


def content_hash(source: Path) -> str:
    """SHA-256 of a folder's files as :func:`walk_files` takes them (names and bytes), or of one file."""
    digest = hashlib.sha256()
    files = sorted(walk_files(source)) if source.is_dir() else [(source.name, source.resolve())]
    for relative, real in files:
        digest.update(relative.encode() + b"\0")
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_size(source: Path, skip=()) -> tuple[int, int]:
    """Files and bytes of the snapshot Azure would take (linked folders included, as they are copied); raises
    :class:`SnapshotTooLarge` past its limits and :class:`SnapshotLoop` for a link back to its own folder."""
    files = size = 0
    for _, real in walk_files(source, skip):
        files += 1
        try:
            size += real.stat().st_size
        except OSError:
            continue
        if files > MAX_FILES or size > MAX_BYTES:
            what = f"more than {MAX_FILES} files" if files > MAX_FILES else f"more than {MAX_BYTES // 2**20} MB"
            raise SnapshotTooLarge(
                f"The source folder {source} holds {what}, over Azure ML's snapshot limit (the local workspace "
                "keeps the same limit). Point source_directory at a folder with just the scripts, or list what "
                "to leave out in an .amlignore file there (see http://aka.ms/aml-largefiles)."
            )
    return files, size


def copy_snapshot(source: Path, target: Path, skip=()) -> None:
    """Copy the source folder as Azure uploads it (honouring ``.amlignore``, else ``.gitignore``)."""
    shutil.copytree(source, target, ignore=ignore_function(source, [*skip, target]), dirs_exist_ok=True)


def unsatisfied(requirement: str) -> str | None:
    """None when this interpreter satisfies a pip requirement line, else what is missing."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return f"{requirement} (not a requirement this check understands)"
    if req.marker is not None and not req.marker.evaluate():
        return None
    name = STAND_INS.get(req.name.lower(), req.name)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return requirement
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return f"{requirement} (installed: {version})"
    return None


def missing_packages(env: dict) -> list[str]:
    return [p for p in (unsatisfied(line) for line in env.get("pip", [])) if p]


#: The images of the curated environments in the catalogue (``mcr.microsoft.com/azureml/curated/<name>``)
_CURATED_IMAGES = {azure_names.image_name(e["image"]) for e in CURATED if e["image"]}


def image_problem(image: str) -> str | None:
    """What is wrong with an image in Azure's namespace (``mcr.microsoft.com/azureml/``): not a base image Azure
    publishes, or a deprecated one (:mod:`aml_offline.azure_names`), or a curated environment's image the catalogue
    does not know.  None for a known image, and for images elsewhere (a registry of your own)."""
    name = azure_names.image_name(image)
    if name is not None and name.startswith("curated/"):
        if name in _CURATED_IMAGES:
            return None
        return (f"the image {image} is not the image of any curated environment in the local workspace's catalogue: "
                "check its name (curated environments are named by Environment.get, not by their image).")  # fmt: skip
    return azure_names.image_problem(image)


def warnings_for(env: dict) -> list[str]:
    """What the local workspace cannot honour in an environment: the same lines for runs and for services."""
    out = []
    if env.get("docker_image"):
        out.append(
            f"Docker image {env['docker_image']} is not built locally: the local workspace uses this machine's "
            "Python (or an environment it builds from the pip packages)."
        )
        problem = image_problem(env["docker_image"])
        if problem:
            out.append(problem[0].upper() + problem[1:])
    if env.get("user_managed"):  # Azure uses the image's Python as it is: conda packages are not installed
        return out
    for conda in env.get("conda", []):
        name, _, version = conda.partition("=")
        name = name.split("<")[0].split(">")[0].strip()
        if name == "python" and version:
            have = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
            if not (have + ".").startswith(version.lstrip("=") + "."):
                out.append(f"the environment asks for python={version}; this machine runs {have}.")
        elif name not in ("pip", "python", "setuptools"):
            out.append(f"conda package {conda!r} is not installed locally (pip packages are).")
    return out
