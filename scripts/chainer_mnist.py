"""Train a Chainer multi-layer perceptron on MNIST, locally or on an Azure ML cluster.

The Chainer track of the walkthrough, in the shape of the original Azure ML
how-to's ``chainer_mnist.py``: Linear(100) -> ReLU -> Linear(100) -> ReLU ->
Linear(10), MomentumSGD(lr=0.01, momentum=0.9), softmax cross-entropy, evaluated
on the test set after every epoch.  It reads the registered dataset's IDX files
with the same reader as the Keras script (``mnist_idx.py`` beside it), logs
``Accuracy`` and ``Loss`` per epoch through ``Run.get_context()``, and saves the
parameters as ``<output_dir>/model.npz``.

Chainer 7.8.1 is the last release and needs NumPy < 2: see chainer-env.yml.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from run_context import get_run, load_training_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a Chainer MLP on MNIST and save it as OUTPUT_DIR/model.npz.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-folder", required=True, help="folder holding the four MNIST .gz files (searched)")
    parser.add_argument("--batchsize", "-b", type=int, default=100, help="number of images in each mini-batch")
    parser.add_argument("--epochs", "-e", type=int, default=20, help="number of sweeps over the dataset to train")
    parser.add_argument("--output_dir", "-o", default="./outputs", help="directory to save the model in")
    parser.add_argument("--gpu_id", "-g", type=int, default=-1, help="GPU id (negative value: the CPU)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (initial weights and shuffling)")
    args = parser.parse_args(argv)
    if args.batchsize < 1 or args.epochs < 1:
        parser.error("--batchsize and --epochs must be positive")
    return args


def build_model():
    import chainer
    import chainer.functions as F
    import chainer.links as L

    class MLP(chainer.Chain):
        def __init__(self, n_units=100, n_out=10):
            super().__init__()
            with self.init_scope():
                self.l1 = L.Linear(None, n_units)
                self.l2 = L.Linear(None, n_units)
                self.l3 = L.Linear(None, n_out)

        def forward(self, x):
            h1 = F.relu(self.l1(x))
            h2 = F.relu(self.l2(h1))
            return self.l3(h2)

    return MLP()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_training_data(args.data_folder)

    import chainer
    import chainer.functions as F

    run = get_run()
    print(f"Chainer {chainer.__version__}, NumPy {np.__version__}; data: {data.source}")
    x_train = data.x_train.reshape(-1, 784).astype(np.float32) / 255.0
    x_test = data.x_test.reshape(-1, 784).astype(np.float32) / 255.0
    y_train = data.y_train.astype(np.int32)
    y_test = data.y_test.astype(np.int32)

    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)  # Chainer's initialisers draw from NumPy's global generator
    model = build_model()
    xp = np
    if args.gpu_id >= 0:
        chainer.backends.cuda.get_device_from_id(args.gpu_id).use()
        model.to_gpu()
        xp = chainer.backends.cuda.cupy
    optimizer = chainer.optimizers.MomentumSGD(lr=0.01, momentum=0.9)
    optimizer.setup(model)

    if run:
        run.log("Batch size", args.batchsize)
        run.log("Epochs", args.epochs)
    x_test_dev, y_test_dev = xp.asarray(x_test), xp.asarray(y_test)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), args.batchsize):
            batch = order[start : start + args.batchsize]
            loss = F.softmax_cross_entropy(model(xp.asarray(x_train[batch])), xp.asarray(y_train[batch]))
            model.cleargrads()
            loss.backward()
            optimizer.update()
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            logits = model(x_test_dev)
            test_loss = float(F.softmax_cross_entropy(logits, y_test_dev).array)
            accuracy = float(F.accuracy(logits, y_test_dev).array)
        print(f"epoch {epoch}/{args.epochs}: test loss {test_loss:.4f}, test accuracy {accuracy:.4f}", flush=True)
        if run:
            run.log("Loss", test_loss)
            run.log("Accuracy", accuracy)

    # Save atomically: a half-written model.npz is never left behind.
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to_cpu()
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".npz")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        chainer.serializers.save_npz(tmp, model)
        os.replace(tmp, out / "model.npz")
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"Saved {out / 'model.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
