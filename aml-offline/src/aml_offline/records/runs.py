"""Run records: the spec a run was submitted with, its tags and properties, and what it logged.

A run is an MLflow run (so ``make mlflow-ui`` shows it) plus a folder
``runs/<run id>/`` holding ``run.json``, the spec every layer reads: script,
arguments, environment, target, parent, the MLflow ids.  Run numbers come from
one table, under the write lock, so they never repeat.

Every value a run logs is a row of the ``metrics`` table (any JSON value, text
included, any number of times); numbers are copied into MLflow's metrics too,
for its UI and charts.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

from aml_offline.records import datastores, filters
from aml_offline.records.status import STATUS_TAG, record_new
from aml_offline.store import LocalStore, read_json, write_json

DRIVER_LOG = "user_logs/std_log.txt"
#: Each worker's output in a multi-worker run, named as on Azure ML.
WORKER_LOG = "user_logs/std_log_process_{index}.txt"
PROPERTY_PREFIX = "azureml.property."
PARENT_TAG = "azureml.parent_run_id"
#: The kinds of value a run logs (``Run.log``, ``log_list``, ``log_row``, ``log_table``, ``log_image``, and the
#: JSON-valued ones: ``log_confusion_matrix``, ``log_accuracy_table``, ``log_predictions``, ``log_residuals``).
KINDS = ("scalar", "list", "row", "table", "image", "json")


class RunNotFound(LookupError):
    """No run with that id in the workspace."""


def new_run_id(experiment_name: str) -> str:
    """Azure's shape: ``<experiment>_<unix time>_<8 hex>``."""
    return f"{experiment_name}_{int(time.time())}_{uuid.uuid4().hex[:8]}"


def create(store: LocalStore, experiment_name: str, spec: dict, tags: dict, submitted_by: str) -> dict:
    """Record a new run for ``spec`` (which holds ``run_id``): its MLflow run, number and folder.

    ``run_id`` None names the run after its MLflow run id, as SDK v2 jobs are on Azure (a job's name is the
    MLflow run id there, so ``mlflow.get_run(job.name)`` finds it); ``run_name`` is the name MLflow's UI shows.
    """
    client = store.mlflow
    exp_id = store.experiment_id(experiment_name)
    run_id = spec["run_id"]
    with store.write_lock():
        mlrun = client.create_run(
            exp_id,
            run_name=spec.get("run_name") or run_id,
            tags={
                "azureml.run_id": run_id or "",
                STATUS_TAG: "NotStarted",
                PARENT_TAG: spec.get("parent_run_id") or "",
                "mlflow.source.name": spec.get("script") or "",
                "mlflow.user": submitted_by,
                **{str(k): str(v) for k, v in tags.items()},
            },
        )
        if run_id is None:
            run_id = spec["run_id"] = mlrun.info.run_id
            client.set_tag(run_id, "azureml.run_id", run_id)
        run_dir = store.run_dir(run_id)
        run_dir.mkdir(parents=True)
        with store.db() as db:
            number = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM run_numbers").fetchone()[0]
            db.execute("INSERT INTO run_numbers VALUES (?, ?)", (run_id, number))
        record_new(store, run_id)
        client.update_run(mlrun.info.run_id, status="SCHEDULED")
    artifact_dir = Path(mlrun.info.artifact_uri.removeprefix("file://"))
    (artifact_dir / "user_logs").mkdir(parents=True, exist_ok=True)
    spec.update(
        mlflow_run_id=mlrun.info.run_id,
        artifact_dir=str(artifact_dir),
        experiment=experiment_name,
        root=str(store.root),
        number=number,
        created=time.time(),
        submitted_by=submitted_by,
    )
    write_json(run_dir / "run.json", spec)
    return spec


def adopt(store: LocalStore, experiment: str, mlrun) -> dict:
    """Give a run that a notebook logged with MLflow itself (``mlflow.start_run()`` under the workspace's tracking
    URI) its place in the run history: a number and a ``run.json``.  Its id is its MLflow run id (as SDK v2 jobs'
    are) and its status stays MLflow's until an azureml call changes it."""
    run_id = mlrun.info.run_id
    with store.write_lock():
        existing = read_json(store.run_dir(run_id) / "run.json")
        if existing is not None:
            return existing
        tags = mlrun.data.tags
        with store.db() as db:
            number = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM run_numbers").fetchone()[0]
            db.execute("INSERT OR IGNORE INTO run_numbers VALUES (?, ?)", (run_id, number))
        spec = {
            "type": "azureml.scriptrun",
            "run_id": run_id,
            "parent_run_id": tags.get("mlflow.parentRunId") or None,
            "interactive": True,
            "mlflow_native": True,
            "target": "sdk",
            "script": tags.get("mlflow.source.name"),
            "display_name": mlrun.info.run_name,
            "environment": {},
            "mlflow_run_id": run_id,
            "artifact_dir": mlrun.info.artifact_uri.removeprefix("file://"),
            "experiment": experiment,
            "root": str(store.root),
            "number": number,
            "created": mlrun.info.start_time / 1000 if mlrun.info.start_time else time.time(),
            "submitted_by": tags.get("mlflow.user", ""),
        }
        store.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        write_json(store.run_dir(run_id) / "run.json", spec)
        store.mlflow.set_tag(run_id, "azureml.run_id", run_id)
        if spec["parent_run_id"]:
            store.mlflow.set_tag(run_id, PARENT_TAG, spec["parent_run_id"])
    return spec


def spec_of(store: LocalStore, run_id: str) -> dict:
    spec = read_json(store.run_dir(run_id) / "run.json")
    if spec is None:
        raise RunNotFound(f"No run {run_id!r} in the local workspace ({store.root}).")
    return spec


#: Where an SDK v2 job's named output goes when it names no path: Azure's default,
#: ``azureml://datastores/workspaceblobstore/paths/azureml/<job name>/<output name>/``
OUTPUT_PATH = "azureml/{run-id}/{name}/"


def output_names(spec: dict) -> list[str]:
    """The names of an SDK v2 job's named outputs (``${{outputs.x}}``)."""
    return sorted(spec.get("outputs") or [])


def output_location(store: LocalStore, spec: dict, name: str) -> tuple[str | None, Path] | None:
    """``(datastore, path)`` of a job's named output: a folder (a file, for ``uri_file``) of a datastore
    (``datastores/<name>/<path>``, as Azure writes an output to its datastore path), or, for a job recorded before
    outputs had paths, its place among the run's files (datastore None).  None when the job has no such output."""
    outputs = spec.get("outputs") or {}
    if name not in outputs:
        return None
    if not isinstance(outputs, dict):
        return None, Path(spec["artifact_dir"]) / "outputs" / name
    item = outputs[name]
    path = item["path"].replace("{run-id}", spec["run_id"]).strip("/")
    return item["datastore"], datastores.folder(store, item["datastore"]) / path


def mlflow_tags(store: LocalStore, spec: dict) -> dict:
    return dict(store.mlflow.get_run(spec["mlflow_run_id"]).data.tags)


def user_tags(all_tags: dict) -> dict:
    return {k: v for k, v in all_tags.items() if not k.startswith(("azureml.", "mlflow."))}


def properties_of(all_tags: dict) -> dict:
    return {k[len(PROPERTY_PREFIX) :]: v for k, v in all_tags.items() if k.startswith(PROPERTY_PREFIX)}


class BadTag(ValueError):
    """A tag name the local workspace's store cannot keep."""


def set_tags(store: LocalStore, spec: dict, tags: dict) -> None:
    bad = [k for k in tags if mlflow_key(str(k)) != str(k)]
    if bad:
        raise BadTag(
            f"Run {spec['run_id']}: tag name {bad[0]!r} cannot be kept by the local workspace (MLflow takes letters, "
            "digits, '_', '-', '.', '/' and spaces, at most 250 characters): rename the tag."
        )
    long = [k for k, v in tags.items() if len(str(v)) > 8000]
    if long:
        raise BadTag(
            f"Run {spec['run_id']}: the value of tag {long[0]!r} has {len(str(tags[long[0]])):,} characters; the "
            "local workspace keeps at most 8,000 in a tag: log it as a metric (run.log) or upload it as a file."
        )
    store.mirror(spec["mlflow_run_id"], "tags", {str(k): str(v) for k, v in tags.items()})


def remove_tags(store: LocalStore, spec: dict, keys) -> None:
    with store.write_lock():
        for key in keys:
            try:
                store.mlflow.delete_tag(spec["mlflow_run_id"], key)
            except Exception:  # noqa: BLE001  (MlflowException: no such tag; Azure ignores it too)
                pass


class PropertyConflict(ValueError):
    """A run property is immutable: it was already set to another value."""


def add_properties(store: LocalStore, spec: dict, properties: dict) -> None:
    with store.write_lock():
        current = properties_of(mlflow_tags(store, spec))
        for key, value in properties.items():
            if key in current and current[key] != str(value):
                raise PropertyConflict(
                    f"Run {spec['run_id']}: property {key!r} is already {current[key]!r}; properties are immutable."
                )
        set_tags(store, spec, {PROPERTY_PREFIX + k: v for k, v in properties.items()})


def search(store: LocalStore, experiment: str, *, parent: str | None = None, include_children: bool = False,
           tags=None, properties=None) -> list[str]:  # fmt: skip
    """Run ids of an experiment, newest first, filtered as azureml-core filters (see :mod:`.filters`)."""
    exp_id = store.experiment_id(experiment, create=False)
    if exp_id is None:
        return []
    filter_string = f"tags.`{PARENT_TAG}` = '{parent}'" if parent else ""
    found, token = [], None
    while True:  # MLflow answers in pages (1,000 runs by default)
        page = store.mlflow.search_runs([exp_id], filter_string=filter_string, max_results=5000,
                                        order_by=["attributes.start_time DESC"], page_token=token)  # fmt: skip
        found += list(page)
        token = page.token
        if not token:
            break
    ids = []
    for info in found:
        run_tags = info.data.tags
        if "azureml.run_id" not in run_tags:  # logged with mlflow directly (ws.get_mlflow_tracking_uri())
            adopt(store, experiment, info)
            run_tags = {**run_tags, "azureml.run_id": info.info.run_id}
        run_id = run_tags.get("azureml.run_id")
        # A run being created this moment has its MLflow run (and, when its id was given, the tag) before its
        # run.json: it is not a run yet, and listing it would fail whoever loads it.
        if not run_id or not (store.run_dir(run_id) / "run.json").exists():
            continue
        if parent is None and not include_children and run_tags.get(PARENT_TAG):
            continue
        if not filters.matches(user_tags(run_tags), tags):
            continue
        if not filters.matches(properties_of(run_tags), properties):
            continue
        ids.append(run_id)
    return ids


# --- logged values ----------------------------------------------------------------------------------------


_MLFLOW_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def _json(value) -> str:
    """JSON text of a logged value; NumPy scalars and arrays become numbers and lists, anything else its text."""
    return json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def append_values(store: LocalStore, spec: dict, values: list[dict]) -> None:
    """Record logged values: each ``{"name", "kind", "value", "time", "step"?}``, in the order given.

    Every value lands in the ``metrics`` table with the next sequence number for its name; numbers
    (scalars, items of lists, columns of rows and tables) are copied into MLflow's metrics as well.
    """
    if not values:
        return
    run_id = spec["run_id"]
    mlflow_metrics = []
    with store.write_lock():
        with store.db() as db:
            next_seq: dict[str, int] = {}
            for item in values:
                name, kind = item["name"], item["kind"]
                if kind not in KINDS:
                    raise ValueError(f"Unknown metric kind {kind!r} for {name!r}.")
                if name not in next_seq:
                    row = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM metrics WHERE run_id = ? AND name = ?",
                                     (run_id, name)).fetchone()  # fmt: skip
                    next_seq[name] = row[0]
                seq = next_seq[name]
                next_seq[name] += 1
                step = item.get("step")
                text = _json(item["value"])
                db.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, name, seq, kind, step, text,
                                                                               item["time"]))  # fmt: skip
                ms = int(item["time"] * 1000)
                value = json.loads(text)  # plain numbers, as stored
                if kind == "scalar" and _is_number(value):
                    mlflow_metrics.append([mlflow_key(name), float(value), ms, seq if step is None else int(step)])
                elif kind == "list":
                    mlflow_metrics += [
                        [mlflow_key(name), float(v), ms, i] for i, v in enumerate(value) if _is_number(v)
                    ]
                elif kind in ("row", "table") and isinstance(value, dict):
                    for col, val in value.items():
                        for i, v in enumerate(val if kind == "table" and isinstance(val, list) else [val]):
                            if _is_number(v):
                                mlflow_metrics.append([mlflow_key(f"{name}/{col}"), float(v), ms, seq + i])
        if mlflow_metrics:  # numbers into MLflow's metrics too, for its UI (a name MLflow refuses is renamed)
            store.mirror(spec["mlflow_run_id"], "metrics", mlflow_metrics)


def mlflow_key(name: str) -> str:
    """A metric or tag name as MLflow accepts it (letters, digits, ``_-./`` and spaces, at most 250 characters)."""
    return (_MLFLOW_UNSAFE.sub("_", name) or "_")[:250]


def _plain_number(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def read_values(store: LocalStore, run_id: str, name: str | None = None) -> dict:
    """Logged values as azureml-core's ``Run.get_metrics`` returns them.

    Logged once, a value; logged several times, the list of values in order.  ``log_list``
    gives its list, ``log_row`` a ``{column: value}`` (or ``{column: [values]}`` after several
    rows), ``log_table`` ``{column: [values]}``, ``log_image`` the image's ``aml://`` address,
    and the JSON-valued ones their last value.
    """
    query = "SELECT name, kind, value FROM metrics WHERE run_id = ?"
    args: tuple = (run_id,)
    if name is not None:
        query += " AND name = ?"
        args += (name,)
    with store.db() as db:
        rows = db.execute(query + " ORDER BY name, seq", args).fetchall()
    if not rows:
        return _mlflow_values(store, run_id, name)
    grouped: dict[str, tuple[str, list]] = {}
    for row in rows:
        kind, values = grouped.setdefault(row["name"], (row["kind"], []))
        values.append(json.loads(row["value"]))
    out = {}
    for key, (kind, values) in grouped.items():
        if kind == "scalar":
            values = [_plain_number(v) for v in values]
            out[key] = values[0] if len(values) == 1 else values
        elif kind == "list":
            out[key] = [_plain_number(v) for lst in values for v in lst] if len(values) > 1 else values[0]
        elif kind == "row":
            columns = list(dict.fromkeys(c for v in values for c in v))
            if len(values) == 1:
                out[key] = dict(values[0])
            else:
                out[key] = {c: [v.get(c) for v in values] for c in columns}
        elif kind == "table":
            table: dict[str, list] = {}
            for v in values:
                for c, col in v.items():
                    table.setdefault(c, []).extend(col if isinstance(col, list) else [col])
            out[key] = table
        else:  # image, json
            out[key] = values[-1]
    return out


def _mlflow_values(store: LocalStore, run_id: str, name: str | None) -> dict:
    try:
        spec = spec_of(store, run_id)
    except RunNotFound:
        return {}
    names = [name] if name is not None else sorted(store.mlflow.get_run(spec["mlflow_run_id"]).data.metrics)
    out = {}
    for key in names:
        values = [_plain_number(m.value) for m in mlflow_history(store, spec, key)]
        if values:
            out[key] = values[0] if len(values) == 1 else values
    return out


def numeric_history(store: LocalStore, run_id: str, name: str) -> list[float]:
    """The numbers logged under ``name``, in order (what HyperDrive's and sweep jobs' policies judge).

    ``Run.log`` values are rows of the metrics table; a script that logs with ``mlflow`` directly (SDK v2's
    way: the job's ``MLFLOW_RUN_ID`` points it at its run) writes MLflow's metrics, read when there are no rows.
    """
    with store.db() as db:
        rows = db.execute(
            "SELECT value FROM metrics WHERE run_id = ? AND name = ? AND kind = 'scalar' ORDER BY seq", (run_id, name)
        ).fetchall()
    values = [json.loads(r["value"]) for r in rows]
    if values:
        return [float(v) for v in values if _is_number(v)]
    return [m.value for m in mlflow_history(store, spec_of(store, run_id), name)]


def mlflow_history(store: LocalStore, spec: dict, name: str) -> list:
    """MLflow's metric history of the run under ``name``, in the order it was logged (step, then time)."""
    history = store.mlflow.get_metric_history(spec["mlflow_run_id"], mlflow_key(name))
    return sorted(history, key=lambda m: (m.step, m.timestamp))
