"""README.md's tables of measured results are the ones tools/readme_tables.py
computes now: LeNet-300-100's through qlib on the committed model, chapter
10's from the committed results that tests/test_llmquant.py ties to the
code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import readme_tables  # noqa: E402


@pytest.mark.parametrize("name", sorted(readme_tables.TABLES))
def test_readme_table_is_the_scripts_output(name):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stored = readme_tables.readme_table(text, name)
    fresh = readme_tables.TABLES[name]()
    assert stored == fresh, (
        f"README.md's {name} table is stale: run python tools/readme_tables.py "
        f"--write\nstored:\n{stored}\nfresh:\n{fresh}"
    )
