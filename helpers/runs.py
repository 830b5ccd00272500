"""Reading a run's metrics the same way whatever the number of epochs.

azureml-core's ``run.get_metrics()`` gives a metric logged once as a number and a metric logged more than once
as a list (with one epoch, ``metrics["Accuracy"]`` is ``0.91``, with three ``[0.89, 0.9, 0.91]``)::

    from helpers.runs import per_epoch

    per_epoch(run.get_metrics(), "Accuracy")[-1]   # the last epoch's value, with 1 epoch or 12
"""

from __future__ import annotations

from helpers.i18n import _


def per_epoch(metrics: dict, name: str) -> list:
    """The values of metric ``name`` as a list, one per time the run logged it; a clear error when it has none."""
    if name not in metrics:
        logged = ", ".join(sorted(metrics)) or _("none")
        message = _("The run logged no metric {name}; it logged: {logged}.")
        raise KeyError(message.format(name=repr(name), logged=logged))
    values = metrics[name]
    return values if isinstance(values, list) else [values]
