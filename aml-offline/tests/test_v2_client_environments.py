"""SDK v2's ``ml_client.environments``, the generic ``ml_client.create_or_update`` / ``begin_create_or_update``, and
the environment a job runs in, in the local workspace.

What azure-ai-ml 1.35 does is the reference: its ``EnvironmentOperations`` (versions, labels, archive, its errors and
their words), its ``MLClient`` dispatch by entity type, and how a job names an environment (a registered one, a
curated one in the azureml registry).  A job with a curated environment gets the catalogue's packages: never silently
this interpreter when it lacks them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.ai.ml import command
from azure.ai.ml.constants import ListViewType
from azure.ai.ml.entities import (
    AmlCompute,
    BatchEndpoint,
    BuildContext,
    CommandComponent,
    Data,
    Environment,
    Model,
    Registry,
    Workspace,
)
from azure.ai.ml.exceptions import MlException, ValidationException
from azure.ai.ml.sweep import Choice
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.polling import LROPoller

import aml_offline
from aml_offline.execution import envs
from aml_offline.facade.environments import Environment as V1Environment
from aml_offline.facade_v2 import MLClient
from aml_offline.facade_v2.environments import job_environment
from aml_offline.offline import LocalWorkspaceWarning, NotAvailableOffline

IMAGE = "mcr.microsoft.com/azureml/openmpi5.0-ubuntu24.04"
CONDA = {"name": "train", "dependencies": ["python=3.11", "pip", {"pip": ["mlflow", "azureml-mlflow"]}]}
SKLEARN = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"


@pytest.fixture()
def ml(tmp_path, monkeypatch):
    """The local workspace's MLClient on a fresh workspace in this test's folder."""
    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    yield MLClient(None, "<SUBSCRIPTION_ID>", "<RESOURCE_GROUP>", "my-workspace")
    aml_offline.stop_everything(tmp_path / "ws")  # nothing outlives its test


def _env(**kwargs) -> Environment:
    return Environment(**{"name": "train-env", "image": IMAGE, "conda_file": CONDA, **kwargs})


# --- versions -----------------------------------------------------------------------------------------------------


def test_versions_are_numbered_as_azure_numbers_them(ml):
    first = _env(description="first")
    created = ml.environments.create_or_update(first)
    assert (created.name, created.version, first.version) == ("train-env", "1", "1"), "the given object gets it too"
    assert created.id.endswith("/workspaces/my-workspace/environments/train-env/versions/1")
    assert created.conda_file == CONDA and created.image == IMAGE
    # the same definition again: the latest version, with the new description (Azure lets that change)
    again = ml.environments.create_or_update(_env(description="second", tags={"team": "a"}))
    assert (again.version, again.description, again.tags) == ("1", "second", {"team": "a"})
    changed = ml.environments.create_or_update(_env(conda_file={**CONDA, "name": "other"}))
    assert changed.version == "2"
    # azure-ai-ml compares with the latest version only: version 1's definition again is version 3
    assert ml.environments.create_or_update(_env()).version == "3"
    assert ml.environments.create_or_update(_env(version="7")).version == "7"
    assert ml.environments.create_or_update(_env(version="7", description="new words")).description == "new words"
    with pytest.raises(ResourceExistsError, match="version 7 exists with another definition"):
        ml.environments.create_or_update(_env(version="7", image="python:3.11"))
    assert ml.create_or_update(_env(conda_file={**CONDA, "name": "next"})).version == "8", "after the largest number"
    # azure-ai-ml's own checks and words, before anything is kept
    with pytest.raises(MlException, match="Docker image or Dockerfile is required"):
        ml.environments.create_or_update(Environment(name="no-image", conda_file=CONDA))
    with pytest.raises(HttpResponseError, match="can not start with the prefix AzureML"):
        ml.environments.create_or_update(Environment(name="AzureML-mine", image=IMAGE))
    anonymous = ml.environments.create_or_update(Environment(image=IMAGE, conda_file=CONDA))
    assert anonymous.name == "CliV2AnonymousEnvironment" and len(anonymous.version) == 64


def test_get_list_archive_and_restore(ml):
    ml.environments.create_or_update(_env(name="conda-env"))
    ml.environments.create_or_update(_env(name="conda-env", conda_file={**CONDA, "name": "second"}))
    ml.environments.create_or_update(Environment(name="image-env", image=IMAGE))
    assert ml.environments.get("conda-env", label="latest").version == "2"
    assert ml.environments.get("azureml:conda-env", version="1").version == "1"
    with pytest.raises(ValidationException, match="^Must provide either version or label.$"):
        ml.environments.get("conda-env")
    with pytest.raises(ValidationException, match="^Cannot specify both version and label.$"):
        ml.environments.get("conda-env", version="1", label="latest")
    with pytest.raises(
        ValidationException, match="^Asset conda-env with version label prod does not exist in workspace"
    ):
        ml.environments.get("conda-env", label="prod")
    with pytest.raises(ValidationException, match="^Asset nope does not exist in workspace my-workspace.$"):
        ml.environments.get("nope", label="latest")
    with pytest.raises(ResourceNotFoundError, match="conda-env:9"):
        ml.environments.get("conda-env", version="9")
    listed = ml.environments.list()
    assert [(e.name, e.version, e.latest_version) for e in listed] == [
        ("conda-env", None, "2"),
        ("image-env", None, "1"),
    ]
    assert [e.version for e in ml.environments.list(name="conda-env")] == ["2", "1"]

    ml.environments.archive("conda-env", version="2")
    assert ml.environments.get("conda-env", label="latest").version == "1", "latest skips archived versions"
    assert ml.environments.get("conda-env", version="2").version == "2", "an archived version can still be used"
    assert [e.version for e in ml.environments.list(name="conda-env")] == ["1"]
    assert [e.version for e in ml.environments.list("conda-env", list_view_type=ListViewType.ARCHIVED_ONLY)] == ["2"]
    ml.environments.archive("conda-env")  # the whole environment: every version, and any new one
    assert [e.name for e in ml.environments.list()] == ["image-env"]
    assert ml.environments.create_or_update(Environment(name="conda-env", image="python:3.11")).version == "3"
    with pytest.raises(ValidationException, match="Asset conda-env does not exist"):
        ml.environments.get("conda-env", label="latest")
    ml.environments.restore("conda-env")
    assert [e.version for e in ml.environments.list(name="conda-env")] == ["3", "2", "1"]
    with pytest.raises(ResourceNotFoundError, match="'nope' is not registered"):
        ml.environments.archive("nope")
    with pytest.raises(NotAvailableOffline, match="EnvironmentOperations.share"):
        ml.environments.share("conda-env", "1", share_with_name="x", share_with_version="1", registry_name="mine")


def test_a_docker_build_context_is_kept_by_content_and_a_job_that_needs_it_is_refused(ml, tmp_path):
    context = tmp_path / "docker-contexts" / "python-and-pip"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(
        "FROM python:3.11\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
    )
    (context / "requirements.txt").write_text("numpy\n")
    (context / "notes.log").write_text("not uploaded")
    (context / ".amlignore").write_text("*.log\n")
    env = ml.environments.create_or_update(Environment(name="docker-context", build=BuildContext(path=str(context))))
    kept = Path(env.build.path)
    assert env.version == "1" and env.build.dockerfile_path == "Dockerfile"
    assert (kept / "requirements.txt").read_text() == "numpy\n" and not (kept / "notes.log").exists()
    assert kept.is_relative_to(tmp_path / "ws" / "uploads"), "kept in the workspace, as Azure uploads it"
    again = Environment(name="docker-context", build=BuildContext(path=str(context)))
    assert ml.environments.create_or_update(again).version == "1", "the same files: the same version"
    (context / "requirements.txt").write_text("numpy\npandas\n")
    second = ml.environments.create_or_update(Environment(name="docker-context", build=BuildContext(path=str(context))))
    assert second.version == "2" and (kept / "requirements.txt").read_text() == "numpy\n", "a version never changes"

    ml.compute.begin_create_or_update(AmlCompute(name="cpu-cluster", max_instances=1)).result()
    job = command(command="python -c 1", environment="azureml:docker-context:2", compute="cpu-cluster")
    with pytest.raises(NotAvailableOffline, match="docker-context:2 is built from a Docker build context"):
        ml.jobs.create_or_update(job)
    with pytest.raises(NotAvailableOffline, match="builds no Docker images"):
        ml.jobs.create_or_update(command(command="python -c 1", environment=second, compute="cpu-cluster"))
    assert ml.jobs.list() == [], "nothing was submitted"


# --- curated environments -----------------------------------------------------------------------------------------


def test_curated_environments_are_in_the_azureml_registry_not_in_the_workspace(ml):
    with pytest.raises(ValidationException, match='registry_name="azureml"') as caught:
        ml.environments.get("AzureML-sklearn-1.5", label="latest")
    assert str(caught.value).startswith("Asset AzureML-sklearn-1.5 does not exist in workspace my-workspace.")
    with pytest.raises(ResourceNotFoundError, match="retired"):
        ml.environments.get("AzureML-Minimal", version="1")
    assert ml.environments.list() == [], "a workspace lists its own environments only"

    registry = MLClient(None, registry_name="azureml")
    sklearn = registry.environments.get("sklearn-1.5", label="latest")
    assert sklearn.id == "azureml://registries/azureml/environments/sklearn-1.5/versions/1"
    assert sklearn.image == "mcr.microsoft.com/azureml/curated/sklearn-1.5"
    assert "scikit-learn~=1.5.0" in sklearn.conda_file["dependencies"][-1]["pip"]
    with pytest.warns(LocalWorkspaceWarning, match="one version of each curated environment"):
        assert registry.environments.get("sklearn-1.5", version="17").version == "1"
    names = {e.name for e in registry.environments.list()}
    assert {"sklearn-1.5", "lightgbm-3.3", "minimal-py311-inference"} <= names
    with pytest.raises(ValidationException, match="^Asset no-such does not exist in registry azureml"):
        registry.environments.get("no-such", label="latest")
    with pytest.raises(NotAvailableOffline, match="azureml registry is Microsoft's"):
        registry.environments.create_or_update(Environment(name="mine", image=IMAGE))
    with pytest.raises(NotAvailableOffline, match=r"MLClient\(registry_name='azureml'\).jobs"):
        registry.jobs.list()
    with pytest.raises(NotAvailableOffline, match="registry_name='my-registry'"):
        MLClient(None, registry_name="my-registry")


def test_every_way_a_job_names_an_environment_resolves_to_the_same_one(ml):
    registry_env = MLClient(None, registry_name="azureml").environments.get("sklearn-1.5", label="latest")
    curated_forms = [SKLEARN, "azureml://registries/azureml/environments/sklearn-1.5/versions/17",
                     "azureml:AzureML-sklearn-1.5@latest", "AzureML-sklearn-1.5:1", "AzureML-sklearn-1.5@latest",
                     registry_env]  # fmt: skip
    specs = [job_environment(ml, "Job x", form, {"A": "1"}) for form in curated_forms]
    assert all(spec == specs[0] for spec in specs), specs
    assert specs[0]["name"] == "AzureML-sklearn-1.5" and "scikit-learn~=1.5.0" in specs[0]["pip"]
    assert specs[0]["user_managed"] is False and specs[0]["environment_variables"] == {"A": "1"}

    registered = ml.environments.create_or_update(_env(name="myenv"))
    forms = ["azureml:myenv:1", "myenv:1", "myenv@latest", "azureml:myenv@latest", registered.id, registered]
    specs = [job_environment(ml, "Job x", form, {}) for form in forms]
    assert all(spec == specs[0] for spec in specs), specs
    assert (specs[0]["name"], specs[0]["version"], specs[0]["pip"]) == ("myenv", "1", ["mlflow", "azureml-mlflow"])

    with pytest.raises(ValidationException, match="^Failed to extract version when parsing asset myenv of type"):
        job_environment(ml, "Job x", "myenv", {})
    with pytest.raises(ResourceNotFoundError, match="myenv:4"):
        job_environment(ml, "Job x", "azureml:myenv:4", {})
    with pytest.raises(ResourceNotFoundError, match=r"retired.*AzureML-lightgbm-3\.3 instead.*conda_file"):
        job_environment(ml, "Job x", "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu@latest", {})
    with pytest.raises(NotAvailableOffline, match="registry 'mine'"):
        job_environment(ml, "Job x", "azureml://registries/mine/environments/e/versions/1", {})


def test_a_job_with_a_curated_environment_this_machine_cannot_serve_is_refused_at_submit(ml, monkeypatch):
    ml.compute.begin_create_or_update(AmlCompute(name="cpu-cluster", max_instances=1)).result()
    monkeypatch.setattr(envs, "can_build", lambda: False)  # no uv: no environment can be built
    job = command(command="python -c 1", environment=SKLEARN, compute="cpu-cluster", inputs={"c": 1.0})
    with pytest.raises(NotAvailableOffline, match=r"'AzureML-sklearn-1.5'.*scikit-learn~=1\.5\.0.*aml-offline\[envs\]"):
        ml.jobs.create_or_update(job)
    sweep = job(c=Choice([0.5, 1.0])).sweep(
        compute="cpu-cluster", sampling_algorithm="random", primary_metric="acc", goal="Maximize", max_total_trials=2
    )
    with pytest.raises(NotAvailableOffline, match="'AzureML-sklearn-1.5'"):
        ml.create_or_update(sweep)
    assert ml.jobs.list() == [], "nothing was submitted"


def test_a_job_with_a_curated_environment_runs_with_its_packages_not_this_interpreters(ml, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text(
        'import json, sklearn\nprint("versions", json.dumps({"sklearn": sklearn.__version__}))\n'
    )
    ml.compute.begin_create_or_update(AmlCompute(name="cpu-cluster", max_instances=1)).result()
    job = command(code=str(src), command="python main.py", environment=SKLEARN, compute="cpu-cluster")
    returned = ml.create_or_update(job)
    ml.jobs.stream(returned.name)
    log = capsys.readouterr().out
    line = next(line for line in log.splitlines() if line.startswith("versions "))
    assert json.loads(line.removeprefix("versions "))["sklearn"].startswith("1.5."), log
    assert "this interpreter lacks scikit-learn~=1.5.0" in log
    assert ml.jobs.get(returned.name).status == "Completed"


# --- MLClient's generic calls -----------------------------------------------------------------------------------------


def test_create_or_update_and_begin_create_or_update_dispatch_by_entity_type_as_azure_ai_ml(ml, tmp_path):
    environment = ml.create_or_update(_env())
    assert isinstance(environment, Environment) and environment.version == "1"
    (tmp_path / "model.pkl").write_bytes(b"weights")
    model = ml.create_or_update(Model(name="m", path=str(tmp_path / "model.pkl")))
    assert isinstance(model, Model) and model.version == "1"
    poller = ml.begin_create_or_update(AmlCompute(name="cpu-cluster", max_instances=1))
    assert isinstance(poller, LROPoller) and poller.result().name == "cpu-cluster"
    job = ml.create_or_update(
        command(command="echo ${{inputs.n}}", inputs={"n": 3}, environment="azureml:train-env:1", compute="cpu-cluster")
    )
    assert job.name and ml.jobs.get(job.name).name == job.name
    # what azure-ai-ml refuses, it refuses with its own error
    with pytest.raises(TypeError, match="Please refer to create_or_update docstring for valid input types."):
        ml.create_or_update(Data(name="d", path=str(tmp_path), type="uri_folder"))
    with pytest.raises(TypeError, match="Please refer to begin_create_or_update docstring"):
        ml.begin_create_or_update(_env())
    with pytest.raises(TypeError):  # azure-ai-ml's dispatch passes no keywords for these
        ml.create_or_update(_env(), skip_validation=True)
    component = CommandComponent(name="c", command="echo", environment="azureml:train-env:1")
    assert ml.create_or_update(component).version == "1"  # a Component goes to ml_client.components
    # what the local workspace lacks, it names
    for call, name in [
        (lambda: ml.begin_create_or_update(BatchEndpoint(name="b")), "MLClient.batch_endpoints"),
        (
            lambda: ml.begin_create_or_update(Registry(name="r", location="westeurope", replication_locations=[])),
            "MLClient.registries",
        ),
        (lambda: ml.begin_create_or_update(Workspace(name="w")), "WorkspaceOperations.begin_create"),
    ]:
        with pytest.raises(NotAvailableOffline, match=name):
            call()
    ml.jobs.stream(job.name)


def test_both_sdks_read_the_same_registered_environments(ml):
    ml.environments.create_or_update(_env(name="shared"))
    ws = aml_offline.Workspace.from_config()
    v1 = V1Environment.get(ws, "shared")
    assert v1.version == "1" and "mlflow" in list(v1.python.conda_dependencies.pip_packages)
    mine = V1Environment("from-v1")
    mine.python.conda_dependencies.add_pip_package("numpy")
    mine.register(ws)
    v2 = ml.environments.get("from-v1", version="1")
    pip = [dep for dep in v2.conda_file["dependencies"] if isinstance(dep, dict)][0]["pip"]
    assert "numpy" in pip and not any(p.startswith("-") for p in pip), "SDK v1's pip options lines are no packages"
