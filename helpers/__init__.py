"""Shared code for the Azure ML Keras MNIST walkthrough.

Modules: ``data`` (MNIST files: registry, verified downloads, offline sample),
``plots`` (pictures for the notebooks), ``aml`` (the Azure ML names, real or the
offline local workspace).
"""
