"""The tag and property filters of azureml-core, in every form it documents.

* ``Experiment.get_runs`` / ``Run.get_children``: ``"key"`` (the run has the tag)
  or ``{"key": "value"}`` (it has it with that value).
* ``Model.list`` / ``Model(...)`` / ``Webservice.list``: a list whose items are
  ``"key"`` or ``["key", "value"]``, for example ``["stage", ["team", "vision"]]``.

Every form is accepted everywhere; each condition must hold (AND), as on Azure.
"""

from __future__ import annotations

from collections.abc import Mapping


class FilterError(TypeError):
    """A filter in a form azureml-core does not accept."""


def conditions(value, what: str = "tags") -> list[tuple[str, str | None]]:
    """``(key, value or None)`` pairs from any accepted filter form."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, None)]
    if isinstance(value, Mapping):
        return [(str(k), None if v is None else str(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append((item, None))
            elif isinstance(item, list | tuple) and len(item) == 2:
                out.append((str(item[0]), str(item[1])))
            else:
                raise FilterError(
                    f"{what} filter item {item!r} is not 'key' or ['key', 'value'] "
                    f"(for example {what}=['stage', ['team', 'vision']])."
                )
        return out
    raise FilterError(f"{what} filter {value!r} must be 'key', {{'key': 'value'}} or ['key', ['key2', 'value']].")


def matches(found: Mapping[str, str], wanted) -> bool:
    """True when ``found`` (a run's or model's tags) meets every condition of ``wanted``."""
    return all(key in found and (value is None or found[key] == value) for key, value in conditions(wanted))
