"""The web service launcher: a service's folder laid out as Azure lays it out, and its server process.

A service's folder ``services/<name>/`` holds ``app/`` (``AML_APP_ROOT``: a
snapshot of the source folder, and the models under
``app/azureml-models/<name>/<version>/``, where azureml-core's
``Model.get_model_path`` looks inside a scoring script), ``service.json`` (what the
server needs), ``keys.json``, ``endpoint.json`` (the port, once bound) and
``service.log``.  The server (``runtime/azureml_local_serving.py``) runs Azure
ML's own inference server; it is started in a session of its own and recorded
in the ledger, and everything about stopping it goes through the ledger.

An MLflow model deployed without code (Azure's no-code deployment) is served the
same way, by the scoring script Azure would generate for it, here
``runtime/azureml_mlflow_score.py``: it loads the model with MLflow's own
``mlflow.pyfunc.load_model``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from aml_offline.execution import ledger, snapshot
from aml_offline.store import LocalStore, read_json, write_json

SERVER = Path(__file__).resolve().parent / "runtime" / "azureml_local_serving.py"
#: The scoring script of an MLflow model deployed without code (Azure generates one; this is the local one)
MLFLOW_SCORING_SCRIPT = Path(__file__).resolve().parent / "runtime" / "azureml_mlflow_score.py"


#: Calls to a local server never go through a proxy: with HTTP_PROXY set and no NO_PROXY, urllib would send
#: them (and the bearer key) to the proxy, and a deploy's health checks would wait for it in vain
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def loopback_open(request: str | urllib.request.Request, timeout: float):
    """``urlopen`` for the local servers on 127.0.0.1, past any proxy the environment names."""
    return _LOOPBACK.open(request, timeout=timeout)


class ServingError(RuntimeError):
    """The service cannot be laid out or started; the message names the file or port."""


def lay_out(store: LocalStore, name: str, source: Path | None, entry_script: str, models: list[dict]) -> dict:
    """Copy the source and the models into a fresh service folder; returns the paths the server needs.

    ``models`` are model records (``name``, ``version``, ``source``).  Without a source folder (an MLflow model
    deployed without code), ``entry_script`` is the path of a generated scoring script, copied in alone.
    """
    folder = store.service_dir(name)
    shutil.rmtree(folder, ignore_errors=True)
    app_root = folder / "app"
    if source is None:
        app_root.mkdir(parents=True)
        shutil.copyfile(entry_script, app_root / Path(entry_script).name)
        entry_script = Path(entry_script).name
        source = app_root
    else:
        try:
            snapshot.check_size(source, skip=[store.root])
        except snapshot.SnapshotError as exc:
            raise ServingError(str(exc)) from None
        snapshot.copy_snapshot(source, app_root, skip=[store.root])
    entry = (app_root / entry_script).resolve()
    if not entry.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        raise ServingError(f"Entry script {entry_script!r} not found in {source}.")
    model_root = app_root / "azureml-models"
    for model in models:
        target = model_root / model["name"] / str(model["version"])
        target.mkdir(parents=True, exist_ok=True)
        src = Path(model["source"])
        if not src.exists():
            shutil.rmtree(folder, ignore_errors=True)
            raise ServingError(f"The files of model {model['name']}:{model['version']} are missing ({src}).")
        if src.is_dir():
            shutil.copytree(src, target / src.name, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, target / src.name)
    single = len(models) == 1
    model_dir = model_root / models[0]["name"] / str(models[0]["version"]) if single else model_root
    return {"folder": str(folder), "app_root": str(app_root), "entry_script": str(entry), "model_dir": str(model_dir)}


def write_spec(folder: Path, spec: dict, keys: list[str]) -> None:
    """The server's spec, and its keys (``keys.json``, readable by its owner only).  Whether authentication is on
    is recorded in the spec (``auth``): a server whose keys then cannot be read refuses requests."""
    write_keys(folder, keys)
    write_json(folder / "service.json", {**spec, "auth": bool(keys)})


def write_keys(folder: Path, keys: list[str]) -> None:
    write_json(folder / "keys.json", {"keys": keys})


def note(store: LocalStore, name: str, lines: list[str]) -> None:
    """Add lines to the service's log (``service.get_logs()``), before the server's own output."""
    if lines:
        with open(store.service_dir(name) / "service.log", "a") as log:
            log.write("".join(f"{line}\n" for line in lines))


def start(store: LocalStore, name: str, python: str) -> int:
    """Start the service's server in its own session (it outlives the kernel, as a service does)."""
    folder = store.service_dir(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_LOCAL_RUN")}
    with open(folder / "service.log", "ab") as log:
        proc = ledger.start(
            store, ledger.service_owner(name), "server", [python, str(SERVER), str(folder)], die_with_parent=False,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=dict(env, PYTHONUNBUFFERED="1"),
            cwd=str(folder),
        )  # fmt: skip
    return proc.pid


def server_alive(store: LocalStore, name: str) -> bool:
    return ledger.alive(store, ledger.service_owner(name), ("server",))


def stop(store: LocalStore, name: str, grace: float = 10) -> int:
    """Stop the server, its workers and anything they started; returns how many processes were signalled."""
    return ledger.stop(store, ledger.service_owner(name), grace=grace)


def port_of(store: LocalStore, name: str) -> int | None:
    return (read_json(store.service_dir(name) / "endpoint.json") or {}).get("port")


def remove_folder(store: LocalStore, name: str) -> None:
    shutil.rmtree(store.service_dir(name), ignore_errors=True)
