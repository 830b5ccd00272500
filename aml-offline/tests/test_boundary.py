"""The client boundary: the mode rules, the config forms azureml-core reads, and the local twin behind azureml.core.

Each case runs in a fresh interpreter (the boundary changes process-wide module state), from a temporary folder.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aml_offline.boundary import kernel_env
from aml_offline.mode import ModeError, find_config, read_config, resolve_mode

CONFIG = {"subscription_id": "s", "resource_group": "rg", "workspace_name": "my-ws"}
SCOPE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/my-ws"


def _python(cwd: Path, code: str, intercept: bool = False, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("AZUREML_MODE", "AZUREML_INTERCEPT")}
    full = kernel_env(base) if intercept else base
    full.update(env, AZUREML_LOCAL_ROOT=str(cwd / "ws"))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full, capture_output=True, text=True)


ACTIVATE = "import aml_offline as b; print('MODE', b.activate()); "


# --- the config, read as Workspace.from_config() reads it ----------------------------------------------------


@pytest.mark.parametrize("where", ["config.json", ".azureml/config.json", "aml_config/config.json", "project.json"])
def test_config_is_found_where_azureml_core_looks(tmp_path, where):
    (tmp_path / where).parent.mkdir(exist_ok=True)
    (tmp_path / where).write_text(json.dumps(CONFIG))
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_config(tmp_path / "a" / "b") == tmp_path / where


def test_path_and_file_name_arguments(tmp_path, monkeypatch):
    monkeypatch.delenv("AZUREML_MODE", raising=False)
    (tmp_path / "mine.json").write_text(json.dumps(CONFIG))
    assert find_config(tmp_path / "mine.json") == tmp_path / "mine.json"  # path= a file
    assert find_config(tmp_path) is None
    assert find_config(tmp_path, _file_name="mine.json") == tmp_path / "mine.json"
    (tmp_path / "sub").mkdir()
    assert resolve_mode(tmp_path / "sub", _file_name="mine.json") == ("azure", tmp_path / "mine.json")


def test_the_scope_form(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"Scope": SCOPE}))
    assert read_config(tmp_path / "config.json") == CONFIG


@pytest.mark.parametrize(
    "content,says",
    [
        (codecs.BOM_UTF16_LE + json.dumps(CONFIG).encode("utf-16-le"), "saved as UTF-16"),  # Windows Notepad
        (codecs.BOM_UTF8 + json.dumps(CONFIG).encode(), "UTF-8 with a byte-order mark"),
        (json.dumps(CONFIG).encode("utf-16-le"), "not UTF-8 text"),
        (b'{"subscription_id": "x",', "not valid JSON"),
        (json.dumps({"subscription_id": "x"}).encode(), "lacks resource_group, workspace_name"),
        (json.dumps({"Scope": "/subscriptions/s"}).encode(), "is not /subscriptions/"),
        (b"[1, 2]", "must hold a JSON object"),
    ],
)
def test_an_unreadable_config_is_one_line_naming_the_file(tmp_path, content, says):
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(ModeError) as caught:
        read_config(tmp_path / "config.json")
    message = str(caught.value)
    assert says in message and str(tmp_path / "config.json") in message and "\n" not in message


def test_bad_config_through_the_hook_is_the_clear_line_not_a_decode_error(tmp_path):
    (tmp_path / "config.json").write_bytes(codecs.BOM_UTF16_LE + json.dumps(CONFIG).encode("utf-16-le"))
    result = _python(tmp_path, "import azureml.core", intercept=True)
    assert result.returncode != 0 and "ModeError" in result.stderr and "saved as UTF-16" in result.stderr
    assert "UnicodeDecodeError" not in result.stderr


# --- the mode rules --------------------------------------------------------------------------------------------


def test_unknown_mode_is_a_clear_error(tmp_path):
    result = _python(tmp_path, ACTIVATE, AZUREML_MODE="cloud")
    assert result.returncode != 0 and "AZUREML_MODE='cloud' is not a mode" in result.stderr


def test_azure_mode_without_config_says_how_to_get_one(tmp_path):
    result = _python(tmp_path, ACTIVATE, AZUREML_MODE="azure")
    assert result.returncode != 0 and "no config.json" in result.stderr and "ml.azure.com" in result.stderr


def test_local_without_config_puts_the_twin_behind_azureml_core(tmp_path):
    code = ACTIVATE + (
        "from azureml.core import Workspace, Run, Environment, ScriptRunConfig\n"
        "from azureml.core.model import Model, InferenceConfig\n"
        "from azureml.core.compute import ComputeTarget, AmlCompute\n"
        "from azureml.core.webservice import AciWebservice, Webservice\n"
        "from azureml.train.hyperdrive import HyperDriveRun, HyperDriveConfig\n"
        "from azureml.widgets import RunDetails\n"
        "import azureml.core.run\n"
        "for c in (Workspace, Run, Model, ComputeTarget, AmlCompute, Webservice, HyperDriveRun, RunDetails,"
        " Environment, ScriptRunConfig, InferenceConfig, AciWebservice, HyperDriveConfig):\n"
        "    print(c.__name__, c.__module__)\n"
        "print('own', azureml.core.run.__dict__['Run'].__module__)\n"
        "print(Workspace.from_config())\n"
        "b.deactivate()\n"
        "import azureml.core\n"
        "print('after', azureml.core.Workspace.__module__)\n"
    )
    result = _python(tmp_path, code)
    assert result.returncode == 0, result.stderr
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert out["MODE"] == "local"
    for twin in ("Workspace", "Run", "Model", "ComputeTarget", "AmlCompute", "Webservice", "HyperDriveRun",
                 "Environment"):  # fmt: skip
        assert out[twin].startswith("aml_offline."), (twin, out[twin])
    assert out["RunDetails"] == "aml_offline.run_details"
    for config in ("ScriptRunConfig", "InferenceConfig", "AciWebservice", "HyperDriveConfig"):
        assert out[config].startswith("azureml."), (config, out[config])
    assert out["own"] == "azureml.core.run"  # azureml-core's own code keeps its classes
    assert result.stdout.count("Local mode (no config.json in") == 1 and str(tmp_path / "ws") in result.stdout
    assert "Workspace(name='local-workspace'" in result.stdout
    assert out["after"] == "azureml.core.workspace"


def test_a_config_means_azure_and_azureml_core_unchanged(tmp_path):
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps({"Scope": SCOPE}))
    code = ACTIVATE + "from azureml.core import Workspace, Run; print('classes', Workspace.__module__, Run.__module__)"
    result = _python(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert "MODE azure" in result.stdout and "Azure ML mode: workspace 'my-ws'" in result.stdout
    assert "classes azureml.core.workspace azureml.core.run" in result.stdout
    forced = _python(tmp_path, code, AZUREML_MODE="local")
    assert "MODE local" in forced.stdout and "classes aml_offline" in forced.stdout


# --- opting in without a call: the sitecustomize hook ----------------------------------------------------------


def test_any_process_opts_in_with_the_kernel_env(tmp_path):
    # HyperDrive first: it imports azureml.core itself, the case a late hook would get wrong
    code = (
        "from azureml.train.hyperdrive import HyperDriveRun, choice\n"
        "from azureml.core import Workspace\n"
        "print('classes', Workspace.__module__, HyperDriveRun.__module__)"
    )
    result = _python(tmp_path, code, intercept=True)
    assert result.returncode == 0, result.stderr
    assert "classes aml_offline.facade.workspace aml_offline.facade.runs" in result.stdout
    assert "Local mode" in result.stdout
    inside_a_run = _python(tmp_path, code, intercept=True, AZUREML_LOCAL_RUN_DIR=str(tmp_path))
    assert "classes azureml.core.workspace" in inside_a_run.stdout and "Local mode" not in inside_a_run.stdout


def test_an_sdk_v2_process_opts_in_with_the_kernel_env_without_importing_azureml(tmp_path):
    """A v2 notebook never imports azureml: its first ``import azure.ai.ml`` switches the boundary on (issue 25)."""
    code = (
        "from azure.ai.ml import MLClient\n"
        "from azure.identity import DefaultAzureCredential\n"
        "ml = MLClient.from_config(DefaultAzureCredential())\n"
        "print('client', type(ml).__module__, ml.workspaces.get().mlflow_tracking_uri.split(':')[0])"
    )
    result = _python(tmp_path, code, intercept=True, AZUREML_MODE="local")
    assert result.returncode == 0, result.stderr
    assert "client aml_offline.facade_v2.client aml-offline" in result.stdout and "Local mode" in result.stdout
