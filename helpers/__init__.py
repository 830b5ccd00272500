"""The walkthrough's small helpers, imported the same way in every notebook (``from helpers import data, plots``).

Modules: ``data`` (MNIST files: registry, verified downloads, offline sample), ``plots`` (pictures for the
notebooks), ``prerequisites`` (what an earlier notebook must have left), ``chainer_mlp`` (the Chainer model in
NumPy), ``walkthrough`` (``make run``), ``preflight`` (``make preflight``: the walkthrough on Azure ML before the
day), ``locks`` and ``wheelhouse`` (installs with no network).  The local workspace, the offline twin of Azure ML
the notebooks switch on in their first cell, is a package of its own:
``aml_offline`` (``aml-offline/`` in this repository).
"""
