"""The job environments the notebooks submit: they parse, and they ask for what works (offline; no Azure).

Every ``Environment.from_conda_specification(..., file_path=...)`` in a notebook is found
and checked: it parses (as YAML and as azureml-core reads it), lists ``azureml-defaults``,
agrees with the versions the local workspace runs it with, and, where a notebook runs it
on a GPU cluster, asks for CUDA libraries of the major version the framework needs and
a base image of that CUDA; on a CPU cluster, for no CUDA libraries and a CPU image.  The
notebooks pick between the two by the cluster's size.  Every ``scripts/*-env.yml`` has a
lock of the environment as Azure builds it (``locks/azure/``), in step with the file.
``make gpu-check`` does what needs a GPU.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from aml_offline import environments as names
from aml_offline.execution import envs
from azureml.core import Environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from support import PROJECT

from helpers import locks

NOTEBOOKS = sorted((PROJECT / "notebooks").rglob("*.ipynb"))
CUDA12_IMAGE = re.compile(r"^mcr\.microsoft\.com/azureml/openmpi5\.0-cuda(12)\.\d+-ubuntu\d\d\.04$")
SCRIPTS = PROJECT / "scripts"
#: Each training environment for a CPU cluster, and its twin for a GPU cluster (the same packages, with CUDA)
CPU_AND_GPU = {"keras-env.yml": "keras-gpu-env.yml", "keras-v2-env.yml": "keras-v2-gpu-env.yml"}
CPU_ENVS = ["keras-env.yml", "keras-v2-env.yml", "score-env.yml", "chainer-env.yml"]
GPU_ENVS = list(CPU_AND_GPU.values())


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


def test_the_notebooks_use_the_environment_files():
    used = {env.name for env in ENV_FILES}
    assert used == {"keras-env.yml", "keras-gpu-env.yml", "score-env.yml", "chainer-env.yml"}, used
    assert len(USES) >= 8  # 03, 06 and 08 (both training files each), 07 and the Chainer track


def images_by_environment(code: str) -> list[tuple[str, str]]:
    """(environment file, base image) for each environment a notebook's code builds: SDK v1's
    ``from_conda_specification(..., file_path=F)`` followed by ``env.docker.base_image = I``, and SDK v2's
    ``Environment(conda_file=F, image=I)``."""
    v1 = r'from_conda_specification\([^)]*file_path="([^"]+)"\)\s*\n\s*env\.docker\.base_image = "([^"]+)"'
    v2 = r'Environment\(\s*conda_file="([^"]+)",\s*image="([^"]+)",?\s*\)'
    return [(Path(f).name, image) for f, image in re.findall(v1, code) + re.findall(v2, code)]


@pytest.mark.parametrize(
    "notebook",
    [n for n in NOTEBOOKS if any(f.endswith("gpu-env.yml") for f, _ in images_by_environment(code_of(n)))],
    ids=lambda p: p.stem if p.parent.name == "notebooks" else f"{p.parent.name}-{p.stem}",
)
def test_a_notebook_picks_the_environment_by_the_clusters_size(notebook):
    """03, 06, 08, v2/03 and v2/04: CUDA libraries on a CUDA 12 image for a GPU size, none on a CPU image else."""
    code = code_of(notebook)
    assert re.search(r"\bhas_gpu\((compute_target\.vm_size|cluster\.size)\)", code), "the choice is the size's"
    pairs = images_by_environment(code)
    assert {f for f, _ in pairs} in [{cpu, gpu} for cpu, gpu in CPU_AND_GPU.items()], pairs
    for env_file, image in pairs:
        if env_file in GPU_ENVS:
            assert CUDA12_IMAGE.match(image), f"{notebook.name}: {env_file} on {image}, not a CUDA 12 image"
        else:
            assert names.base_image(image) and names.base_image(image)["cuda"] is None, f"{env_file} on {image}"


def test_the_walkthroughs_sizes_say_whether_they_have_a_gpu():
    assert not names.has_gpu("Standard_DS3_v2") and names.has_gpu("Standard_NC4as_T4_v3")


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_environment_parses_and_lists_azureml_defaults(env_file):
    spec = yaml.safe_load(env_file.read_text())
    assert "python=3.11" in spec["dependencies"], "the walkthrough's Python"
    environment = Environment.from_conda_specification(name=spec["name"], file_path=str(env_file))
    pip = list(environment.python.conda_dependencies.pip_packages)
    assert pip and [Requirement(p).name for p in pip].count("azureml-defaults") == 1, pip


@pytest.mark.parametrize("env_file", sorted(set(SCRIPTS.glob("*-env.yml")) - {SCRIPTS / "chainer-env.yml"}),
                         ids=lambda p: p.name)  # fmt: skip
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


@pytest.mark.parametrize("env_file", GPU_ENVS)
def test_gpu_training_environment_asks_for_the_cuda_its_frameworks_need(env_file):
    """On a GPU cluster keras-gpu-env.yml (v1) and keras-v2-gpu-env.yml (v2) run: TensorFlow and JAX need CUDA 12."""
    requirements = pip_requirements(SCRIPTS / env_file)
    tensorflow, jax = requirements["tensorflow"], requirements["jax"]
    assert "and-cuda" in tensorflow.extras, "plain tensorflow trains on the CPU of a GPU node"
    assert "cuda12" in jax.extras, "plain jax trains on the CPU of a GPU node"
    assert cuda_majors_required("tensorflow", "and-cuda") == {"12"}
    assert cuda_majors_required("jax", "cuda12") == {"12"}


@pytest.mark.parametrize("cpu_file", CPU_AND_GPU)
def test_cpu_training_environment_is_the_gpu_one_without_cuda(cpu_file):
    """The same packages and versions on both kinds of cluster; only the CUDA extras differ."""
    cpu, gpu = pip_requirements(SCRIPTS / cpu_file), pip_requirements(SCRIPTS / CPU_AND_GPU[cpu_file])
    assert cpu.keys() == gpu.keys()
    for name, req in cpu.items():
        assert req.specifier == gpu[name].specifier, name
        assert not req.extras, f"{cpu_file}: {req} installs CUDA libraries on a CPU cluster"


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


# --- the environments as Azure builds them ---------------------------------------------------------------------------


def azure_lock(env_file: str) -> Path:
    return locks.azure_lock_path(SCRIPTS / env_file)


@pytest.mark.parametrize("env_file", sorted(p.name for p in SCRIPTS.glob("*-env.yml")))
def test_every_environment_has_a_lock_of_what_azure_builds_in_step_with_its_file(env_file):
    """make lock resolves each file's pip packages as written for Linux x86-64 and Python 3.11, azureml-defaults
    and the CUDA extras included; a lock made from other packages, or at other versions than the local workspace
    runs, is out of step."""
    assert locks.azure_lock_problems(SCRIPTS / env_file) == []
    lock = azure_lock(env_file)
    text, locked = lock.read_text(), locks.pins(lock)
    assert f"({locks.AZURE_PLATFORM}" in text and "Python 3.11" in text
    for line in locks.azure_requirements(SCRIPTS / env_file):
        req = Requirement(line)
        assert req.name in locked and req.specifier.contains(locked[req.name], prereleases=True), line
    if "azureml-defaults" in pip_requirements(SCRIPTS / env_file):
        assert "azureml-defaults" in locked and "azureml-inference-server-http" in locked


def cuda_packages(lock: Path) -> list[str]:
    return sorted(n for n in locks.pins(lock) if n.startswith("nvidia-") or re.search(r"cuda\d+", n))


@pytest.mark.parametrize("env_file", CPU_ENVS)
def test_a_cpu_environment_installs_no_cuda_libraries(env_file):
    assert cuda_packages(azure_lock(env_file)) == []


@pytest.mark.parametrize("env_file", GPU_ENVS)
def test_a_gpu_environment_installs_cuda_12_libraries(env_file):
    found = cuda_packages(azure_lock(env_file))
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "jax-cuda12-plugin"} <= set(found), found
    assert not [n for n in found if re.search(r"-cu(?!12\b)\d+$", n)], "every NVIDIA library is a CUDA 12 one"


def test_a_lock_out_of_step_with_its_file_is_reported(tmp_path):
    source = SCRIPTS / "keras-env.yml"
    changed = tmp_path / "keras-env.yml"
    changed.write_text(source.read_text().replace("      - keras~=3.15\n", "      - keras~=3.15\n      - six\n"))
    folder = tmp_path / "azure"
    folder.mkdir()
    (folder / "keras-mnist-env.txt").write_text(azure_lock("keras-env.yml").read_text())
    assert locks.azure_lock_problems(source, folder) == []
    assert "made from other packages" in locks.azure_lock_problems(changed, folder)[0]
    locked = locks.pins(folder / "keras-mnist-env.txt")
    moved = (folder / "keras-mnist-env.txt").read_text().replace(f"keras=={locked['keras']} ", "keras==3.0.0 ")
    (folder / "keras-mnist-env.txt").write_text(moved)
    assert "keras 3.0.0" in locks.azure_lock_problems(source, folder)[0]
    assert "is missing" in locks.azure_lock_problems(source, tmp_path / "none")[0]
