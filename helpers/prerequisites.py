"""What an earlier notebook left in the workspace: find it, or say which notebook makes it.

    from helpers.prerequisites import made_by

    with made_by("01-dataset.ipynb"):
        dataset = Dataset.get_by_name(ws, name="mnist-dataset")

Only azureml-core's "not found" answers become "run 01-dataset.ipynb first". Any
other error (an expired Azure sign-in, no network, a service fault) goes through
unchanged, with its own message: re-running an earlier notebook would not fix it.

azureml-core has no single not-found exception. What it raises, read from its
source (1.61), and what is matched here:

=============================================  ==================================================================
call                                           not found
=============================================  ==================================================================
``Dataset.get_by_name(ws, name)``              ``UserErrorException('Cannot find dataset registered with name ...')``
                                               (the same class as a refused request, ``'Request failed (401)...'``,
                                               and ``AuthenticationException`` is a subclass: hence the message)
``ComputeTarget(ws, name)``                    ``ComputeTargetException('ComputeTargetNotFound: ...')`` (a bad
                                               response is the same class: ``'Received bad response ...'``)
``Model(ws, name)``                            ``WebserviceException('ModelNotFound: ...')``; with a version,
                                               ``ModelNotFoundException``
=============================================  ==================================================================

The local workspace raises the same classes with the same words.
"""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceNotFoundError
from azureml.exceptions import (
    AuthenticationException,
    ComputeTargetException,
    ModelNotFoundException,
    UserErrorException,
    WebserviceException,
)

from helpers.i18n import _

#: (exception class, words its message starts with or contains when the thing is not there)
NOT_FOUND = (
    (UserErrorException, ("Cannot find dataset registered with name",)),
    (ComputeTargetException, ("ComputeTargetNotFound",)),
    (WebserviceException, ("ModelNotFound",)),
)


class MissingPrerequisite(RuntimeError):
    """Something an earlier notebook makes is not in the workspace; the message names the notebook."""


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is azureml-core's answer for a dataset, compute target or model that does not exist, or
    azure-ai-ml's (SDK v2: ``ResourceNotFoundError`` from ``ml_client.data.get``, ``compute.get``, ``models.get``)."""
    if isinstance(exc, ModelNotFoundException | ResourceNotFoundError):
        return True
    if isinstance(exc, AuthenticationException):
        return False
    message = _message(exc)
    return any(isinstance(exc, cls) and any(w in message for w in words) for cls, words in NOT_FOUND)


@contextlib.contextmanager
def made_by(*notebooks: str):
    """Turn a not-found answer inside the block into "run NOTEBOOK first"; let every other error through."""
    try:
        yield
    except Exception as exc:
        if not is_not_found(exc):
            raise
        first = _(" and ").join(notebooks)
        advice = _("Run {notebooks} first.").format(notebooks=first)
        raise MissingPrerequisite(f"{_message(exc).strip()}\n{advice}") from exc
