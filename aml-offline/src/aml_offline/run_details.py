"""``RunDetails(run).show()``: a live view of an Azure ML run that renders in JupyterLab 4, in both modes.

azureml-widgets' own front end is a JupyterLab 3 extension that JupyterLab 4 reports as incompatible, so this
view is built from ipywidgets 7's core widgets (``HTML``, ``Image``, ``VBox``), whose front end JupyterLab 4
loads.  It reads the run only through the public ``Run`` API, so the same view works on a run of the local
workspace and on a real Azure ML run:

* ``get_status()``, ``get_details()`` (times, compute target, ``runDefinition.nodeCount``, the names in
  ``logFiles``, the error), ``get_metrics()``, ``get_portal_url()`` (on Azure a link to the run in Azure ML
  studio), ``get_file_names()`` (the outputs, once the run has ended);
* the log tails through ``download_file`` (the driver log, and each worker's ``std_log_process_<i>.txt`` in a
  multi-worker run), falling back to ``get_details_with_logs()``;
* for a HyperDrive parent (``run.type == "hyperdrive"``): ``get_children_sorted_by_primary_metric()`` (one line
  per child), ``get_children()`` and each stopped child's ``get_details()`` (why it was canceled, where the
  service says), ``get_metrics()`` (per child) and the primary metric from the parent's tags
  (``_aml_system_primary_metric_config``, as azureml-core itself reads it);
* for a pipeline run (``run.type == "azureml.PipelineRun"``, azureml-pipeline's ``PipelineRun``): a table of its
  steps from ``get_steps()``: each step run's ``name``, ``get_status()``, the times in its ``get_details()``, and
  whether it was reused (a reused step's run belongs to an earlier pipeline run: its ``pipeline_run_id`` is not this
  run's ``id``).

A background thread refreshes the view every two seconds and stops when the run ends (Completed, Failed or
Canceled).  A refresh that fails never reaches the kernel: the view shows it in a red line and tries again.
"""

from __future__ import annotations

import datetime
import html
import io
import json
import re
import tempfile
import threading
import time
from pathlib import Path

REFRESH_S = 2.0
#: After a failed refresh, wait longer each time (up to this), so a lost connection is not hammered.
MAX_BACKOFF_S = 30.0
LOG_LINES = 25
WORKER_LOG_LINES = 12
#: A pipeline run and its steps say Finished where other runs say Completed (azureml-pipeline's words)
TERMINAL = ("Completed", "Finished", "Failed", "Canceled")
PIPELINE_RUN = "azureml.PipelineRun"
#: Driver logs by preference: the current runtime's, a HyperDrive parent's, the older runtime's.
DRIVER_LOGS = ("user_logs/std_log.txt", "azureml-logs/hyperdrive.txt", "azureml-logs/70_driver_log.txt")
WORKER_LOG = re.compile(r"std_log_process_(\d+)\.txt$")
STATUS_COLOURS = {"Completed": "green", "Finished": "green", "Failed": "red", "Canceled": "gray"}


class RunDetails:
    """Same constructor and ``show`` as ``azureml.widgets.RunDetails``; see the module docstring."""

    def __init__(self, run_instance):
        self.run_instance = run_instance
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_png = b""
        self._ended_children: dict[str, str] = {}  # child id -> what to show for it once it has ended
        self._primary_metric: dict | None = None
        self._failures = 0
        self._refreshes = 0

    # --- display ----------------------------------------------------------------------------------------------
    def show(self, render_lib=None, widget_settings=None):
        """Display the view; follow the run in a background thread until it ends."""
        import ipywidgets as widgets
        from IPython.display import display

        self._stop.set()  # a second show() of the same view: the first one's thread stops
        self._stop = threading.Event()
        self._summary = widgets.HTML()
        self._error = widgets.HTML()
        self._chart = widgets.Image(format="png", layout=widgets.Layout(max_width="640px"))
        self._children = widgets.HTML()
        self._metrics = widgets.HTML()
        self._log = widgets.HTML(layout=widgets.Layout(max_height="360px", overflow_y="auto"))
        self._box = widgets.VBox([self._summary, self._error, self._chart, self._children, self._metrics, self._log])
        done = self._safe_refresh()
        display(self._box)
        if not done:
            self._thread = threading.Thread(target=self._follow, args=(self._stop,), name="RunDetails", daemon=True)
            self._thread.start()

    def _follow(self, stop: threading.Event) -> None:
        while not stop.wait(min(REFRESH_S * 2**self._failures, MAX_BACKOFF_S) if self._failures else REFRESH_S):
            if self._safe_refresh():
                return

    def _safe_refresh(self) -> bool:
        """Refresh; True once the run has ended.  A failure is shown in the view, never raised into the kernel."""
        try:
            done = self._refresh()
        except Exception as exc:  # noqa: BLE001  (a view must never crash the kernel; it says what failed)
            self._failures += 1
            when = time.strftime("%H:%M:%S")
            self._error.value = (
                f"<div class='aml-run-error' style='color:red'>Refreshing the view failed at {when} "
                f"({self._failures} time{'s' if self._failures > 1 else ''} in a row): "
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc)[:500])}. Trying again.</div>"
            )
            return False
        if self._failures:
            self._error.value = (
                f"<div class='aml-run-error-recovered' style='color:gray'>{self._failures} refresh"
                f"{'es' if self._failures > 1 else ''} failed before; the view is up to date again.</div>"
            )
            self._failures = 0
        self._refreshes += 1
        return done

    # --- one refresh: read the run, render it -----------------------------------------------------------------
    def _refresh(self) -> bool:
        run = self.run_instance
        status = run.get_status()  # first: once it is final, everything read after it is final too
        details = run.get_details()
        ended = status in TERMINAL
        self._summary.value = _summary_html(run, status, details, ended)
        if _is_pipeline(run):
            self._children.value = self._pipeline_steps_html(run)
            png = b""
            self._metrics.value = ""
        elif _is_sweep(run):
            self._children.value = self._sweep_children_html(run)
            png = self._sweep_chart(run)
            self._metrics.value = ""
        else:
            metrics = run.get_metrics()
            png = _metrics_png(metrics)
            self._metrics.value = _scalars_html(metrics)
        if png and png != self._last_png:
            self._chart.value = self._last_png = png
        self._log.value = _logs_html(run, list(details.get("logFiles") or {}))
        return ended

    def _sweep_children_html(self, run) -> str:
        """One line per child: number, hyperparameters, best primary metric, status, and why it was stopped."""
        ranked = _method(run, "get_children_sorted_by_primary_metric")
        children = {child.id: child for child in run.get_children()}
        if ranked is not None:
            rows = ranked()
        else:  # another kind of parent run: its children, without a primary metric
            hyper = (_method(run, "get_hyperparameters") or dict)()
            rows = [
                {"run_id": cid, "hyperparameters": hyper.get(cid), "best_primary_metric": None,
                 "status": child.get_status()}
                for cid, child in children.items()
            ]  # fmt: skip
        lines, stopped = [], 0
        for row in rows:
            cid, status = row["run_id"], row["status"]
            if cid not in self._ended_children:
                note = ""
                if status == "Canceled":
                    note = _stop_reason(children.get(cid))
                elif status == "Failed":
                    note = _error_message(children[cid].get_details()) if cid in children else ""
                if status in TERMINAL:
                    self._ended_children[cid] = note
            else:
                note = self._ended_children[cid]
            stopped += status == "Canceled"
            best = row.get("best_primary_metric")
            lines.append(
                f"<tr class='aml-child aml-child-{html.escape(status.lower())}'>"
                f"<td>{html.escape(_short_id(cid))}</td><td>{html.escape(_params(row.get('hyperparameters')))}</td>"
                f"<td>{'-' if best is None else f'{best:.4f}'}</td><td>{html.escape(status)}</td>"
                f"<td>{html.escape(note)}</td></tr>"
            )
        name = (self._primary(run) or {}).get("name", "primary metric")
        head = (
            f"<tr><th>Child</th><th>Hyperparameters</th><th>Best {html.escape(name)}</th><th>Status</th>"
            "<th>Stopped because</th></tr>"
        )
        counts = f"{len(rows)} child runs" + (f", {stopped} stopped early or canceled" if stopped else "")
        return (
            f"<b class='aml-sweep-summary'>{counts}</b><table class='aml-sweep-children'>{head}{''.join(lines)}</table>"
        )

    def _pipeline_steps_html(self, run) -> str:
        """One line per step that has started (or was reused): name, status, start, duration, reused or not."""
        rows = []
        for step in run.get_steps():
            if step.id not in self._ended_children:
                status = step.get_status()
                details = step.get_details()
                reused = getattr(step, "pipeline_run_id", run.id) != run.id
                row = (step.name, status, details.get("startTimeUtc"), details.get("endTimeUtc"), reused,
                       _error_message(details) if status == "Failed" else "")  # fmt: skip
                if status in TERMINAL:
                    self._ended_children[step.id] = row
            else:
                row = self._ended_children[step.id]
            rows.append((step.id, *row))
        rows.sort(key=lambda r: (r[3] or "~", r[1]))  # by start time; steps not started yet last
        lines = []
        for step_id, name, status, started, ended, reused, error in rows:
            lines.append(
                f"<tr class='aml-step aml-step-{html.escape(status.lower())}'><td>{html.escape(str(name))}</td>"
                f"<td>{html.escape(status)}</td><td>{html.escape(_time(started))}</td>"
                f"<td>{html.escape(_duration(started, ended))}</td>"
                f"<td class='aml-step-reused'>{'reused: run ' + html.escape(str(step_id)[:8]) if reused else 'no'}"
                f"</td><td>{html.escape(error)}</td></tr>"
            )
        reused_count = sum(1 for r in rows if r[5])
        head = "<tr><th>Step</th><th>Status</th><th>Started</th><th>Duration</th><th>Reused</th><th>Error</th></tr>"
        counts = f"{len(rows)} steps started" + (f", {reused_count} reused from earlier runs" if reused_count else "")
        return (
            f"<b class='aml-pipeline-summary'>{counts}</b><table class='aml-pipeline-steps'>{head}{''.join(lines)}"
            "</table>"
        )

    def _primary(self, run) -> dict | None:
        """``{"name", "goal"}`` of a sweep's primary metric, from the parent's tags or properties (read once)."""
        if self._primary_metric is None:
            tags = run.get_tags() or {}
            found = tags.get("_aml_system_primary_metric_config") or tags.get("primary_metric_config")
            if not found:
                found = (run.get_properties() or {}).get("primary_metric_config")
            if found:
                self._primary_metric = json.loads(found) if isinstance(found, str) else dict(found)
        return self._primary_metric

    def _sweep_chart(self, run) -> bytes:
        primary = self._primary(run)
        if not primary:
            return b""
        metrics = run.get_metrics()  # a HyperDriveRun: {child id: that child's metrics}
        if not all(isinstance(v, dict) for v in metrics.values()):
            metrics = {child.id: child.get_metrics() for child in run.get_children()}
        return _sweep_png(metrics, primary["name"])


# --- reading the run ------------------------------------------------------------------------------------------


def _method(obj, name: str):
    """``obj.name`` if the run offers it, else None (the local twin raises NotImplementedError for Azure-only)."""
    try:
        return getattr(obj, name)
    except (AttributeError, NotImplementedError):
        return None


def _is_pipeline(run) -> bool:
    return _method(run, "get_steps") is not None and (
        _method(run, "type") == PIPELINE_RUN or _method(run, "find_step_run") is not None
    )


def _duration(started, ended) -> str:
    """How long a step ran (so far, while it runs), from the times in its details."""
    if not started:
        return "-"

    def parse(value):
        if isinstance(value, datetime.datetime):
            return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))

    try:
        end = parse(ended) if ended else datetime.datetime.now(datetime.UTC)
        seconds = max(0.0, (end - parse(started)).total_seconds())
    except ValueError:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _is_sweep(run) -> bool:
    return _method(run, "type") == "hyperdrive" or _method(run, "get_children_sorted_by_primary_metric") is not None


def _stop_reason(child) -> str:
    """Why a canceled child was stopped: the cancel reason, a warning or the error, as the service gives it."""
    if child is None:
        return "canceled"
    details = child.get_details()
    reason = details.get("cancelReason") or details.get("cancelationReason")
    if not reason:
        warnings = details.get("warnings") or []
        reason = "; ".join(str(w.get("message", w)) if isinstance(w, dict) else str(w) for w in warnings)
    return (reason or _error_message(details) or "canceled").strip()[:200]


def _error_message(details: dict) -> str:
    error = details.get("error")
    if isinstance(error, dict):
        inner = error.get("error", error)  # get_details(): {"error": {"code": ..., "message": ...}}
        error = inner.get("message", "") if isinstance(inner, dict) else inner
    return str(error or "")[:300]


def _read_log(run, name: str, with_logs: dict) -> str:
    """A log's text: ``download_file`` (cheap for one file on Azure), else ``get_details_with_logs()`` once."""
    try:
        with tempfile.TemporaryDirectory(prefix="run-details-") as folder:
            target = Path(folder) / "log.txt"
            run.download_file(name, output_file_path=str(target))
            return target.read_text(errors="replace")
    except Exception:  # noqa: BLE001  (not a run file yet, or not downloadable: ask for the logs' contents)
        if "logs" not in with_logs:
            with_logs["logs"] = run.get_details_with_logs().get("logFiles") or {}
        text = with_logs["logs"].get(name, "")
        return text if isinstance(text, str) else ""


# --- rendering ------------------------------------------------------------------------------------------------


def _summary_html(run, status: str, details: dict, ended: bool) -> str:
    colour = STATUS_COLOURS.get(status, "#1f77b4")
    experiment = _method(run, "experiment")
    definition = details.get("runDefinition") or {}
    rows = [
        ("Status", f"<b style='color:{colour}' class='aml-run-status'>{html.escape(status)}</b>"),
        ("Run", html.escape(str(run.id))),
        ("Experiment", html.escape(str(getattr(experiment, "name", "-")))),
        ("Compute", html.escape(str(details.get("target") or definition.get("target") or "-"))),
        ("Started", html.escape(_time(details.get("startTimeUtc")))),
        ("Ended", html.escape(_time(details.get("endTimeUtc")))),
    ]
    workers = _worker_count(details)
    if workers > 1:
        rows.append(("Workers", f"<span class='aml-run-workers'>{workers}</span>"))
    url = run.get_portal_url() or ""
    if url.startswith("https://"):
        link = (
            f"<a class='aml-portal-link' href='{html.escape(url, quote=True)}' target='_blank' "
            "rel='noopener noreferrer'>View run in Azure ML studio</a>"
        )
    else:
        link = f"<span class='aml-portal-link'>{html.escape(url)}</span>"
    rows.append(("Web view", link))
    if status == "Failed":
        rows.append(("Error", f"<span style='color:red'>{html.escape(_error_message(details) or '-')}</span>"))
    if ended:
        outputs = [n for n in run.get_file_names() if n.startswith("outputs/")]
        if outputs:
            shown = ", ".join(outputs[:5]) + (f" and {len(outputs) - 5} more" if len(outputs) > 5 else "")
            rows.append(("Outputs", html.escape(shown)))
    body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='aml-run-summary'>{body}</table>"


def _time(value) -> str:
    if not value:
        return "-"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value).replace("T", " ").split(".")[0].rstrip("Z") + " UTC"


def _worker_count(details: dict) -> int:
    definition = details.get("runDefinition") or {}
    counts = [definition.get("nodeCount") or 1, (definition.get("tensorflow") or {}).get("workerCount") or 1]
    counts.append(sum(bool(WORKER_LOG.search(name)) for name in details.get("logFiles") or {}))
    return max(int(c) for c in counts)


def _logs_html(run, names: list[str]) -> str:
    """The driver log's tail, then each worker's (a multi-worker run)."""
    workers = sorted((n for n in names if WORKER_LOG.search(n)), key=lambda n: int(WORKER_LOG.search(n).group(1)))
    others = [n for n in names if n not in workers]
    driver = next((n for n in DRIVER_LOGS if n in others), others[0] if others else None)
    fetched: dict = {}
    parts = []
    if driver:
        parts.append(_tail_html(f"Log: {driver}", _read_log(run, driver, fetched), LOG_LINES, "aml-log", driver))
    for name in workers:
        index = WORKER_LOG.search(name).group(1)
        text = _read_log(run, name, fetched)
        parts.append(_tail_html(f"Worker {index}: {name}", text, WORKER_LOG_LINES, "aml-worker-log", name))
    return "".join(parts) or "<i>No log yet.</i>"


def _tail_html(title: str, text: str, lines: int, css: str, name: str) -> str:
    if "hyperdrive" in name:  # the HyperDrive service writes <START>message<END>; azureml-widgets does the same
        inner = re.findall(r"(?<=<START>)(.*?)(?=<END>)", text)
        text = "\n".join(inner) if inner else text
    tail = "\n".join(text.splitlines()[-lines:])
    return (
        f"<b>{html.escape(title)}</b> <small>(last {lines} lines)</small>"
        f"<pre class='{css}' data-log='{html.escape(name, quote=True)}' style='font-size:11px'>"
        f"{html.escape(tail)}</pre>"
    )


def _scalars_html(metrics: dict) -> str:
    """Metrics logged once (e.g. the final test accuracy), as a small table."""
    single = {k: v for k, v in metrics.items() if not isinstance(v, list)}
    if not single:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_value(v))}</td></tr>" for k, v in sorted(single.items())
    )
    return f"<table class='aml-run-metrics'>{rows}</table>"


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, str) and value.startswith("aml://artifactId/"):  # run.log_image: a file of the run
        return f"image: {value.rsplit('/', 1)[-1]}"
    return str(value)[:200]


def _short_id(run_id: str) -> str:
    return str(run_id).rsplit("_", 1)[-1]


def _params(value) -> str:
    try:
        params = json.loads(value) if isinstance(value, str) else dict(value or {})
    except (TypeError, ValueError):
        return str(value)
    return ", ".join(
        f"{str(k).lstrip('-')}={v:.4g}" if isinstance(v, float) else f"{str(k).lstrip('-')}={v}"
        for k, v in params.items()
    )


def _numeric_series(metrics: dict) -> dict:
    return {
        k: v for k, v in metrics.items()
        if isinstance(v, list) and v and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
    }  # fmt: skip


def _metrics_png(metrics: dict) -> bytes:
    """A chart of the metrics logged more than once (one panel each), as PNG bytes."""
    series = _numeric_series(metrics)
    if not series:
        return b""
    from matplotlib.figure import Figure  # no pyplot: safe from a background thread
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(3.2 * len(series), 2.4), layout="constrained")
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (name, values) in zip(axes, sorted(series.items()), strict=True):
        ax.plot(range(1, len(values) + 1), values, marker="o")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _sweep_png(child_metrics: dict, name: str) -> bytes:
    """One line per child run: its primary metric after each time it was logged."""
    series = {rid: m.get(name) for rid, m in child_metrics.items() if isinstance(m.get(name), list)}
    if not series:
        return b""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.subplots()
    for rid, values in sorted(series.items()):
        ax.plot(range(1, len(values) + 1), values, marker=".", label=_short_id(rid))
    ax.set_title(f"{name} of each child run")
    ax.set_xlabel("interval (times logged)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if len(series) <= 10:
        ax.legend(fontsize=7, ncols=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
