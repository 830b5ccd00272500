"""What the v2 operations share: the poller azure-ai-ml's ``begin_*`` methods return, and its errors."""

from __future__ import annotations

import getpass

from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationException
from azure.core.exceptions import HttpResponseError, ODataV4Format, ResourceNotFoundError
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


def service_error(message: str, code: str = "UserError", details: list[dict] | None = None) -> HttpResponseError:
    """As Azure's service refuses a request: an ``HttpResponseError`` whose ``error`` is the service's (``code``,
    ``message``, ``details``), worded as azure-core words it: ``(UserError) <message>`` then ``Code:`` and
    ``Message:`` lines."""
    error = ODataV4Format({"code": code, "message": message, "details": details or []})
    exc = HttpResponseError(message=str(error))
    exc.error = error
    return exc


def user() -> str:
    """Who submits (``created_by``): the login name, else ``local`` (some containers have none)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "local"
