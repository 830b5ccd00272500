"""These notebooks are run by ../test_v1_samples.py and ../test_standalone.py (through ``aml-offline run`` and the
pytest plugin), not collected by nbval here."""

collect_ignore_glob = ["*.ipynb"]
