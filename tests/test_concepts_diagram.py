"""The concepts diagram has one source, ``docs/concepts.mmd``: every copy of it (a ```mermaid block in the
README or in 00-setup) is that file, word for word, so the picture a student sees never drifts from it."""

from __future__ import annotations

import json
import re

import pytest
from support import PROJECT

SOURCE = PROJECT / "docs" / "concepts.mmd"
MERMAID = re.compile(r"^```mermaid\n(.*?)^```", re.S | re.M)


def mermaid_blocks(markdown: str) -> list[str]:
    return MERMAID.findall(markdown)


def test_the_source_is_a_flowchart_of_the_concepts():
    text = SOURCE.read_text()
    assert text.startswith("flowchart "), "docs/concepts.mmd: a Mermaid flowchart"
    for concept in ("Workspace", "Datastore", "Dataset", "Environment", "Compute cluster", "Run", "experiment",
                    "HyperDrive sweep", "Model registry", "Web service", "online endpoint"):  # fmt: skip
        assert concept in text, f"docs/concepts.mmd leaves out {concept!r}"


def test_the_readme_shows_the_diagram():
    blocks = mermaid_blocks((PROJECT / "README.md").read_text())
    assert blocks, "README.md shows the concepts diagram in a ```mermaid block"
    for block in blocks:
        assert block == SOURCE.read_text(), "README.md's ```mermaid block differs from docs/concepts.mmd: copy it"


def test_00_setup_shows_the_diagram():
    cells = json.loads((PROJECT / "notebooks" / "00-setup.ipynb").read_text())["cells"]
    blocks = [b for c in cells if c["cell_type"] == "markdown" for b in mermaid_blocks("".join(c["source"]))]
    if not blocks:
        pytest.skip("00-setup has no ```mermaid block yet (issue 28: the lead engineer adds docs/concepts.mmd to it)")
    for block in blocks:
        assert block == SOURCE.read_text(), "00-setup's ```mermaid block differs from docs/concepts.mmd: copy it"
