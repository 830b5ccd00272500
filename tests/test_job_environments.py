"""The job environments the notebooks submit: they parse, and they ask for what works (offline; no Azure).

Every ``Environment.from_conda_specification(..., file_path=...)`` in a notebook is found
and checked: it parses (as YAML and as azureml-core reads it), lists ``azureml-defaults``,
agrees with the versions the local workspace runs it with, and, where a notebook runs it
on the GPU cluster, asks for CUDA libraries of the major version the framework needs and
a base image of that CUDA. ``make gpu-check`` does what needs a GPU.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from aml_offline.execution import envs
from azureml.core import Environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from support import PROJECT

NOTEBOOKS = sorted((PROJECT / "notebooks").rglob("*.ipynb"))
CUDA12_IMAGE = re.compile(r"^mcr\.microsoft\.com/azureml/openmpi5\.0-cuda(12)\.\d+-ubuntu\d\d\.04$")


def code_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def uses() -> list[tuple[Path, Path, str]]:
    """(notebook, environment file, the notebook's code) for every environment a notebook builds."""
    found = []
    for notebook in NOTEBOOKS:
        code = code_of(notebook)
        for path in re.findall(r'from_conda_specification\([^)]*file_path="([^"]+)"', code):
            found.append((notebook, (notebook.parent / path).resolve(), code))
    return found


USES = uses()
ENV_FILES = sorted({env for _, env, _ in USES})


def pip_requirements(env_file: Path) -> dict[str, Requirement]:
    spec = yaml.safe_load(env_file.read_text())
    pip = [p for d in spec["dependencies"] if isinstance(d, dict) for p in d.get("pip", [])]
    return {Requirement(p).name.lower(): Requirement(p) for p in pip}


def test_the_notebooks_use_the_three_environment_files():
    names = {env.name for env in ENV_FILES}
    assert names == {"keras-env.yml", "score-env.yml", "chainer-env.yml"}, names
    assert len(USES) >= 5  # 03, 06, 07, 08 and the Chainer track


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_environment_parses_and_lists_azureml_defaults(env_file):
    spec = yaml.safe_load(env_file.read_text())
    assert "python=3.11" in spec["dependencies"], "the walkthrough's Python"
    environment = Environment.from_conda_specification(name=spec["name"], file_path=str(env_file))
    pip = list(environment.python.conda_dependencies.pip_packages)
    assert pip and [Requirement(p).name for p in pip].count("azureml-defaults") == 1, pip


@pytest.mark.parametrize("env_file", [e for e in ENV_FILES if e.name != "chainer-env.yml"], ids=lambda p: p.name)
def test_what_the_local_workspace_runs_matches_the_pins(env_file):
    """The local workspace runs these jobs with this interpreter: it must satisfy every pin, so that a local
    run uses the versions an Azure image gets; and NumPy is capped as the project caps it."""
    requirements = pip_requirements(env_file)
    for name, req in requirements.items():
        if name == "azureml-defaults":
            continue
        installed = metadata.version(name)
        assert req.specifier.contains(installed, prereleases=True), f"{env_file.name}: {req} but {installed} here"
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    numpy = next(Requirement(d) for d in project if Requirement(d).name == "numpy")
    assert requirements["numpy"].specifier == numpy.specifier, "azureml-dataset-runtime's NumPy cap, in both places"


def test_chainer_environment_pins_what_its_built_environment_pins():
    """The local workspace builds it with envs.BUILD_CONSTRAINTS; the Dockerfile gives Azure's pip the same."""
    requirements = pip_requirements(PROJECT / "scripts" / "chainer-env.yml")
    assert str(requirements["chainer"].specifier) == "==7.8.1"
    assert not requirements["numpy"].specifier.contains("2.0.0"), "Chainer 7.8.1 needs NumPy < 2"
    assert not requirements["setuptools"].specifier.contains("60"), "numpy.distutils needs setuptools < 60"
    assert not [n for n in requirements if n.startswith("cupy")], "no CuPy that Chainer 7.8.1 supports has CUDA 12"

    dockerfile = (PROJECT / "scripts" / "chainer.Dockerfile").read_text()
    pins = re.findall(r'^RUN echo "([^"]+)" > (/etc/pip-build-constraints\.txt)$', dockerfile, re.M)
    assert [pin for pin, _ in pins] == envs.BUILD_CONSTRAINTS
    for variable in ("PIP_BUILD_CONSTRAINT", "PIP_CONSTRAINT"):  # pip 25.3 and later; earlier pip
        assert re.search(rf"\b{variable}=/etc/pip-build-constraints\.txt\b", dockerfile), variable
    image = re.search(r"^FROM (\S+)$", dockerfile, re.M)[1]
    assert image.startswith("mcr.microsoft.com/azureml/") and "cuda" not in image, "a CPU image: Chainer uses no GPU"


def test_the_chainer_notebook_trains_on_the_cpu_and_builds_from_the_dockerfile():
    notebook = PROJECT / "notebooks" / "chainer" / "train-and-register-chainer.ipynb"
    code = code_of(notebook)
    assert '"--gpu_id", -1' in code and "cupy" not in code
    assert 'env.docker.base_dockerfile = "../../scripts/chainer.Dockerfile"' in code
    assert (notebook.parent / "../../scripts/chainer.Dockerfile").resolve().is_file()


def cuda_majors_required(package: str, extra: str) -> set[str]:
    """The CUDA major versions the installed ``package``'s ``extra`` asks for (nvidia-*-cuNN, jax-cudaNN-*)."""
    majors = set()
    for line in metadata.requires(package) or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": extra}) and not req.marker.evaluate({"extra": ""}):
            found = re.search(r"-cu(?:da)?(\d+)", req.name)
            if found:  # nvidia-cudnn-cu12, jax-cuda12-plugin; jaxlib is the CPU part
                majors.add(found[1])
    return majors


@pytest.mark.parametrize("notebook", sorted({n for n, e, _ in USES if e.name == "keras-env.yml"}), ids=lambda p: p.stem)
def test_gpu_training_environment_asks_for_the_cuda_its_frameworks_need(notebook):
    """03, 06 and 08 run keras-env.yml on the GPU cluster: TensorFlow and JAX need CUDA 12 libraries."""
    requirements = pip_requirements(PROJECT / "scripts" / "keras-env.yml")
    tensorflow, jax = requirements["tensorflow"], requirements["jax"]
    assert "and-cuda" in tensorflow.extras, "plain tensorflow trains on the CPU of a GPU node"
    assert "cuda12" in jax.extras, "plain jax trains on the CPU of a GPU node"
    assert cuda_majors_required("tensorflow", "and-cuda") == {"12"}
    assert cuda_majors_required("jax", "cuda12") == {"12"}

    images = re.findall(r'env\.docker\.base_image = "([^"]+)"', code_of(notebook))
    assert images, f"{notebook.name} sets no base image"
    for image in images:
        found = CUDA12_IMAGE.match(image)
        assert found and found[1] == "12", f"{notebook.name}: {image} is not an Azure ML CUDA 12 image"


def test_no_notebook_promises_a_cuda11_image():
    for notebook in NOTEBOOKS:
        assert "cuda11" not in code_of(notebook), f"{notebook.name} still uses a CUDA 11 image"


def test_scoring_environment_pins_what_training_pins():
    """The service loads the model file the training run saved: the same TensorFlow, Keras and NumPy."""
    train, score = (
        pip_requirements(PROJECT / "scripts" / "keras-env.yml"),
        pip_requirements(PROJECT / "scripts" / "score-env.yml"),
    )
    for name in ("tensorflow", "keras", "numpy"):
        assert score[name].specifier == train[name].specifier, name
    assert score["tensorflow"].specifier == SpecifierSet("~=2.21")
