"""Azure ML for the notebooks: the mode rules, and the boundary that puts the local workspace behind azureml.core.

The notebooks import exactly as on Azure (``from azureml.core import Workspace``);
one visible call decides where those names point::

    import helpers.aml.boundary

    MODE = helpers.aml.boundary.activate()

* :mod:`helpers.aml.config`: the mode rules (``AZUREML_MODE=local|azure``, else
  Azure when a workspace ``config.json`` is found as ``Workspace.from_config()``
  finds it) and reading that file.
* :mod:`helpers.aml.boundary`: ``activate()`` / ``deactivate()``; in local mode
  azureml-core's workspace-bound names are the local twin's.
* :mod:`helpers.aml.local`: the local workspace itself, in four layers.
"""
