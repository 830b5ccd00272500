"""Modules that live in ``scripts/`` and are shared with ``helpers``.

The training script must run on an Azure ML cluster where only ``scripts/`` is
uploaded, so code both sides need lives there and ``helpers`` imports it from
there: one copy, no drift.
"""

import importlib.util
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = PROJECT_ROOT / "scripts"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mnist_idx = _load("mnist_idx")
