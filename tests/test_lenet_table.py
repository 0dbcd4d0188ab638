"""README.md's table of every method on LeNet-300-100 is the one
tools/lenet_table.py computes now (through qlib, on the committed model)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import lenet_table  # noqa: E402


def test_readme_table_is_the_scripts_output():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stored = lenet_table.readme_table(text)
    fresh = lenet_table.table()
    assert stored == fresh, (
        "README.md's LeNet table is stale: run python tools/lenet_table.py --write\n"
        f"stored:\n{stored}\nfresh:\n{fresh}"
    )
