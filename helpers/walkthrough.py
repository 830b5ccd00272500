"""`make run`: run the notebooks headless, in order (the v1 walkthrough, then the tracks in sub-folders: Chainer,
SDK v2, then 99-cleanup), and summarise what they left behind.

Executed copies (with outputs) and HTML copies go to ``build/notebooks/``.  The
mode is whatever this machine is in: local without a ``config.json``, Azure with
one.  A failing cell stops the run, naming the notebook, the cell and the error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from aml_offline import notebooks
from nbconvert import HTMLExporter

from helpers._scripts import PROJECT_ROOT

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
BUILD_DIR = PROJECT_ROOT / "build" / "notebooks"
CELL_TIMEOUT_S = 3600
#: The clean-up notebook's number: it runs after every other notebook (``make run``, and ``make test``: conftest.py)
CLEANUP_PREFIX = "99-"


def walkthrough_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks in order, then the tracks in sub-folders (Chainer, SDK v2), then the clean-up
    (``99-cleanup``), last because it deletes what the others left running. The exercises' solutions
    (``solutions/`` folders) are not part of the run: a student opens them on purpose (``make test`` runs them)."""
    numbered = sorted(folder.glob("[0-9][0-9]-*.ipynb"))
    cleanup = [path for path in numbered if path.name.startswith(CLEANUP_PREFIX)]
    tracks = sorted(path for path in folder.glob("*/*.ipynb") if path.parent.name != "solutions")
    return [path for path in numbered if path not in cleanup] + tracks + cleanup


def run_notebook(path: Path, out_dir: Path) -> None:
    """Execute one notebook cell by cell (in this machine's mode); raise SystemExit naming the failing cell.

    The executed copy, an HTML copy and the kernel's own stderr (TensorFlow start-up, transport notices) go to
    ``out_dir``."""
    book, failure = notebooks.execute(path, out_dir, timeout=CELL_TIMEOUT_S)
    html, _ = HTMLExporter().from_notebook_node(book)
    (out_dir / f"{path.stem}.html").write_text(html)
    if failure:
        index, cell, exc = failure
        first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        raise SystemExit(
            f"\n{path.name}: cell {index} ({first_line!r}) failed: {exc.ename}: {exc.evalue}\n"
            f"The executed notebook is {out_dir / path.name}."
        )


def registry_unreachable() -> dict[str, str]:
    """Environment variables under which nothing reaches a package index or the internet over HTTP(S):
    the indexes and proxies on a closed local port (127.0.0.1 itself stays reachable), uv and pip offline.
    ``make test`` runs the walkthrough's kernels under them."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {"UV_OFFLINE": "1", "PIP_NO_INDEX": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        env[name] = closed + "/simple"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = closed
    return env


def summary(out_dir: Path = BUILD_DIR) -> str:
    import aml_offline

    mode = aml_offline.activate()
    from azureml.core import Model, Workspace  # after activate(): the local workspace's in local mode

    from helpers.names import named  # imported here: it reads the mode, and AML_PREFIX, once

    ws = Workspace.from_config()
    model = Model(ws, name=named("keras-mnist"))  # this student's (helpers.names), as the notebooks name it
    lines = [
        f"Mode:             {mode} (workspace {ws.name})",
        f"Data source:      {model.properties.get('data_source', 'unknown')}",
        f"Training run:     {model.run_id}",
        f"Model:            {model.name} version {model.version}",
        f"Test accuracy:    {float(model.properties.get('test_accuracy', 'nan')):.4f}",
    ]
    try:
        tuned = Model(ws, name=named("keras-mlp-mnist"))
        lines.append(
            f"Tuned model:      {tuned.name} version {tuned.version}, test accuracy "
            f"{float(tuned.properties.get('test_accuracy', 'nan')):.4f} (06-tune)"
        )
    except Exception:  # noqa: BLE001  (06-tune did not run: nothing to report)
        pass
    lines += _v2_summary()
    lines.append(f"Executed notebooks (and HTML copies): {out_dir}")
    if mode == "local":
        lines.append("Browse runs and models: make mlflow-ui   (then open http://127.0.0.1:5000)")
    else:
        lines.append("Browse runs and models: https://ml.azure.com")
    return "\n".join(lines)


def _v2_summary() -> list[str]:
    """The v2 track's model (notebooks/v2/05-register-deploy), when it ran."""
    try:
        from azure.ai.ml import MLClient  # after activate(): the local workspace's in local mode
        from azure.identity import DefaultAzureCredential

        from helpers.names import named

        ml_client = MLClient.from_config(credential=DefaultAzureCredential())
        model = ml_client.models.get(named("keras-mnist-v2"), label="latest")
    except Exception:  # noqa: BLE001  (the v2 track did not run, or azure-ai-ml is missing: nothing to report)
        return []
    return [
        f"SDK v2 model:     {model.name} version {model.version}, test accuracy "
        f"{float(model.properties.get('test_accuracy', 'nan')):.4f} (notebooks/v2)"
    ]


def main() -> int:
    import os

    from helpers.i18n import LanguageError, language, notebook_folder

    try:  # make run LANG=de: the notebooks of notebooks-de/ (helpers.i18n)
        lang = language(os.environ.get("AML_LANG"))
    except LanguageError as exc:
        raise SystemExit(str(exc)) from None
    folder = notebook_folder(lang.code if lang else None)
    out_dir = BUILD_DIR.parent / folder.name
    if lang:
        os.environ["AML_LANG"] = lang.code  # the kernels' helpers speak it
        print(f"The walkthrough in {lang.name}: {folder.relative_to(PROJECT_ROOT)}/", flush=True)
    else:
        os.environ.pop("AML_LANG", None)
    notebooks = walkthrough_notebooks(folder)
    for path in notebooks:
        start = time.perf_counter()
        print(f"Running {path.relative_to(folder)} ...", flush=True)
        run_notebook(path, out_dir / path.parent.relative_to(folder))
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    print("\nWalkthrough complete\n====================")
    print(summary(out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
