"""A local web service's server process: ``python azureml_local_serving.py SERVICE_DIR``.

It runs the scoring script through Azure ML's own inference server
(``azureml-inference-server-http``: its Flask app, served by gunicorn as the
``azmlinfsrv`` command does), so ``init()`` / ``run()`` see exactly what they see
on Azure.  In front of ``/score`` it checks the service key when authentication
is on (``Authorization: Bearer <key>``, 401 otherwise) on every route but the
liveness probe, as Azure's front end does; whether it is on is recorded in
``service.json`` (``auth``), so keys that cannot be read refuse requests.

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


#: The one route a caller reaches without a key: the liveness probe (GET / answers "Healthy"), as on Azure
LIVENESS = "/"


def _answer(start_response, status: str, message: str, extra=()) -> list[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra])
    return [body]


class KeyCheck:
    """WSGI middleware: with authentication on, every request but the liveness probe needs one of the service's
    keys (``Authorization: Bearer <key>``, the scheme in any case), whatever spelling its path has (``//score``,
    ``/%2Fscore``: the inference server routes them to the scoring script).  The keys are re-read when
    ``keys.json`` changes; keys that cannot be read refuse every request (503) rather than let them through."""

    def __init__(self, app, keys_file: Path, required: bool):
        self.app = app
        self.keys_file = keys_file
        self.required = required
        self._stamp = None
        self._keys: list[str] | None = None

    def keys(self) -> list[str] | None:
        """The keys, or None when they cannot be read."""
        try:
            stamp = self.keys_file.stat().st_mtime_ns
            if stamp != self._stamp:
                value = json.loads(self.keys_file.read_text())
                keys = [k for k in value.get("keys", []) if isinstance(k, str) and k]
                self._keys, self._stamp = keys or None, stamp
        except (OSError, ValueError, AttributeError):
            self._keys, self._stamp = None, None
        return self._keys

    def __call__(self, environ, start_response):
        if not self.required:
            return self.app(environ, start_response)
        if environ.get("PATH_INFO", "") == LIVENESS and environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            return self.app(environ, start_response)
        keys = self.keys()
        if keys is None:
            return _answer(start_response, "503 Service Unavailable",
                           f"The service's keys cannot be read ({self.keys_file}): it refuses every request until "
                           "they can. Regenerate them (service.regen_key / online_endpoints.begin_regenerate_keys) "
                           "or redeploy.")  # fmt: skip
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
            return _answer(start_response, "401 Unauthorized",
                           "Missing or wrong key: send the header 'Authorization: Bearer <key>' with a key from "
                           "service.get_keys() (SDK v1) or ml_client.online_endpoints.get_keys(name) (SDK v2).",
                           [("WWW-Authenticate", "Bearer")])  # fmt: skip
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

            return KeyCheck(app, folder / "keys.json", required=bool(spec.get("auth", True)))

    print(f"Serving {spec['entry_script']} with azureml-inference-server-http on 127.0.0.1:{sock.getsockname()[1]}")
    sys.stdout.flush()
    Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
