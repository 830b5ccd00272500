"""`make run`: train the model on MNIST with the training script and say where it is."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import data
from helpers._scripts import PROJECT_ROOT, SCRIPTS_DIR


def main() -> int:
    files = data.fetch_mnist()
    out = PROJECT_ROOT / "build" / "outputs"
    cmd = [
        sys.executable,
        str(SCRIPTS_DIR / "keras_mnist.py"),
        "--data-folder",
        str(files.folder),
        "--output-dir",
        str(out),
    ]
    if subprocess.call(cmd) != 0:
        return 1
    meta = json.loads((out / "model" / "metadata.json").read_text())
    print(
        f"\nData source:   {files.source}\nModel:         {out / 'model'}\nTest accuracy: {meta['test_accuracy']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
