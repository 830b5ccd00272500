"""Only azureml-core's not-found answers send the student back to an earlier notebook; other errors pass through."""

from __future__ import annotations

import pytest
from azureml.exceptions import (
    AuthenticationException,
    ComputeTargetException,
    ModelNotFoundException,
    UserErrorException,
    WebserviceException,
)

from helpers.prerequisites import MissingPrerequisite, is_not_found, made_by

# The messages azureml-core 1.61 raises (azureml/data/abstract_dataset.py, azureml/core/compute/compute.py,
# azureml/_model_management/_util.py populate_model_not_found_details, azureml/data/_dataset_rest_helper.py).
NOT_FOUND = [
    UserErrorException('Cannot find dataset registered with name "mnist-dataset" in the workspace.'),
    ComputeTargetException(
        "ComputeTargetNotFound: Compute Target with name gpu-cluster not found in provided workspace."
    ),
    WebserviceException("ModelNotFound: Model with name keras-mnist not found in provided workspace"),
    ModelNotFoundException("Model/Version keras-mnist/3 not found in workspace."),
]
OTHER = [
    UserErrorException("Request failed (401): The access token expired"),
    AuthenticationException("Could not retrieve user token. Please run 'az login'"),
    ComputeTargetException("Received bad response from Resource Provider:\nResponse Code: 403"),
    WebserviceException("Received bad response from Model Management Service:\nResponse Code: 503"),
    ConnectionError("Name or service not known"),
]


@pytest.mark.parametrize("exc", NOT_FOUND, ids=lambda e: type(e).__name__)
def test_not_found_names_the_notebook(exc):
    assert is_not_found(exc)
    with pytest.raises(MissingPrerequisite, match=r"Run 01-dataset.ipynb first") as caught:
        with made_by("01-dataset.ipynb"):
            raise exc
    assert caught.value.__cause__ is exc


@pytest.mark.parametrize("exc", OTHER, ids=lambda e: f"{type(e).__name__}-{str(e)[:20]}")
def test_other_errors_keep_their_own_message(exc):
    assert not is_not_found(exc)
    with pytest.raises(type(exc)) as caught:
        with made_by("01-dataset.ipynb"):
            raise exc
    assert caught.value is exc


def test_the_local_workspace_answers_not_found_the_same_way(ws):
    """The local twin's not-found answers must be recognised too, or local mode loses the hint."""
    from aml_offline import ComputeTarget, Dataset, Model

    for lookup in (
        lambda: Dataset.get_by_name(ws, name="mnist-dataset"),
        lambda: ComputeTarget(workspace=ws, name="gpu-cluster"),
        lambda: Model(ws, name="keras-mnist"),
    ):
        with pytest.raises(MissingPrerequisite, match="Run earlier.ipynb first"):
            with made_by("earlier.ipynb"):
                lookup()
