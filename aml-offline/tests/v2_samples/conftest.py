"""These notebooks are run by ../test_v2_samples.py (through ``aml-offline run``), not collected by nbval here."""

collect_ignore_glob = ["*.ipynb"]
