"""The local workspace hardened: keys that cannot be got around, files that are never torn, local calls that never
leave the machine, and bad input named.  Real servers, real processes and real files throughout.
"""

from __future__ import annotations

import http.server
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from azureml.core import Environment
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice

from aml_offline import Model
from aml_offline.execution import ledger
from aml_offline.store import DamagedFile, LocalStore, StoreError, read_json, write_json
from twin_support import script_dir

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, key: str | None = None, body: bytes = b"{}", auth: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if key is not None or auth is not None:
        headers["Authorization"] = auth if auth is not None else f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with NO_PROXY.open(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture()
def keyed_service(ws, tmp_path):
    """A key-protected web service whose scoring script answers which model it loaded."""
    (tmp_path / "weights.txt").write_text("42")
    model = Model.register(ws, str(tmp_path / "weights.txt"), "answer")
    src = script_dir(
        tmp_path,
        """
        def init():
            pass

        def run(raw):
            return {"scored": True}
        """,
        name="score.py",
    )
    env = Environment("plain")
    env.python.user_managed_dependencies = True
    config = InferenceConfig(entry_script="score.py", source_directory=str(src), environment=env)
    service = Model.deploy(ws, "keyed-svc", [model], config, AciWebservice.deploy_configuration(auth_enabled=True))
    service.wait_for_deployment()
    yield service
    service.delete()


# --- 1, 2, 3: keys, key files, proxies ------------------------------------------------------------------------


def test_every_route_but_the_liveness_probe_needs_the_key_whatever_its_spelling(keyed_service):
    base = keyed_service.scoring_uri.removesuffix("/score")
    key = keyed_service.get_keys()[0]
    for path in ("/score", "//score", "/%2Fscore", "/score/", "/./score", "/swagger.json"):
        status, body = _post(base + path)
        assert status == 401, (path, status, body)
    assert _post(base + "/score", key)[0] == 200
    assert _post(base + "/score", auth=f"bearer {key}")[0] == 200  # the scheme is case-insensitive
    assert _post(base + "/score", auth=f"BEARER  {key}")[0] == 200
    assert _post(base + "/score", auth=f"Basic {key}")[0] == 401
    with NO_PROXY.open(base + "/", timeout=10) as resp:  # the liveness probe: no key
        assert resp.status == 200


def test_keys_that_cannot_be_read_refuse_requests_and_key_files_are_private(keyed_service, ws):
    folder = ws._store.service_dir(keyed_service.name)
    assert stat.S_IMODE((folder / "keys.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(ws._store.root.stat().st_mode) == 0o700
    key = keyed_service.get_keys()[0]
    (folder / "keys.json").write_text('{"keys": ["trunc')  # damaged
    status, body = _post(keyed_service.scoring_uri, key)
    assert status == 503 and "keys cannot be read" in body
    (folder / "keys.json").unlink()  # missing: still refused, never "auth off"
    assert _post(keyed_service.scoring_uri)[0] == 503


class _RecordingProxy(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802
        self.seen.append(f"GET {self.path} {self.headers.get('Authorization')}")
        self.send_error(502)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def test_local_calls_never_go_through_a_proxy(keyed_service, monkeypatch):
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert keyed_service.run("{}") == {"scored": True}
        assert keyed_service._healthy()
    finally:
        proxy.shutdown()
    assert _RecordingProxy.seen == []  # nothing, and no key, reached the proxy


# --- 8: JSON records: damaged is an error, writes are whole --------------------------------------------------


def test_a_damaged_record_is_an_error_naming_it_and_a_missing_one_is_none(tmp_path):
    path = tmp_path / "record.json"
    assert read_json(path, default="none") == "none"
    path.write_text('{"keys": ["a", "b"], "deploy')
    with pytest.raises(DamagedFile, match=str(path)):
        read_json(path)


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    """A real failed write: the process may write at most 4 KiB to any file (RLIMIT_FSIZE), as on a full disk."""
    path = tmp_path / "record.json"
    write_json(path, {"version": 1})
    code = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path[:0] = {sys.path!r}
        from aml_offline.store import write_json
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_json({str(path)!r}, {{"version": 2, "padding": "x" * 100_000}})
        except OSError as exc:
            print("failed", exc.errno)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("failed"), out.stdout + out.stderr
    assert json.loads(path.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resource  # imported for the child's code above


# --- 12: a lock held too long names its holder ---------------------------------------------------------------


def test_waiting_too_long_for_the_write_lock_names_who_holds_it(tmp_path):
    store = LocalStore.get(tmp_path / "ws")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(store.root / "locks" / "write.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        store._lock.timeout = 0.5
        with pytest.raises(StoreError) as caught, store.write_lock():
            pass
        assert f"process {holder.pid}" in str(caught.value) and "do not delete the lock file" in str(caught.value)
    finally:
        store._lock.timeout = 120
        holder.kill()
        holder.wait()


# --- 18: starting a process --------------------------------------------------------------------------------------


def test_a_process_that_must_die_with_its_parent_is_started_without_a_preexec_fn(tmp_path, monkeypatch):
    """CPython documents preexec_fn as unsafe in a process with threads; the child now sets its own signal."""
    store = LocalStore.get(tmp_path / "ws")
    seen = []
    real = subprocess.Popen

    def spy(*args, **kwargs):
        seen.append(kwargs.get("preexec_fn"))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    parent = real([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {sys.path!r}
        from aml_offline.execution import ledger
        from aml_offline.store import LocalStore
        proc = ledger.start(LocalStore.get({str(store.root)!r}), "test:die", "child", ["sleep", "60"])
        print(proc.pid, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    child = int(parent.stdout.readline())
    proc = ledger.start(store, "test:mine", "child", ["sleep", "60"])
    assert seen == [None]
    os.kill(parent.pid, signal.SIGKILL)  # the parent dies by SIGKILL: the kernel ends its child
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail("the child outlived its parent")
    proc.kill()
    proc.wait()


def test_a_process_that_ends_at_once_is_reported_not_hidden(tmp_path):
    store = LocalStore.get(tmp_path / "ws")
    proc = ledger.start(store, "test:quick", "child", [sys.executable, "-c", "import sys; sys.exit(3)"])
    assert proc.wait(timeout=30) == 3


# --- 16: invoke reads request_file, as azure-ai-ml does ----------------------------------------------------


def test_invoke_without_request_file_fails_as_azure_ai_ml_does(ws):
    from aml_offline import MLClient

    client = MLClient.from_config(credential=None)
    with pytest.raises(TypeError, match="expected str, bytes or os.PathLike object, not NoneType"):
        client.online_endpoints.invoke("no-such-endpoint", input_data={"data": [1]})


# --- 15: a web file whose URL has a query string -------------------------------------------------------------


def test_a_web_file_with_a_query_string_is_kept_under_its_name(ws, tmp_path):
    from aml_offline.execution import data as local_data

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "table.csv").write_text("a,b\n1,2\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "site"))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/table.csv?sv=2024&sig=abc%3D"
        folder = local_data.materialize(ws._store, {"paths": [url], "name": "sas"}, say=lambda *_: None)
    finally:
        server.shutdown()
    assert (folder / "table.csv").read_text() == "a,b\n1,2\n"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == ["table.csv"]


# --- 4: paths that come from a user ---------------------------------------------------------------------------


def _submit(ws, src, script="train.py", arguments=()):
    from azureml.core import ScriptRunConfig

    from aml_offline import Experiment

    env = Environment("plain")
    env.python.user_managed_dependencies = True
    config = ScriptRunConfig(source_directory=str(src), script=script, arguments=list(arguments), environment=env)
    return Experiment(ws, "hardening").submit(config)


def test_a_run_cannot_upload_or_download_outside_its_folder(ws, tmp_path):
    src = script_dir(
        tmp_path,
        """
        from azureml.core import Run
        run = Run.get_context()
        open("x.txt", "w").write("x")
        for name in ("../escaped.txt", "/tmp/escaped.txt", "outputs/../../escaped.txt"):
            try:
                run.upload_file(name, "x.txt")
                print("ACCEPTED", name)
            except ValueError as exc:
                print("REFUSED", name, exc)
        run.upload_file("outputs/fine.txt", "x.txt")
        """,
    )
    run = _submit(ws, src)
    run.wait_for_completion()
    log = run._read_log()
    assert run.get_status() == "Completed" and "ACCEPTED" not in log and log.count("REFUSED") == 3
    assert "outputs/fine.txt" in run.get_file_names()
    assert not list(ws._store.root.rglob("escaped.txt"))
    with pytest.raises(Exception, match="has no file"):
        run.download_file("../../workspace.db", str(tmp_path / "stolen"))


def test_a_link_back_to_its_own_folder_is_refused_and_linked_files_count(ws, tmp_path):
    from aml_offline.execution import snapshot

    src = script_dir(tmp_path, "print('hi')\n")
    (src / "loop").symlink_to(src, target_is_directory=True)
    with pytest.raises(Exception, match="a folder it lies in"):
        _submit(ws, src)
    (src / "loop").unlink()
    big = tmp_path / "elsewhere"
    big.mkdir()
    (big / "blob.bin").write_bytes(b"\0" * 1024)
    (src / "data").symlink_to(big, target_is_directory=True)
    files, size = snapshot.check_size(src)
    assert files == 2 and size >= 1024  # the linked folder's file is counted, as it is copied


def test_a_re_pointed_link_is_a_new_upload(ws, tmp_path):
    from azure.ai.ml.entities import Data

    from aml_offline import MLClient

    client = MLClient.from_config(credential=None)
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, text in ((one, "1"), (two, "2")):
        folder.mkdir()
        (folder / "value.txt").write_text(text)
    asset = tmp_path / "asset"
    asset.mkdir()
    (asset / "data").symlink_to(one, target_is_directory=True)
    first = client.data.create_or_update(Data(name="linked", path=str(asset), type="uri_folder"))
    (asset / "data").unlink()
    (asset / "data").symlink_to(two, target_is_directory=True)
    second = client.data.create_or_update(Data(name="linked", path=str(asset), type="uri_folder"))
    assert first.path != second.path
    assert (Path(second.path) / "data" / "value.txt").read_text() == "2"


# --- 5: inputs are not the job's to change --------------------------------------------------------------------


def test_a_job_that_writes_to_its_mounted_input_changes_neither_the_data_nor_the_users_folder(ws, tmp_path):
    from aml_offline import Dataset

    data_dir = tmp_path / "mydata"
    data_dir.mkdir()
    (data_dir / "table.csv").write_text("original")
    dataset = Dataset.File.from_files(str(data_dir)).register(ws, "mine")
    src = script_dir(
        tmp_path,
        """
        import os, sys
        path = os.path.join(sys.argv[1], "table.csv")
        try:
            open(path, "w").write("changed by the job")
            print("WROTE", path)
        except OSError as exc:
            print("READ-ONLY", exc)
        """,
    )
    run = _submit(ws, src, arguments=[dataset.as_named_input("mine").as_mount()])
    run.wait_for_completion()
    assert run.get_status() == "Completed", run._read_log()
    assert (data_dir / "table.csv").read_text() == "original"
    if os.geteuid() != 0:  # root may write to anything: there the job changed only its own copy
        assert "READ-ONLY" in run._read_log()


# --- 7: two processes uploading the same content ----------------------------------------------------------------


def test_concurrent_uploads_of_the_same_content_give_one_whole_copy(ws, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(20):
        (folder / f"part-{i}.bin").write_bytes(os.urandom(256 * 1024))
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = {sys.path!r}
        from azure.ai.ml.entities import Data
        from aml_offline import MLClient
        client = MLClient.from_config(credential=None)
        print(client.data.create_or_update(Data(name=sys.argv[1], path={str(folder)!r}, type="uri_folder")).path)
    """)
    env = dict(os.environ, AZUREML_LOCAL_ROOT=str(ws._store.root))
    procs = [subprocess.Popen([sys.executable, "-c", code, f"up{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for i in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    paths = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(paths) == 1
    copy = Path(paths.pop())
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert all((copy / p.name).read_bytes() == p.read_bytes() for p in folder.iterdir())
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no temporary copy left


# --- 17: names Azure refuses ----------------------------------------------------------------------------------


def test_names_azure_refuses_are_refused_with_azures_words(ws, tmp_path):
    from azureml.core.compute import AmlCompute as AzureAmlCompute
    from azureml.exceptions import ComputeTargetException, UserErrorException, WebserviceException

    from aml_offline import ComputeTarget, Experiment

    (tmp_path / "m.txt").write_text("m")
    with pytest.raises(WebserviceException, match="provided model name is invalid"):
        Model.register(ws, str(tmp_path / "m.txt"), "it's")
    with pytest.raises(UserErrorException, match="Experiment name must be between"):
        Experiment(ws, "../escape")
    config = AzureAmlCompute.provisioning_configuration(vm_size="Standard_DS3_v2", max_nodes=1)
    with pytest.raises(ComputeTargetException, match="Compute name '../x' is invalid"):
        ComputeTarget.create(ws, "../x", config)
    assert not (ws._store.root.parent / "x").exists()


# --- 10: every run ends with its real reason --------------------------------------------------------------------


def test_a_failing_script_that_leaves_a_dangling_link_in_outputs_ends_failed_with_its_own_error(ws, tmp_path):
    src = script_dir(
        tmp_path,
        """
        import os, sys
        os.makedirs("outputs", exist_ok=True)
        os.symlink("/no/such/file", "outputs/dangling")
        open("outputs/kept.txt", "w").write("kept")
        sys.exit("the script's own reason")
        """,
    )
    run = _submit(ws, src)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    assert "the script's own reason" in run.get_details()["error"]["error"]["message"]
    assert "outputs/kept.txt" in run.get_file_names()


# --- 9: environment builds are stopped with their run ------------------------------------------------------------


@pytest.fixture()
def silent_index(monkeypatch, tmp_path):
    """A package index that takes connections and never answers: a build from it hangs until stopped."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        monkeypatch.setenv(name, url)
    for name in ("UV_OFFLINE", "UV_NO_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "300")
    monkeypatch.setenv("WHEELHOUSE", "")
    monkeypatch.setenv("AZUREML_ENV_CACHE", str(tmp_path / "envs"))
    yield url
    sock.close()


def _needs_a_build(ws, tmp_path, name: str):
    from azureml.core import ScriptRunConfig
    from azureml.core.conda_dependencies import CondaDependencies

    from aml_offline import Experiment

    src = script_dir(tmp_path, "print('never')\n")
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["no-such-package-for-aml-offline"])
    return Experiment(ws, "builds").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                           environment=env))  # fmt: skip


def _builders(ws, run) -> list[dict]:
    return ledger.entries(ws._store, ledger.run_owner(run.id), ("build",), open_only=False)


def test_canceling_a_run_while_its_environment_builds_stops_the_build(ws, tmp_path, silent_index):
    run = _needs_a_build(ws, tmp_path, "hangs-then-canceled")
    end = time.time() + 60
    while not _builders(ws, run) and time.time() < end:
        time.sleep(0.2)
    builder = _builders(ws, run)[0]
    assert run.get_status() == "Preparing"
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert not psutil.pid_exists(builder["pid"]) or psutil.Process(builder["pid"]).status() == psutil.STATUS_ZOMBIE


def test_a_build_past_its_time_limit_fails_the_run_saying_so(ws, tmp_path, silent_index, monkeypatch):
    monkeypatch.setenv("AZUREML_ENV_BUILD_TIMEOUT", "3")
    run = _needs_a_build(ws, tmp_path, "hangs-too-long")
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"
    assert "took longer than its limit" in run.get_details()["error"]["error"]["message"]
    assert all(ledger.verified(b) is None for b in _builders(ws, run))


# --- 11: an update whose server cannot start leaves the old one serving ----------------------------------------

SCORE = """
    VERSION = {version!r}

    def init():
        if VERSION == "broken":
            raise RuntimeError("this version cannot start")

    def run(raw):
        return {{"version": VERSION}}
"""


def test_a_deployment_update_switches_only_once_the_new_server_answers(ws, tmp_path):
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint
    from azure.ai.ml.entities import Environment as EnvironmentV2
    from azure.ai.ml.entities import Model as ModelV2
    from azure.core.exceptions import HttpResponseError

    from aml_offline import MLClient

    client = MLClient.from_config(credential=None)
    (tmp_path / "weights.txt").write_text("w")
    model = client.models.create_or_update(ModelV2(name="tiny", path=str(tmp_path / "weights.txt")))
    client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rolling", auth_mode="key")).result()
    request = tmp_path / "request.json"
    request.write_text("{}")
    env = EnvironmentV2(conda_file={"dependencies": ["python=3.11", {"pip": ["azureml-inference-server-http"]}]})

    def deploy(version: str):
        code = tmp_path / f"code-{version}"
        code.mkdir()
        (code / "score.py").write_text(textwrap.dedent(SCORE.format(version=version)))
        deployment = ManagedOnlineDeployment(
            name="blue", endpoint_name="rolling", model=model, environment=env, instance_count=1,
            code_configuration=CodeConfiguration(code=str(code), scoring_script="score.py"),
        )  # fmt: skip
        return client.online_deployments.begin_create_or_update(deployment).result()

    def answer() -> str:
        return json.loads(client.online_endpoints.invoke("rolling", deployment_name="blue",
                                                         request_file=str(request)))["version"]  # fmt: skip

    try:
        deploy("one")
        assert answer() == "one"
        with pytest.raises(HttpResponseError, match="keeps serving as it was") as failed:
            deploy("broken")
        assert "this version cannot start" in str(failed.value)
        assert answer() == "one"  # the old server never stopped
        assert client.online_deployments.get("blue", "rolling").provisioning_state == "Succeeded"
        deploy("two")
        assert answer() == "two"
        assert len([n for n in os.listdir(ws._store.root / "services") if n.startswith("rolling.blue")]) == 1
    finally:
        client.online_endpoints.begin_delete("rolling").result()


# --- 6: endpoint records change under the write lock ----------------------------------------------------------


def test_a_traffic_change_made_while_another_deployment_starts_is_kept(ws, tmp_path):
    """The deploy of 'green' reads the endpoint, copies a large code folder, then records itself; a traffic change
    made in between stays (it used to be written back as it was when the deploy began)."""
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint
    from azure.ai.ml.entities import Environment as EnvironmentV2
    from azure.ai.ml.entities import Model as ModelV2

    from aml_offline import MLClient

    client = MLClient.from_config(credential=None)
    (tmp_path / "weights.txt").write_text("w")
    model = client.models.create_or_update(ModelV2(name="tiny", path=str(tmp_path / "weights.txt")))
    endpoint = ManagedOnlineEndpoint(name="traffic", auth_mode="key")
    client.online_endpoints.begin_create_or_update(endpoint).result()
    env = EnvironmentV2(conda_file={"dependencies": ["python=3.11", {"pip": ["azureml-inference-server-http"]}]})
    small, large = tmp_path / "small", tmp_path / "large"
    for folder in (small, large):
        folder.mkdir()
        (folder / "score.py").write_text(textwrap.dedent(SCORE.format(version=folder.name)))
    for i in range(1500):  # a code folder that takes the deploy a moment to copy
        (large / f"asset-{i}.bin").write_bytes(os.urandom(8 * 1024))

    def deployment(name: str, code: Path) -> ManagedOnlineDeployment:
        return ManagedOnlineDeployment(
            name=name,
            endpoint_name="traffic",
            model=model,
            environment=env,
            code_configuration=CodeConfiguration(code=str(code), scoring_script="score.py"),
        )

    try:
        client.online_deployments.begin_create_or_update(deployment("blue", small)).result()
        errors = []
        green = threading.Thread(target=lambda: _catch(errors, client.online_deployments.begin_create_or_update,
                                                      deployment("green", large)))  # fmt: skip
        green.start()
        copying = ws._store.service_dir("traffic.green") / "app"
        end = time.time() + 60
        while not copying.exists() and time.time() < end:
            time.sleep(0.01)
        endpoint.traffic = {"blue": 100}
        client.online_endpoints.begin_create_or_update(endpoint).result()
        green.join(timeout=120)
        assert errors == []
        got = client.online_endpoints.get("traffic")
        assert got.traffic == {"blue": 100}
        assert sorted(d.name for d in client.online_deployments.list("traffic")) == ["blue", "green"]
    finally:
        client.online_endpoints.begin_delete("traffic").result()


def _catch(errors: list, function, *args) -> None:
    try:
        function(*args).result()
    except Exception as exc:  # noqa: BLE001  (the test reports it)
        errors.append(exc)
