"""A local web service's server process: ``python azureml_local_serving.py SERVICE_DIR``.

It runs the scoring script through Azure ML's own inference server
(``azureml-inference-server-http``: its Flask app, served by gunicorn as the
``azmlinfsrv`` command does), so ``init()`` / ``run()`` see exactly what they see
on Azure.  In front of ``/score`` it checks the service key when authentication
is on (``Authorization: Bearer <key>``, 401 otherwise), as Azure's front end does.

The socket is bound here, on 127.0.0.1 and the requested port (or one the
system picks), before the server starts, and the port is written to
``endpoint.json``: no race for a free port, and a busy port is a clear error.

Standard library and gunicorn only, started by file path: it may run in a
service's own built environment (:mod:`aml_offline.execution.envs`), which has the
inference server but not this project.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
from pathlib import Path


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def write_json(path: Path, value) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


SCORE_PATHS = ("/score",)


class KeyCheck:
    """WSGI middleware: ``/score`` needs one of the service's keys (re-read when ``keys.json`` changes)."""

    def __init__(self, app, keys_file: Path):
        self.app = app
        self.keys_file = keys_file
        self._stamp = None
        self._keys: list[str] = []

    def keys(self) -> list[str]:
        try:
            stamp = self.keys_file.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if stamp != self._stamp:
            self._keys = [k for k in (read_json(self.keys_file) or {}).get("keys", []) if k]
            self._stamp = stamp
        return self._keys

    def __call__(self, environ, start_response):
        keys = self.keys()
        if keys and environ.get("PATH_INFO", "").rstrip("/") in SCORE_PATHS:
            given = environ.get("HTTP_AUTHORIZATION", "")
            token = given[7:] if given.startswith("Bearer ") else ""
            if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
                body = json.dumps(
                    {
                        "message": "Missing or wrong key: send the header 'Authorization: Bearer <key>' with a key "
                        "from service.get_keys() (SDK v1) or ml_client.online_endpoints.get_keys(name) (SDK v2)."
                    }  # fmt: skip
                ).encode()
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                     ("WWW-Authenticate", "Bearer")],
                )  # fmt: skip
                return [body]
        return self.app(environ, start_response)


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"Port {port} on 127.0.0.1 is busy ({exc.strerror}): choose another port or none.") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def die_with_master(server, worker) -> None:
    """gunicorn's post_fork hook: the kernel kills a worker when its master dies (Linux), so a killed
    master never leaves a worker serving on the port."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != server.pid:  # the master died before the call: go now
            os._exit(1)


def main(argv: list[str]) -> int:
    import gunicorn.app.base

    folder = Path(argv[0]).resolve()
    spec = read_json(folder / "service.json")
    sock = bind(int(spec.get("port") or 0))
    write_json(folder / "endpoint.json", {"port": sock.getsockname()[1], "pid": os.getpid()})
    os.environ.update(spec["environment_variables"])
    os.environ.update(
        AZUREML_MODEL_DIR=spec["model_dir"],
        AZUREML_ENTRY_SCRIPT=spec["entry_script"],
        AML_APP_ROOT=spec["app_root"],
        AZUREML_SOURCE_DIRECTORY=spec["app_root"],
    )
    os.chdir(spec["app_root"])
    sys.path.insert(0, spec["app_root"])

    class Server(gunicorn.app.base.BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [f"fd://{sock.fileno()}"])
            self.cfg.set("workers", int(spec.get("workers", 1)))
            self.cfg.set("timeout", 300)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", f"azureml-local-service-{spec['name']}")
            self.cfg.set("post_fork", die_with_master)

        def load(self):
            from azureml_inference_server_http.server.entry import app  # runs init() in this worker

            return KeyCheck(app, folder / "keys.json")

    print(f"Serving {spec['entry_script']} with azureml-inference-server-http on 127.0.0.1:{sock.getsockname()[1]}")
    sys.stdout.flush()
    Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
