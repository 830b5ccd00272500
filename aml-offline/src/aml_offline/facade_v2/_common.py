"""What the v2 operations share: the poller azure-ai-ml's ``begin_*`` methods return, and its errors."""

from __future__ import annotations

from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationException
from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller, NoPolling

from aml_offline.store import LocalStore


def done(result) -> LROPoller:
    """An ``LROPoller`` whose work is over: ``.result()`` gives ``result`` (the local workspace works at once)."""
    return LROPoller(None, result, lambda response: response, NoPolling())


def not_found(what: str, name: str, store: LocalStore, known: list[str] | None = None) -> ResourceNotFoundError:
    """As Azure answers a ``get`` of something missing, with what there is."""
    have = f" It has: {', '.join(known)}." if known is not None else ""
    return ResourceNotFoundError(f"No {what} {name!r} in the local workspace ({store.root}).{have}")


def invalid(message: str, target=ErrorTarget.JOB) -> ValidationException:
    """azure-ai-ml's own error for input it refuses before sending it."""
    return ValidationException(
        message=message, no_personal_data_message=message, target=target, error_category=ErrorCategory.USER_ERROR
    )
