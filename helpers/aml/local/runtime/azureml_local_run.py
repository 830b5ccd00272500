"""The run a training script sees through ``Run.get_context()`` inside a local run.

It appends every call (metrics, tags, images, uploaded files) as one JSON line to
``events.jsonl`` in the run's folder; the run's supervisor reads them into the
MLflow run history while the script runs.  Standard library only, so it works
from any interpreter, including a separate environment built for the run.
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


class _Experiment:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Experiment(name={self.name!r}, workspace=local)"


class LocalScriptRun:
    """Records what a script logs; method names and parameters follow azureml.core.Run."""

    def __init__(self, run_dir, run_id, experiment_name):
        self._dir = Path(run_dir)
        self._files = self._dir / "files"
        self.id = run_id
        self.experiment = _Experiment(experiment_name)
        self.parent = None

    # --- metrics --------------------------------------------------------------------
    def log(self, name, value, description="", step=None):
        self._emit("scalar", name, value, step=step)

    def log_list(self, name, value, description=""):
        self._emit("list", name, list(value))

    def log_row(self, name, description=None, **kwargs):
        self._emit("row", name, kwargs)

    def log_table(self, name, value, description=""):
        self._emit("table", name, value)

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

    # --- lifecycle ---------------------------------------------------------------------
    def get_status(self):
        return "Running"

    def flush(self, timeout_seconds=300):
        pass

    def complete(self, _set_status=True):
        pass

    def fail(self, error_details=None, error_code=None, _set_status=True):
        self._emit("error", "error", str(error_details))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: local)"

    def _emit(self, kind, name, value, **extra):
        event = {"kind": kind, "name": name, "value": value, "time": time.time(), **extra}
        line = json.dumps(event, default=_plain)
        with open(self._dir / "events.jsonl", "a") as f:
            if fcntl:
                fcntl.flock(f, fcntl.LOCK_EX)
            f.write(line + "\n")
            f.flush()


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
        )
    return _current


def patch(run_class):
    """Make ``run_class.get_context()`` return the local run inside a local run."""

    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        return current()

    run_class.get_context = classmethod(get_context)
