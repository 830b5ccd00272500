"""What the training scripts share about the run, the data and the saved model (sits beside them).

Only ``scripts/`` is uploaded to a cluster, so this lives here, like ``mnist_idx.py``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from mnist_idx import IdxError, MissingDataError, MnistArrays, load_mnist

VALIDATION_SEED = 0  # fixed: every run and sweep child holds out the same images


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


class OfflineRun:
    """A run that records nothing, with a run's ``log`` calls: for a script started by hand (not submitted, so
    there is no run to report to) and for a worker that is not the chief. ``azureml.core.Run`` would print every
    call instead; the name matches the id it gives such a run."""

    id = "OfflineRun"

    @classmethod
    def get_context(cls) -> OfflineRun:
        return cls()

    def log(self, name: str, value, description: str = "") -> None:
        pass

    def log_image(self, name: str, path=None, plot=None, description: str = "") -> None:
        pass

    def log_params(self, params: dict) -> None:
        pass


class MlflowRun:
    """``run.log(name, value)`` and ``run.log_image(name, plot=plt)`` as MLflow calls: each value of a name is the
    next step of that metric, and the figure is a run file ``<name>.png``."""

    def __init__(self):
        import mlflow

        self._mlflow = mlflow
        self._steps: dict[str, int] = {}
        self.id = os.environ.get("MLFLOW_RUN_ID", "")

    @classmethod
    def get_context(cls) -> MlflowRun | OfflineRun:
        """The SDK v2 job's run (the job sets ``MLFLOW_RUN_ID``), or an ``OfflineRun`` outside a job."""
        return cls() if os.environ.get("MLFLOW_RUN_ID") else OfflineRun()

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


def split_validation(x, y, fraction: float):
    """(train, validation): ``fraction`` of the images, the same ones every run, held out for validation.

    A fixed random draw rather than the last images: a training set stored sorted by digit
    (the offline sample is) would otherwise hold out only nines.
    """
    n_val = max(1, round(len(x) * fraction))
    if n_val >= len(x):
        raise SystemExit(f"error: {len(x)} training images are too few to hold out {fraction:.0%} for validation")
    order = np.random.default_rng(VALIDATION_SEED).permutation(len(x))
    train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    return (x[train], y[train]), (x[val], y[val])


def save_model(model, output_dir: str | os.PathLike, metadata: dict) -> Path:
    """Save ``model.keras`` and ``metadata.json`` in OUTPUT_DIR/model; Azure ML uploads ``./outputs`` to the run.

    ``metadata.json`` holds ``metadata`` and what the model takes and gives (pixels divided by 255 in, one
    probability per class out) and the versions that trained it. Atomically: a failed save leaves no
    half-written folder.
    """
    import keras

    metadata = {
        "input_shape": list(model.input_shape[1:]),
        "classes": list(range(model.output_shape[-1])),
        "input_scaling": "pixel values divided by 255",
        **metadata,
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "numpy": np.__version__,
        },
    }
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / "model"
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".model-"))
    try:
        model.save(staging / "model.keras")
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        staging.chmod(0o755)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
