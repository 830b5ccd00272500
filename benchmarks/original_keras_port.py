"""A straight Keras 3 port of the original walkthrough's training, the benchmark's baseline.

The original sample's ``keras_mnist.py`` (standalone Keras 2 on TensorFlow) built
784-300-100-10 with ReLU and softmax, one-hot encoded the labels, compiled with
RMSprop(lr=0.001) and categorical cross-entropy and called ``model.fit`` with
batch 50 and the test set as validation data. This keeps all of that, with
Keras 3's default compile options on TensorFlow, and only adds epoch timing.

    python benchmarks/original_keras_port.py --data-folder DIR --epochs 5 --output-json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"  # the original ran on TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from mnist_idx import load_mnist  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-folder", required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output-json", required=True)
    args = parser.parse_args()

    import keras

    data = load_mnist(args.data_folder)
    x_train = data.x_train.reshape(-1, 784).astype("float32") / 255.0
    x_test = data.x_test.reshape(-1, 784).astype("float32") / 255.0
    y_train = keras.utils.to_categorical(data.y_train, 10)
    y_test = keras.utils.to_categorical(data.y_test, 10)

    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(learning_rate=0.001), metrics=["accuracy"]
    )

    epoch_seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)

    model.fit(
        x_train, y_train, batch_size=50, epochs=args.epochs, validation_data=(x_test, y_test), callbacks=[Timer()],
        verbose=2,
    )  # fmt: skip
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    Path(args.output_json).write_text(json.dumps({"epoch_seconds": epoch_seconds, "test_accuracy": float(accuracy)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
