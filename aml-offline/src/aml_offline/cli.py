"""``aml-offline``: the local workspace from a terminal.

    aml-offline run NOTEBOOK.ipynb [...]   run Azure ML notebooks offline, unmodified, one line per cell
    aml-offline status                     what the workspace holds, and which of its processes are running
    aml-offline stop                       stop every process it started (web services, runs, MLflow UIs)
    aml-offline reset [--yes]              stop them, then delete the workspace folder
    aml-offline mlflow-ui                  browse its runs and models in the MLflow UI (http://127.0.0.1:5000)

The workspace is ``AZUREML_LOCAL_ROOT``, else the project's (see :mod:`aml_offline.settings`); ``--workspace``
names another.  ``python -m aml_offline`` is the same command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aml-offline", description="The local workspace (an offline twin of Azure ML) from a terminal."
    )
    parser.add_argument("--workspace", type=Path, help="the workspace folder (default: AZUREML_LOCAL_ROOT, else "
                        ".azureml-local/ in the project folder)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run notebooks offline, unmodified, against the local workspace")
    run.add_argument("notebooks", nargs="+", type=Path, help="the .ipynb files, run in this order")
    run.add_argument("--out", type=Path, help="where the executed copies go (default: build/notebooks/offline/)")
    run.add_argument("--workdir", type=Path, help="the kernels' working folder (default: each notebook's)")
    run.add_argument("--cell-timeout", type=int, help="seconds a cell may run (default: 1800)")
    commands.add_parser("status", help="what the workspace holds, and which of its processes are running")
    commands.add_parser("stop", help="stop every process the workspace started")
    reset = commands.add_parser("reset", help="stop every process the workspace started, then delete its folder")
    reset.add_argument("--yes", action="store_true", help="do not ask first")
    commands.add_parser("mlflow-ui", help="the MLflow UI on the workspace's runs and models")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workspace is not None:
        os.environ["AZUREML_LOCAL_ROOT"] = str(args.workspace.expanduser().resolve())
    if args.command == "run":  # each command imports what it uses: nbformat alone takes a second or two
        from aml_offline import notebooks

        return notebooks.main([*map(str, args.notebooks), *(["--out", str(args.out)] if args.out else []),
                               *(["--workdir", str(args.workdir)] if args.workdir else []),
                               *(["--cell-timeout", str(args.cell_timeout)] if args.cell_timeout else [])])  # fmt: skip
    from aml_offline import admin

    if args.command == "status":
        print(admin.status())
        return 0
    if args.command == "stop":
        print(f"Stopped {admin.stop_everything()} process(es) of the local workspace.")
        return 0
    if args.command == "reset":
        root = admin.workspace_folder()
        if not args.yes:
            if not sys.stdin.isatty():
                print(f"Reset deletes {root}: run it with --yes to confirm.", file=sys.stderr)
                return 2
            if input(f"Stop its processes and delete {root}? [y/N] ").strip().lower() not in ("y", "yes"):
                print("Nothing was changed.")
                return 1
        try:
            stopped = admin.reset(root)
        except admin.NotAWorkspace as exc:
            print(exc, file=sys.stderr)
            return 2
        kept = " (the folder stays: it holds files that are not the workspace's)" if root.exists() else ""
        print(f"Stopped {stopped} process(es) and deleted the local workspace in {root}{kept}.")
        return 0
    from aml_offline import mlflow_ui

    return mlflow_ui.main()


if __name__ == "__main__":
    sys.exit(main())
