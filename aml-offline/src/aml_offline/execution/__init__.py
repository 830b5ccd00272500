"""Layer 3, execution: what really runs.

Snapshots and environment checks (:mod:`.snapshot`), job environments built with
uv (:mod:`.envs`), data made local (:mod:`.data`), the run supervisor
(:mod:`.supervisor`), the sweep supervisor and its rules (:mod:`.sweeper`,
:mod:`.sweep_rules`), the web service launcher (:mod:`.serving`), the code that
runs inside a script or server (``runtime/``), and the ledger of every process
the local workspace starts (:mod:`.ledger`).  Imports only the store and the
records, never azureml-core types.
"""
