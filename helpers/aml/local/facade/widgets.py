"""``RunDetails(run).show()`` for the local workspace: a live view in JupyterLab.

Built from the same widget stack as azureml-widgets (ipywidgets 7): the run's
status, its metrics as a chart and the tail of its log, refreshed every two
seconds by a background thread until the run ends.
"""

from __future__ import annotations

import html
import io
import threading
import time

from helpers.aml.local.records.status import TERMINAL

REFRESH_S = 2.0
LOG_LINES = 25


class RunDetails:
    """Twin of ``azureml.widgets.RunDetails``."""

    def __init__(self, run_instance):
        self.run = run_instance
        self._thread: threading.Thread | None = None
        self._last_png = b""

    def show(self, render_lib=None, widget_settings=None):
        import ipywidgets as widgets
        from IPython.display import display

        self._status = widgets.HTML()
        self._chart = widgets.Image(format="png", layout=widgets.Layout(max_width="640px"))
        self._log = widgets.HTML(layout=widgets.Layout(max_height="320px", overflow_y="auto"))
        self._box = widgets.VBox([self._status, self._chart, widgets.HTML("<b>Log (tail)</b>"), self._log])
        self._refresh()
        display(self._box)
        if self.run.get_status() not in TERMINAL:
            self._thread = threading.Thread(target=self._follow, name=f"RunDetails-{self.run.id}", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        while True:
            time.sleep(REFRESH_S)
            try:
                done = self._refresh()
            except Exception:  # noqa: BLE001  (a view must never crash the kernel; try again)
                continue
            if done:
                return

    def _refresh(self) -> bool:
        status = self.run.get_status()
        details = self.run.get_details()
        colour = {"Completed": "green", "Failed": "red", "Canceled": "gray"}.get(status, "#1f77b4")
        rows = [
            ("Status", f"<b style='color:{colour}' class='aml-run-status'>{status}</b>"),
            ("Run", html.escape(self.run.id)),
            ("Experiment", html.escape(self.run.experiment.name)),
            ("Compute", html.escape(details["target"])),
            ("Started", details.get("startTimeUtc") or "-"),
            ("Ended", details.get("endTimeUtc") or "-"),
        ]
        self._status.value = "<table>" + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows) + "</table>"
        if hasattr(self.run, "get_children_sorted_by_primary_metric"):  # a HyperDrive sweep
            children = self.run.get_children_sorted_by_primary_metric()
            self._status.value += _children_html(children)
            name = self.run.hyperdrive_config._primary_metric_config["name"]
            png = _sweep_png(self.run.get_metrics(), name)
        else:
            png = _metrics_png(self.run.get_metrics())
        if png and png != self._last_png:
            self._chart.value = self._last_png = png
        log = self.run._read_log().splitlines()[-LOG_LINES:]
        self._log.value = f"<pre style='font-size:11px'>{html.escape(chr(10).join(log))}</pre>"
        return status in TERMINAL


def _metrics_png(metrics: dict) -> bytes:
    """A chart of the metrics logged more than once (one panel each), as PNG bytes."""
    series = {k: v for k, v in metrics.items() if isinstance(v, list) and v and isinstance(v[0], int | float)}
    if not series:
        return b""
    from matplotlib.figure import Figure  # no pyplot: safe from a background thread

    fig = Figure(figsize=(3.2 * len(series), 2.4), layout="constrained")
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (name, values) in zip(axes, sorted(series.items()), strict=True):
        ax.plot(range(1, len(values) + 1), values, marker="o")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _children_html(children: list[dict]) -> str:
    """The sweep's child runs as a table: number, hyperparameters, best primary metric, status."""
    import json

    head = "<tr><th>Child</th><th>Hyperparameters</th><th>Best metric</th><th>Status</th></tr>"
    rows = []
    for c in children:
        params = ", ".join(f"{k.lstrip('-')}={v:.4g}" if isinstance(v, float) else f"{k.lstrip('-')}={v}"
                           for k, v in json.loads(c["hyperparameters"] or "{}").items())  # fmt: skip
        best = "-" if c["best_primary_metric"] is None else f"{c['best_primary_metric']:.4f}"
        rows.append(
            f"<tr><td>{html.escape(c['run_id'].rsplit('_', 1)[-1])}</td><td>{html.escape(params)}</td>"
            f"<td>{best}</td><td>{html.escape(c['status'])}</td></tr>"
        )
    return f"<b>Child runs ({len(children)})</b><table class='aml-sweep-children'>{head}{''.join(rows)}</table>"


def _sweep_png(child_metrics: dict, name: str) -> bytes:
    """One line per child run: its primary metric after each time it was logged."""
    series = {rid: m.get(name) for rid, m in child_metrics.items() if isinstance(m.get(name), list)}
    if not series:
        return b""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.subplots()
    for rid, values in sorted(series.items()):
        ax.plot(range(1, len(values) + 1), values, marker=".", label=rid.rsplit("_", 1)[-1])
    ax.set_title(f"{name} of each child run")
    ax.set_xlabel("interval (times logged)")
    ax.grid(True, alpha=0.3)
    if len(series) <= 10:
        ax.legend(fontsize=7, ncols=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
