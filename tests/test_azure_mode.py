"""Azure mode's prerequisites, checked without a subscription: what the environment must hold for the cells to
run on an Azure ML compute instance exactly as they run offline."""

from __future__ import annotations

import importlib.util


def test_mlflow_has_azures_tracking_scheme_and_the_local_workspaces():
    """On Azure the v2 track points MLflow at the workspace's ``azureml://`` URI; azureml-mlflow registers that
    scheme with MLflow (no network needed to see it). Offline the same call gets ``aml-offline://``."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    _tracking_store_registry.register_entrypoints()
    schemes = set(_tracking_store_registry._registry)
    assert {"azureml", "aml-offline"} <= schemes, sorted(schemes)


def test_sdk_v1_pipelines_are_installed():
    """azureml-pipeline installs beside the lock (importlib-metadata 8.2.0 for azureml-automl-core)."""
    for module in ("azureml.pipeline.core", "azureml.pipeline.steps"):
        assert importlib.util.find_spec(module) is not None, module
