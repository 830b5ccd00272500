"""Names that exist on Azure ML (``aml_offline.azure_names``): the dated lists, and the run log's one warning about
an image Azure does not publish."""

from __future__ import annotations

import re

import pytest
from azureml.core import Environment, ScriptRunConfig

from aml_offline import Experiment, azure_names, environments
from aml_offline.execution import snapshot
from twin_support import script_dir

MISSING = "mcr.microsoft.com/azureml/openmpi5.0-ubuntu22.04"  # never published (a CPU image of OpenMPI 5 is 24.04)
DEPRECATED = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"


def test_the_lists_are_dated_sourced_and_the_public_module_gives_them():
    for date in (azure_names.IMAGES_DATE, azure_names.VM_SIZES_DATE):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)
    assert "7482feaf" in azure_names.SOURCES["containers"]
    names = [i["name"] for i in azure_names.BASE_IMAGES]
    assert len(names) == 7 and "openmpi4.1.0-ubuntu22.04" in names and "openmpi5.0-cuda12.4-ubuntu22.04" in names
    assert not set(names) & {i["name"] for i in azure_names.DEPRECATED_IMAGES}
    assert all(i["use"] in names for i in azure_names.DEPRECATED_IMAGES), "each deprecated image names a current one"
    assert {s["name"].lower() for s in azure_names.VM_SIZES}.isdisjoint(
        s["name"].lower() for s in azure_names.RETIRED_VM_SIZES
    )
    assert all(s["why"] for s in azure_names.VM_SIZES) and all(s["use"] for s in azure_names.RETIRED_VM_SIZES)
    assert environments.BASE_IMAGES is azure_names.BASE_IMAGES and environments.has_gpu is azure_names.has_gpu


def test_images_are_looked_up_by_name_whatever_their_tag():
    assert azure_names.image_name("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1") == (
        "openmpi4.1.0-ubuntu22.04"
    )
    assert azure_names.image_name("python:3.11-slim") is None
    assert azure_names.base_image("mcr.microsoft.com/azureml/openmpi5.0-cuda12.4-ubuntu22.04@sha256:ab")["cuda"] == (
        "12.4.1"
    )
    for ok in ("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1", "myregistry.azurecr.io/img:1"):
        assert azure_names.image_problem(ok) is None
    assert "openmpi5.0-cuda12.4-ubuntu22.04" in azure_names.image_problem(DEPRECATED)
    assert "deprecated" in azure_names.image_problem(DEPRECATED)
    assert "not one of the base images" in azure_names.image_problem(MISSING)
    assert azure_names.deprecated_image(DEPRECATED)["use"] == "openmpi5.0-cuda12.4-ubuntu22.04"
    inference = azure_names.image_problem("mcr.microsoft.com/azureml/minimal-py312-inference:latest")
    assert "prebuilt inference images" in inference and "cannot tell" in inference, "no false 'does not exist'"


def test_curated_images_are_checked_against_the_catalogue():
    assert snapshot.image_problem("mcr.microsoft.com/azureml/curated/sklearn-1.5:17") is None
    assert "curated environment" in snapshot.image_problem("mcr.microsoft.com/azureml/curated/no-such-thing")


def test_sizes_say_whether_they_have_a_gpu_and_which_are_retired():
    assert azure_names.vm_size("STANDARD_DS3_V2")["vcpus"] == 4
    assert not azure_names.has_gpu("Standard_DS3_v2") and azure_names.has_gpu("Standard_NC4as_T4_v3")
    assert azure_names.has_gpu("Standard_ND96isr_H100_v5"), "an N-series size not on the list: Azure's naming rule"
    assert not azure_names.has_gpu("Standard_E4ds_v4")
    assert azure_names.retired_vm_size("standard_nc6")["retired"] == "2023-08-31"
    assert azure_names.vm_size("Standard_NC6s_v3") is None


def _run_log(ws, tmp_path, image: str) -> str:
    env = Environment("image-check")
    env.python.user_managed_dependencies = True  # this interpreter as it is: nothing to check but the image
    env.docker.base_image = image
    src = script_dir(tmp_path, "print('ran')\n")
    run = Experiment(ws, "images").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                          environment=env))  # fmt: skip
    assert run.wait_for_completion()["status"] == "Completed"
    return "\n".join(p.read_text() for p in (ws._store.root / "artifacts").rglob("std_log.txt"))


def test_a_run_on_an_image_azure_does_not_publish_says_so_once_in_its_log(ws, tmp_path):
    log = _run_log(ws, tmp_path, MISSING)
    assert log.count(f"The image {MISSING} is not one of the base images Azure ML publishes") == 1, log
    assert "ran" in log


def test_a_run_on_a_supported_image_has_no_such_warning(ws, tmp_path):
    log = _run_log(ws, tmp_path, "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1")
    assert "base images Azure ML publishes" not in log and "deprecated" not in log


@pytest.mark.parametrize("image", [DEPRECATED])
def test_an_environment_on_a_deprecated_image_is_warned_about_with_its_replacement(image):
    lines = snapshot.warnings_for({"name": "e", "pip": [], "conda": [], "docker_image": image})
    assert len(lines) == 2 and lines[1].startswith(f"The image {image} is deprecated"), lines
