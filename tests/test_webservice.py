"""The local web service: Azure ML's inference server on 127.0.0.1 running scripts/score.py for real."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
from aml_offline import Model, Workspace
from aml_offline.facade.models import stop_all
from azureml.core import Environment
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice
from azureml.exceptions import WebserviceException
from support import PROJECT, script_dir

from helpers import data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, worker_id):
    """A model trained for two epochs on the offline sample by the real training script.

    Trained once per test session: the first xdist worker to need it trains it (under a file lock, in the
    folder all workers share), the other loads the same model."""
    from filelock import FileLock

    # Under xdist the workers' folders share a parent of this session's own; without it, the session's folder
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared
    out = shared / "webservice-trained"
    folder = data.fetch_mnist(progressbar=False).folder
    with FileLock(str(shared / "webservice-trained.lock")):
        if not (out / "model" / "metadata.json").is_file():
            subprocess.run(
                [sys.executable, str(PROJECT / "scripts" / "keras_mnist.py"), "--data-folder", str(folder),
                 "--epochs", "2", "--seed", "1", "--output-dir", str(out)],
                check=True, capture_output=True,
            )  # fmt: skip
    return out / "model", data.load_mnist(folder)


@pytest.fixture(scope="module")
def module_ws(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AZUREML_LOCAL_ROOT", str(tmp_path_factory.mktemp("ws")))
        ws = Workspace.from_config()
        yield ws
        stop_all(ws._store)


def _inference_config(source: Path = PROJECT / "scripts", entry: str = "score.py") -> InferenceConfig:
    env = Environment.from_conda_specification("keras-mnist-score", str(PROJECT / "scripts" / "score-env.yml"))
    return InferenceConfig(entry_script=entry, source_directory=str(source), environment=env)


@pytest.fixture(scope="module")
def model(module_ws, trained):
    return Model.register(module_ws, model_path=str(trained[0]), model_name="keras-mnist")


@pytest.fixture(scope="module")
def service(module_ws, model):
    svc = Model.deploy(
        module_ws,
        "keras-mnist-svc",
        [model],
        _inference_config(),
        AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True),
    )
    svc.wait_for_deployment()
    yield svc
    svc.delete()


def _post(uri: str, body: bytes | str, key: str | None = None, method: str = "POST") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data_ = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(uri, data=data_ if method == "POST" else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _digits(mnist, n: int, start: int = 0) -> tuple[list, np.ndarray]:
    x = mnist.x_test[start : start + n].reshape(n, 784).astype("float32") / 255.0
    return x.tolist(), mnist.y_test[start : start + n]


# --- good requests ------------------------------------------------------------------------------------


def test_service_scores_digits_like_the_model_it_serves(service, trained):
    mnist = trained[1]
    rows, labels = _digits(mnist, 300)
    answer = service.run(json.dumps({"data": rows}))
    predicted = np.array(answer["predictions"])
    assert predicted.shape == (300,) and np.mean(predicted == labels) > 0.8
    one = service.run(json.dumps({"data": rows[:1], "probabilities": True}))
    assert one["predictions"] == answer["predictions"][:1], "a digit alone scores as in a batch"
    assert len(one["probabilities"][0]) == 10 and sum(one["probabilities"][0]) == pytest.approx(1, abs=1e-3)
    status, raw = _post(service.scoring_uri, json.dumps({"data": rows[:30]}), service.get_keys()[0])
    assert status == 200 and raw["predictions"] == answer["predictions"][:30]
    assert service.state == "Healthy" and service.compute_type == "ACI"
    assert "Loaded" in service.get_logs() or "model.keras" in service.get_logs()


# --- bad requests -------------------------------------------------------------------------------------

ROW = [0.0] * 784
BAD_REQUESTS = [
    ("not json", b"{data: nope", 400, "not valid JSON"),
    ("no data", json.dumps({"images": [ROW]}), 400, '"data"'),
    ("empty data", json.dumps({"data": []}), 400, "non-empty list"),
    ("short row", json.dumps({"data": [ROW, [0.0] * 783]}), 400, "Image 1 has 783 values"),
    ("row not a list", json.dumps({"data": [5]}), 400, "Image 0 has a int"),
    ("string pixel", json.dumps({"data": [["0.5"] * 784]}), 400, "must be numbers"),
    ("bool pixel", json.dumps({"data": [[True] * 784]}), 400, "must be numbers"),
    ("NaN pixel", '{"data": [[NaN' + ", 0" * 783 + "]]}", 400, "finite"),
    ("0-255 pixels", json.dumps({"data": [[255] * 784]}), 400, "divide 0-255 pixels by 255"),
    ("too many rows", json.dumps({"data": [ROW] * 1001}), 413, "at most 1000"),
    ("probabilities not bool", json.dumps({"data": [ROW], "probabilities": "yes"}), 400, "true or false"),
    ("not utf-8", b"\xff\xfe\x00", 400, ""),
    ("400-digit integer pixel", '{"data": [[' + "9" * 400 + ", 0" * 783 + "]]}", 400, "too large"),
    ("5,000-digit integer pixel", '{"data": [[' + "9" * 5000 + ", 0" * 783 + "]]}", 400, "cannot read"),
    ("arrays nested 100,000 deep", '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", 400, "nested too deeply"),
]


@pytest.mark.parametrize("body,status,message", [r[1:] for r in BAD_REQUESTS], ids=[r[0] for r in BAD_REQUESTS])
def test_bad_input_gets_a_4xx_that_says_what_to_fix(service, body, status, message):
    got, answer = _post(service.scoring_uri, body, service.get_keys()[0])
    assert got == status
    text = answer.get("error") or answer.get("message", "")
    assert message in text and "Traceback" not in text
    assert _post(service.scoring_uri, json.dumps({"data": [ROW]}), service.get_keys()[0])[0] == 200, "still serving"


def test_service_run_raises_with_the_services_own_message(service):
    with pytest.raises(WebserviceException, match="784 pixel values"):
        service.run(json.dumps({"data": [[0.5, 0.5]]}))


# --- keys ----------------------------------------------------------------------------------------------


def test_keys_are_enforced_and_can_be_regenerated(service):
    body = json.dumps({"data": [ROW]})
    primary, secondary = service.get_keys()
    assert _post(service.scoring_uri, body)[0] == 401
    assert _post(service.scoring_uri, body, "wrong-key")[0] == 401
    assert _post(service.scoring_uri, body, secondary)[0] == 200
    service.regen_key("Primary")
    new_primary, same_secondary = service.get_keys()
    assert new_primary != primary and same_secondary == secondary
    assert _post(service.scoring_uri, body, primary)[0] == 401
    assert _post(service.scoring_uri, body, new_primary)[0] == 200
    assert service.run(body)["predictions"], "service.run sends the current key"


# --- load -----------------------------------------------------------------------------------------------


def test_eight_concurrent_clients_get_every_answer(service, trained):
    rows, _ = _digits(trained[1], 10)
    body = json.dumps({"data": rows})
    key = service.get_keys()[0]
    results: list[int] = []
    lock = threading.Lock()

    def client():
        for _ in range(15):
            status, answer = _post(service.scoring_uri, body, key)
            with lock:
                results.append(status if len(answer.get("predictions", [])) == 10 else -1)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == [200] * 120


# --- lifecycle ------------------------------------------------------------------------------------------


def _port_open(uri: str) -> bool:
    port = int(uri.split(":")[2].split("/")[0])
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_redeploy_replaces_the_service_and_delete_leaves_nothing_running(module_ws, model):
    config = _inference_config()
    first = Model.deploy(module_ws, "replace-me", [model], config)
    first.wait_for_deployment()
    first_pid, first_uri = first._pid, first.scoring_uri
    with pytest.raises(WebserviceException, match="overwrite=True"):
        Model.deploy(module_ws, "replace-me", [model], config)
    second = Model.deploy(module_ws, "replace-me", [model], config, overwrite=True)
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    second.wait_for_deployment()
    assert second.run(json.dumps({"data": [ROW]}))["predictions"]
    assert "replace-me" in module_ws.webservices and second.compute_type == "Local"
    pid, uri = second._pid, second.scoring_uri
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    assert len(family) >= 2, "gunicorn and its worker"
    second.delete()
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive and not _port_open(uri) and not _port_open(first_uri)
    assert "replace-me" not in module_ws.webservices


def test_a_failing_init_fails_the_deployment_with_its_error(module_ws, model, tmp_path):
    src = script_dir(tmp_path, "def init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    return 1\n")
    config = InferenceConfig(entry_script="train.py", source_directory=str(src))
    svc = Model.deploy(module_ws, "broken-init", [model], config)
    with pytest.raises(WebserviceException, match="no model here"):
        svc.wait_for_deployment(timeout_sec=120)
    assert svc.state == "Failed"
    pid = svc._pid
    svc.delete()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_deploy_refuses_bad_names_and_missing_packages(module_ws, model):
    with pytest.raises(WebserviceException, match="not valid"):
        Model.deploy(module_ws, "Bad_Name", [model], _inference_config())
    env = Environment("needs-more")
    env.python.conda_dependencies.add_pip_package("surely-not-installed-package==1.0")
    config = InferenceConfig(entry_script="score.py", source_directory=str(PROJECT / "scripts"), environment=env)
    with pytest.raises(WebserviceException, match="surely-not-installed-package"):
        Model.deploy(module_ws, "needs-more", [model], config)
    assert "needs-more" not in module_ws.webservices


def test_scoring_script_runs_without_a_server(trained):
    done = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "score.py"), "--model-dir", str(trained[0])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "'predictions': [" in done.stdout


def test_a_service_whose_packages_this_interpreter_lacks_runs_in_a_built_environment(module_ws, model, tmp_path):
    """numpy<2 cannot be satisfied here (NumPy 2): the service gets its own environment, built once."""
    src = script_dir(
        tmp_path,
        "import numpy\n\ndef init():\n    pass\n\ndef run(raw):\n    return {'numpy': numpy.__version__}\n",
        name="score.py",
    )
    env = Environment("old-numpy")
    env.python.conda_dependencies.add_pip_package("azureml-defaults")
    env.python.conda_dependencies.add_pip_package("numpy<2")
    config = InferenceConfig(entry_script="score.py", source_directory=str(src), environment=env)
    svc = Model.deploy(module_ws, "old-numpy", [model], config)
    try:
        svc.wait_for_deployment(timeout_sec=300)
        assert svc.run("{}")["numpy"].startswith("1.")
    finally:
        svc.delete()
