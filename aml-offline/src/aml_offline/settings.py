"""Where the local workspace keeps its state, and where it finds a project's environment locks and wheelhouse.

Each setting comes from, in order: an environment variable; the ``[tool.aml-offline]`` table of the project's
``pyproject.toml``; a default.  The project folder is the nearest folder at or above the current one that holds
``.azureml-local/``, a ``pyproject.toml`` or a ``.git``; else the current folder.  Relative paths in the table are
relative to the project folder.

=====================  ======================  ================================================================
environment variable   ``[tool.aml-offline]``  what, and the default
=====================  ======================  ================================================================
``AZUREML_LOCAL_ROOT``  ``workspace``           the workspace folder: runs, models, datasets, services, the
                                               ledger (``.azureml-local`` in the project folder)
``AZUREML_ENV_LOCKS``   ``env-locks``           a folder of ``<environment name>.txt`` locks that job
                                               environments are built from exactly (none)
``WHEELHOUSE``          ``wheelhouse``          a folder of package files to build environments from, with no
                                               index (none; from the table only when the folder exists; an
                                               empty variable means none)
``AZUREML_ENV_CACHE``                           where built environments are kept (the user cache folder)
=====================  ======================  ================================================================

Processes the twin starts (a run's supervisor works in another folder) get the settings resolved here as
environment variables (:func:`exported`), so they find the same ones.  Standard library only (layer 0).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

TABLE = "aml-offline"
PACKAGE = "aml-offline"
_MARKERS = (".azureml-local", "pyproject.toml", ".git")


class SettingsError(RuntimeError):
    """The project's ``[tool.aml-offline]`` table cannot be read; the message names the file."""


def project_folder(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the current one) that looks like a project's root."""
    here = Path(start or os.getcwd()).absolute()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in _MARKERS):
            return folder
    return here


def table(start: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """The project folder and its ``[tool.aml-offline]`` table (empty when there is none)."""
    folder = project_folder(start)
    path = folder / "pyproject.toml"
    if not path.is_file():
        return folder, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path} cannot be read as TOML ({exc}): fix it, or set AZUREML_LOCAL_ROOT.") from None
    found = data.get("tool", {}).get(TABLE, {})
    if not isinstance(found, dict):
        raise SettingsError(f'{path}: [tool.{TABLE}] must be a table, e.g. workspace = ".azureml-local".')
    return folder, found


def _path(variable: str, key: str, default: str | None, start=None) -> Path | None:
    value = os.environ.get(variable)
    if value:
        return Path(value).expanduser().resolve()
    folder, found = table(start)
    value = found.get(key, default)
    return (folder / value).resolve() if value else None


def workspace_root(start=None) -> Path:
    """The workspace folder (``AZUREML_LOCAL_ROOT``, ``workspace``, else ``.azureml-local`` in the project)."""
    return _path("AZUREML_LOCAL_ROOT", "workspace", ".azureml-local", start)


def env_locks(start=None) -> Path | None:
    """The folder of job-environment locks (``AZUREML_ENV_LOCKS``, ``env-locks``), or None."""
    return _path("AZUREML_ENV_LOCKS", "env-locks", None, start)


def wheelhouse(start=None) -> Path | None:
    """The folder of package files to build from with no index (``WHEELHOUSE``, empty meaning none; else
    ``wheelhouse`` when that folder exists), or None."""
    if "WHEELHOUSE" in os.environ:
        value = os.environ["WHEELHOUSE"].strip()
        return Path(value).expanduser().resolve() if value else None
    path = _path("WHEELHOUSE", "wheelhouse", None, start)
    return path if path is not None and path.is_dir() else None


def cache_root() -> Path:
    """The package's folder in the user cache (built environments, the empty MLflow database)."""
    import platformdirs  # here: a supervisor that never builds an environment does not need it

    return Path(platformdirs.user_cache_dir(PACKAGE))


def exported(start=None) -> dict[str, str]:
    """The settings resolved here, as the environment variables a process started elsewhere reads."""
    out = {"AZUREML_LOCAL_ROOT": str(workspace_root(start))}
    locks = env_locks(start)
    if locks is not None:
        out["AZUREML_ENV_LOCKS"] = str(locks)
    house = wheelhouse(start)
    out["WHEELHOUSE"] = str(house) if house is not None else ""
    return out
