"""Layer 4, the second facade: Azure ML SDK v2's ``MLClient`` (``azure-ai-ml``) on the local workspace.

``MLClient`` and the operations it hands out (``ml_client.data``, ``compute``, ``jobs``, ``models``, ``environments``,
``online_endpoints``, ``online_deployments``, ``workspaces``) have azure-ai-ml's names and signatures and
work on the same records and execution layers as the v1 facade beside it (``facade/``, which this one never
imports): a v2 job is a run in the same history, swept by the same sweeper and served by the same inference
server.  The entity classes (``command``, ``Data``, ``Model``, ``ManagedOnlineEndpoint``, ...) stay
azure-ai-ml's own: the twin reads them.  ``aml_offline.boundary.activate()`` switches it on.
"""

from aml_offline.facade_v2.client import MLClient

__all__ = ["MLClient"]
