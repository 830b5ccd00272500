"""What the training scripts share about the run and the data they train on (sits beside them).

Only ``scripts/`` is uploaded to a cluster, so this lives here, like ``mnist_idx.py``.
"""

from __future__ import annotations

import os
import sys

from mnist_idx import IdxError, MissingDataError, MnistArrays, load_mnist


def get_run(log_with: str = "azureml"):
    """The Azure ML run this script is part of, or None on a plain local run.

    ``log_with="mlflow"``: an object with the same ``log`` / ``log_image`` calls that sends them to MLflow, as an
    SDK v2 job expects (Azure ML, and the local workspace, set ``MLFLOW_RUN_ID`` for the job's run).
    """
    if log_with == "mlflow":
        return MlflowRun() if os.environ.get("MLFLOW_RUN_ID") else None
    try:
        from azureml.core import Run
    except ImportError:
        return None
    run = Run.get_context()
    # Outside a submitted run azureml-core returns an offline run that prints every call.
    return None if run.id.startswith("OfflineRun") else run


class MlflowRun:
    """``run.log(name, value)`` and ``run.log_image(name, plot=plt)`` as MLflow calls: each value of a name is the
    next step of that metric, and the figure is a run file ``<name>.png``."""

    def __init__(self):
        import mlflow

        self._mlflow = mlflow
        self._steps: dict[str, int] = {}

    def log(self, name: str, value: float) -> None:
        step = self._steps.get(name, 0)
        self._steps[name] = step + 1
        self._mlflow.log_metric(name, value, step=step)

    def log_image(self, name: str, plot) -> None:
        self._mlflow.log_figure(plot.gcf(), f"{name}.png")

    def log_params(self, params: dict) -> None:
        """The run's settings as MLflow parameters (a sweep's trials are compared by them)."""
        self._mlflow.log_params(params)


def load_training_data(data_folder: str) -> MnistArrays:
    """``load_mnist`` for a script: a missing or broken file ends it with one line on stderr and exit code 2."""
    try:
        return load_mnist(data_folder)
    except (MissingDataError, IdxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
