"""The Chainer track's network, for reading its saved ``model.npz`` without Chainer.

Chainer needs NumPy < 2, so it lives in its own environment; the notebook's
interpreter evaluates the trained parameters with NumPy alone.  ``model.npz``
holds one array per parameter, named as in ``scripts/chainer_mnist.py``'s MLP:
``l1/W`` (100 x 784), ``l1/b``, ``l2/W``, ``l2/b``, ``l3/W`` (10 x 100), ``l3/b``.
A Chainer ``Linear`` computes ``x @ W.T + b``.
"""

from __future__ import annotations

import numpy as np

LAYERS = ("l1", "l2", "l3")


def load(path) -> dict[str, np.ndarray]:
    """The parameters in a ``model.npz`` saved by ``chainer.serializers.save_npz``."""
    with np.load(path) as npz:
        missing = [f"{layer}/{p}" for layer in LAYERS for p in ("W", "b") if f"{layer}/{p}" not in npz.files]
        if missing:
            raise ValueError(f"{path} is not the Chainer MLP's parameters: it lacks {', '.join(missing)}.")
        return {name: npz[name] for name in npz.files}


def predict(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Class scores for images ``x`` (rows of 784 values in 0..1): the same forward pass as the script."""
    h = np.asarray(x, dtype=np.float32)
    for i, layer in enumerate(LAYERS):
        h = h @ params[f"{layer}/W"].T + params[f"{layer}/b"]
        if i < len(LAYERS) - 1:
            h = np.maximum(h, 0)  # ReLU
    return h
