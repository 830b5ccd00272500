"""What every twin class of the local workspace shares, in both facades (SDK v1's and SDK v2's).

Layer 0: it imports nothing of the project, so the v1 facade (``facade/``) and the v2 facade
(``facade_v2/``) both use it without importing each other.

* :func:`warn_ignored`: an argument accepted for parity with Azure but not honoured
  gets a :class:`LocalWorkspaceWarning`, never silence.
* :class:`Offline`: a base class whose unknown attributes raise
  :class:`NotAvailableOffline` when azureml-core's class has them (so a notebook
  learns at once that the method exists on Azure but not in the local workspace),
  and a plain ``AttributeError`` otherwise (a typo stays a typo).
"""

from __future__ import annotations

import warnings

COVERAGE_DOC = "the coverage table (aml-offline/docs/coverage.md)"


class LocalWorkspaceWarning(UserWarning):
    """An argument the local workspace accepts for parity with Azure but cannot honour."""


class NotAvailableOffline(NotImplementedError):
    """An azureml-core (or azure-ai-ml) method the local workspace does not implement."""


def warn_ignored(where: str, argument: str, why: str = "") -> None:
    """Say that the local workspace ignores an argument (Python shows each place's warning once)."""
    text = f"{where}: the local workspace ignores '{argument}'"
    warnings.warn(f"{text} ({why})." if why else f"{text}.", LocalWorkspaceWarning, stacklevel=3)


def not_available(name: str, why: str = "") -> NotAvailableOffline:
    return NotAvailableOffline(
        f"{name} is not available in the local workspace (offline){': ' + why if why else ''}. "
        f"Run it against Azure ML, or see {COVERAGE_DOC} for what the local workspace covers."
    )


def _missing(cls: type, name: str, owner: str):
    azure = cls.__dict__.get("_azure_class") or getattr(cls, "_azure_class", None)
    if azure is not None and not name.startswith("_") and hasattr(azure, name):
        return not_available(f"{azure.__name__}.{name}")
    return AttributeError(f"{owner} has no attribute {name!r}")


class _OfflineType(type):
    def __getattr__(cls, name: str):  # class attributes: Model.some_static_method
        if name.startswith("__"):
            raise AttributeError(name)
        raise _missing(cls, name, f"type object {cls.__name__!r}")


class Offline(metaclass=_OfflineType):
    """Base of the twins: ``_azure_class`` names the azureml-core (or azure-ai-ml) class a twin stands in for."""

    _azure_class: type | None = None

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _missing(type(self), name, f"{type(self).__name__!r} object")
