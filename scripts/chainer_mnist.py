"""Train a Chainer multi-layer perceptron on MNIST, locally or on an Azure ML cluster.

The Chainer track of the walkthrough, in the shape of the original Azure ML
how-to's ``chainer_mnist.py``: Linear(100) -> ReLU -> Linear(100) -> ReLU ->
Linear(10), MomentumSGD(lr=0.01, momentum=0.9), softmax cross-entropy.  It reads
the registered dataset's IDX files with the same reader as the Keras script
(``mnist_idx.py`` beside it), logs ``Accuracy`` and ``Loss`` after every epoch on
a validation split held out from the training images (the Keras script's split:
10%, the same images every run), then ``Final test accuracy`` and ``Final test
loss`` once, on the test set, and saves the parameters as ``<output_dir>/model.npz``.

Chainer 7.8.1 is the last release and needs NumPy < 2: see chainer-env.yml.  It
supports only CuPy 7, which has no build for Python 3.11 or CUDA 12, so it trains
on the CPU (``--gpu_id`` stays for a CuPy 7 setup of your own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from run_context import get_run, load_training_data

VALIDATION_FRACTION = 0.1  # as in keras_mnist.py
VALIDATION_SEED = 0


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
    x_all = data.x_train.reshape(-1, 784).astype(np.float32) / 255.0
    x_test = data.x_test.reshape(-1, 784).astype(np.float32) / 255.0
    y_all = data.y_train.astype(np.int32)
    y_test = data.y_test.astype(np.int32)
    # Per-epoch numbers come from held-out training images; the test set is used once, at the end.
    order = np.random.default_rng(VALIDATION_SEED).permutation(len(x_all))
    n_val = max(1, round(len(x_all) * VALIDATION_FRACTION))
    train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    x_train, y_train, x_val, y_val = x_all[train], y_all[train], x_all[val], y_all[val]
    print(f"{len(x_train)} training, {len(x_val)} validation and {len(x_test)} test images")

    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)  # Chainer's initialisers draw from NumPy's global generator
    model = build_model()
    xp = np
    if args.gpu_id >= 0:
        chainer.backends.cuda.get_device_from_id(args.gpu_id).use()
        model.to_gpu()
        xp = chainer.backends.cuda.cupy
        print(f"Training on GPU {args.gpu_id}: {xp.cuda.runtime.getDeviceProperties(args.gpu_id)['name'].decode()}")
    else:
        print("Training on the CPU (--gpu_id -1)")
    optimizer = chainer.optimizers.MomentumSGD(lr=0.01, momentum=0.9)
    optimizer.setup(model)

    if run:
        run.log("Batch size", args.batchsize)
        run.log("Epochs", args.epochs)

    def evaluate(x, y):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            logits = model(xp.asarray(x))
            y = xp.asarray(y)
            return float(F.softmax_cross_entropy(logits, y).array), float(F.accuracy(logits, y).array)

    epoch_seconds = []
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), args.batchsize):
            batch = order[start : start + args.batchsize]
            loss = F.softmax_cross_entropy(model(xp.asarray(x_train[batch])), xp.asarray(y_train[batch]))
            model.cleargrads()
            loss.backward()
            optimizer.update()
        val_loss, val_accuracy = evaluate(x_val, y_val)
        epoch_seconds.append(time.perf_counter() - epoch_start)
        print(
            f"epoch {epoch}/{args.epochs}: validation loss {val_loss:.4f}, validation accuracy {val_accuracy:.4f}",
            flush=True,
        )
        if run:
            run.log("Loss", val_loss)
            run.log("Accuracy", val_accuracy)

    test_loss, test_accuracy = evaluate(x_test, y_test)
    print(f"Final test loss: {test_loss:.4f}")
    print(f"Final test accuracy: {test_accuracy:.4f}")
    if len(epoch_seconds) > 1:
        print(f"Seconds per epoch (median after the first): {statistics.median(epoch_seconds[1:]):.2f}")
    if run:
        run.log("Final test loss", test_loss)
        run.log("Final test accuracy", test_accuracy)

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
