"""Would on-device multi-step execution speed up our training? A JAX measurement.

    python benchmarks/jax_steps.py          (--help for the options)

``scripts/keras_mnist.py`` compiles with ``steps_per_execution`` = one epoch and
``jit_compile=True``. In Keras 3.15 (the newest release) the JAX trainer still runs
those steps as a Python loop around a compiled single step: one host dispatch per
batch. keras-team/keras#23527 (merged after 3.15.1) runs them inside one compiled
``jax.lax.scan`` instead: one dispatch per ``steps_per_execution`` batches.

This measures the two mechanisms on their own, in plain JAX, for exactly our model
and optimiser (784-300-100-10, ReLU, softmax, RMSprop 0.001 as Keras defines it,
batch 50, 90% of the 60,000 training images), so the answer does not wait for the
next Keras release:

  dispatch   a jitted train step, called once per batch from Python (Keras 3.15)
  scan       the epoch's steps inside one jitted ``lax.scan`` (keras#23527)

It prints seconds per epoch (median after a warm-up epoch) and the test accuracy
each reaches, on whatever device JAX finds. A benchmark: it never fails on speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "scripts"))
sys.path.insert(0, str(PROJECT / "benchmarks"))

SIZES = (784, 300, 100, 10)
RHO, EPSILON = 0.9, 1e-7  # keras.optimizers.RMSprop's defaults


def init_params(key):
    import jax
    import jax.numpy as jnp

    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        key, sub = jax.random.split(key)
        limit = (6 / (fan_in + fan_out)) ** 0.5  # Glorot uniform, Keras's Dense default
        params.append((jax.random.uniform(sub, (fan_in, fan_out), jnp.float32, -limit, limit), jnp.zeros(fan_out)))
    return params


def make_steps(learning_rate: float):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        logp = jax.nn.log_softmax(x @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(state, batch):
        params, accum = state
        grads = jax.grad(loss_fn)(params, *batch)
        accum = jax.tree.map(lambda a, g: RHO * a + (1 - RHO) * g * g, accum, grads)
        params = jax.tree.map(lambda p, g, a: p - learning_rate * g / (jnp.sqrt(a) + EPSILON), params, grads, accum)
        return (params, accum), None

    one_step = jax.jit(lambda state, x, y: step(state, (x, y))[0], donate_argnums=0)

    @jax.jit
    def epoch_scan(state, xs, ys):
        return jax.lax.scan(step, state, (xs, ys))[0]

    @jax.jit
    def accuracy(params, x, y):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return jnp.mean(jnp.argmax(x @ w + b, axis=1) == y)

    return one_step, epoch_scan, accuracy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per mode; the first is the warm-up")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    from mnist_idx import load_mnist
    from train import find_data  # benchmarks/train.py: full MNIST from the cache, else Fashion-MNIST

    folder, source = find_data()
    data = load_mnist(folder)
    x_train = data.x_train.reshape(-1, 784).astype("float32") / 255.0
    n = int(len(x_train) * 0.9) // args.batch_size * args.batch_size  # whole batches of the 90% a run trains on
    order = np.random.default_rng(0).permutation(len(x_train))[:n]
    xs = jnp.asarray(x_train[order].reshape(-1, args.batch_size, 784))
    ys = jnp.asarray(data.y_train[order].astype("int32").reshape(-1, args.batch_size))
    x_test = jnp.asarray(data.x_test.reshape(-1, 784).astype("float32") / 255.0)
    y_test = jnp.asarray(data.y_test.astype("int32"))
    print(f"Data: {source}; {n} training images, {len(xs)} steps per epoch of {args.batch_size}")
    print(f"JAX {jax.__version__} on {', '.join(sorted({d.device_kind for d in jax.devices()}))}\n", flush=True)

    one_step, epoch_scan, accuracy = make_steps(0.001)
    rows = {}
    for mode in ("dispatch", "scan"):
        params = init_params(jax.random.key(1))
        state = (params, jax.tree.map(jnp.zeros_like, params))
        seconds = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            if mode == "scan":
                state = epoch_scan(state, xs, ys)
            else:
                for i in range(len(xs)):
                    state = one_step(state, xs[i], ys[i])
            jax.block_until_ready(state)
            seconds.append(time.perf_counter() - start)
        per_epoch = statistics.median(seconds[1:])
        rows[mode] = (per_epoch, n / per_epoch, float(accuracy(state[0], x_test, y_test)))
        print(f"{mode:9} {per_epoch:8.3f} s/epoch {n / per_epoch:10.0f} samples/s   test accuracy {rows[mode][2]:.4f}")
    print(f"\nscan / dispatch speed-up: {rows['dispatch'][0] / rows['scan'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
