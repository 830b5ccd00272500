"""Status reads that notice a dead supervisor, and reap what it left behind.

A run's supervisor is recorded in the ledger.  When a status read finds a run
that has not ended but whose supervisor is gone (killed, or the machine
restarted), the run is marked Failed and every process it started is stopped
through the ledger; a sweep's children go with it.
"""

from __future__ import annotations

import time

from aml_offline.execution import ledger
from aml_offline.records import compute as compute_records
from aml_offline.records import runs as run_records
from aml_offline.records import status as run_status
from aml_offline.records.status import TERMINAL
from aml_offline.store import LocalStore

#: How long a run may wait for its supervisor to be recorded before a read calls it lost.
START_GRACE_S = 60
LOST = (
    "The local run supervisor stopped unexpectedly (it was killed, or the machine restarted); its processes "
    "were stopped. Submit the run again."
)


def supervisor_alive(store: LocalStore, spec: dict) -> bool | None:
    """True or False, or None when no supervisor was recorded yet (the run is just being submitted)."""
    owner = ledger.run_owner(spec["run_id"])
    recorded = ledger.entries(store, owner, ("supervisor",), open_only=False)
    if not recorded:
        return None
    return any(ledger.verified(e) is not None for e in recorded if e["ended"] is None)


def status(store: LocalStore, spec: dict) -> str:
    """The run's status, after reaping it if its supervisor is gone."""
    current = run_status.current_status(store, spec)
    if current in TERMINAL or spec.get("interactive"):  # an interactive run has no supervisor: its notebook ends it
        return current
    alive = supervisor_alive(store, spec)
    if alive or (alive is None and time.time() - spec.get("created", 0) < START_GRACE_S):
        return current
    time.sleep(0.3)  # it may have just finished: read once more before declaring it lost
    current = run_status.current_status(store, spec)
    if current in TERMINAL:
        return current
    reap(store, spec)
    return run_status.current_status(store, spec)


def reap(store: LocalStore, spec: dict, error: str = LOST) -> None:
    """Mark a run whose supervisor is gone Failed and stop everything it (and its children) started."""
    run_status.set_status(store, spec, "Failed", error=error)
    ledger.stop(store, ledger.run_owner(spec["run_id"]), grace=2)
    for child_id in run_records.search(store, spec["experiment"], parent=spec["run_id"]):
        child = run_records.spec_of(store, child_id)
        if run_status.current_status(store, child) not in TERMINAL:
            reap(store, child, error="Its parent run's supervisor stopped unexpectedly. " + error)
        else:
            ledger.stop(store, ledger.run_owner(child_id), grace=2)


def request_cancel(store: LocalStore, spec: dict, reason: str) -> None:
    """Ask the supervisor to stop the run; with no supervisor left, reap it now."""
    (store.run_dir(spec["run_id"]) / "cancel_requested").write_text(reason)
    if supervisor_alive(store, spec) is False:
        run_status.set_status(store, spec, "Canceled", reason=reason)
        ledger.stop(store, ledger.run_owner(spec["run_id"]), grace=2)


def cancel_runs_on(store: LocalStore, target: str, reason: str, wait_s: float = 60, say=print) -> list[str]:
    """Cancel the runs queued or running on a compute target (and the sweeps feeding it), as stopping or deleting
    the target does on Azure, and wait up to ``wait_s`` for them to end.  Returns the ids of those still going."""
    specs = [
        s for s in compute_records.active_runs(store, target, include_sweeps=True) if status(store, s) not in TERMINAL
    ]
    for spec in specs:
        request_cancel(store, spec, reason)
        say(f"Canceling run {spec['run_id']}: {reason}.")
    deadline = time.time() + wait_s
    while specs and time.time() < deadline:
        specs = [s for s in specs if status(store, s) not in TERMINAL]
        if specs:
            time.sleep(0.25)
    return [s["run_id"] for s in specs]
