"""The training script on its own: flags, errors, a short real training run, the saved model, and the quote of
its lines that notebook 03 shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import data

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "scripts" / "keras_mnist.py"


def run_script(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def test_help_lists_the_original_flags():
    result = run_script("--help")
    assert result.returncode == 0
    for flag in (
        "--data-folder",
        "--batch-size",
        "--first-layer-neurons",
        "--second-layer-neurons",
        "--learning-rate",
        "--epochs",
        "--output-dir",
        "--seed",
        "--validation-fraction",  # and the walkthrough's own: the notebooks, tests and benchmarks pass these
        "--backend",
        "--host-loop",
        "--log-with",
    ):
        assert flag in result.stdout


def test_the_script_a_student_reads_stays_short_and_shows_how_it_reports():
    """The original article's length and shape; the speed and multi-worker paths live in modules beside it."""
    text = SCRIPT.read_text()
    assert len(text.splitlines()) <= 160, "keep keras_mnist.py the article's length: move plumbing beside it"
    sections = ["# --- Setup", "# --- Prepare the data", "# --- Build the model", "# --- Train", "# --- Evaluate"]
    positions = [text.find(section) for section in [*sections, "# --- Save"]]
    assert -1 not in positions and positions == sorted(positions), "keras-io's sections, in order"
    for line in ("from azureml.core import Run", "run = Run.get_context()", 'run.log("Accuracy"', 'run.log("Loss"'):
        assert line in text


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--batch-size", "0"),
        ("--learning-rate", "-1"),
        ("--epochs", "two"),
        ("--learning-rate", "nan"),
    ],
)
def test_bad_flag_values_are_argparse_errors(flag, value, tmp_path):
    result = run_script("--data-folder", str(tmp_path), flag, value)
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr and "Traceback" not in result.stderr


def test_missing_folder_is_a_clear_error(tmp_path):
    out = tmp_path / "outputs"
    result = run_script("--data-folder", str(tmp_path / "nowhere"), "--output-dir", str(out))
    assert result.returncode == 2
    assert "nowhere does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_file_names_it(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    result = run_script("--data-folder", str(tmp_path))
    assert result.returncode == 2
    assert "t10k-labels-idx1-ubyte.gz" in result.stderr and "Traceback" not in result.stderr


def test_trains_and_saves_a_loadable_model(tmp_path):
    sample = data.build_offline_sample(tmp_path / "cache" / "sample")
    nested = tmp_path / "mount" / "a" / "b"
    nested.parent.mkdir(parents=True)
    sample.folder.rename(nested)  # a mounted dataset nests the files
    out = tmp_path / "outputs"
    result = run_script(
        "--data-folder",
        str(tmp_path / "mount"),
        "--epochs",
        "2",
        "--seed",
        "1",
        "--output-dir",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Final test accuracy") == 1 and "3600 training, 400 validation" in result.stdout
    assert "Attempted to log" not in result.stdout, "a plain local run stays quiet"
    model_dir = out / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == ["metadata.json", "model.keras"]
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["input_shape"] == [784] and meta["classes"] == list(range(10))
    assert meta["data_source"] == data.OFFLINE_SAMPLE
    assert meta["test_accuracy"] > 0.8 and meta["validation_accuracy"] > 0.8 and meta["validation_images"] == 400
    assert set(meta["versions"]) >= {"python", "keras", "backend"}

    import keras
    import numpy as np

    from helpers._scripts import mnist_idx

    model = keras.models.load_model(model_dir / "model.keras", safe_mode=True)
    arrays = mnist_idx.load_mnist(nested)
    x = arrays.x_test[:200].reshape(-1, 784).astype("float32") / 255
    accuracy = float(np.mean(model.predict(x, verbose=0).argmax(1) == arrays.y_test[:200]))
    assert abs(accuracy - meta["test_accuracy"]) < 0.1


def test_validation_split_is_held_out_and_the_same_every_run():
    """Per-epoch numbers come from held-out training images, the same ones every run, never from the test set."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("run_context_module", SCRIPT.parent / "run_context.py")
    sys.path.insert(0, str(SCRIPT.parent))  # it imports mnist_idx, beside it
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    x = np.arange(1000).reshape(-1, 1)
    y = np.repeat(np.arange(10), 100)  # sorted by digit, as the offline sample's training images are
    (x_train, y_train), (x_val, y_val) = module.split_validation(x, y, 0.1)
    assert len(x_val) == 100 and len(x_train) == 900
    assert not set(x_val.ravel()) & set(x_train.ravel()), "validation images are not trained on"
    assert len(set(y_val)) == 10, "a fixed random draw, not the last (all nines) images"
    (_, _), (x_again, _) = module.split_validation(x, y, 0.1)
    assert np.array_equal(x_val, x_again), "every run holds out the same images"


ON_DEVICE_CHECK = """
import json, sys
import numpy as np
import keras
sys.path.insert(0, {scripts!r})
from on_device_steps import on_device_steps

def train(on_device):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), metrics=["accuracy"], steps_per_execution=4,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    used = on_device_steps(model) if on_device else False
    rng = np.random.default_rng(0)
    x, y = rng.random((22, 8), dtype=np.float32), rng.integers(0, 3, 22)
    # 22 images in batches of 3: 8 batches a epoch, the last one of 1 image (a partial batch)
    history = model.fit(x, y, batch_size=3, epochs=3, shuffle=False, verbose=0).history
    return used, history, [w.tolist() for w in model.get_weights()]

used_scan, history_scan, weights_scan = train(True)
used_loop, history_loop, weights_loop = train(False)
print(json.dumps(dict(used=used_scan, history=[history_scan, history_loop], weights=[weights_scan, weights_loop])))
"""


def test_on_device_steps_train_exactly_as_keras_own_loop(tmp_path):
    """scripts/on_device_steps.py runs each call's steps in one jax.lax.scan; the result is Keras's own: the same
    weights and the same per-epoch logs, a partial last batch included."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    code = ON_DEVICE_CHECK.format(scripts=str(SCRIPT.parent))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["used"] is True
    scan, loop = result["history"]
    assert scan.keys() == loop.keys() and len(scan["loss"]) == 3
    for name in scan:
        assert scan[name] == pytest.approx(loop[name], rel=1e-5), name
    for mine, theirs in zip(*result["weights"], strict=True):
        assert np.allclose(mine, theirs, rtol=1e-5, atol=1e-6)


# --- The quote in notebook 03 -------------------------------------------------------------------------------------
# Notebook 03 shows the lines of the script that report to the run, in a markdown cell's fenced ```python block whose
# first line is a comment naming the file (``# scripts/keras_mnist.py``; the fence's info string may name it instead).
# A line of ``...`` (or ``# ...``) stands for lines left out. Every other line must be in the script, in the same
# order: the same text, or the same code with the script's trailing comment left off.

FENCE = re.compile(r"^```(python[^\n]*)\n(.*?)^```", re.M | re.S)


def script_quote(notebook: Path, script: str = "scripts/keras_mnist.py") -> list[str] | None:
    """The lines of the first ```python block in a markdown cell of ``notebook`` that quotes ``script``, or None."""
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for info, body in FENCE.findall(source):
            lines = body.splitlines()
            first = lines[0].strip() if lines else ""
            if script in info:
                return lines
            if first.startswith("#") and script in first:
                return lines[1:]
    return None


def check_script_quote(quote: list[str], script_text: str, script: str = "scripts/keras_mnist.py") -> None:
    """Assert every quoted line is a line of the script, in the order quoted; the message says which is not."""
    script_lines = [line.strip() for line in script_text.splitlines()]
    at = 0
    for quoted in (line.strip() for line in quote):
        if not quoted or quoted in ("...", "# ..."):
            continue
        for i in range(at, len(script_lines)):
            if quoted in (script_lines[i], script_lines[i].split("  # ")[0].rstrip()):
                at = i + 1
                break
        else:
            where = "is not in it" if not any(quoted in line for line in script_lines) else "is out of order"
            raise AssertionError(f"the quote of {script} is out of step: {quoted!r} {where}. Copy the lines again.")


def test_notebook_03_quotes_the_script_as_it_is():
    notebook = PROJECT / "notebooks" / "03-train.ipynb"
    quote = script_quote(notebook)
    if quote is None:
        pytest.skip(f"{notebook.name} has no ```python block quoting scripts/keras_mnist.py yet")
    assert any("run.log(" in line for line in quote), "the quote shows how the script logs to its run"
    check_script_quote(quote, SCRIPT.read_text())


def _notebook(tmp_path: Path, markdown: str) -> Path:
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": ["print('not markdown')"],
            "outputs": [],
            "execution_count": None,
        },
        {"cell_type": "markdown", "metadata": {}, "source": markdown.splitlines(keepends=True)},
    ]
    path = tmp_path / "quote.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


SCRIPT_TEXT = """\
from azureml.core import Run

run = Run.get_context()
for epoch in range(3):
    run.log("Loss", 0.1)  # once per epoch
run.log("Final test accuracy", 0.9)
"""


@pytest.mark.parametrize(
    "marker", ["```python\n# scripts/keras_mnist.py (excerpt)\n", "```python scripts/keras_mnist.py\n"]
)
def test_the_quote_checker_finds_a_quote_and_passes_it_when_in_step(tmp_path, marker):
    quote = 'run = Run.get_context()\n...\n    run.log("Loss", 0.1)\nrun.log("Final test accuracy", 0.9)\n'
    notebook = _notebook(tmp_path, f"The lines that report to the run:\n\n{marker}{quote}```\n")
    lines = script_quote(notebook)
    assert lines is not None and lines[0] == "run = Run.get_context()"
    check_script_quote(lines, SCRIPT_TEXT)


@pytest.mark.parametrize(
    "quote,why",
    [
        ('run.log("Accuracy", 0.1)', "is not in it"),  # a line the script does not have (renamed metric)
        ('run.log("Final test accuracy", 0.9)\nrun = Run.get_context()', "is out of order"),
        ('run.log("Loss", 0.1)  # once an epoch', "is not in it"),  # a changed comment is a changed line
    ],
)
def test_the_quote_checker_fails_when_the_quote_is_out_of_step(tmp_path, quote, why):
    notebook = _notebook(tmp_path, f"```python\n# scripts/keras_mnist.py\n{quote}\n```\n")
    with pytest.raises(AssertionError, match=why):
        check_script_quote(script_quote(notebook), SCRIPT_TEXT)


def test_the_quote_checker_ignores_other_blocks(tmp_path):
    notebook = _notebook(
        tmp_path, "```python\nrun = Run.get_context()\n```\n\n```bash\n# scripts/keras_mnist.py\n```\n"
    )
    assert script_quote(notebook) is None
