"""`aml-offline mlflow-ui` (`make mlflow-ui`): the MLflow UI on the local workspace's runs and models (http://127.0.0.1:5000).

Run supervisors leave MLflow's copy of what they record (statuses, numbers, tags) in the workspace's
outbox rather than open MLflow themselves; while the UI runs, this process applies it every two seconds,
so the UI shows runs as they go.  The server is recorded in the ledger and stopped with this command
(Ctrl-C, SIGTERM, or its terminal closed); the server of one killed outright (SIGKILL) is stopped by
the next one.  It runs one worker and without MLflow's GenAI job runner (six more processes and about
20 s of start-up on 2 cores), which browsing runs and models does not use.
"""

import os
import signal
import sqlite3
import subprocess
import sys

from aml_offline.execution import ledger
from aml_offline.store import LocalStore, StoreError

OWNER = f"mlflow-ui:{os.getpid()}"


def stop_left_behind(store: LocalStore) -> int:
    """Stop the servers of an earlier ``make mlflow-ui`` that was killed outright (SIGKILL gave it no chance to).

    Only their servers: the command itself ran in the user's terminal session, which is not ours to stop."""
    stopped = 0
    for owner in ledger.owners(store, "mlflow-ui:", "ui"):
        if owner != OWNER and not ledger.alive(store, owner, ("ui",)):
            stopped += ledger.stop(store, owner, ("server",), grace=5)
            ledger.mark_ended(store, owner, ("ui",))
    return stopped


def main() -> int:
    store = LocalStore.get()
    _ = store.mlflow  # creates the database on first use, and applies the outbox
    port = os.environ.get("MLFLOW_PORT", "5000")
    print(f"MLflow UI for {store.root} at http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "ui", "--backend-store-uri", store.tracking_uri, "--host", "127.0.0.1", "--port", port,
               "--workers", "1"]  # fmt: skip
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill`, or the terminal closed: stop the server (finally below)
        signal.signal(sig, lambda *_: sys.exit(0))
    ledger.record(store, OWNER, "ui", os.getpid())
    stop_left_behind(store)
    server = ledger.start(store, OWNER, "server", command, env=env)
    try:
        while True:
            try:
                return server.wait(timeout=2)
            except subprocess.TimeoutExpired:
                try:
                    store.flush_outbox()
                except (StoreError, sqlite3.Error) as exc:  # the workspace is busy or broken: the UI still serves
                    print(f"Could not apply what runs left for MLflow yet: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 0
    finally:
        ledger.stop(store, OWNER, ("server",), grace=5)
        ledger.mark_ended(store, OWNER, ("ui",))


if __name__ == "__main__":
    sys.exit(main())
