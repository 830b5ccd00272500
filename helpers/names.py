"""Names for what a student creates, so that a class can share one workspace.

    from helpers.names import STUDENT, named

    experiment = Experiment(ws, named("keras-mnist"))      # "ana-keras-mnist" in a shared workspace
    run = experiment.submit(config, tags={"student": STUDENT})

Twenty students often share one Azure ML workspace. Experiments, models, services and endpoints that a student
creates carry their prefix, so no one reads, replaces or deletes a classmate's. The compute clusters, the
registered MNIST data and the job environments stay shared on purpose: they are the same for everyone, and one
cluster with many nodes is cheaper than twenty.

The prefix comes from ``AML_PREFIX``:

* ``AML_PREFIX=ana`` gives ``ana-keras-mnist``. ``AML_PREFIX=none`` (or empty) gives no prefix.
* Unset, in local mode: no prefix. The local workspace is on your machine, so you are alone in it.
* Unset, in Azure mode: your login name; on an Azure ML compute instance, where everyone is ``azureuser``, the
  compute instance's name (unique in its workspace, and usually named after its owner).

A prefix is at most 20 characters of ``a-z``, ``0-9`` and ``-``: Azure's rules for a web service name (3 to 32
characters, a letter first) leave room for ``-keras-mnist-svc`` after it.
"""

from __future__ import annotations

import getpass
import os
import re
import socket

import aml_offline

from helpers.i18n import _

#: The longest prefix: ``<prefix>-keras-mnist-svc`` must fit a web service name's 32 characters
MAX_PREFIX = 15
#: Azure ML compute instances sign everyone in as this user
COMPUTE_INSTANCE_USER = "azureuser"


class PrefixError(ValueError):
    """``AML_PREFIX`` cannot start a name Azure accepts."""


def _clean(value: str) -> str:
    """Lower case, runs of other characters as one ``-``, cut to ``MAX_PREFIX``, no ``-`` at either end."""
    value = re.sub(r"[^a-z0-9]+", "-", value.strip().lower()).strip("-")
    return value[:MAX_PREFIX].rstrip("-")


def student_prefix(environ: dict | None = None, mode: str | None = None) -> str:
    """The prefix for this student's names (without the ``-``): ``AML_PREFIX``, or the default of the mode."""
    environ = os.environ if environ is None else environ
    if "AML_PREFIX" in environ:
        raw = environ["AML_PREFIX"]
        if raw.strip().lower() in ("", "none"):
            return ""
        prefix = _clean(raw)
        if not prefix or not prefix[0].isalpha():
            raise PrefixError(
                _(
                    "AML_PREFIX={value} cannot start a name in Azure ML: use letters and digits, starting with a "
                    "letter (for example AML_PREFIX=ana), or AML_PREFIX=none for no prefix."
                ).format(value=repr(raw))
            )
        return prefix
    if mode is None:
        mode = aml_offline.resolve_mode()[0]
    if mode == "local":
        return ""
    user = getpass.getuser()
    who = (environ.get("CI_NAME") or socket.gethostname()) if user == COMPUTE_INSTANCE_USER else user
    prefix = _clean(who)
    return prefix if prefix[:1].isalpha() else f"s-{prefix}"[:MAX_PREFIX].rstrip("-")


#: This student's prefix ('' when alone); read once, when a notebook imports this module
PREFIX = student_prefix()
#: Who made a run: the tag ``student`` carries it (the prefix, or the login name when there is none)
STUDENT = PREFIX or _clean(getpass.getuser()) or "student"


def named(base: str, prefix: str | None = None) -> str:
    """``base`` with this student's prefix: ``named("keras-mnist")`` is ``"ana-keras-mnist"`` or ``"keras-mnist"``."""
    prefix = PREFIX if prefix is None else prefix
    return f"{prefix}-{base}" if prefix else base
