"""Score handwritten digits with the registered Keras model: Azure ML's ``init()`` / ``run(raw_data)`` contract.

Azure ML's inference server (``azureml-inference-server-http``, the ``azmlinfsrv``
command) imports this file, calls ``init()`` once when a worker starts and
``run(raw_data)`` for every POST to ``/score``, with the request body as a string.

Request:   {"data": [[784 pixel values between 0 and 1], ...], "probabilities": false}
           (each row is one 28 x 28 image, flattened row by row, divided by 255 as in training)
Response:  {"predictions": [7, 2, ...]}, plus "probabilities": [[10 values], ...] when asked

Bad input (not JSON, JSON nested too deeply, no "data", rows of the wrong length, values
that are not numbers, too large or outside 0..1, more than MAX_ROWS rows) gets a 400 or 413 answer whose
"error" says what was wrong, never a server error.

Try it without a server:  python scripts/score.py --model-dir DIR  (scores three blank images)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

PIXELS = 784
MAX_ROWS = int(os.environ.get("SCORE_MAX_ROWS", "1000"))
model = None


def find_model_file(model_dir: str | os.PathLike) -> Path:
    """The one ``model.keras`` below ``model_dir`` (Azure puts the registered folder inside it)."""
    found = sorted(Path(model_dir).rglob("model.keras"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"Expected one model.keras below {model_dir}, found {len(found)}: register the training run's "
            "outputs/model folder as the model."
        )
    return found[0]


def init():
    """Load the model once per worker, from the folder Azure ML gives in AZUREML_MODEL_DIR."""
    global model
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    path = find_model_file(os.environ.get("AZUREML_MODEL_DIR", "."))
    model = keras.saving.load_model(path, compile=False)
    model.predict_on_batch(np.zeros((1, PIXELS), dtype="float32"))  # build the graph before the first request
    print(f"init(): loaded {path}", flush=True)  # goes to the service log (get_logs())


class InputError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse(raw_data) -> tuple[np.ndarray, bool]:
    """The request as a (rows, 784) float32 array and whether probabilities were asked for."""
    if isinstance(raw_data, bytes | bytearray):
        raw_data = raw_data.decode("utf-8", errors="replace")
    try:
        request = json.loads(raw_data) if isinstance(raw_data, str) else raw_data
    except json.JSONDecodeError as exc:
        raise InputError(f"The body is not valid JSON ({exc.msg} at position {exc.pos}).") from None
    except RecursionError:
        raise InputError(
            "The body's JSON is nested too deeply: send a list of images, each a list of numbers."
        ) from None
    except ValueError as exc:  # an integer longer than Python converts (4,300 digits)
        raise InputError(f"The body holds a number this service cannot read ({exc}).") from None
    if not isinstance(request, dict) or "data" not in request:
        raise InputError('Send a JSON object with "data": a list of images, each a list of 784 pixel values.')
    rows = request["data"]
    if not isinstance(rows, list) or not rows:
        raise InputError('"data" must be a non-empty list of images, each a list of 784 pixel values.')
    if len(rows) > MAX_ROWS:
        raise InputError(f"{len(rows)} images in one request; send at most {MAX_ROWS} at a time.", status=413)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != PIXELS:
            size = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            raise InputError(f"Image {i} has {size}; each image must be a list of {PIXELS} pixel values (28 x 28).")
    if {type(v) for row in rows for v in row} - {int, float}:  # one quick pass; the slow one only names the culprit
        i, value = next((i, v) for i, row in enumerate(rows) for v in row if type(v) not in (int, float))
        raise InputError(f"Image {i} holds {json.dumps(value)}; pixel values must be numbers.")
    try:
        x = np.asarray(rows, dtype="float32")
    except OverflowError:  # an integer pixel with hundreds of digits
        raise InputError("Pixel values must be numbers between 0 and 1; one is an integer too large to read.") from None
    if not np.isfinite(x).all():
        raise InputError("Pixel values must be finite numbers between 0 and 1.")
    if x.min() < 0 or x.max() > 1:
        raise InputError(
            f"Pixel values must be between 0 and 1 (got {x.min():g} to {x.max():g}): divide 0-255 pixels by 255."
        )
    probabilities = request.get("probabilities", False)
    if not isinstance(probabilities, bool):
        raise InputError('"probabilities" must be true or false.')
    return x, probabilities


def predict(x: np.ndarray, probabilities: bool) -> dict:
    p = np.asarray(model.predict_on_batch(x))
    result = {"predictions": p.argmax(axis=1).tolist()}
    if probabilities:
        result["probabilities"] = np.round(p, 6).tolist()
    return result


def run(raw_data):
    """Predict the digits in one request; bad input gets a 4xx answer that says what to fix."""
    try:
        x, probabilities = parse(raw_data)
    except InputError as exc:
        return _error(str(exc), exc.status)
    return predict(x, probabilities)


def _error(message: str, status: int):
    try:
        from azureml_inference_server_http.api.aml_response import AMLResponse
    except ImportError:  # called outside the inference server (a plain Python session)
        return {"error": message, "status": status}
    return AMLResponse({"error": message}, status, json_str=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="folder holding the registered model (model.keras)")
    args = parser.parse_args()
    os.environ["AZUREML_MODEL_DIR"] = args.model_dir
    init()
    print(run(json.dumps({"data": [[0.0] * PIXELS] * 3, "probabilities": True})))
