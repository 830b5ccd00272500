"""What every azureml-shaped class of the local workspace shares: see :mod:`aml_offline.offline`.

It lives below both facades (the v1 classes here and SDK v2's ``MLClient`` in ``facade_v2/``), which must not
import each other; this module keeps the v1 facade's imports as they were.
"""

from aml_offline.offline import (
    COVERAGE_DOC,
    LocalWorkspaceWarning,
    NotAvailableOffline,
    Offline,
    not_available,
    warn_ignored,
)

__all__ = ["COVERAGE_DOC", "LocalWorkspaceWarning", "NotAvailableOffline", "Offline", "not_available", "warn_ignored"]
