"""Train a Keras multi-layer perceptron on MNIST, locally or on an Azure ML cluster.

The same file runs on its own (``python scripts/keras_mnist.py --help``), in the
walkthrough's local workspace, and unchanged on an Azure ML compute cluster.
Inside a submitted run it logs metrics and a figure through
``azureml.core.Run.get_context()``; on a plain local run it stays quiet.

Sections, keras-io style: Setup, Prepare the data, Build the model, Train,
Evaluate, Save.
"""

from __future__ import annotations

# --- Setup --------------------------------------------------------------------
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of logs

from run_context import get_run, load_training_data  # noqa: E402  (sits beside this file)

N_CLASSES = 10
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_training_data(args.data_folder)

    import keras  # imported after the data checks so a bad folder fails fast

    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    run = get_run()
    describe_devices()
    print(f"Data: {data.source} from {data.folder}")

    # --- Prepare the data -----------------------------------------------------
    x_train = data.x_train.reshape(-1, INPUT_SHAPE[0]).astype("float32") / 255.0
    x_test = data.x_test.reshape(-1, INPUT_SHAPE[0]).astype("float32") / 255.0
    y_train = data.y_train.astype("int32")
    y_test = data.y_test.astype("int32")
    print(f"{len(x_train)} training and {len(x_test)} test images")

    # --- Build the model --------------------------------------------------------
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            keras.layers.Dense(args.first_layer_neurons, activation="relu"),
            keras.layers.Dense(args.second_layer_neurons, activation="relu"),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ],
        name="mnist_mlp",
    )
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=args.learning_rate),
        loss="sparse_categorical_crossentropy",  # integer labels: no one-hot copy of the data
        metrics=["accuracy"],
        # Run many optimiser steps per call into the compiled graph instead of one:
        # a small MLP spends most of its time on per-step overhead otherwise.
        steps_per_execution=min(steps_per_epoch, 100),
        jit_compile=True,
    )
    model.summary(print_fn=print)

    # --- Train -------------------------------------------------------------------
    if run is not None:
        run.log("Batch size", args.batch_size)
        run.log("Learning rate", args.learning_rate)
    epoch_seconds: list[float] = []
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        callbacks=make_callbacks(run, epoch_seconds),
        verbose=2,
    )

    # --- Evaluate ------------------------------------------------------------------
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0, batch_size=1000)
    print(f"Final test loss: {test_loss:.4f}")
    print(f"Final test accuracy: {test_accuracy:.4f}")
    if len(epoch_seconds) > 1:
        steady = sorted(epoch_seconds[1:])[len(epoch_seconds[1:]) // 2]
        print(f"Seconds per epoch (median after the first): {steady:.2f}")
    if run is not None:
        run.log("Final test loss", float(test_loss))
        run.log("Final test accuracy", float(test_accuracy))
        log_history_figure(run, history.history, args.epochs)

    # --- Save ------------------------------------------------------------------------
    metadata = {
        "input_shape": list(INPUT_SHAPE),
        "classes": list(range(N_CLASSES)),
        "input_scaling": "pixel values divided by 255",
        "data_source": data.source,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("data_folder", "output_dir")},
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "numpy": __import__("numpy").__version__,
        },
    }
    model_dir = save_model(model, metadata, Path(args.output_dir))
    print(f"Model saved to {model_dir}")
    return 0


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


def describe_devices() -> None:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
            print(f"Training on GPU: {', '.join(names)}")
            return
    print("No GPU found: training on the CPU.")


def log_history_figure(run, history: dict, epochs: int) -> None:
    """The original walkthrough's accuracy-vs-loss figure, logged as a run image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(6, 3))
    plt.title(f"MNIST with Keras MLP ({epochs} epochs)", fontsize=14)
    plt.plot(history["val_accuracy"], "b-", label="Accuracy", lw=4, alpha=0.5)
    plt.plot(history["val_loss"], "r--", label="Loss", lw=4, alpha=0.5)
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
