"""The model registry of the local workspace (twin of ``azureml.core.Model``), kept in MLflow's.

Each registration is an MLflow model version whose source is the run's files,
so ``mlflow ui`` shows it.  Registrations take the workspace's write lock, so
versions go up by one and are never reused or lost, also when several
processes register the same name at the same moment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from azureml.exceptions import UserErrorException, WebserviceException

from helpers.aml.local._common import warn_ignored

PROPERTY_PREFIX = "azureml.property."
FRAMEWORK_TAG = "azureml.model_framework"


def register_from_run(run, name, model_path, tags, properties, description, framework, framework_version):
    if not model_path:
        raise UserErrorException("register_model needs model_path: a file or folder among the run's files.")
    files = run.get_file_names()
    path = model_path.strip("/")
    if path not in files and not any(f.startswith(path + "/") for f in files):
        raise UserErrorException(
            f"model_path {model_path!r} is not among the files of run {run.id}. "
            f"Its files: {', '.join(files) or 'none (did the script save into ./outputs?)'}."
        )
    extra = {"azureml.run_id": run.id, "azureml.experiment": run.experiment.name}
    return _register(run.experiment.workspace, name, run._artifacts / path, path, tags, properties, description,
                     framework, framework_version, extra, run._mlflow_id)  # fmt: skip


def register_from_path(workspace, name, model_path, tags, properties, description, framework, framework_version):
    """``Model.register``: copy a local file or folder into the workspace and register it."""
    import uuid

    source = Path(model_path).expanduser().resolve()
    if not source.exists():
        raise WebserviceException(f"model_path {model_path!r} does not exist (looked in {source}).")
    keep = workspace._store.root / "registered" / uuid.uuid4().hex / source.name
    keep.parent.mkdir(parents=True)
    if source.is_dir():
        shutil.copytree(source, keep)
    else:
        shutil.copyfile(source, keep)
    return _register(workspace, name, keep, source.name, tags, properties, description, framework,
                     framework_version, {}, None)  # fmt: skip


def _register(workspace, name, source, path, tags, properties, description, framework, framework_version, extra,
              mlflow_run_id):  # fmt: skip
    store = workspace._store
    client = store.mlflow
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    all_tags.update({PROPERTY_PREFIX + k: str(v) for k, v in (properties or {}).items()})
    all_tags["azureml.asset_path"] = path
    all_tags.update(extra)
    if framework:
        all_tags[FRAMEWORK_TAG] = f"{framework}:{framework_version or ''}"
    with store.write_lock():
        if not client.search_registered_models(filter_string=f"name = '{_quote(name)}'"):
            client.create_registered_model(name)
        version = client.create_model_version(
            name, source=source.as_uri(), run_id=mlflow_run_id, tags=all_tags, description=description
        )
    return Model(workspace, name, version=int(version.version))


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


class Model:
    """A registered model version (twin of ``azureml.core.Model``)."""

    def __init__(
        self,
        workspace,
        name=None,
        id=None,
        tags=None,
        properties=None,
        version=None,
        run_id=None,
        model_framework=None,
        expand=True,
        **kwargs,
    ):
        if id:
            name, _, version = id.partition(":")
        if not name:
            raise WebserviceException("Model needs a name or an id (name:version).")
        self.workspace = workspace
        client = workspace._store.mlflow
        if version is None:
            versions = _versions(client, name)
            if not versions:
                raise WebserviceException(f"ModelNotFound: no model named {name!r} in the local workspace.")
            mv = versions[0]
        else:
            try:
                mv = client.get_model_version(name, str(version))
            except Exception:  # noqa: BLE001  (mlflow.exceptions.MlflowException)
                raise WebserviceException(f"ModelNotFound: model {name!r} has no version {version}.") from None
        self._load(mv)

    def _load(self, mv) -> None:
        tags = dict(mv.tags)
        self.name = mv.name
        self.version = int(mv.version)
        self.id = f"{self.name}:{self.version}"
        self.description = mv.description or None
        self.run_id = tags.get("azureml.run_id")
        self.experiment_name = tags.get("azureml.experiment")
        self.properties = {k[len(PROPERTY_PREFIX) :]: v for k, v in tags.items() if k.startswith(PROPERTY_PREFIX)}
        self.tags = {k: v for k, v in tags.items() if not k.startswith("azureml.")}
        self.created_time = mv.creation_timestamp
        framework = tags.get(FRAMEWORK_TAG, "Custom:").split(":", 1)
        self.model_framework, self.model_framework_version = framework[0], framework[1] or None
        self._asset_path = tags.get("azureml.asset_path", "")
        self._source = Path(mv.source.removeprefix("file://"))

    @property
    def url(self) -> str:
        return self._source.as_uri()

    def download(self, target_dir=".", exist_ok=False, exists_ok=None):
        """Copy the model's files into ``target_dir``; returns the path of the model file or folder."""
        if exists_ok is not None:
            exist_ok = exists_ok
        target = Path(target_dir) / self._source.name
        if target.exists() and not exist_ok:
            raise WebserviceException(f"File already exists: {target}. Pass exist_ok=True to overwrite it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._source.is_dir():
            shutil.copytree(self._source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(self._source, target)
        return str(target)

    @staticmethod
    def list(
        workspace,
        name=None,
        tags=None,
        properties=None,
        run_id=None,
        latest=False,
        dataset_id=None,
        expand=True,
        page_count=255,
        model_framework=None,
    ):
        client = workspace._store.mlflow
        names = [name] if name else [m.name for m in client.search_registered_models()]
        models = []
        for n in names:
            versions = _versions(client, n)
            for mv in versions[:1] if latest else versions:
                model = Model.__new__(Model)
                model.workspace = workspace
                model._load(mv)
                models.append(model)
        if tags:
            want = tags if isinstance(tags, dict) else {t: None for t in tags}
            models = [m for m in models if all(k in m.tags and v in (None, m.tags[k]) for k, v in want.items())]
        if properties:
            want = properties if isinstance(properties, dict) else {p: None for p in properties}
            models = [
                m for m in models if all(k in m.properties and v in (None, m.properties[k]) for k, v in want.items())
            ]
        if run_id:
            models = [m for m in models if m.run_id == run_id]
        if dataset_id or model_framework:
            warn_ignored("Model.list", "dataset_id" if dataset_id else "model_framework")
        return models

    @staticmethod
    def register(
        workspace,
        model_path,
        model_name,
        tags=None,
        properties=None,
        description=None,
        datasets=None,
        model_framework=None,
        model_framework_version=None,
        child_paths=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
    ):
        """Register a file or folder from this machine (its files are copied into the workspace)."""
        unused = {
            "datasets": datasets,
            "child_paths": child_paths,
            "sample_input_dataset": sample_input_dataset,
            "sample_output_dataset": sample_output_dataset,
            "resource_configuration": resource_configuration,
        }
        for arg, value in unused.items():
            if value is not None:
                warn_ignored("Model.register", arg)
        return register_from_path(
            workspace, model_name, model_path, tags, properties, description, model_framework, model_framework_version
        )

    @staticmethod
    def deploy(
        workspace,
        name,
        models,
        inference_config=None,
        deployment_config=None,
        deployment_target=None,
        overwrite=False,
        show_output=False,
    ):
        """Serve ``models`` with the scoring script on 127.0.0.1 (see :mod:`helpers.aml.local.webservices`)."""
        from helpers.aml.local.webservices import deploy

        return deploy(
            workspace, name, models, inference_config, deployment_config, deployment_target, overwrite, show_output
        )

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        """The folder or file of a registered model version, on this machine."""
        from helpers.aml.local.workspace import Workspace

        workspace = _workspace or Workspace.from_config()
        return str(Model(workspace, model_name, version=version)._source)

    def __repr__(self):
        return (
            f"Model(workspace=local, name={self.name}, id={self.id}, version={self.version}, "
            f"tags={self.tags}, properties={self.properties})"
        )


def _versions(client, name: str) -> list:
    found = client.search_model_versions(f"name = '{_quote(name)}'")
    return sorted(found, key=lambda mv: int(mv.version), reverse=True)
