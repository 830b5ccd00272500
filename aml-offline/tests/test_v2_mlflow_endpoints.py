"""SDK v2 online endpoints beyond a scoring script: MLflow models deployed without code, and ``local=True``.

An MLflow model (the folder ``mlflow.sklearn.save_model`` writes) registered with ``type="mlflow_model"`` deploys
without ``code_configuration`` or environment, as on Azure, and answers Azure's request format for MLflow
deployments; azure-ai-ml's Docker-based ``local=True`` endpoints are served without Docker, with its return types
and errors.  Every test has a workspace of its own, and every server it starts is stopped when it ends.
"""

from __future__ import annotations

import json
import logging
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from azure.ai.ml import command
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    AmlCompute,
    CodeConfiguration,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
)
from azure.ai.ml.exceptions import (
    LocalEndpointNotFoundError,
    MultipleLocalDeploymentsFoundError,
    RequiredLocalArtifactsNotFoundError,
    ValidationException,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.polling import LROPoller

from aml_offline.execution import ledger

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROWS = [
    [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01],
    [-0.01, -0.04, -0.05, -0.03, 0.0, 0.0, 0.07, -0.04, -0.07, -0.09],
]


@pytest.fixture()
def ml(tmp_path, monkeypatch):
    """The local workspace's MLClient on a fresh workspace in this test's folder."""
    import aml_offline
    from aml_offline.facade_v2 import MLClient

    monkeypatch.setenv("AZUREML_LOCAL_ROOT", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    client = MLClient.from_config(credential=None)
    yield client
    for local in (False, True):  # no server outlives its test
        for endpoint in client.online_endpoints.list(local=local):
            client.online_endpoints.begin_delete(endpoint.name, local=local)
    aml_offline.stop_everything(tmp_path / "ws")


def _sklearn_model(folder: Path) -> list[float]:
    """An MLflow model of a ridge regression on scikit-learn's diabetes data, with a signature naming its columns,
    saved as mlflow.sklearn.save_model writes it; returns its predictions for ROWS."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(x, y)
    # the requirements given, as MLflow would infer them (inferring them runs a subprocess: seconds)
    mlflow.sklearn.save_model(model, folder, signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["mlflow", "scikit-learn", "pandas"])  # fmt: skip
    return model.predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()


def _request(tmp_path: Path, name: str, body) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(body))
    return str(path)


def _servers(ml, service: str) -> list[int]:
    return [e["pid"] for e in ledger.entries(ml._store, ledger.service_owner(service), open_only=False)
            if ledger.verified(e)]  # fmt: skip


def _gone(pids: list[int], timeout: float = 10) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.2)
    return False


TRAIN = """
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    with mlflow.start_run():  # the job's run (MLFLOW_RUN_ID), as Azure's sample scripts start it
        model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["mlflow", "scikit-learn"])
"""


def test_an_mlflow_model_deploys_without_code_and_answers_azures_mlflow_request_format(ml, tmp_path):
    # a job logs an MLflow model meanwhile (MLflow 3 keeps it apart from the run's files, as models:/<id>)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(textwrap.dedent(TRAIN))
    ml.compute.begin_create_or_update(AmlCompute(name="cpu", size="Standard_DS3_v2", max_instances=1)).result()
    env = Environment(conda_file={"dependencies": ["python=3.11", {"pip": ["mlflow", "scikit-learn"]}]})
    job = ml.jobs.create_or_update(command(code="src", command="python train.py", environment=env, compute="cpu"))

    expected = _sklearn_model(tmp_path / "diabetes-model")
    model = ml.models.create_or_update(
        Model(name="diabetes", path=str(tmp_path / "diabetes-model"), type=AssetTypes.MLFLOW_MODEL)
    )
    assert (model.name, model.version, model.type) == ("diabetes", "1", "mlflow_model")
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="diabetes-ep", auth_mode="key")).result()
    blue = ManagedOnlineDeployment(name="blue", endpoint_name="diabetes-ep", model=model,
                                   instance_type="Standard_F4s_v2", instance_count=1)  # fmt: skip
    assert blue.code_configuration is None and blue.environment is None
    assert ml.online_deployments.begin_create_or_update(blue).result().provisioning_state == "Succeeded"

    def invoke(body) -> list:
        request = _request(tmp_path, "request", body)
        return json.loads(ml.online_endpoints.invoke(endpoint_name="diabetes-ep", deployment_name="blue",
                                                     request_file=request))  # fmt: skip

    # Azure's format for MLflow deployments: a DataFrame in pandas' split orient, under "input_data"
    split = invoke({"input_data": {"columns": COLUMNS, "index": [0, 1], "data": ROWS}})
    assert split == pytest.approx(expected), "a JSON list of predictions, MLflow's own"
    assert invoke({"input_data": ROWS}) == pytest.approx(expected), "rows alone: the signature names the columns"
    assert invoke({"input_data": {"columns": COLUMNS, "data": ROWS[:1]}}) == pytest.approx(expected[:1])
    with pytest.raises(HttpResponseError, match="A value is not provided for the 'input_data' parameter"):
        invoke({"dataframe_split": {"columns": COLUMNS, "data": ROWS}})  # MLflow's serving format is not Azure's
    with pytest.raises(HttpResponseError, match="unexpected error occurred in scoring script"):
        invoke({"input_data": {"columns": ["age"], "index": [0], "data": [[0.1]]}})
    logs = ml.online_deployments.get_logs("blue", "diabetes-ep", lines=200)
    assert "loaded the MLflow model" in logs and "mlflow.pyfunc.load_model" in logs
    assert "Model is missing inputs" in logs, "the reason for a refused request is in the log, as on Azure"
    # the same key check as every deployment of the workspace
    uri, key = ml.online_endpoints.get("diabetes-ep").scoring_uri, ml.online_endpoints.get_keys("diabetes-ep")
    assert uri is None, "no traffic yet: the endpoint routes nowhere"
    pids = _servers(ml, "diabetes-ep.blue")
    assert pids and key.primary_key
    ml.online_endpoints.begin_delete(name="diabetes-ep").result()
    assert _gone(pids), "deleting the endpoint stops its server"

    # the job's model: its outputs/artifacts/paths/model names it, as on Azure; deployed locally, without code
    ml.jobs.stream(job.name)
    line = ml.models.create_or_update(
        Model(name="line", path=f"azureml://jobs/{job.name}/outputs/artifacts/paths/model/", type="mlflow_model")
    )
    image = Environment(image="mcr.microsoft.com/azureml/mlflow-ubuntu20.04-py38-cpu-inference")
    local = ManagedOnlineDeployment(name="blue", endpoint_name="line-ep", model=f"azureml:line:{line.version}",
                                    environment=image)  # fmt: skip
    assert ml.online_deployments.begin_create_or_update(local, local=True).provisioning_state == "Succeeded"
    request = _request(tmp_path, "line", {"input_data": [[3.0], [4.0]]})
    answer = ml.online_endpoints.invoke(endpoint_name="line-ep", request_file=request, local=True)
    assert json.loads(answer) == pytest.approx([7.0, 9.0])


def test_deployments_without_code_need_an_mlflow_model_and_its_mlmodel_file(ml, tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.pkl").write_bytes(b"not an MLflow model")
    with pytest.raises(ValidationException, match=r"Model 'plain' is an MLflow model .* has no MLmodel file"):
        ml.models.create_or_update(Model(name="plain", path=str(tmp_path / "weights"), type="mlflow_model"))
    (tmp_path / "outer" / "model").mkdir(parents=True)
    (tmp_path / "outer" / "model" / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ValidationException, match="it has one in 'model/': register that folder"):
        ml.models.create_or_update(Model(name="outer", path=str(tmp_path / "outer"), type="mlflow_model"))
    custom = ml.models.create_or_update(Model(name="plain", path=str(tmp_path / "weights")))
    assert custom.type == "custom_model"
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="plain-ep")).result()
    no_code = ManagedOnlineDeployment(name="blue", endpoint_name="plain-ep", model=custom, instance_count=1)
    with pytest.raises(ValidationException, match=r"plain:1 is a custom_model model, and only an MLflow model"):
        ml.online_deployments.begin_create_or_update(no_code)
    assert ml.online_deployments.list("plain-ep") == [], "nothing was started"


SCORE = """
    import json
    import os


    def init():
        global scale
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "scale.txt")) as f:
            scale = float(f.read())
        print("init(): scale", scale)


    def run(raw_data):
        return [scale * sum(row) for row in json.loads(raw_data)["data"]]
"""


def test_local_true_endpoints_are_served_without_docker_as_azure_ai_ml_serves_them(ml, tmp_path):
    (tmp_path / "onlinescoring").mkdir()
    (tmp_path / "onlinescoring" / "score.py").write_text(textwrap.dedent(SCORE))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "scale.txt").write_text("2.0")
    (tmp_path / "conda.yaml").write_text("dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - numpy\n")
    endpoint = ManagedOnlineEndpoint(name="local-ep", auth_mode="key")
    said = []
    progress = logging.getLogger("azure.ai.ml._utils._endpoint_utils")  # where azure-ai-ml's local ops report
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    progress.addHandler(handler)
    try:
        created = ml.online_endpoints.begin_create_or_update(endpoint, local=True)
    finally:
        progress.removeHandler(handler)
    assert isinstance(created, ManagedOnlineEndpoint) and not isinstance(created, LROPoller)
    assert said[0] == "Creating local endpoint (local-ep) " and said[1] == "Done ", said
    blue = ManagedOnlineDeployment(
        name="blue", endpoint_name="local-ep", model=Model(path="model/scale.txt"),
        code_configuration=CodeConfiguration(code="onlinescoring", scoring_script="score.py"),
        environment=Environment(conda_file="conda.yaml"),
        instance_type="Standard_DS3_v2", instance_count=1,
    )  # fmt: skip
    with pytest.raises(RequiredLocalArtifactsNotFoundError, match="environment.image or environment.build.path"):
        ml.online_deployments.begin_create_or_update(blue, local=True)  # azure-ai-ml's local check: Docker's image
    blue.environment = Environment(conda_file="conda.yaml", image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04")
    deployed = ml.online_deployments.begin_create_or_update(deployment=blue, local=True)
    assert (type(deployed), deployed.provisioning_state) == (ManagedOnlineDeployment, "Succeeded")
    shown = ml.online_endpoints.get(name="local-ep", local=True)
    assert shown.provisioning_state == "Succeeded" and shown.scoring_uri.startswith("http://127.0.0.1:")
    request = _request(tmp_path, "sample-request", {"data": [[1, 2, 3], [4, 5, 6]]})
    answer = ml.online_endpoints.invoke(endpoint_name="local-ep", request_file=request, local=True)
    assert json.loads(answer) == [12.0, 30.0], "no key: local endpoints have none"
    post = urllib.request.Request(
        shown.scoring_uri, data=b'{"data": [[1]]}', headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=30) as answer:  # noqa: S310  (127.0.0.1: local endpoints have no keys)
        assert json.loads(answer.read()) == [2.0]
    assert "init(): scale 2.0" in ml.online_deployments.get_logs(name="blue", endpoint_name="local-ep", lines=50,
                                                                 local=True)  # fmt: skip
    # local endpoints are Docker's on Azure, apart from the workspace's
    assert [e.name for e in ml.online_endpoints.list(local=True)] == ["local-ep"]
    assert ml.online_endpoints.list() == []
    with pytest.raises(ResourceNotFoundError):
        ml.online_endpoints.get("local-ep")
    # a second local deployment: invoke must name one, as azure-ai-ml says
    green = ManagedOnlineDeployment(
        name="green",
        endpoint_name="local-ep",
        model=Model(path="model/scale.txt"),
        code_configuration=blue.code_configuration,
        environment=blue.environment,
    )
    ml.online_deployments.begin_create_or_update(green, local=True)
    with pytest.raises(MultipleLocalDeploymentsFoundError):
        ml.online_endpoints.invoke(endpoint_name="local-ep", request_file=request, local=True)
    assert "12.0" in ml.online_endpoints.invoke(endpoint_name="local-ep", request_file=request,
                                                deployment_name="green", local=True)  # fmt: skip
    assert ml.online_deployments.begin_delete(name="green", endpoint_name="local-ep", local=True) is None
    pids = _servers(ml, "local.local-ep.blue")
    assert pids, "a local deployment's server is in the ledger too"
    assert ml.online_endpoints.begin_delete(name="local-ep", local=True) is None, "azure-ai-ml returns None"
    assert _gone(pids)
    with pytest.raises(LocalEndpointNotFoundError, match=r"Local endpoint \(local-ep\) does not exist"):
        ml.online_endpoints.get(name="local-ep", local=True)
