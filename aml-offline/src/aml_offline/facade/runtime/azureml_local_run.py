"""The run a training script sees through ``Run.get_context()`` inside a local run.

It appends every call (values, tags, images, uploaded files, ``fail()``) as one
JSON line to ``events.jsonl`` in the run's folder; the run's supervisor reads
them into the run history while the script runs.  The status comes from
``status.json``, which the records layer keeps.  Standard library only for all
that, so it works from any interpreter, including a separate environment built
for the run; ``experiment.workspace`` and ``register_model`` use the local
workspace's own classes when this project is importable (the notebook's
interpreter), and say clearly when it is not.
"""

import json
import os
import shutil
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: appends of one short line are atomic enough there too
    fcntl = None

COVERAGE = "the coverage table (aml-offline/docs/coverage.md)"


def _check_artifact_name(name) -> None:
    """A run's file name is a relative path inside the run: no '..', not absolute (it would land elsewhere)."""
    parts = str(name).replace("\\", "/").split("/")
    if not str(name) or str(name).startswith("/") or ".." in parts or ":" in parts[0]:
        raise ValueError(
            f"upload_file name {name!r}: use a relative path inside the run, such as 'outputs/model.pkl' "
            "(no '..', not absolute)."
        )


def _not_available(name, why=""):
    return NotImplementedError(
        f"Run.{name} is not available in a local run (offline){': ' + why if why else ''}. "
        f"See {COVERAGE} for what the local workspace covers."
    )


def _local_workspace():
    """The local workspace's own ``Workspace`` for this run's folder, or None in an interpreter without it."""
    try:  # optional: a separate job environment has azureml-core but not this project
        from aml_offline.facade.workspace import Workspace
        from aml_offline.store import LocalStore
    except ImportError:
        return None
    return Workspace._for_store(LocalStore.get(Path(os.environ["AZUREML_LOCAL_ROOT"])))


class _Workspace:
    """Stands in for the workspace where this project cannot be imported: its name, and a clear error."""

    name = "local-workspace"
    subscription_id = resource_group = location = "local"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError(
            f"Workspace.{name} is not available inside this run: its environment lacks the local workspace "
            "(this project). Do it from the notebook after the run, or run in the notebook's environment."
        )


class _Experiment:
    def __init__(self, name):
        self.name = name
        self._workspace = None

    @property
    def workspace(self):
        if self._workspace is None:
            self._workspace = _local_workspace() or _Workspace()
        return self._workspace

    def __repr__(self):
        return f"Experiment(name={self.name!r}, workspace=local)"


class LocalScriptRun:
    """Records what a script logs; method names and parameters follow azureml.core.Run."""

    def __init__(self, run_dir, run_id, experiment_name, parent_id=None, read_only=False):
        self._read_only = read_only  # the parent sweep, seen from a child: its status and id, no writes
        self._dir = Path(run_dir)
        self._files = self._dir / "files"
        self.id = run_id
        self.experiment = _Experiment(experiment_name)
        self._parent_id = parent_id or None

    @property
    def parent(self):
        """The sweep run for a HyperDrive child (status and id), else None."""
        if not self._parent_id:
            return None
        root = self._dir.parent
        return LocalScriptRun(root / self._parent_id, self._parent_id, self.experiment.name, read_only=True)

    @property
    def input_datasets(self):
        """``{input name: the local folder of its files}`` for the dataset arguments of this run."""
        return json.loads(os.environ.get("AZUREML_LOCAL_INPUTS") or "{}")

    @property
    def status(self):
        return self.get_status()

    # --- metrics --------------------------------------------------------------------
    def log(self, name, value, description="", step=None):
        self._emit("scalar", name, value, step=step)

    def log_list(self, name, value, description=""):
        self._emit("list", name, list(value))

    def log_row(self, name, description=None, **kwargs):
        self._emit("row", name, kwargs)

    def log_table(self, name, value, description=""):
        self._emit("table", name, dict(value))

    def log_confusion_matrix(self, name, value, description=""):
        self._emit("json", name, _as_json(value, "confusion_matrix"))

    def log_accuracy_table(self, name, value, description=""):
        self._emit("json", name, _as_json(value, "accuracy_table"))

    def log_predictions(self, name, value, description=""):
        self._emit("json", name, _as_json(value, "predictions"))

    def log_residuals(self, name, value, description=""):
        self._emit("json", name, _as_json(value, "residuals"))

    def log_image(self, name, path=None, plot=None, description=""):
        if (path is None) == (plot is None):
            raise ValueError("log_image needs exactly one of path or plot")
        self._files.mkdir(parents=True, exist_ok=True)
        target = self._files / f"{name}_{int(time.time() * 1000)}.png"
        if plot is not None:
            plot.savefig(target, format="png")
        else:
            shutil.copyfile(path, target)
        self._emit("image", name, target.name)

    # --- tags, properties, files -------------------------------------------------------
    def tag(self, key, value=None):
        self._emit("tag", key, "" if value is None else str(value))

    def set_tags(self, tags):
        for key, value in tags.items():
            self.tag(key, value)

    def add_properties(self, properties):
        for key, value in properties.items():
            self._emit("property", key, str(value))

    def upload_file(self, name, path_or_stream, datastore_name=None):
        _check_artifact_name(name)
        self._files.mkdir(parents=True, exist_ok=True)
        staged = self._files / f"upload-{uuid.uuid4().hex}"
        if hasattr(path_or_stream, "read"):
            with open(staged, "wb") as f:
                shutil.copyfileobj(path_or_stream, f)
        else:
            shutil.copyfile(path_or_stream, staged)
        self._emit("file", name, staged.name)

    def upload_folder(self, name, path, datastore_name=None):
        for file in sorted(Path(path).rglob("*")):
            if file.is_file():
                self.upload_file(f"{name}/{file.relative_to(path).as_posix()}", str(file))

    # --- models --------------------------------------------------------------------------
    def register_model(self, model_name, model_path=None, tags=None, properties=None, model_framework=None,
                       model_framework_version=None, description=None, **kwargs):  # fmt: skip
        """Register a file or folder of this run's working folder now (for example ``outputs/model``)."""
        workspace = self.experiment.workspace
        if isinstance(workspace, _Workspace):
            raise _not_available("register_model", "this run's environment lacks the local workspace")
        from aml_offline.facade.models import Model  # present: the workspace above was imported
        from aml_offline.records import models as model_records
        from aml_offline.records import runs as run_records

        path = Path(model_path or "")
        if not model_path or not path.exists():
            raise FileNotFoundError(
                f"register_model: model_path {model_path!r} is not a file or folder in the run's working folder "
                f"({os.getcwd()}). Save the model first (for example into ./outputs)."
            )
        store = workspace._store
        record = model_records.register(
            store, model_name, model_records.keep_copy(store, path.resolve()), path.as_posix(), tags=tags,
            properties=properties, description=description, framework=model_framework,
            framework_version=model_framework_version, run=run_records.spec_of(store, self.id),
        )  # fmt: skip
        return Model._from_record(workspace, record)

    # --- lifecycle ---------------------------------------------------------------------
    def get_status(self):
        """The run's status as the workspace records it (Running while the script runs)."""
        try:
            return json.loads((self._dir / "status.json").read_text())["status"]
        except (FileNotFoundError, ValueError, KeyError):
            return "Running"

    def get_details(self):
        return {"runId": self.id, "status": self.get_status(), "target": "local",
                "experiment": self.experiment.name}  # fmt: skip

    def flush(self, timeout_seconds=300):
        pass

    def complete(self, _set_status=True):
        """Mark the run complete; it ends Completed when the script exits normally."""
        self._emit("complete", "complete", None)

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """Mark the run failed: it ends Failed with this error, even if the script then exits normally."""
        text = str(error_details) if error_details is not None else "the script called run.fail()"
        self._emit("error", "error", f"{error_code}: {text}" if error_code else text)

    def cancel(self):
        (self._dir / "cancel_requested").write_text("canceled by the script")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.fail(repr(exc))
        return False

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise _not_available(name)

    def __repr__(self):
        return f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: local)"

    def _emit(self, kind, name, value, **extra):
        if self._read_only:
            raise _not_available(
                f"{kind} on the parent run", "a HyperDrive child reads its parent's id and status; log to the child"
            )
        event = {"kind": kind, "name": name, "value": value, "time": time.time(), **extra}
        line = json.dumps(event, default=_plain)
        with open(self._dir / "events.jsonl", "a") as f:
            if fcntl:
                fcntl.flock(f, fcntl.LOCK_EX)
            f.write(line + "\n")
            f.flush()


def _as_json(value, kind):
    """azureml-core takes these as a dict or its JSON text; keep the dict."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"log_{kind}: the value must be a dict or its JSON text") from None
    return value


def _plain(value):
    """NumPy scalars and arrays become plain numbers and lists; anything else its text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


_current = None


def current():
    global _current
    if _current is None:
        _current = LocalScriptRun(
            os.environ["AZUREML_LOCAL_RUN_DIR"],
            os.environ["AZUREML_RUN_ID"],
            os.environ.get("AZUREML_EXPERIMENT_NAME", ""),
            os.environ.get("AZUREML_PARENT_RUN_ID"),
        )
    return _current


def patch(run_class):
    """Make ``run_class.get_context()`` return the local run inside a local run."""

    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        return current()

    run_class.get_context = classmethod(get_context)
