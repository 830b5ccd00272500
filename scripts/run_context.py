"""What the training scripts share about the run and the data they train on (sits beside them).

Only ``scripts/`` is uploaded to a cluster, so this lives here, like ``mnist_idx.py``.
"""

from __future__ import annotations

import sys

from mnist_idx import IdxError, MissingDataError, MnistArrays, load_mnist


def get_run():
    """The Azure ML run this script is part of, or None on a plain local run."""
    try:
        from azureml.core import Run
    except ImportError:
        return None
    run = Run.get_context()
    # Outside a submitted run azureml-core returns an offline run that prints every call.
    return None if run.id.startswith("OfflineRun") else run


def load_training_data(data_folder: str) -> MnistArrays:
    """``load_mnist`` for a script: a missing or broken file ends it with one line on stderr and exit code 2."""
    try:
        return load_mnist(data_folder)
    except (MissingDataError, IdxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
