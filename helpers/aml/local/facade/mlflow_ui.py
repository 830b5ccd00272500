"""`make mlflow-ui`: the MLflow UI on the local workspace's runs and models (http://127.0.0.1:5000)."""

import os
import sys

from helpers.aml.local.store import LocalStore


def main() -> int:
    store = LocalStore.get()
    _ = store.mlflow  # creates the database on first use
    port = os.environ.get("MLFLOW_PORT", "5000")
    print(f"MLflow UI for {store.root} at http://127.0.0.1:{port} (Ctrl-C to stop)")
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    os.execv(mlflow, [mlflow, "ui", "--backend-store-uri", store.tracking_uri, "--host", "127.0.0.1", "--port", port])


if __name__ == "__main__":
    sys.exit(main())
