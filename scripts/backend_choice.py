"""Which Keras backend trains, and on which device: ``keras_mnist.py``'s choice (sits beside it).

Keras 3 runs on several backends, chosen once, by ``KERAS_BACKEND``, before Keras is
imported. A single process trains on JAX when it is installed: faster than
TensorFlow for this small network (0.39 against 0.54 s an epoch on 2 CPU cores in
``make bench``). Several workers train on TensorFlow, because the multi-worker
strategy (``multi_worker.py``) is TensorFlow's. The saved ``.keras`` file loads on
either backend.
"""

from __future__ import annotations

import importlib.util
import os

BACKENDS = ("auto", "jax", "tensorflow")


def choose_backend(requested: str, workers: int = 1) -> str:
    """Set ``KERAS_BACKEND`` for ``requested`` ("auto": ``$KERAS_BACKEND`` if set, else as above); call it before
    ``import keras``. Several workers need TensorFlow: another backend is an error that says so."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of logs
    if requested == "auto":
        requested = os.environ.get("KERAS_BACKEND") or (
            "tensorflow" if workers > 1 or importlib.util.find_spec("jax") is None else "jax"
        )
    if workers > 1 and requested != "tensorflow":
        raise SystemExit(
            f"error: {workers} workers train with TensorFlow's MultiWorkerMirroredStrategy; "
            f"the {requested} backend cannot join it. Use --backend tensorflow (or auto)."
        )
    os.environ["KERAS_BACKEND"] = requested
    return requested


def describe_devices(backend: str) -> str:
    """The log line that says which backend and device train (``make gpu-check`` reads it)."""
    if backend == "jax":
        import jax

        gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    else:
        import tensorflow as tf

        gpus = [
            tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")
        ]
    if gpus:
        return f"Training with Keras on {backend}, on GPU: {', '.join(gpus)}"
    return f"Training with Keras on {backend}; no GPU found: training on the CPU."
