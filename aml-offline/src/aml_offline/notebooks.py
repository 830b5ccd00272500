"""Run any Azure ML SDK v1 notebook offline, unmodified, against the local workspace (``aml-offline run``).

    aml-offline run path/to/notebook.ipynb [more.ipynb ...] [--out DIR] [--workdir DIR]

The notebook's kernel starts under ``aml_offline.boundary.kernel_env()`` with
``AZUREML_MODE=local``: its first ``import azureml...`` turns the boundary on, so
``from azureml.core import Workspace`` and the rest are the local workspace's
(``AZUREML_LOCAL_ROOT``, else ``.azureml-local/`` in the project) with no edit to the notebook.
Each code cell gets one line (ok or FAILED with the error, and its seconds);
the first failure stops the notebook, and the cells after it are listed as not
run.  The executed copy (with outputs) goes to ``--out`` (default
``build/notebooks/offline/`` in the project folder) with the same lines in ``<name>.cells.txt`` and the
kernel's own stderr in ``<name>.kernel.log``.  Exit status 1 when a cell failed.

A project testing its notebooks with pytest and nbval instead: ``pytest --aml-offline notebooks/``
(:mod:`aml_offline.pytest_plugin`).  Public: :func:`execute`, :func:`run`, :func:`offline_env`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from aml_offline import settings
from aml_offline.boundary import kernel_env

#: where executed copies go, under the project folder (see :mod:`aml_offline.settings`)
DEFAULT_OUT = Path("build", "notebooks", "offline")
CELL_TIMEOUT_S = 1800


def offline_env() -> dict:
    """The kernel's environment: the boundary switched on, local mode whatever config.json lies about, and the
    workspace settings resolved here (where the command runs), so a kernel started in the notebook's folder uses
    the same workspace as ``aml-offline status`` and ``reset`` run here."""
    return dict(kernel_env(), **settings.exported(), AZUREML_MODE="local", PYTHONUNBUFFERED="1")


def _first_line(source: str) -> str:
    line = next((s for s in source.strip().splitlines() if s.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _one_line(name: str, value: str) -> str:
    """The error's first informative line (azureml-core's exceptions start with their name and a colon)."""
    lines = [line.strip() for line in (value or "").splitlines() if line.strip() and line.strip() != f"{name}:"]
    message = next((line.split('"message": ', 1)[1].strip('",') for line in lines if '"message": ' in line), None)
    return f"{name}: {message or (lines[0] if lines else '')}"[:300]


def execute(path: Path, out_dir: Path, *, workdir: Path | None = None, env: dict | None = None,
            timeout: int = CELL_TIMEOUT_S, on_cell=None):  # fmt: skip
    """Execute a notebook's code cells in order until one fails; write the executed copy (and the kernel's
    stderr, ``<name>.kernel.log``) to ``out_dir``.  ``env`` is the kernel's environment (None: this process's);
    ``on_cell(index, cell, seconds, error)`` hears of each cell run.  Returns the notebook and the failing cell's
    ``(index, cell, CellExecutionError)``, or None when every cell passed."""
    book = nbformat.read(path, as_version=4)
    workdir = (workdir or path.parent).resolve()
    client = NotebookClient(book, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    failure = None
    try:
        with (
            open(out_dir / f"{path.stem}.kernel.log", "w") as log,
            client.setup_kernel(stderr=log, **({"env": env} if env else {})),
        ):
            for index, cell in enumerate(book.cells):
                if cell.cell_type != "code":
                    continue
                start = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as exc:
                    failure = (index, cell, exc)
                except (CellTimeoutError, DeadKernelError) as exc:  # a cell that hangs, or a kernel that died
                    failure = (index, cell, _as_cell_error(exc, timeout))
                if on_cell is not None:
                    on_cell(index, cell, time.perf_counter() - start, failure[2] if failure else None)
                if failure:
                    break
    finally:  # whatever stopped it (a kernel that would not start, Ctrl-C), the executed copy shows how far it got
        nbformat.write(book, out_dir / path.name)
    return book, failure


def _as_cell_error(exc: Exception, timeout: int) -> CellExecutionError:
    """A timeout or a dead kernel, reported the way a cell's own error is (a name and one line)."""
    if isinstance(exc, CellTimeoutError):
        why = f"the cell ran past the {timeout} s limit and was stopped"
    else:
        why = f"the kernel died while the cell ran ({exc}); see the .kernel.log beside the executed copy"
    return CellExecutionError(str(exc), type(exc).__name__, why)


def run(path: Path, out_dir: Path, workdir: Path | None = None, say=print, timeout: int = CELL_TIMEOUT_S) -> bool:
    """Execute one notebook offline, saying one line per code cell; True when every cell passed."""
    workdir = (workdir or path.parent).resolve()
    results: list[str] = []

    def report(line: str) -> None:
        results.append(line)
        say(line, flush=True)

    def on_cell(index, cell, seconds, error) -> None:
        label = f"cell {index:>2}: {_first_line(cell.source)}"
        if error is None:
            report(f"  ok   {seconds:5.1f}s {label}")
        else:
            report(f"  FAILED {seconds:4.1f}s {label} -> {_one_line(error.ename, error.evalue)}")

    report(f"{path} (offline, in {workdir})")
    try:
        book, failure = execute(path, out_dir, workdir=workdir, env=offline_env(), on_cell=on_cell, timeout=timeout)
    except Exception as exc:  # noqa: BLE001  (the kernel did not start, say: one line, and the lines so far)
        first = (str(exc).strip().splitlines() or [""])[0]
        report(f"  FAILED before or between cells -> {type(exc).__name__}: {first}")
        (out_dir / f"{path.stem}.cells.txt").write_text("\n".join(results) + "\n")
        return False
    if failure:
        for index, cell in enumerate(book.cells):
            if cell.cell_type == "code" and index > failure[0]:
                report(f"  not run     cell {index:>2}: {_first_line(cell.source)}")
    (out_dir / f"{path.stem}.cells.txt").write_text("\n".join(results) + "\n")
    say(f"  {'FAILED' if failure else 'passed'}: executed copy {out_dir / path.name}", flush=True)
    return failure is None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="the .ipynb files, run in this order")
    parser.add_argument(
        "--out",
        type=Path,
        help="where the executed copies go (default: build/notebooks/offline/ in the project folder)",
    )
    parser.add_argument("--workdir", type=Path, help="the kernel's working folder (default: the notebook's)")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT_S, help="seconds a cell may run")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    out = args.out or settings.project_folder() / DEFAULT_OUT
    passed = [run(p, out, args.workdir, timeout=args.cell_timeout) for p in args.notebooks]
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
