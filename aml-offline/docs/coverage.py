"""Write aml-offline/docs/coverage.md: every azureml-core class (SDK v1) and azure-ai-ml operations class
(SDK v2) the local workspace stands in for, and for each public method or attribute, whether the twin
implements it (moto's IMPLEMENTATION_COVERAGE.md is the model).  ``python aml-offline/docs/coverage.py --check`` fails
when the file is out of date (the tests run it).
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "coverage.md"


def pairs():
    from azureml.core import Dataset as AzDataset
    from azureml.core import Datastore as AzDatastore
    from azureml.core import Environment as AzEnvironment
    from azureml.core import Experiment as AzExperiment
    from azureml.core import Model as AzModel
    from azureml.core import Run as AzRun
    from azureml.core import Workspace as AzWorkspace
    from azureml.core.compute import AmlCompute as AzAmlCompute
    from azureml.core.compute import ComputeInstance as AzComputeInstance
    from azureml.core.compute import ComputeTarget as AzComputeTarget
    from azureml.core.webservice import Webservice as AzWebservice
    from azureml.data import FileDataset as AzFileDataset
    from azureml.data import TabularDataset as AzTabularDataset
    from azureml.data.azure_storage_datastore import AzureBlobDatastore as AzBlobDatastore
    from azureml.pipeline.core import Pipeline as AzPipeline
    from azureml.pipeline.core import PipelineEndpoint as AzPipelineEndpoint
    from azureml.pipeline.core import PipelineRun as AzPipelineRun
    from azureml.pipeline.core import PortDataReference as AzPortDataReference
    from azureml.pipeline.core import PublishedPipeline as AzPublishedPipeline
    from azureml.pipeline.core import Schedule as AzSchedule
    from azureml.pipeline.core import StepRun as AzStepRun
    from azureml.pipeline.steps import HyperDriveStepRun as AzHyperDriveStepRun
    from azureml.train.hyperdrive import HyperDriveRun as AzHyperDriveRun
    from azureml.widgets import RunDetails as AzRunDetails

    from aml_offline import facade
    from aml_offline.facade import pipelines
    from aml_offline.facade.datasets import FileDataset, TabularDataset
    from aml_offline.facade.datastores import Datastore
    from aml_offline.facade.environments import Environment
    from aml_offline.facade.runtime.azureml_local_run import LocalScriptRun

    return [
        ("azureml.core.Workspace", AzWorkspace, facade.Workspace),
        ("azureml.core.Experiment", AzExperiment, facade.Experiment),
        ("azureml.core.Run (from a notebook)", AzRun, facade.Run),
        ("azureml.core.Run (Run.get_context() inside a script)", AzRun, LocalScriptRun),
        ("azureml.train.hyperdrive.HyperDriveRun", AzHyperDriveRun, facade.HyperDriveRun),
        ("azureml.core.Model", AzModel, facade.Model),
        ("azureml.core.Webservice", AzWebservice, facade.Webservice),
        ("azureml.core.Dataset", AzDataset, facade.Dataset),
        ("azureml.data.FileDataset", AzFileDataset, FileDataset),
        ("azureml.data.TabularDataset", AzTabularDataset, TabularDataset),
        ("azureml.core.Datastore", AzDatastore, Datastore),
        ("azureml.data.AzureBlobDatastore (what Datastore.get returns)", AzBlobDatastore, Datastore),
        ("azureml.core.Environment", AzEnvironment, Environment),
        ("azureml.core.ComputeTarget", AzComputeTarget, facade.ComputeTarget),
        ("azureml.core.compute.AmlCompute", AzAmlCompute, facade.AmlCompute),
        ("azureml.core.compute.ComputeInstance", AzComputeInstance, facade.ComputeInstance),
        ("azureml.widgets.RunDetails", AzRunDetails, facade.RunDetails),
        ("azureml.pipeline.core.Pipeline", AzPipeline, pipelines.Pipeline),
        ("azureml.pipeline.core.PipelineRun", AzPipelineRun, pipelines.PipelineRun),
        ("azureml.pipeline.core.StepRun", AzStepRun, pipelines.StepRun),
        ("azureml.pipeline.steps.HyperDriveStepRun", AzHyperDriveStepRun, pipelines.HyperDriveStepRun),
        ("azureml.pipeline.core.PortDataReference (a step's output)", AzPortDataReference, pipelines.PortDataReference),
        ("azureml.pipeline.core.PublishedPipeline", AzPublishedPipeline, pipelines.PublishedPipeline),
        ("azureml.pipeline.core.Schedule", AzSchedule, pipelines.Schedule),
        ("azureml.pipeline.core.PipelineEndpoint", AzPipelineEndpoint, pipelines.PipelineEndpoint),
    ]


def pairs_v2():
    """SDK v2: ``MLClient`` and the operations it hands out (its entity classes stay azure-ai-ml's own)."""
    from azure.ai.ml import MLClient as AzMLClient
    from azure.ai.ml import operations as az

    from aml_offline.facade_v2 import assets, client, compute, endpoints, environments, jobs, pipelines

    return [
        ("azure.ai.ml.MLClient", AzMLClient, client.MLClient),
        ("MLClient.workspaces (WorkspaceOperations)", az.WorkspaceOperations, client.WorkspaceOperations),
        ("MLClient.data (DataOperations)", az.DataOperations, assets.DataOperations),
        ("MLClient.compute (ComputeOperations)", az.ComputeOperations, compute.ComputeOperations),
        ("MLClient.jobs (JobOperations)", az.JobOperations, jobs.JobOperations),
        ("MLClient.models (ModelOperations)", az.ModelOperations, assets.ModelOperations),
        ("MLClient.components (ComponentOperations)", az.ComponentOperations, pipelines.ComponentOperations),
        ("MLClient.environments (EnvironmentOperations)", az.EnvironmentOperations,
         environments.EnvironmentOperations),
        ("MLClient.online_endpoints (OnlineEndpointOperations)", az.OnlineEndpointOperations,
         endpoints.OnlineEndpointOperations),
        ("MLClient.online_deployments (OnlineDeploymentOperations)", az.OnlineDeploymentOperations,
         endpoints.OnlineDeploymentOperations),
    ]  # fmt: skip


def missing_v2() -> list[str]:
    """azure-ai-ml's operations classes the local client does not hand out: each raises ``NotAvailableOffline``."""
    from azure.ai.ml import operations as az

    served = {azure.__name__ for _, azure, _ in pairs_v2()}
    return sorted(set(az.__all__) - served)


def public_names(cls) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_"))


def instance_attributes(twin) -> set[str]:
    """Names the twin's methods assign on ``self`` (``self.name = ...``)."""
    found = set()
    for klass in twin.__mro__:
        if klass is object or not klass.__module__.startswith(("aml_offline.", "azureml_local_run")):
            continue
        try:
            found |= set(re.findall(r"self\.([A-Za-z]\w*)\s*(?::[^=]+)?=(?!=)", inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
    return found


def implemented(twin, name: str) -> bool:
    """Defined by the twin itself (not answered by its 'not available offline' fallback, nor marked as needing
    Azure: a twin that subclasses the SDK's class, such as ``Environment``, marks the methods it cannot serve)."""
    found = inspect.getattr_static(twin, name, None)
    if getattr(getattr(found, "__func__", found), "__not_available_offline__", False):
        return False
    return any(name in klass.__dict__ for klass in twin.__mro__ if klass is not object) or (
        name in instance_attributes(twin)
    )


def render() -> str:
    lines = [
        "# Local workspace: what it covers of azureml-core (SDK v1) and azure-ai-ml (SDK v2)",
        "",
        "Generated by `python docs/coverage.py` (in aml-offline/) from the SDKs' classes and the twin's: do not edit.",
        "Each public method or attribute of the SDK's class, and whether the local workspace implements it.",
        "What it does not implement raises `NotImplementedError` saying so (never an `AttributeError`); how the",
        "implemented ones differ from Azure is in [local-workspace.md](local-workspace.md). For SDK v2, the",
        "operations `MLClient` hands out are listed; its entity classes (`command`, `Data`, `Model`, ...) are",
        "azure-ai-ml's own, and an `MLClient` operation not listed here (`batch_endpoints`, `registries`,",
        "`schedules`, ...) raises the same error.",
        "",
    ]
    summary = []
    body = []
    for sdk, classes in (("SDK v1", pairs()), ("SDK v2", pairs_v2())):
        for title, azure, twin in classes:
            names = public_names(azure)
            done = [n for n in names if implemented(twin, n)]
            summary.append(f"| {sdk} | {title} | {len(done)} of {len(names)} |")
            body += [f"## {title}", "", "| name | local workspace |", "| --- | --- |"]
            body += [f"| `{n}` | {'implemented' if n in done else 'not available offline'} |" for n in names]
            body.append("")
    absent = "none: its `MLClient` attribute raises `NotAvailableOffline`"
    summary += [f"| SDK v2 | {name} | {absent} |" for name in missing_v2()]
    lines += ["| SDK | class | implemented |", "| --- | --- | --- |", *summary, "", *body]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run `python aml-offline/docs/coverage.py` and commit it.")
            return 1
        print(f"{OUT} is up to date.")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
