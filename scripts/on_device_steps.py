"""Run a compiled call's optimiser steps on the device, inside ``model.fit``: Keras on JAX.

``model.compile(steps_per_execution=N, jit_compile=True)`` asks Keras to run N
optimiser steps per call into the compiled function. On JAX, Keras 3.15 (the newest
release as of November 2026) still runs those N steps as a Python loop around a
compiled single step, so the host dispatches every batch: on a GPU a small model
then waits on the host all the time. keras-team/keras#23527 (merged after 3.15.1)
runs the N steps inside one compiled ``jax.lax.scan``; this is that idea, for the
releases before it, in one function:

    model.compile(..., steps_per_execution=steps_per_epoch, jit_compile=True)
    on_device_steps(model)      # before model.fit; does nothing where it cannot help
    model.fit(...)

Measured with ``benchmarks/jax_steps.py`` (plain JAX, our model): one epoch of
Fashion-MNIST takes 0.95 s with a dispatch per step and 0.04 s in one scan on an
H100, and about 1.2 times faster in one scan on 2 CPU cores.

The steps, the optimiser, the metrics and the callbacks' view are Keras's own: the
scan's body is ``model.train_step`` and a call returns the logs of its last step,
as Keras's loop does. Batches of another shape (the epoch's last, partial batch)
run as single compiled steps after the scan.
"""

from __future__ import annotations

import functools
import itertools

from packaging.version import Version

# The first Keras release with keras-team/keras#23527 (not out yet): from it on, Keras does this itself.
KERAS_WITH_ON_DEVICE_STEPS = Version("3.16")


def on_device_steps(model) -> bool:
    """Make ``model.fit`` run each call's steps in one ``jax.lax.scan``; True when it did.

    Call it after ``model.compile``. Leaves the model as it is (and returns False) when
    the backend is not JAX, ``steps_per_execution`` is 1, ``jit_compile`` is off, a
    distribution is set, or this Keras release already runs the steps on the device.
    """
    import keras

    if (
        keras.backend.backend() != "jax"
        or Version(keras.__version__) >= KERAS_WITH_ON_DEVICE_STEPS
        or model.steps_per_execution <= 1
        or not model.jit_compile
        or keras.distribution.distribution() is not None
    ):
        return False

    import jax
    import jax.numpy as jnp

    steps = model.steps_per_execution

    def body(state, data):
        logs, state = model.train_step(state, data)
        return state, logs

    @functools.partial(jax.jit, donate_argnums=0)  # as Keras's own step: the old state's buffers are reused
    def scan_steps(state, stacked):
        state, logs = jax.lax.scan(body, state, stacked)
        return jax.tree.map(lambda values: values[-1], logs), state

    one_step = jax.jit(model.train_step, donate_argnums=0)

    def train_function(state, iterator):
        batches = list(itertools.islice(iterator, steps))
        if not batches:
            raise StopIteration  # the epoch is over: Keras's loop catches this, as with its own iterator
        shape = jax.tree.map(jnp.shape, batches[0])
        alike = 1
        while alike < len(batches) and jax.tree.map(jnp.shape, batches[alike]) == shape:
            alike += 1
        if alike > 1:
            logs, state = scan_steps(state, jax.tree.map(lambda *leaves: jnp.stack(leaves), *batches[:alike]))
        else:
            logs, state = one_step(state, batches[0])
        for batch in batches[alike:]:  # a partial last batch: one compiled step each
            logs, state = one_step(state, batch)
        return logs, state

    def make_train_function(force=False):
        if model.train_function is None or force:
            model.train_function = train_function

    model.make_train_function = make_train_function
    model.train_function = None
    return True
