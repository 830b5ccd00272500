"""The package's layers: each imports only the ones below it, and nothing imports in a circle.

offline, settings, mode, run_details, mlflow_store, azure_names (0) <- store (1) <- records (2) <- execution (3)
<- facade (4), facade_v2 (4) <- the package's front (5: __init__, boundary, admin, notebooks, cli, mlflow_ui,
environments, pytest_plugin).
The lower layers stay free of azureml-core and azure-ai-ml; the two facades (SDK v1's in facade/, SDK v2's
MLClient in facade_v2/) never import each other, azureml only in facade/ and azure.ai.ml only in facade_v2/; and no
module hides an import inside a function to get around a cycle (the listed exceptions import late on purpose).
Nothing in the package imports the walkthrough (``helpers``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "aml_offline"
LAYERS = {"store": 1, "records": 2, "execution": 3, "facade": 4, "facade_v2": 4}
#: Modules at the package's top: what every layer shares (0), and the front that uses the layers (5)
TOP_LEVEL = {"offline": 0, "settings": 0, "mode": 0, "run_details": 0, "mlflow_store": 0, "azure_names": 0,
             "__init__": 5, "__main__": 5, "boundary": 5, "admin": 5, "notebooks": 5, "cli": 5, "mlflow_ui": 5,
             "environments": 5, "pytest_plugin": 5}  # fmt: skip
#: Which SDK each facade may import, and no other module (the front's boundary imports neither: it overlays
#: modules by name)
SDK_OF = {"facade": "azureml", "facade_v2": "azure.ai.ml"}
#: Imports inside functions that are not about cycles, and why:
OPTIONAL_IMPORTS = {
    # the in-script run uses the local workspace only when the script's interpreter has the package (a separate
    # job environment has not)
    "aml_offline.facade.runtime.azureml_local_run",
    # Azure mode never loads the twin (nor MLflow); a v1 notebook never loads the v2 facade
    "aml_offline.boundary",
    # loaded in every pytest session of a project that installs the package: the twin only when switched on
    "aml_offline.pytest_plugin",
    # ``import aml_offline`` loads neither azureml-core nor MLflow: the twins come on first use (module __getattr__)
    "aml_offline",
    # each command imports what it uses: ``aml-offline --help`` or ``stop`` need not load nbformat or MLflow
    "aml_offline.cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    rest = module.removeprefix("aml_offline").lstrip(".").split(".")
    if rest == [""]:
        return TOP_LEVEL["__init__"]
    return LAYERS.get(rest[0], TOP_LEVEL.get(rest[0]))


def imports(path: Path, module: str | None = None) -> list[tuple[str, bool]]:
    """``(imported module, at module level?)`` for every import of this project's local workspace.

    ``module`` is the file's module name (default: from its place in the project)."""
    module = module or module_name(path)
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and (child.module or child.level):
                base = child.module or ""
                if child.level:  # "from ..facade import x": resolve against this module's package
                    package = module.split(".")
                    if path.name != "__init__.py":
                        package = package[:-1]
                    package = package[: len(package) - (child.level - 1)]
                    base = ".".join(package + ([child.module] if child.module else []))
                for alias in child.names:  # "from pkg import submodule" imports the submodule
                    candidate = f"{base}.{alias.name}"
                    is_module = (SRC / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                        SRC / Path(*candidate.split(".")) / "__init__.py"
                    ).exists()
                    found.append((candidate if is_module else base, top))
            visit(child, inner)

    visit(tree, True)
    return [(m, top) for m, top in found if m.split(".")[0] in ("aml_offline", "helpers")]


def graph(package: str = "aml_offline") -> dict[str, list[tuple[str, bool]]]:
    """Every module of the package and what it imports of ``package``."""
    return {
        module_name(p): [(t, top) for t, top in imports(p) if t.split(".")[0] == package]
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def test_every_module_sits_in_a_layer():
    assert {m for m in graph() if layer_of(m) is None} == set()


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph().items()
        for target, _ in targets
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_no_import_cycle_among_modules():
    edges = {m: {t for t, top in ts if top and t != m and not m.startswith(t + ".")} for m, ts in graph().items()}
    # a package's __init__ importing its own submodules is not a cycle: the submodules never import it back
    state: dict[str, int] = {}
    cycles = []

    def walk(node: str, path: list[str]):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_no_imports_inside_functions_except_optional_ones():
    hidden = [
        f"{module} imports {target} inside a function"
        for module, targets in graph().items()
        for target, top in targets
        if not top and module not in OPTIONAL_IMPORTS
    ]
    assert hidden == []


def _sdk_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [
            n for n in names if n.split(".")[0] == "azureml" or n == "azure.ai.ml" or n.startswith("azure.ai.ml.")
        ]
    return found


def _facade_of(module: str) -> str | None:
    rest = module.removeprefix("aml_offline").lstrip(".").split(".")
    return rest[0] if rest[0] in SDK_OF else None


def test_each_sdk_is_imported_only_by_its_facade():
    """azureml (SDK v1) only in facade/, azure.ai.ml (SDK v2) only in facade_v2/; the lower layers import neither."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        allowed = SDK_OF.get(_facade_of(module) or "")
        for name in _sdk_imports(path):
            sdk = "azure.ai.ml" if name.startswith("azure.ai.ml") else "azureml"
            if sdk != allowed:
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_the_two_facades_do_not_import_each_other():
    crossing = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target, _ in targets
        if _facade_of(module) and _facade_of(target) and _facade_of(module) != _facade_of(target)
    ]
    assert crossing == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The graph finds imports inside functions and 'from package import submodule' forms."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from aml_offline.records import runs\n"
        "def f():\n    from aml_offline.facade import models\n"
        "from ..facade import runs as facade_runs\n"
    )
    assert imports(probe, module="aml_offline.records.probe") == [
        ("aml_offline.records.runs", True),
        ("aml_offline.facade.models", False),
        ("aml_offline.facade.runs", True),
    ]


def test_nothing_in_the_package_imports_the_walkthrough():
    """The package installs and runs without this repository's walkthrough (``helpers``, ``scripts``)."""
    walkthrough = [f"{m} imports {t}" for m, targets in graph("helpers").items() for t, _ in targets]
    assert walkthrough == []
