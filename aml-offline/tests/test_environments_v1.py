"""SDK v1 environments in the local workspace: curated ones from the dated catalogue, registered ones in the
workspace's records, and how a run gets a curated one offline (this interpreter, a built environment, or a clear
error at submit)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from azureml.core import Environment as AzureEnvironment
from azureml.core import ScriptRunConfig
from azureml.exceptions import UserErrorException

from aml_offline import Experiment
from aml_offline.execution import curated, envs, snapshot
from aml_offline.facade._base import LocalWorkspaceWarning, NotAvailableOffline
from aml_offline.facade.environments import Environment
from twin_support import script_dir


def _pip(env) -> list[str]:
    return list(env.python.conda_dependencies.pip_packages)


# --- curated environments -------------------------------------------------------------------------------------------


def test_a_curated_environment_comes_from_the_catalogue_as_azureml_cores_object(ws):
    env = Environment.get(workspace=ws, name="AzureML-sklearn-1.5")
    assert isinstance(env, AzureEnvironment) and env.name == "AzureML-sklearn-1.5" and env.version == "1"
    assert "scikit-learn~=1.5.0" in _pip(env) and "azureml-defaults" in _pip(env)
    assert env.python.conda_dependencies.get_python_version() == "3.10"
    assert env.docker.base_image == "mcr.microsoft.com/azureml/curated/sklearn-1.5"
    # the sample's listing cell: curated environments are listed with their packages, retired ones are not
    listed = Environment.list(workspace=ws)
    assert {"AzureML-sklearn-1.5", "AzureML-tensorflow-2.16-cuda12", "AzureML-lightgbm-3.3"} <= set(listed)
    assert "AzureML-Minimal" not in listed
    assert "scikit-learn~=1.5.0" in listed["AzureML-sklearn-1.5"].python.conda_dependencies.serialize_to_string()
    with pytest.warns(LocalWorkspaceWarning, match="one version of each curated environment"):
        assert Environment.get(ws, "AzureML-sklearn-1.5", version="12").version == "1"


def test_a_retired_curated_environment_is_not_found_and_the_error_says_what_replaces_it(ws):
    with pytest.raises(Exception, match=r"Error retrieving the environment definition\. Code: 404") as caught:
        Environment.get(ws, "AzureML-Minimal")
    text = str(caught.value)
    assert "AzureML-Minimal" in text and "retired" in text and "AzureML-sklearn-1.5" in text
    assert "azureml-core==1.8.0" in text and curated.DATE in text


def test_an_unknown_environment_is_azure_not_found(ws):
    with pytest.raises(Exception, match=r"^Error retrieving the environment definition\. Code: 404") as caught:
        Environment.get(ws, "no-such-env")
    assert "no-such-env" in str(caught.value) and type(caught.value).__mro__[1] is Exception
    with pytest.raises(Exception, match="with label prod. Code: 404"):
        Environment.get(ws, "no-such-env", label="prod")
    with pytest.raises(Exception, match="Code: 404"):
        Environment.get(ws, "AzureML-sklearn-1.5:3")  # SDK v1 takes a name, not SDK v2's name:version
    with pytest.raises(UserErrorException, match="Only one of version or label"):
        Environment.get(ws, "anything", version="1", label="prod")


# --- registered environments --------------------------------------------------------------------------------------


def test_register_numbers_versions_as_azure_does_and_keeps_them_in_the_workspace_folder(ws, caplog):
    env = Environment(name="myenv")
    env.python.conda_dependencies.add_pip_package("pillow")
    first = env.register(workspace=ws)
    assert isinstance(first, Environment) and first.version == "1" and env.version is None
    assert env.register(ws).version == "1"  # the same definition again: no new version
    env.python.conda_dependencies.add_pip_package("joblib")
    assert env.register(ws).version == "2"
    assert "joblib" not in _pip(Environment.get(ws, "myenv", version="1"))
    assert Environment.get(ws, "myenv").version == "2" and "joblib" in _pip(Environment.get(ws, "myenv"))
    record = json.loads((ws._store.root / "environments" / "myenv" / "2.json").read_text())
    assert record["version"] == "2" and "joblib" in json.dumps(record["definition"])
    assert {"myenv", "AzureML-sklearn-1.5"} <= set(ws.environments) and ws.environments["myenv"].version == "2"
    # a version set on the object is registered as that version, with azureml-core's warning
    env.version = "7"
    with caplog.at_level(logging.WARNING, logger="azureml.core.environment"):
        assert env.register(ws).version == "7"
    assert "Environment version is set" in caplog.text
    env.python.conda_dependencies.add_pip_package("numpy")
    with pytest.raises(Exception, match="version 7 exists with another definition"):
        env.register(ws)
    env.version = None
    assert env.register(ws).version == "8"


def test_a_curated_environment_is_changed_through_a_copy_as_on_azure(ws):
    curated_env = Environment.get(ws, "AzureML-sklearn-1.5")
    with pytest.raises(Exception, match="can not start with the prefix AzureML") as caught:
        curated_env.register(ws)
    assert "Code: 400" in str(caught.value)
    mine = curated_env.clone("my-sklearn")
    assert isinstance(mine, Environment) and mine.version is None
    mine.python.conda_dependencies.add_pip_package("pillow")
    assert mine.register(ws).version == "1"
    assert "pillow" in _pip(Environment.get(ws, "my-sklearn"))


def test_labels_find_a_version(ws):
    env = Environment("labelled")
    env.register(ws)
    env.python.conda_dependencies.add_pip_package("numpy")
    env.register(ws)
    Environment.label(ws, "labelled", "1", ["prod"])
    assert Environment.get(ws, "labelled", label="prod").version == "1"
    with pytest.raises(Exception, match="Code: 404"):
        Environment.label(ws, "labelled", "9", ["prod"])


def test_pip_and_conda_files_make_environments_that_register(ws, tmp_path):
    (tmp_path / "requirements.txt").write_text("scikit-learn\npandas>=1.5\n")
    (tmp_path / "conda.yml").write_text("name: x\ndependencies:\n- python=3.11\n- pip\n- pip:\n  - numpy\n  - joblib\n")
    from_pip = Environment.from_pip_requirements(name="from-pip", file_path=str(tmp_path / "requirements.txt"))
    from_conda = Environment.from_conda_specification(name="from-conda", file_path=str(tmp_path / "conda.yml"))
    assert isinstance(from_pip, Environment) and {"scikit-learn", "pandas>=1.5"} <= set(_pip(from_pip))
    assert isinstance(from_conda, Environment) and {"numpy", "joblib"} <= set(_pip(from_conda))
    assert from_pip.register(ws).version == "1" and from_conda.register(ws).version == "1"
    with pytest.raises(NotAvailableOffline, match="Environment.build is not available"):
        from_pip.build(ws)
    with pytest.raises(NotAvailableOffline, match="add_private_pip_wheel"):
        Environment.add_private_pip_wheel(ws, "x.whl")


# --- how a run gets a curated environment ---------------------------------------------------------------------------


def test_a_curated_environment_this_interpreter_satisfies_runs_on_it(ws, tmp_path):
    env = Environment.get(ws, "AzureML-minimal-py311-inference")
    if snapshot.missing_packages(curated.environment(curated.find(env.name))):
        pytest.skip("this interpreter lacks a package of AzureML-minimal-py311-inference")
    src = script_dir(tmp_path, "import numpy, joblib\nprint('ran with numpy', numpy.__version__)\n")
    run = Experiment(ws, "environments").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                                environment=env))  # fmt: skip
    assert run.wait_for_completion()["status"] == "Completed"
    log = (ws._store.root / "artifacts").rglob("std_log.txt")
    text = "\n".join(p.read_text() for p in log)
    assert "'AzureML-minimal-py311-inference': all 5 pip packages satisfied" in text and "ran with numpy" in text


def test_a_curated_environment_is_built_when_it_can_be_and_else_refused_at_submit_naming_what_is_missing(
    ws, tmp_path, monkeypatch
):
    env = Environment.get(ws, "AzureML-tensorflow-2.16-cuda12")
    spec = curated.environment(curated.find(env.name))
    missing = snapshot.missing_packages(spec)
    assert any(m.startswith("tf-keras==2.16.0") for m in missing)  # not a dependency of any of this project's
    monkeypatch.setattr(envs, "can_build", lambda: True)
    assert curated.serving(spec) == {"how": "build", "missing": missing, "why": ""}
    monkeypatch.setattr(envs, "can_build", lambda: False)
    src = script_dir(tmp_path, "print('never runs')\n")
    with pytest.raises(NotAvailableOffline) as caught:
        Experiment(ws, "environments").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                              environment=env))  # fmt: skip
    text = str(caught.value)
    assert "'AzureML-tensorflow-2.16-cuda12'" in text and "tf-keras==2.16.0" in text and "aml-offline[envs]" in text


# --- the catalogue ------------------------------------------------------------------------------------------------


def test_the_catalogue_is_dated_sourced_and_answers_both_sdks_names():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", curated.DATE)
    sklearn = curated.find("AzureML-sklearn-1.5")
    for reference in ("azureml:AzureML-sklearn-1.5@latest", "azureml:AzureML-sklearn-1.5:3",
                      "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
                      "azureml://registries/azureml/environments/sklearn-1.5/versions/12",
                      "azureml://registries/azureml/environments/sklearn-1.5"):  # fmt: skip
        assert curated.find(reference) == sklearn, reference
    assert (
        curated.find("AzureML-no-such") is None and curated.find("azureml://registries/azureml/environments/x") is None
    )
    names = {e["name"] for e in curated.entries()}
    current = {e["name"] for e in curated.entries("current")}
    for entry in curated.entries():
        assert entry["name"].startswith(curated.PREFIX) and entry["python"] and entry["packages"], entry["name"]
        assert any(key in entry["source"] for key in curated.SOURCES), entry["name"]
        if entry["status"] == "retired":
            assert entry["retired"] and entry["replaced_by"] in current, entry["name"]
        else:
            assert entry["status"] == "current" and entry["registry"], entry["name"]
    assert {
        "AzureML-Minimal",
        "AzureML-Tutorial",
        "AzureML-TensorFlow-2.3-GPU",
        "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu",
        "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
    } <= names - current
    assert len(names) == len(curated.entries())  # one entry per name


def test_a_curated_name_is_found_whatever_its_case_as_microsofts_samples_spell_it(ws):
    from aml_offline.facade.environments import Environment

    env = Environment.get(ws, name="azureml-sklearn-1.5")
    assert env.name == "AzureML-sklearn-1.5"
