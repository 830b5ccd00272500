"""Every Azure ML base image and VM size the walkthrough names exists (offline; the lists are aml-offline's).

Checked: the notebooks (code, and markdown, where a retired size may appear only in a sentence that says it was
retired), the conda files in ``scripts/``, every Dockerfile, ``environment.yml``, and the code blocks of the README
and of ``docs/``.  An image (``mcr.microsoft.com/azureml/...``) must be one of the supported base images, a size
(``Standard_...``) one of the current sizes of the dated lists in ``aml_offline.azure_names``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aml_offline import environments as names
from support import PROJECT

IMAGE = re.compile(r"mcr\.microsoft\.com/azureml/[A-Za-z0-9._/-]+(?::[A-Za-z0-9._-]+)?")
SIZE = re.compile(r"\b(?:Standard|STANDARD)_[A-Za-z0-9_]+")
SKIP = {".venv", ".git", "build", "wheelhouse", "node_modules", ".azureml-local"}


def _files(pattern: str) -> list[Path]:
    return sorted(p for p in PROJECT.rglob(pattern) if not SKIP & set(p.relative_to(PROJECT).parts))


def code_blocks(markdown: str) -> str:
    return "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.M | re.S))


def texts() -> list[tuple[str, str, str]]:
    """(where, kind, text): kind is ``markdown`` for notebook prose, ``code`` for everything else."""
    found = []
    for notebook in _files("*.ipynb"):
        if notebook.relative_to(PROJECT).parts[0] != "notebooks":
            continue
        for i, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            kind = "markdown" if cell["cell_type"] == "markdown" else "code"
            found.append((f"{notebook.relative_to(PROJECT)} cell {i}", kind, "".join(cell["source"])))
    for path in [*sorted((PROJECT / "scripts").glob("*.yml")), *_files("*Dockerfile*"), PROJECT / "environment.yml"]:
        found.append((str(path.relative_to(PROJECT)), "code", path.read_text()))
    for path in [PROJECT / "README.md", *sorted((PROJECT / "docs").rglob("*.md"))]:
        found.append((f"{path.relative_to(PROJECT)} (code blocks)", "code", code_blocks(path.read_text())))
    return found


def unknown_names(where: str, kind: str, text: str) -> list[str]:
    """The images and sizes in ``text`` that are not in the lists, each with where it is and why it is wrong."""
    problems = []
    for image in IMAGE.findall(text):
        if names.base_image(image) is None:
            why = names.image_problem(image) or "not an Azure ML base image"
            problems.append(f"{where}: {why}")
    sentences = re.split(r"(?<=[.!?])\s+", text) if kind == "markdown" else [text]
    for sentence in sentences:
        for size in SIZE.findall(sentence):
            if names.vm_size(size):
                continue
            retired = names.retired_vm_size(size)
            if retired and kind == "markdown" and "retired" in sentence:
                continue  # prose about the retirement itself
            why = (f"retired on {retired['retired']}: use {retired['use']}" if retired
                   else f"not among the sizes of {names.VM_SIZES_DATE}")  # fmt: skip
            problems.append(f"{where}: {size} ({why})")
    return problems


TEXTS = texts()


def test_every_image_and_size_the_walkthrough_names_exists():
    problems = [p for where, kind, text in TEXTS for p in unknown_names(where, kind, text)]
    assert problems == [], "\n".join(problems)


def test_the_check_reads_what_the_walkthrough_names():
    """It sees the images and sizes the notebooks and files really use (a regex that matched nothing would pass)."""
    seen_images = {m for _, _, text in TEXTS for m in IMAGE.findall(text)}
    seen_sizes = {m.lower() for _, _, text in TEXTS for m in SIZE.findall(text)}
    assert {
        "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
        "mcr.microsoft.com/azureml/openmpi5.0-cuda12.4-ubuntu22.04",
    } <= seen_images
    assert {"standard_ds3_v2", "standard_nc4as_t4_v3", "standard_nc6"} <= seen_sizes
    assert any(where.startswith("scripts/chainer.Dockerfile") for where, _, _ in TEXTS)


@pytest.mark.parametrize(
    ("kind", "text", "wrong"),
    [
        ("code", 'env.docker.base_image = "mcr.microsoft.com/azureml/openmpi5.0-ubuntu22.04"', "not one of"),
        ("code", "FROM mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:20250217.v1", "deprecated"),
        ("code", 'VM_SIZE = "STANDARD_NC6"', "retired on 2023-08-31"),
        ("markdown", "Use `Standard_NC6s_v3` for a GPU.", "retired on 2025-09-30"),
        ("code", 'size="Standard_E2_v99"', "not among the sizes"),
    ],
)
def test_the_check_fails_on_a_name_azure_does_not_have(kind, text, wrong):
    problems = unknown_names("example", kind, text)
    assert len(problems) == 1 and wrong in problems[0], problems


def test_a_retired_size_may_be_named_where_the_text_says_it_was_retired():
    prose = "The original sample used `STANDARD_NC6`, retired in August 2023. Today use `Standard_NC4as_T4_v3`."
    assert unknown_names("example", "markdown", prose) == []
    assert unknown_names("example", "code", prose)  # in code, never
