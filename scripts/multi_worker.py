"""Several workers training one model: ``keras_mnist.py``'s multi-worker path (sits beside it).

When ``TF_CONFIG`` describes several workers (Azure ML sets it for a run with
``distributed_job_config=TensorflowConfiguration(worker_count=N)``), every worker
runs the training script and they train one model data-parallel under TensorFlow's
``MultiWorkerMirroredStrategy``: each step's batch is split across the workers, and
only the chief (worker 0) logs metrics and saves the model. Without ``TF_CONFIG``
there is one worker and every call here does nothing. The script uses it so:

    cluster = Cluster.from_env()      # before Keras is imported
    cluster.join()                    # after, before any other TensorFlow work
    with cluster.scope():
        model = ...; model.compile(...)
    cluster.distribute(model, seed)   # model.fit and model.evaluate: this module's loop

Keras 3's ``fit()`` cannot drive ``MultiWorkerMirroredStrategy`` yet
(keras-team/keras#20585), so ``distribute`` gives the model a short ``fit`` and
``evaluate`` of its own, with the same arguments, history and callbacks.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field


@dataclass
class Cluster:
    """This process's place in a multi-worker job, from ``TF_CONFIG`` (one worker without it)."""

    workers: int = 1
    index: int = 0
    strategy: object = field(default=None, repr=False)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @classmethod
    def from_env(cls) -> Cluster:
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            return cls()
        try:
            config = json.loads(raw)
            cluster, task = config["cluster"], config["task"]
            if set(cluster) - {"worker", "chief"}:
                raise ValueError(f"roles {sorted(set(cluster) - {'worker', 'chief'})} need parameter servers")
            workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
            index = int(task["index"]) + (len(cluster.get("chief", [])) if task["type"] == "worker" else 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(
                f"error: TF_CONFIG is not a multi-worker cluster this script can join ({exc}); "
                "use TensorflowConfiguration(worker_count=N, parameter_server_count=0)."
            ) from None
        return cls(workers=workers, index=index)

    def join(self) -> None:
        """Several workers: start TensorFlow's strategy (it must come before any other TensorFlow work)."""
        if self.workers > 1 and self.strategy is None:
            import tensorflow as tf

            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()

    def scope(self):
        """Where the model is built and compiled: the strategy's scope, or nothing for one worker."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def distribute(self, model, seed: int | None = None) -> None:
        """Several workers: give ``model`` a ``fit`` and an ``evaluate`` that run on all of them, in step.

        ``seed`` orders the shuffled batches, the same on every worker (0 when None).
        """
        if self.strategy is None:
            return
        loop = _WorkerLoop(model, self, shuffle_seed=0 if seed is None else seed)
        model.fit, model.evaluate = loop.fit, loop.evaluate


class _History:
    def __init__(self, history: dict):
        self.history = history


class _WorkerLoop:
    """``model.fit`` and ``model.evaluate`` for several workers: the same arguments, history and callbacks.

    Every worker shuffles with the same seed, so they agree on each global batch, and
    the strategy gives each its share of it (the DATA sharding policy). Each replica's
    gradients are of its summed loss over the global batch size; the optimizer sums
    them across workers, which gives the gradient of the mean over the global batch.
    """

    def __init__(self, model, cluster: Cluster, shuffle_seed: int):
        import keras
        import tensorflow as tf

        self.tf, self.model, self.cluster, self.strategy = tf, model, cluster, cluster.strategy
        self.summed_loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
        self.batch_size, self.shuffle_seed = None, shuffle_seed
        with self.strategy.scope():  # loss sum, correct answers, images seen: summed over every replica when read
            self.totals = tf.Variable(
                tf.zeros(3),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )
        self.run_epoch = tf.function(self._run_epoch)

    def _distribute(self, arrays, batch_size: int, shuffle_seed: int | None = None):
        tf = self.tf
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = tf.data.Dataset.from_tensor_slices(arrays)
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(arrays[0]), seed=shuffle_seed)
        return self.strategy.experimental_distribute_dataset(dataset.batch(batch_size).with_options(options))

    def _step(self, x, y, training):
        tf, model = self.tf, self.model
        with tf.GradientTape() as tape:
            probabilities = model(x, training=training)
            loss = self.summed_loss(y, probabilities)
            scaled = loss / self.batch_size  # the global batch: the optimizer sums the workers' gradients
        if training:
            grads = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(probabilities, axis=1, output_type=tf.int32) == y, tf.float32))
        self.totals.assign_add(tf.stack([loss, correct, tf.cast(tf.shape(y)[0], tf.float32)]))

    def _run_epoch(self, dataset, training: bool):
        for x, y in dataset:
            self.strategy.run(self._step, args=(x, y), kwargs={"training": training})  # training stays a bool

    def _measure(self, dataset, training: bool):
        self.totals.assign(self.tf.zeros(3))
        self.run_epoch(dataset, training)
        return self.totals.read_value().numpy()  # one exchange between the workers per epoch

    def fit(self, x, y, batch_size, epochs, validation_data, validation_batch_size, callbacks=(), verbose=2):
        """Train on every worker at once; returns what ``model.fit`` returns (its ``.history``)."""
        cluster = self.cluster
        print(
            f"Worker {cluster.index} of {cluster.workers}{' (chief)' if cluster.is_chief else ''}: "
            f"each step's {batch_size} images are split across the {cluster.workers} workers",
            flush=True,
        )
        self.batch_size = batch_size
        train = self._distribute((x, y), batch_size, shuffle_seed=self.shuffle_seed)
        val = self._distribute(validation_data, validation_batch_size)
        history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        for epoch in range(epochs):
            for callback in callbacks:
                callback.on_epoch_begin(epoch)
            loss, correct, seen = self._measure(train, training=True)
            val_loss, val_correct, val_seen = self._measure(val, training=False)
            logs = {"loss": loss / seen, "accuracy": correct / seen, "val_loss": val_loss / val_seen}
            logs["val_accuracy"] = val_correct / val_seen
            logs = {key: float(value) for key, value in logs.items()}
            for key, value in logs.items():
                history[key].append(value)
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
            if verbose:
                print(
                    f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True
                )
        return _History(history)

    def evaluate(self, x, y, batch_size, verbose=0):
        """``[loss, accuracy]`` on other arrays (the test set), every worker taking part."""
        if self.batch_size is None:
            self.batch_size = batch_size
        loss, correct, seen = self._measure(self._distribute((x, y), batch_size), training=False)
        return [float(loss / seen), float(correct / seen)]
