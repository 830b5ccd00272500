"""The local workspace hardened: keys that cannot be got around, files that are never torn, local calls that never
leave the machine, and bad input named.  Real servers, real processes and real files throughout.
"""

from __future__ import annotations

import http.server
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request

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
