"""Layer 2, the records: what the workspace knows, and every change to it.

Runs (their spec, status, tags, properties and every value they logged), models,
datasets, compute targets and web services.  Each kind of record is a module of
plain functions on a :class:`~aml_offline.store.LocalStore` and plain
data (dicts, lists, strings), so any facade (azureml-core's v1 classes today, a
second SDK tomorrow) can sit on top.  Every status change of a run goes through
:func:`aml_offline.records.status.set_status`, which knows the legal
transitions.  Imports only the store layer.
"""
