"""Train a Keras multi-layer perceptron on MNIST and report to the Azure ML run it was submitted as.

keras-io's shape: Setup, Prepare the data, Build the model, Train, Evaluate, Save. Runs by
itself, in the local workspace and on an Azure ML cluster, unchanged. ``Loss`` and
``Accuracy`` are measured after every epoch on a validation split (the same 10% of the
training images every run); the test set is used once, at the end. Beside it:
``backend_choice.py`` (which Keras backend, and why), ``on_device_steps.py`` (speed),
``multi_worker.py`` (only when TF_CONFIG names several workers), ``run_context.py``.
"""

import argparse
import statistics
import time

import matplotlib
import matplotlib.pyplot as plt
from arg_types import fraction, positive_float, positive_int
from backend_choice import BACKENDS, choose_backend, describe_devices
from multi_worker import Cluster
from on_device_steps import on_device_steps
from run_context import MlflowRun, OfflineRun, load_training_data, save_model, split_validation

try:
    from azureml.core import Run  # SDK v1: how a script reports to its run
except ImportError:  # no azureml-core (an SDK v2 job, or a laptop): nothing to report to
    Run = OfflineRun

# --- Setup --------------------------------------------------------------------------------------
parser = argparse.ArgumentParser(
    description="Train a 2-hidden-layer Keras MLP on MNIST and save it under OUTPUT_DIR/model.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--data-folder", required=True, help="folder holding the four MNIST .gz files (searched)")
parser.add_argument("--batch-size", type=positive_int, default=50, help="mini-batch size")
parser.add_argument("--first-layer-neurons", type=positive_int, default=300, help="units in hidden layer 1")
parser.add_argument("--second-layer-neurons", type=positive_int, default=100, help="units in hidden layer 2")
parser.add_argument("--learning-rate", type=positive_float, default=0.001, help="RMSprop learning rate")
parser.add_argument("--epochs", type=positive_int, default=20, help="passes over the training set")
parser.add_argument("--output-dir", default="./outputs", help="the model is saved in OUTPUT_DIR/model")
parser.add_argument("--seed", type=int, default=None, help="random seed for reproducible runs")
parser.add_argument("--validation-fraction", type=fraction, default=0.1, help="training images held out")
parser.add_argument("--backend", choices=BACKENDS, default="auto", help="Keras backend (see backend_choice.py)")
parser.add_argument("--host-loop", action="store_true", help="on JAX, dispatch each step from Python (benchmarks)")
parser.add_argument("--log-with", choices=["azureml", "mlflow"], default="azureml", help="SDK v1, or v2's MLflow")
args = parser.parse_args()

cluster = Cluster.from_env()  # several workers when Azure ML's TF_CONFIG names them (multi_worker.py)
backend = choose_backend(args.backend, cluster.workers)  # JAX for one process, TensorFlow for several workers
data = load_training_data(args.data_folder)  # the four MNIST files; a missing one is a one-line error

import keras  # noqa: E402  (after the backend is chosen: Keras reads the choice once)

cluster.join()  # several workers: TensorFlow's strategy starts, before any other TensorFlow work
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)
print(describe_devices(backend))
print(f"Data: {data.source} from {data.folder}")

# The run this script reports to: the one it was submitted as
if args.log_with == "mlflow":  # an SDK v2 job: MLflow takes the same run.log calls (run_context.py)
    run = MlflowRun.get_context()
else:
    run = Run.get_context()
if run.id.startswith("OfflineRun") or not cluster.is_chief:  # started by hand, or not the chief: log nothing
    run = OfflineRun()

# --- Prepare the data ---------------------------------------------------------------------------
# Pixels stay bytes (0-255) until the model divides them by 255: each epoch copies 4x less data
x_all, y_all = data.x_train.reshape(-1, 784), data.y_train.astype("int32")
x_test, y_test = data.x_test.reshape(-1, 784), data.y_test.astype("int32")
(x_train, y_train), (x_val, y_val) = split_validation(x_all, y_all, args.validation_fraction)
print(f"{len(x_train)} training, {len(x_val)} validation (held out) and {len(x_test)} test images")

# --- Build the model ----------------------------------------------------------------------------
steps_per_epoch = -(-len(x_train) // args.batch_size)
with cluster.scope():
    model = keras.Sequential([  # what is saved and served: pixels divided by 255 in, class probabilities out
        keras.Input(shape=(784,)),
        keras.layers.Dense(args.first_layer_neurons, activation="relu"),
        keras.layers.Dense(args.second_layer_neurons, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], name="mnist_mlp")  # fmt: skip
    # ... trained with the division in front (the same layers: training it trains the model)
    trainer = keras.Sequential([keras.Input(shape=(784,), dtype="uint8"), keras.layers.Rescaling(1 / 255), model])
    trainer.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=args.learning_rate),
        loss="sparse_categorical_crossentropy",  # integer labels: no one-hot copy
        metrics=["accuracy"],
        steps_per_execution=steps_per_epoch,  # speed: a whole epoch of steps per call,
        jit_compile=True,  # compiled by XLA into one program
    )
if not args.host_loop and on_device_steps(trainer):  # on JAX: those steps run in one jax.lax.scan
    print(f"Each epoch's {steps_per_epoch} steps run on the device in one compiled call (jax.lax.scan)")
cluster.distribute(trainer, args.seed)  # several workers: fit and evaluate run on all of them (multi_worker.py)
model.summary()

# --- Train, logging to the run after every epoch ------------------------------------------------
run.log("Batch size", args.batch_size)
run.log("Learning rate", args.learning_rate)
if args.log_with == "mlflow":  # MLflow keeps settings as parameters (v2's sweep compares trials by them)
    run.log_params({k: v for k, v in vars(args).items() if k not in ("data_folder", "output_dir", "log_with")})
epoch_seconds = []


class LogRunMetrics(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        epoch_seconds.append(time.perf_counter() - self.start)
        run.log("Loss", float(logs["val_loss"]))  # each call adds a value: the metric becomes a list
        run.log("Accuracy", float(logs["val_accuracy"]))


history = trainer.fit(
    x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
    validation_data=(x_val, y_val), validation_batch_size=1000,  # no weights change: bigger is faster
    callbacks=[LogRunMetrics()],
).history  # fmt: skip

# --- Evaluate: the test set, once ---------------------------------------------------------------
test_loss, test_accuracy = trainer.evaluate(x_test, y_test, batch_size=1000, verbose=0)
print(f"Final validation accuracy: {history['val_accuracy'][-1]:.4f}")
print(f"Final test loss: {test_loss:.4f}")
print(f"Final test accuracy: {test_accuracy:.4f}")
if len(epoch_seconds) > 1:
    print(f"Seconds per epoch (median after the first): {statistics.median(epoch_seconds[1:]):.2f}")
run.log("Final test loss", float(test_loss))
run.log("Final test accuracy", float(test_accuracy))

matplotlib.use("Agg")  # the figure is saved to the run, not shown
plt.figure(figsize=(6, 3))
plt.title(f"MNIST with Keras MLP ({args.epochs} epochs)", fontsize=14)
plt.plot(history["val_accuracy"], "b-", label="Accuracy (validation)", lw=4, alpha=0.5)
plt.plot(history["val_loss"], "r--", label="Loss (validation)", lw=4, alpha=0.5)
plt.legend(fontsize=12)
plt.grid(True)
run.log_image("Accuracy vs Loss", plot=plt)

# --- Save: files under ./outputs are uploaded to the run ----------------------------------------
if cluster.is_chief:
    metadata = {
        "data_source": data.source,
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("data_folder", "output_dir")},
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "validation_accuracy": float(history["val_accuracy"][-1]), "validation_images": len(x_val),
        "training": {"workers": cluster.workers, "epoch_seconds": [round(t, 4) for t in epoch_seconds]},
    }  # fmt: skip
    print(f"Model saved to {save_model(model, args.output_dir, metadata)}")
else:
    print(f"Worker {cluster.index} is not the chief: worker 0 logs the metrics and saves the model.")
