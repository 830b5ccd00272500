"""Train a Keras multi-layer perceptron on MNIST, locally or on an Azure ML cluster.

The same file runs on its own (``python scripts/keras_mnist.py --help``), in the
walkthrough's local workspace, and unchanged on an Azure ML compute cluster.
Inside a submitted run it logs metrics and a figure through
``azureml.core.Run.get_context()`` (SDK v1), or with ``--log-with mlflow`` through
``mlflow`` (SDK v2's jobs, which point MLflow at the job's run); on a plain local
run it stays quiet.

The per-epoch ``Loss`` and ``Accuracy`` (the metric HyperDrive's sweeps choose
by) are measured on a validation split held out from the training images:
``--validation-fraction`` of them (10%), drawn with a fixed seed so that every run
and every sweep child holds out the same images. The test set is used once, after
training, for ``Final test loss`` / ``Final test accuracy``: no choice was made on
it, so it is an honest estimate of how the chosen model does on new digits.

When ``TF_CONFIG`` describes several workers (Azure ML sets it for a run with
``distributed_job_config=TensorflowConfiguration(worker_count=N)``), every worker
runs this script and they train one model data-parallel under TensorFlow's
``MultiWorkerMirroredStrategy``: each step's batch is split across the workers,
and only the chief (worker 0) logs final metrics and saves the model.

Keras 3 runs on several backends. A single process trains on JAX when it is
installed (faster than TensorFlow for this small network: 0.39 against 0.54 s an
epoch on 2 CPU cores in ``make bench``); the
multi-worker strategy is TensorFlow's, so workers train on TensorFlow. The saved
``.keras`` file loads on either backend.

Sections, keras-io style: Setup, Prepare the data, Build the model, Train,
Evaluate, Save.
"""

from __future__ import annotations

# --- Setup --------------------------------------------------------------------
import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of logs

import numpy as np  # noqa: E402
from on_device_steps import on_device_steps  # noqa: E402  (sits beside this file)
from run_context import get_run, load_training_data  # noqa: E402  (sits beside this file)

N_CLASSES = 10
VALIDATION_FRACTION = 0.1  # of the training images, held out to measure each epoch
VALIDATION_SEED = 0  # fixed: every run and sweep child holds out the same images
EVAL_BATCH = 1000  # evaluation batch: no weights change, so bigger is just faster
INPUT_SHAPE = (28 * 28,)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = positive_float(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a 2-hidden-layer Keras MLP on MNIST and save it under OUTPUT_DIR/model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-folder",
        required=True,
        help="folder holding the four MNIST .gz files (searched recursively: a mounted dataset nests them)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=50, help="mini-batch size")
    parser.add_argument("--first-layer-neurons", type=positive_int, default=300, help="units in hidden layer 1")
    parser.add_argument("--second-layer-neurons", type=positive_int, default=100, help="units in hidden layer 2")
    parser.add_argument("--learning-rate", type=positive_float, default=0.001, help="RMSprop learning rate")
    parser.add_argument("--epochs", type=positive_int, default=20, help="passes over the training set")
    parser.add_argument("--output-dir", default="./outputs", help="the model is saved in OUTPUT_DIR/model")
    parser.add_argument("--seed", type=int, default=None, help="random seed for reproducible runs")
    parser.add_argument(
        "--validation-fraction",
        type=fraction,
        default=VALIDATION_FRACTION,
        help="share of the training images held out (the same ones every run) to measure Loss and Accuracy per epoch",
    )
    parser.add_argument(
        "--backend",
        choices=["auto", "jax", "tensorflow"],
        default="auto",
        help="Keras backend; auto: $KERAS_BACKEND if set, else TensorFlow for several workers, else JAX if installed",
    )
    parser.add_argument(
        "--host-loop",
        action="store_true",
        help="on JAX, dispatch every step from Python as Keras 3.15 does, instead of one jax.lax.scan per epoch "
        "(for benchmarks/train.py's comparison)",
    )
    parser.add_argument(
        "--log-with",
        choices=["azureml", "mlflow"],
        default="azureml",
        help="where metrics go: azureml (SDK v1's Run.get_context()) or mlflow (SDK v2's jobs: the job sets "
        "MLFLOW_TRACKING_URI and MLFLOW_RUN_ID)",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job, from ``TF_CONFIG`` (one worker without it)."""

    workers: int = 1
    index: int = 0

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


def choose_backend(requested: str, cluster: Cluster) -> str:
    """Set KERAS_BACKEND before Keras is imported (see the module docstring for why)."""
    if requested == "auto":
        requested = os.environ.get("KERAS_BACKEND") or (
            "tensorflow" if cluster.workers > 1 or importlib.util.find_spec("jax") is None else "jax"
        )
    if cluster.workers > 1 and requested != "tensorflow":
        raise SystemExit(
            f"error: {cluster.workers} workers train with TensorFlow's MultiWorkerMirroredStrategy; "
            f"the {requested} backend cannot join it. Use --backend tensorflow (or auto)."
        )
    os.environ["KERAS_BACKEND"] = requested
    return requested


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cluster = Cluster.from_env()
    backend = choose_backend(args.backend, cluster)
    data = load_training_data(args.data_folder)

    import keras  # imported after the data checks so a bad folder fails fast

    strategy = multi_worker_strategy(cluster)  # TensorFlow wants it before any other TensorFlow work
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    run = get_run(args.log_with) if cluster.is_chief else None  # one set of metrics per run, from the chief
    describe_devices(backend)
    print(f"Data: {data.source} from {data.folder}")

    # --- Prepare the data -----------------------------------------------------
    # The pixels stay bytes (0-255) until the model divides them by 255 on the device: every copy of the data an
    # epoch makes (Keras's shuffled batches, the move to the device, the steps' stacking) is 4x smaller than float32.
    x_all = data.x_train.reshape(-1, INPUT_SHAPE[0])
    x_test = data.x_test.reshape(-1, INPUT_SHAPE[0])
    assert x_all.dtype == x_test.dtype == np.uint8, "IDX images are bytes"
    y_all = data.y_train.astype("int32")
    y_test = data.y_test.astype("int32")
    # Choices (epochs, a sweep's best child) are made on the validation split; the test set is used once, at the end.
    (x_train, y_train), (x_val, y_val) = split_validation(x_all, y_all, args.validation_fraction)
    print(
        f"{len(x_train)} training, {len(x_val)} validation ({args.validation_fraction:.0%} of the training "
        f"images, held out) and {len(x_test)} test images"
    )
    if strategy is not None:
        print(
            f"Worker {cluster.index} of {cluster.workers}{' (chief)' if cluster.is_chief else ''}: "
            f"each step's {args.batch_size} images are split across the {cluster.workers} workers"
        )

    # --- Build the model --------------------------------------------------------
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        # The model that is saved and served: pixels divided by 255 in, class probabilities out
        classifier = keras.Sequential(
            [
                keras.Input(shape=INPUT_SHAPE),
                keras.layers.Dense(args.first_layer_neurons, activation="relu"),
                keras.layers.Dense(args.second_layer_neurons, activation="relu"),
                keras.layers.Dense(N_CLASSES, activation="softmax"),
            ],
            name="mnist_mlp",
        )
        # ... trained with the division in front, on the device (the same layers: training trains the classifier)
        model = keras.Sequential(
            [keras.Input(shape=INPUT_SHAPE, dtype="uint8"), keras.layers.Rescaling(1 / 255), classifier],
            name="mnist_mlp_training",
        )
        model.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=args.learning_rate),
            loss="sparse_categorical_crossentropy",  # integer labels: no one-hot copy of the data
            metrics=["accuracy"],
            # Run a whole epoch of optimiser steps per call into the compiled function instead of one
            # call per step: a small MLP spends most of its time on per-step overhead otherwise.
            steps_per_execution=steps_per_epoch,
            jit_compile=True,  # XLA fuses each call into one compiled program
        )
    # On JAX, run those steps inside the compiled call (one jax.lax.scan), as Keras releases after 3.15 do
    if not args.host_loop and on_device_steps(model):
        print(f"Each epoch's {steps_per_epoch} steps run on the device in one compiled call (jax.lax.scan)")
    if cluster.is_chief:
        model.summary(print_fn=print, expand_nested=True)

    # --- Train -------------------------------------------------------------------
    if run is not None:
        run.log("Batch size", args.batch_size)
        run.log("Learning rate", args.learning_rate)
        if args.log_with == "mlflow":  # MLflow keeps settings as parameters
            run.log_params({k: v for k, v in vars(args).items() if k not in ("data_folder", "output_dir", "log_with")})
    epoch_seconds: list[float] = []
    callbacks = make_callbacks(run, epoch_seconds)
    if strategy is None:
        history = model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_data=(x_val, y_val),
            validation_batch_size=EVAL_BATCH,
            callbacks=callbacks,
            verbose=2,
        ).history
    else:
        # Keras 3's fit() cannot drive MultiWorkerMirroredStrategy yet (keras-team/keras#20585): a short loop does.
        history, evaluate = fit_multi_worker(model, strategy, (x_train, y_train), (x_val, y_val), args, callbacks)

    # --- Evaluate: the test set, once ----------------------------------------------
    if strategy is None:
        test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=EVAL_BATCH, verbose=0)
    else:
        test_loss, test_accuracy = evaluate(x_test, y_test)  # every worker takes part
    print(f"Final validation accuracy: {history['val_accuracy'][-1]:.4f}")
    print(f"Final test loss: {test_loss:.4f}")
    print(f"Final test accuracy: {test_accuracy:.4f}")
    if len(epoch_seconds) > 1:
        print(f"Seconds per epoch (median after the first): {statistics.median(epoch_seconds[1:]):.2f}")
    if not cluster.is_chief:
        print(f"Worker {cluster.index} is not the chief: worker 0 logs the metrics and saves the model.")
        return 0
    if run is not None:
        run.log("Final test loss", float(test_loss))
        run.log("Final test accuracy", float(test_accuracy))
        log_history_figure(run, history, args.epochs)

    # --- Save ------------------------------------------------------------------------
    metadata = {
        "input_shape": list(INPUT_SHAPE),
        "classes": list(range(N_CLASSES)),
        "input_scaling": "pixel values divided by 255",
        "data_source": data.source,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "validation_accuracy": float(history["val_accuracy"][-1]),
        "validation_images": len(x_val),
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("data_folder", "output_dir")},
        "training": {"workers": cluster.workers, "epoch_seconds": [round(t, 4) for t in epoch_seconds]},
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": backend,
            "numpy": np.__version__,
        },
    }
    model_dir = save_model(classifier, metadata, Path(args.output_dir))
    print(f"Model saved to {model_dir}")
    return 0


def multi_worker_strategy(cluster: Cluster):
    """TensorFlow's data-parallel strategy across the workers in TF_CONFIG, or None for one worker."""
    if cluster.workers == 1:
        return None
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def fit_multi_worker(model, strategy, train, validation, args, callbacks):
    """``model.fit`` for several workers: the same history, the same callbacks.

    Returns the history and an ``evaluate(x, y) -> (loss, accuracy)`` function that
    measures the trained model on other arrays (the test set), every worker taking part.

    Every worker shuffles with the same seed, so they agree on each global batch, and
    the strategy gives each its share of it (the DATA sharding policy). Each replica's
    gradients are of its summed loss over the global batch size; the optimizer sums
    them across workers, which gives the gradient of the mean over the global batch.
    """
    import keras
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def distribute(arrays, batch_size, shuffle):
        dataset = tf.data.Dataset.from_tensor_slices(arrays)
        if shuffle:
            dataset = dataset.shuffle(len(arrays[0]), seed=0 if args.seed is None else args.seed)
        return strategy.experimental_distribute_dataset(dataset.batch(batch_size).with_options(options))

    train_ds, val_ds = distribute(train, args.batch_size, True), distribute(validation, EVAL_BATCH, False)
    summed_loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    with strategy.scope():  # loss sum, correct answers, images seen: summed over every replica when read
        totals = tf.Variable(
            tf.zeros(3),
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM,
        )

    def step(x, y, training):
        with tf.GradientTape() as tape:
            probabilities = model(x, training=training)
            loss = summed_loss(y, probabilities)
            scaled = loss / args.batch_size  # the global batch: the optimizer sums the workers' gradients
        if training:
            grads = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(probabilities, axis=1, output_type=tf.int32) == y, tf.float32))
        totals.assign_add(tf.stack([loss, correct, tf.cast(tf.shape(y)[0], tf.float32)]))

    @tf.function
    def run_epoch(dataset, training: bool):
        for x, y in dataset:
            strategy.run(step, args=(x, y), kwargs={"training": training})  # training stays a Python bool

    def measure(dataset, training: bool):
        totals.assign(tf.zeros(3))
        run_epoch(dataset, training)
        return totals.read_value().numpy()  # one exchange between the workers per epoch

    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for epoch in range(args.epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        loss, correct, seen = measure(train_ds, training=True)
        val_loss, val_correct, val_seen = measure(val_ds, training=False)
        logs = {"loss": loss / seen, "accuracy": correct / seen, "val_loss": val_loss / val_seen}
        logs["val_accuracy"] = val_correct / val_seen
        for key, value in logs.items():
            history[key].append(float(value))
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        print(f"Epoch {epoch + 1}/{args.epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)

    def evaluate(x, y):
        loss, correct, seen = measure(distribute((x, y), EVAL_BATCH, False), training=False)
        return float(loss / seen), float(correct / seen)

    return history, evaluate


def make_callbacks(run, epoch_seconds: list[float]) -> list:
    """Keras callbacks: time every epoch, and log validation loss and accuracy to the run."""
    import keras

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self._t0)
            if run is not None:
                run.log("Loss", float(logs["val_loss"]))
                run.log("Accuracy", float(logs["val_accuracy"]))

    return [EpochEnd()]


def describe_devices(backend: str) -> None:
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
        print(f"Training with Keras on {backend}, on GPU: {', '.join(gpus)}")
    else:
        print(f"Training with Keras on {backend}; no GPU found: training on the CPU.")


def log_history_figure(run, history: dict, epochs: int) -> None:
    """The original walkthrough's accuracy-vs-loss figure, logged as a run image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(6, 3))
    plt.title(f"MNIST with Keras MLP ({epochs} epochs)", fontsize=14)
    plt.plot(history["val_accuracy"], "b-", label="Accuracy (validation)", lw=4, alpha=0.5)
    plt.plot(history["val_loss"], "r--", label="Loss (validation)", lw=4, alpha=0.5)
    plt.legend(fontsize=12)
    plt.grid(True)
    run.log_image("Accuracy vs Loss", plot=plt)
    plt.close()


def save_model(model, metadata: dict, output_dir: Path) -> Path:
    """Save to OUTPUT_DIR/model atomically: a failed save leaves no half-written folder."""
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


if __name__ == "__main__":
    sys.exit(main())
