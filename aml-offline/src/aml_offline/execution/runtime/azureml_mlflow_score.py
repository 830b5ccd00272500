"""The scoring script of an MLflow model deployed without code (what Azure ML calls a no-code deployment).

Azure ML generates a scoring script for an MLflow model deployed to an online endpoint without
``code_configuration``; this is the local workspace's, run by the same inference server
(``azureml-inference-server-http``) as any other deployment.  ``init()`` loads the model with MLflow's own
``mlflow.pyfunc.load_model`` from ``$AZUREML_MODEL_DIR/$MLFLOW_MODEL_FOLDER`` (the variables Azure sets), and
``run()`` takes Azure's request for MLflow deployments::

    {"input_data": {"columns": ["age", ...], "index": [0], "data": [[...]]}}    a DataFrame (pandas' split orient)
    {"input_data": [[...], [...]]}                                              a tensor (an array)
    {"input_data": {"tokens": [...], "mask": [...]}}                            named tensors
    {"input_data": ..., "params": {...}}                                        params for predict, if it takes them

and answers the predictions as JSON: a list (a DataFrame answers a list of records).  A body without
``input_data`` is refused by the inference server with a 400, as on Azure, because ``run`` declares its inputs
with inference-schema's decorators; a request the model refuses is a 500 with the reason in the log.

Started by the inference server from the deployment's folder: standard library, MLflow, NumPy, pandas and
inference-schema only, nothing of this project.
"""

from __future__ import annotations

import inspect
import json
import os
from io import StringIO

import mlflow.pyfunc
import numpy as np
import pandas as pd
from inference_schema.parameter_types.abstract_parameter_type import AbstractParameterType
from inference_schema.schema_decorators import input_schema

model = None


class AsSent(AbstractParameterType):
    """A parameter passed to ``run`` as the request's JSON has it (``run`` converts it)."""

    def __init__(self):
        super().__init__(None)

    def deserialize_input(self, input_data):
        return input_data

    def input_to_swagger(self):
        return {"type": "object", "example": {}}


def init():
    global model
    folder = os.path.join(os.environ["AZUREML_MODEL_DIR"], os.environ.get("MLFLOW_MODEL_FOLDER", ""))
    model = mlflow.pyfunc.load_model(folder)
    flavors = ", ".join(sorted(model.metadata.flavors))
    print(f"init(): loaded the MLflow model in {folder} (flavors: {flavors}) with mlflow.pyfunc.load_model")


def _column_names(schema) -> list[str] | None:
    """The column names of a model whose signature names its columns, else None."""
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    return schema.input_names()


def model_input(input_data, schema=None):
    """The request's ``input_data`` as the model takes it: a DataFrame, an array, or a dict of arrays."""
    if isinstance(input_data, str):
        try:
            input_data = json.loads(input_data)
        except ValueError:
            return input_data
    if isinstance(input_data, dict) and "input_data" in input_data:
        input_data = input_data["input_data"]
    if isinstance(input_data, list):
        rows = np.asarray(input_data)
        columns = _column_names(schema)
        # rows of values for a model whose signature names columns: the columns in the signature's order
        if columns and rows.ndim == 2 and rows.shape[1] == len(columns):
            return pd.DataFrame(input_data, columns=columns)
        return rows
    if isinstance(input_data, dict) and "columns" in input_data and "data" in input_data:
        return pd.read_json(StringIO(json.dumps(input_data)), orient="split", dtype=False)
    if isinstance(input_data, dict):
        return {name: np.asarray(value) for name, value in input_data.items()}
    return input_data


def jsonable(result):
    """Predictions as JSON values: arrays and Series as lists, a DataFrame as a list of records."""
    if isinstance(result, pd.DataFrame):
        return json.loads(result.to_json(orient="records"))
    if isinstance(result, (pd.Series, np.ndarray)):
        return result.tolist()
    if isinstance(result, dict):
        return {key: jsonable(value) for key, value in result.items()}
    if isinstance(result, (list, tuple)):
        return [jsonable(value) for value in result]
    if isinstance(result, np.generic):
        return result.item()
    return result


@input_schema("input_data", AsSent())
@input_schema("params", AsSent(), optional=True)
def run(input_data, params=None):
    data = model_input(input_data, model.metadata.get_input_schema())
    if params and "params" in inspect.signature(model.predict).parameters:
        return jsonable(model.predict(data, params=params))
    return jsonable(model.predict(data))
