"""The ledger: every process the local workspace starts, who owns it, and how to stop it safely.

A row per process: its owner (``run:<run id>`` or ``service:<name>``), its role
(``supervisor``, ``script``, ``worker``, ``server``), its pid **and start time**,
and the session it leads (every process the twin starts gets a session of its
own, so its children share it).  Nothing is ever signalled on a pid alone:

* a process counts as the one recorded only when its pid *and* start time match
  (psutil's ``create_time``), so a pid the system reused for another program after
  a reboot or a long wait is never touched;
* the members of a recorded session are found by session id, started no earlier
  than the recorded process: Linux does not hand out a pid again while any
  process still uses it as its session id, so those are the recorded process's
  own descendants, also after it died and they were re-parented.

:func:`stop` ends everything an owner started (SIGTERM, then SIGKILL after a grace
period), :func:`alive` says whether a role of an owner still runs, and both are
what every stop, cancel, delete and liveness check of the upper layers uses.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

import psutil

from aml_offline.store import LocalStore

#: Start times are kept in seconds since boot (clock ticks, immune to clock changes); two reads of one process
#: agree to one tick (10 ms).
SAME_START_S = 0.05
_PR_SET_CHILD_SUBREAPER = 36


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return f"boot-at-{psutil.boot_time():.0f}"


BOOT_ID = _boot_id()
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def start_stamp(pid: int) -> float:
    """When the process started, in seconds since boot (Linux: /proc/<pid>/stat, not the wall clock, so a
    clock change or NTP step does not change it); elsewhere psutil's create_time.  NoSuchProcess if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19]) / _TICKS
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    except (OSError, IndexError, ValueError):
        return psutil.Process(pid).create_time()


#: The environment variable every process started through the ledger carries: its owner (run:<id> ...) and workspace
OWNER_VARIABLE = "AZUREML_LOCAL_OWNER"


def run_owner(run_id: str) -> str:
    return f"run:{run_id}"


def service_owner(name: str) -> str:
    return f"service:{name}"


# --- starting processes ------------------------------------------------------------------------------------


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


#: Put in front of a command that must die with the thread that started it (Linux): the child sets its own
#: parent-death signal, checks that its parent is still the one that started it, then becomes the command.  Done
#: in the child after exec, not in a ``preexec_fn`` (which CPython documents as unsafe in a process with threads:
#: sweeps and Jupyter kernels have them).
_DIE_WITH_PARENT = (
    "import ctypes,os,signal,sys;"
    "ctypes.CDLL(None).prctl(1,signal.SIGKILL,0,0,0);"  # PR_SET_PDEATHSIG
    "os.getppid()==int(sys.argv[1]) or os._exit(1);"  # the parent died before the call: the signal never comes
    "os.execvp(sys.argv[2],sys.argv[2:])"
)


def dying_with_parent(command: list[str]) -> list[str]:
    if _LIBC is None:
        return command
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *map(str, command)]


def become_subreaper() -> bool:
    """Make this process the one that orphaned descendants are re-parented to (Linux), so none escape it."""
    if _LIBC is None:
        return False
    return _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def start(store: LocalStore, owner: str, role: str, command: list[str], *, die_with_parent: bool = True,
          note: str = "", **popen) -> subprocess.Popen:  # fmt: skip
    """Start ``command`` in a session of its own and record it before anything else can happen.

    With ``die_with_parent`` (Linux), the kernel kills it if the thread that started it dies, even by
    SIGKILL: a script never outlives its supervisor.
    """
    # everything it starts inherits the mark
    env = dict(popen.pop("env", None) or os.environ, **{OWNER_VARIABLE: mark(store, owner)})
    proc = subprocess.Popen(dying_with_parent(command) if die_with_parent else command, start_new_session=True,
                            env=env, **popen)  # fmt: skip
    try:
        record(store, owner, role, proc.pid, note=note)
    except psutil.NoSuchProcess:
        return proc  # it has ended already, leaving nothing to stop: its exit status and output say why
    except BaseException:
        with contextlib.suppress(psutil.Error):  # what failed is the error to see, not that the process is gone
            kill_tree([psutil.Process(proc.pid)], grace=1)
        raise
    return proc


def record(store: LocalStore, owner: str, role: str, pid: int, note: str = "") -> int:
    """Add a process to the ledger (its start time and session read now); returns the row id."""
    stamp = start_stamp(pid)
    sid = os.getsid(pid)
    with store.write_lock(), store.db() as db:
        cur = db.execute(
            "INSERT INTO processes (owner, role, pid, create_time, sid, started, ended, note) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
            (owner, role, pid, stamp, sid, time.time(), f"{BOOT_ID} {note}".strip()),
        )
        return cur.lastrowid


def mark_ended(store: LocalStore, owner: str, roles: tuple[str, ...] | None = None) -> None:
    with store.write_lock(), store.db() as db:
        if roles:
            marks = ",".join("?" * len(roles))
            db.execute(f"UPDATE processes SET ended = ? WHERE owner = ? AND ended IS NULL AND role IN ({marks})",
                       (time.time(), owner, *roles))  # fmt: skip
        else:
            db.execute("UPDATE processes SET ended = ? WHERE owner = ? AND ended IS NULL", (time.time(), owner))


def entries(store: LocalStore, owner: str, roles: tuple[str, ...] | None = None, open_only: bool = True) -> list[dict]:
    query = "SELECT * FROM processes WHERE owner = ?"
    args: list = [owner]
    if open_only:
        query += " AND ended IS NULL"
    if roles:
        query += f" AND role IN ({','.join('?' * len(roles))})"
        args += list(roles)
    with store.db() as db:
        return [dict(r) for r in db.execute(query + " ORDER BY id", args)]


def owners(store: LocalStore, prefix: str, role: str) -> list[str]:
    """Owners whose name starts with ``prefix`` and that have an open entry of ``role``."""
    with store.db() as db:
        rows = db.execute("SELECT DISTINCT owner FROM processes WHERE owner LIKE ? AND role = ? AND ended IS NULL",
                          (prefix.replace("%", "") + "%", role))  # fmt: skip
        return [r[0] for r in rows]


def open_owners(store: LocalStore) -> list[str]:
    """Every owner with a process recorded and not yet marked ended (runs, services, MLflow UIs)."""
    with store.db() as db:
        return [r[0] for r in db.execute("SELECT DISTINCT owner FROM processes WHERE ended IS NULL ORDER BY owner")]


def stop_everything(store: LocalStore, grace: float = 5) -> int:
    """End every process the workspace has recorded, and everything they started; returns how many."""
    return sum(stop(store, owner, grace=grace) for owner in open_owners(store))


# --- identity and liveness --------------------------------------------------------------------------------


def _same(entry: dict) -> psutil.Process | None:
    """The recorded process when its pid still names it (same boot, same start time), zombie or not."""
    if not entry["note"].startswith(BOOT_ID):
        return None  # recorded before the machine restarted: whatever has that pid now is another process
    try:
        if abs(start_stamp(entry["pid"]) - entry["create_time"]) > SAME_START_S:
            return None
        return psutil.Process(entry["pid"])
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def verified(entry: dict) -> psutil.Process | None:
    """The recorded process itself, or None: gone, a zombie, or the pid now belongs to another process."""
    proc = _same(entry)
    try:
        return proc if proc is not None and proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.NoSuchProcess:
        return None


def alive(store: LocalStore, owner: str, roles: tuple[str, ...] | None = None) -> bool:
    return any(verified(e) is not None for e in entries(store, owner, roles))


def _session_is_ours(entry: dict) -> bool:
    """Whether the session the recorded process led is still that one, not a new one under a reused pid.

    While the recorded process lives (or is a zombie), its start time tells.  Once it is gone, Linux
    does not give its pid to a new process while any process is still in its session, so a living
    process with that pid means the session ended and the pid was reused: not ours.
    """
    if _same(entry) is not None:
        return True
    return entry["note"].startswith(BOOT_ID) and not psutil.pid_exists(entry["pid"])


def family(entry: dict) -> list[psutil.Process]:
    """The recorded process (if it is still the one recorded), its descendants, and its session's members."""
    found: dict[int, psutil.Process] = {}
    leader = verified(entry)
    if leader is not None:
        found[leader.pid] = leader
    if entry["sid"] == entry["pid"] and _session_is_ours(entry):  # it led its own session: its orphans are in it
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == entry["sid"] and start_stamp(proc.pid) >= entry["create_time"] - SAME_START_S:
                    found.setdefault(proc.pid, proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
                continue
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    me = os.getpid()
    return [p for pid, p in found.items() if pid != me]


def kill_tree(procs: list[psutil.Process], grace: float) -> None:
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    _, left = psutil.wait_procs(procs, timeout=grace)
    for proc in left:
        try:
            proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(left, timeout=5)


def stop(store: LocalStore, owner: str, roles: tuple[str, ...] | None = None, grace: float = 5) -> int:
    """End every recorded process of ``owner`` (of ``roles``, or all) and everything they started.

    Returns how many processes were signalled.  Safe to call again and from any process: what is
    gone, or is no longer the process recorded, is left alone.
    """
    targets: dict[int, psutil.Process] = {}
    found = entries(store, owner, roles)
    for entry in found:
        for proc in family(entry):
            targets.setdefault(proc.pid, proc)
    if roles is None and found:  # all of it: also what left every session and parent it had (setsid, a daemon)
        for proc in marked(mark(store, owner), since=min(e["create_time"] for e in found)):
            targets.setdefault(proc.pid, proc)
    if targets:
        kill_tree(list(targets.values()), grace)
    mark_ended(store, owner, roles)
    return len(targets)


def mark(store: LocalStore, owner: str) -> str:
    """What a process started for ``owner`` carries in its environment: the owner in this workspace (two workspaces
    on one machine may both have a service named "svc")."""
    return f"{owner}@{store.root}"


def marked(owner: str, since: float) -> list[psutil.Process]:
    """This user's processes started since ``since`` whose environment carries ``owner`` (a :func:`mark`):
    everything a process started through :func:`start` started in turn, however it left (a new session,
    re-parented to init), unless it cleared its environment.  The process's own start time is checked, as
    everywhere in the ledger."""
    found = []
    me, uid = os.getpid(), os.getuid()
    for proc in psutil.process_iter(["uids", "create_time"]):
        try:
            if proc.pid == me or proc.info["uids"].real != uid or proc.info["create_time"] < since - SAME_START_S:
                continue
            if proc.environ().get(OWNER_VARIABLE) == owner:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def descendants_of_self() -> list[psutil.Process]:
    """This process's living descendants (with :func:`become_subreaper`, orphans of its children too)."""
    try:
        return psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_descendants(grace: float = 5) -> int:
    procs = descendants_of_self()
    if procs:
        kill_tree(procs, grace)
    return len(procs)
