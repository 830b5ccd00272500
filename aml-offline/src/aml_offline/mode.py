"""The mode rules: Azure with a workspace config, the local workspace without one.

``AZUREML_MODE=local`` or ``azure`` chooses.  Unset, the mode is Azure when a
workspace config is found where ``Workspace.from_config()`` looks for it, else
local.  The search is azureml-core's own (``Workspace.from_config`` in 1.61):
``path`` may be the file itself or the folder to start from (default: the current
folder); from there up to the root it looks in ``.azureml/``, then ``aml_config/``,
then the folder itself, for ``config.json`` or the legacy ``project.json`` (only
``_file_name`` when it is given).  A config names its workspace either with
``subscription_id``, ``resource_group`` and ``workspace_name`` or with one ARM
``Scope`` string (``/subscriptions/S/resourceGroups/R/providers/
Microsoft.MachineLearningServices/workspaces/W``).

A file that cannot be read as azureml-core reads it (UTF-16 from Windows Notepad,
a byte-order mark, not JSON, missing keys) is a :class:`ModeError` whose one-line
message names the file and says what to do.  Standard library only: the
``sitecustomize`` hook runs this before anything else is imported.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path

MODES = ("local", "azure")
REQUIRED_KEYS = ("subscription_id", "resource_group", "workspace_name")
#: azureml-core's search order (``azureml._base_sdk_common.common``): these folders, then the folder itself
CONFIG_DIRS = (".azureml", "aml_config", None)
CONFIG_FILES = ("config.json", "project.json")
DOWNLOAD_HINT = "Download it again from ml.azure.com (workspace name at the top right > Download config file)"


class ModeError(RuntimeError):
    """The mode or the workspace configuration is not usable; the message says why and what to do."""


def find_config(path: str | os.PathLike | None = None, _file_name: str | None = None) -> Path | None:
    """The config file ``Workspace.from_config(path, _file_name=...)`` would read, or None."""
    start = Path(os.path.expanduser(os.fspath(path if path is not None else "."))).absolute()
    if start.is_file():
        return start
    names = (_file_name,) if _file_name else CONFIG_FILES
    for folder in CONFIG_DIRS:
        for name in names:
            relative = Path(folder, name) if folder else Path(name)
            for here in (start, *start.parents):
                if (here / relative).is_file():
                    return here / relative
    return None


def read_config(path: Path) -> dict:
    """``{"subscription_id", "resource_group", "workspace_name"}`` from a config file, or a one-line ModeError."""
    raw = path.read_bytes()
    for bom, encoding in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                          (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
                          (codecs.BOM_UTF8, "UTF-8 with a byte-order mark")):  # fmt: skip
        if raw.startswith(bom):
            raise ModeError(
                f"{path} is saved as {encoding}, which azureml-core cannot read: save it as UTF-8 without a "
                "byte-order mark (Notepad: Save as > Encoding: UTF-8), or set AZUREML_MODE=local."
            )
    try:
        if b"\x00" in raw:  # UTF-16 text without its byte-order mark: every other byte of ASCII is zero
            raise UnicodeDecodeError("utf-8", raw, raw.index(b"\x00"), raw.index(b"\x00") + 1, "NUL byte")
        config = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModeError(
            f"{path} is not UTF-8 text (UTF-16 without a byte-order mark?): save it as UTF-8, or set "
            "AZUREML_MODE=local."
        ) from None
    except json.JSONDecodeError as exc:
        raise ModeError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            f"{DOWNLOAD_HINT}, or set AZUREML_MODE=local."
        ) from None
    if not isinstance(config, dict):
        raise ModeError(f"{path} must hold a JSON object with {', '.join(REQUIRED_KEYS)} (or a Scope).")
    if config.get("Scope"):
        return _from_scope(path, str(config["Scope"]))
    missing = [k for k in REQUIRED_KEYS if not config.get(k)]
    if missing:
        raise ModeError(f"{path} lacks {', '.join(missing)}. {DOWNLOAD_HINT}, or set AZUREML_MODE=local.")
    return {k: config[k] for k in REQUIRED_KEYS}


def _from_scope(path: Path, scope: str) -> dict:
    """The ARM id form: ``/subscriptions/S/resourceGroups/R/providers/.../workspaces/W``."""
    pieces = scope.strip("/").split("/")
    pairs = {pieces[i].lower(): pieces[i + 1] for i in range(0, len(pieces) - 1, 2)}
    found = {"subscription_id": pairs.get("subscriptions"), "resource_group": pairs.get("resourcegroups"),
             "workspace_name": pairs.get("workspaces")}  # fmt: skip
    if not all(found.values()):
        raise ModeError(
            f"{path}: its Scope {scope!r} is not /subscriptions/<id>/resourceGroups/<group>/providers/"
            f"Microsoft.MachineLearningServices/workspaces/<name>. {DOWNLOAD_HINT}, or set AZUREML_MODE=local."
        )
    return found


def resolve_mode(path: str | os.PathLike | None = None, _file_name: str | None = None) -> tuple[str, Path | None]:
    """``("local", None)`` or ``("azure", config path)`` by ``AZUREML_MODE``, else by whether a config is found."""
    value = os.environ.get("AZUREML_MODE", "").strip().lower()
    if value and value not in MODES:
        raise ModeError(
            f"AZUREML_MODE={os.environ['AZUREML_MODE']!r} is not a mode: use 'local' or 'azure', "
            "or unset it (then a config.json means azure)."
        )
    if value == "local":
        return "local", None
    config = find_config(path, _file_name)
    if config is None:
        if value == "azure":
            where = Path(path or ".").absolute()
            raise ModeError(
                f"AZUREML_MODE=azure, but no config.json in {where} or its parents. Download it from "
                "ml.azure.com (workspace name at the top right > Download config file) into the project root."
            )
        return "local", None
    read_config(config)
    return "azure", config
