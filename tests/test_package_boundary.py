"""The repository is two parts joined by one door: the walkthrough uses only the aml-offline package's public names.

Public: the names in ``aml_offline.__all__``, and the modules ``aml_offline.notebooks`` (the notebook runner) and
``aml_offline.environments`` (job environments, for locking and preparing them).  The layers (store, records,
execution, facade, facade_v2) and anything named with a leading underscore are the package's own business.
Checked in every Python file and every notebook code cell under notebooks/, helpers/, scripts/ and benchmarks/.
"""

from __future__ import annotations

import ast
import json
import re

import aml_offline
from support import PROJECT

PUBLIC_MODULES = {"aml_offline", "aml_offline.notebooks", "aml_offline.environments"}
WALKTHROUGH = ("notebooks", "helpers", "scripts", "benchmarks")


def _sources():
    for folder in WALKTHROUGH:
        for path in sorted((PROJECT / folder).rglob("*.py")):
            yield path, path.read_text()
        for path in sorted((PROJECT / folder).rglob("*.ipynb")):
            cells = json.loads(path.read_text())["cells"]
            code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
            yield path, re.sub(r"^[%!].*$", "", "\n".join(code), flags=re.M)  # magics and shell lines are not Python


def private_uses(source: str) -> list[str]:
    """What a piece of code takes from aml_offline that is not public."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "aml_offline"]
            found += [name for name in names if name not in PUBLIC_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aml_offline":
            if node.module not in PUBLIC_MODULES:
                found.append(node.module)
            elif node.module == "aml_offline":
                public = set(aml_offline.__all__) | {m.rsplit(".", 1)[1] for m in PUBLIC_MODULES if "." in m}
                found += [f"aml_offline.{a.name}" for a in node.names if a.name not in public]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "aml_offline":
            if node.attr not in aml_offline.__all__ and f"aml_offline.{node.attr}" not in PUBLIC_MODULES:
                found.append(f"aml_offline.{node.attr}")
    return found


def test_the_walkthrough_uses_only_the_packages_public_names():
    offenders = [f"{path.relative_to(PROJECT)}: {use}" for path, source in _sources() for use in private_uses(source)]
    assert offenders == []


def test_the_check_sees_a_private_import():
    source = (
        "import aml_offline\nfrom aml_offline import Workspace, notebooks\nfrom aml_offline.store import LocalStore\n"
        "import aml_offline.facade.models\nfrom aml_offline import _TWINS\n"
        "aml_offline.activate()\naml_offline.boundary\n"
    )
    assert private_uses(source) == [
        "aml_offline.store", "aml_offline.facade.models", "aml_offline._TWINS", "aml_offline.boundary"
    ]  # fmt: skip
