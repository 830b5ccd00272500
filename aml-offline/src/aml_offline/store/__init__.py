"""Layer 1, the store: where the local workspace keeps its state, and how writers take turns.

Everything above (records, execution, facade) reaches the disk through this
layer: the folder's paths, one re-entrant write lock per process and thread, the
small SQLite database and the MLflow client.  It imports nothing from the
layers above it and no azureml-core types.
"""

from aml_offline.store.folder import LocalStore, StoreError, default_root
from aml_offline.store.jsonfile import DamagedFile, read_json, write_json

__all__ = ["DamagedFile", "LocalStore", "StoreError", "default_root", "read_json", "write_json"]
