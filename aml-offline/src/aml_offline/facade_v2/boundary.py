"""Which azure-ai-ml names the local workspace stands in for at the client boundary.

Only ``MLClient``: everything a v2 notebook does with the workspace goes through it (``ml_client.jobs``,
``ml_client.data`` ...).  The entity classes (``command``, ``Input``, ``Data``, ``Model``, ``AmlCompute``,
``ManagedOnlineEndpoint``, sweep's ``Choice`` and ``BanditPolicy`` ...) build without a workspace, so
azure-ai-ml's own serve both modes.
"""

from __future__ import annotations

from aml_offline.facade_v2.client import MLClient

TWINS: dict[str, dict[str, type]] = {
    "azure.ai.ml": {"MLClient": MLClient},
    "azure.ai.ml._ml_client": {"MLClient": MLClient},
}
