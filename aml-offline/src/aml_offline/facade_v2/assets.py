"""``ml_client.data`` and ``ml_client.models`` of the local workspace (twins of azure-ai-ml's
``DataOperations`` and ``ModelOperations``).

Data assets share the records of v1's registered datasets (one table, with versions); a local folder is
copied into the workspace as Azure uploads it, so a version's files never change.  Models are versions in the
same MLflow model registry v1's ``Model.register`` writes; ``azureml://jobs/<job>/outputs/artifacts/paths/...``
names a job's files, as on Azure.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data, Model
from azure.ai.ml.exceptions import ErrorTarget
from azure.ai.ml.operations import DataOperations as AzureDataOperations
from azure.ai.ml.operations import ModelOperations as AzureModelOperations

from aml_offline.execution import snapshot
from aml_offline.facade_v2 import mlflow_models
from aml_offline.facade_v2._common import invalid, not_found
from aml_offline.offline import Offline, not_available, warn_ignored
from aml_offline.records import datasets as dataset_records
from aml_offline.records import models as model_records
from aml_offline.records import runs as run_records
from aml_offline.records.status import current_status

JOB_PATH = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?:/paths/(?P<path>.*?))?/?$")
RUN_PATH = re.compile(r"^runs:/(?P<job>[^/]+)/(?P<path>.+?)/?$")


def _content_hash(source: Path, name: str | None = None) -> str:
    """SHA-256 of a file (named ``name``, else its own name), or of a folder's files (names and bytes), links
    followed as a copy follows them."""
    digest = hashlib.sha256()
    try:
        files = sorted(snapshot.walk_files(source)) if source.is_dir() else [(name or source.name, source.resolve())]
    except snapshot.SnapshotError as exc:
        raise invalid(str(exc), ErrorTarget.DATA) from None
    for relative, real in files:
        digest.update(relative.encode() + b"\0")
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class DataOperations(Offline):
    """Data assets: ``create_or_update``, ``get``, ``list`` (``uri_folder`` and ``uri_file``)."""

    _azure_class = AzureDataOperations

    def __init__(self, client):
        self._store = client._store

    def create_or_update(self, data: Data, **kwargs) -> Data:
        """Version ``data.version`` (or the next one) of the asset; the same files again give that version back."""
        if data.type not in (AssetTypes.URI_FOLDER, AssetTypes.URI_FILE):
            raise not_available(
                f"Data asset {data.name!r} of type {data.type}",
                "the local workspace keeps uri_folder and uri_file assets",
            )
        if not data.name:
            raise invalid("Data(...) needs a name.", ErrorTarget.DATA)
        path = str(data.path or "")
        if path.startswith(("http://", "https://")):
            paths = [path]
        elif path.startswith(("azureml://", "wasbs://", "abfss://")):
            raise not_available(f"Data asset {data.name!r} at {path}", "datastore paths are Azure's")
        else:
            source = Path(path).resolve()
            if not source.exists():
                raise invalid(f"Data asset {data.name!r}: its path {path!r} does not exist.", ErrorTarget.DATA)
            if (data.type == AssetTypes.URI_FOLDER) != source.is_dir():
                raise invalid(
                    f"Data asset {data.name!r}: type {data.type} but {source} is "
                    f"{'a folder' if source.is_dir() else 'a file'}.",
                    ErrorTarget.DATA,
                )
            paths = [str(self._upload(data.name, source))]
        version = None
        if data.version is not None:
            if not str(data.version).isdigit():
                raise invalid(
                    f"Data asset {data.name!r}: the local workspace numbers versions (1, 2, ...), "
                    f"not {data.version!r}.",
                    ErrorTarget.DATA,
                )
            version = int(data.version)
        try:
            record = dataset_records.register(
                self._store,
                data.name,
                paths,
                description=data.description,
                tags={**(data.tags or {}), "type": data.type},
                create_new_version=True,
                version=version,
            )
        except dataset_records.DatasetConflict as exc:
            raise invalid(str(exc), ErrorTarget.DATA) from None
        return _data(record)

    def _upload(self, name: str, source: Path) -> Path:
        """A copy in the workspace named by its content, as Azure uploads a local path once per content.

        The content is what the copy takes: linked folders and files followed, so a link pointed elsewhere is a
        new upload.  Each copier writes its own temporary copy, checks it against the content it hashed, and only
        then renames it into place: a torn or changed copy never becomes the upload."""
        digest = _content_hash(source)
        target = self._store.root / "uploads" / digest[:16] / source.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{source.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}")
            try:
                if source.is_dir():
                    snapshot.copy_snapshot(source, partial)  # .amlignore (else .gitignore), as Azure uploads
                else:
                    shutil.copyfile(source, partial)
                if _content_hash(partial, source.name) != digest:  # a file's copy has a temporary name
                    raise invalid(
                        f"Data asset {name!r}: {source} changed while it was being copied; nothing was registered. "
                        "Try again once it is no longer being written.",
                        ErrorTarget.DATA,
                    )
                try:
                    partial.rename(target)
                except OSError:
                    if not target.exists():  # another copier finished first otherwise: its copy is the same
                        raise
            finally:
                if partial.is_dir():
                    shutil.rmtree(partial, ignore_errors=True)
                else:
                    partial.unlink(missing_ok=True)
        return target

    def get(self, name: str, version=None, label=None) -> Data:
        """A version of the asset (``label="latest"``: the newest); Azure asks for one of the two."""
        if version is None and label is None:
            raise invalid("data.get needs a version or label='latest' (as on Azure).", ErrorTarget.DATA)
        try:
            return _data(dataset_records.get(self._store, name, version or "latest"))
        except dataset_records.DatasetRecordNotFound:
            raise not_found(
                "data asset", f"{name}:{version or label}", self._store, dataset_records.names(self._store)
            ) from None

    def list(self, name=None, **kwargs) -> list[Data]:
        """Every version of ``name``, newest first; without a name, the newest version of each asset."""
        if name is not None:
            return [_data(r) for r in dataset_records.versions(self._store, name)]
        return [_data(dataset_records.get(self._store, n)) for n in dataset_records.names(self._store)]


def _data(record: dict) -> Data:
    tags = dict(record["tags"])
    kind = tags.pop("type", AssetTypes.URI_FOLDER)
    path = record["paths"][0] if len(record["paths"]) == 1 else None
    if path is None:  # a v1 dataset of several files: their common folder, as Azure shows it
        path = record["paths"][0].rsplit("/", 1)[0] + "/"
    return Data(
        name=record["name"],
        version=str(record["version"]),
        path=path,
        type=kind,
        description=record["description"],
        tags=tags,
    )


class ModelOperations(Offline):
    """Models: ``create_or_update`` (register), ``get``, ``list``, ``download``."""

    _azure_class = AzureModelOperations

    def __init__(self, client):
        self._store = client._store

    def create_or_update(self, model: Model, **kwargs) -> Model:
        """Register ``model.path`` (a job's files, ``runs:/<job>/path``, or a local file or folder) as the next
        version of ``model.name``."""
        if not model.name:
            raise invalid("Model(...) needs a name.", ErrorTarget.MODEL)
        path = str(model.path or "")
        run = None
        match = JOB_PATH.match(path) or RUN_PATH.match(path)
        if match:
            job = match.group("job")
            try:
                run = run_records.spec_of(self._store, job)
            except run_records.RunNotFound:
                raise invalid(
                    f"Model {model.name!r}: its path names job {job!r}, which the local workspace does not have.",
                    ErrorTarget.MODEL,
                ) from None
            if match.groupdict().get("output", "artifacts") != "artifacts":  # a named output, where the job wrote it
                output, inner = match.group("output"), (match.group("path") or "").strip("/")
                found = run_records.output_location(self._store, run, output)
                source = found[1] / inner if found else Path(run["artifact_dir"]) / "outputs" / output / inner
                asset_path = f"{output}/{inner}".rstrip("/")
            else:
                asset_path = (match.group("path") or "").strip("/")
                source = Path(run["artifact_dir"]) / asset_path
            if not source.exists() and mlflow_models.is_mlflow(model.type):  # MLflow 3 keeps it apart
                source = mlflow_models.logged_model_folder(self._store, run, asset_path) or source
            if not source.exists():
                status = current_status(self._store, run)
                raise invalid(
                    f"Model {model.name!r}: job {job} ({status}) has no {asset_path!r} among its files. "
                    "Did the script save the model into ./outputs?",
                    ErrorTarget.MODEL,
                )
            if mlflow_models.is_mlflow(model.type):
                mlflow_models.check_folder(f"Model {model.name!r}", source)
        elif path.startswith(("azureml://", "wasbs://", "abfss://", "https://")):
            raise not_available(f"Model {model.name!r} at {path}", "register a job's files or a local path")
        else:
            local = Path(path).resolve()
            if not path or not local.exists():
                raise invalid(f"Model {model.name!r}: its path {path!r} does not exist.", ErrorTarget.MODEL)
            if mlflow_models.is_mlflow(model.type):
                mlflow_models.check_folder(f"Model {model.name!r}", local)
            source = model_records.keep_copy(self._store, local)
            asset_path = local.name
        if model.version is not None:
            warn_ignored("Model", "version", "the local registry numbers versions 1, 2, ... itself")
        record = model_records.register(
            self._store,
            model.name,
            source,
            asset_path,
            tags=model.tags,
            properties=model.properties,
            description=model.description,
            framework=model.type or AssetTypes.CUSTOM_MODEL,
            run=run,
        )
        return _model(record)

    def get(self, name: str, version=None, label=None) -> Model:
        if version is None and label is None:
            raise invalid("models.get needs a version or label='latest' (as on Azure).", ErrorTarget.MODEL)
        try:
            return _model(model_records.get(self._store, name, None if version is None else int(version)))
        except model_records.ModelRecordNotFound:
            raise not_found(
                "model", f"{name}:{version or label}", self._store, model_records.names(self._store)
            ) from None

    def list(self, name=None, **kwargs) -> list[Model]:
        if name is not None:
            return [_model(r) for r in model_records.versions(self._store, name)]
        return [_model(model_records.versions(self._store, n)[0]) for n in model_records.names(self._store)]

    def download(self, name: str, version: str, download_path=".") -> None:
        """The model's files into ``download_path/<name>/``, as azure-ai-ml lays them out."""
        record = model_records.get(self._store, name, int(version))
        source = Path(record["source"])
        target = Path(download_path) / name
        target.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target / source.name, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target / source.name)


def _model(record: dict) -> Model:
    kind = record["framework"] if record["framework"] in vars(AssetTypes).values() else AssetTypes.CUSTOM_MODEL
    model = Model(
        name=record["name"],
        version=str(record["version"]),
        path=record["source"],
        type=kind,
        description=record["description"],
        tags=record["tags"],
        properties=record["properties"],
    )
    if record.get("run_id"):
        model.job_name = record["run_id"]
    return model
