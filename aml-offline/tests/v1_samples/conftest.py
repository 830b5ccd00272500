"""These notebooks are run by tests/test_v1_samples.py through the offline runner, not collected by nbval here."""

collect_ignore_glob = ["*.ipynb"]
