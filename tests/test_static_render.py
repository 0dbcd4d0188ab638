"""A stored notebook converted to HTML shows every explorer's default picture.

A reader on GitHub, or of an nbconvert export, has no kernel: each cell that
displays a qlib explorer must carry its static copy (a PNG figure, or the
BitFlipper table), not the ``<... run the notebook to interact>`` text.
"""

from __future__ import annotations

import base64
import functools
import re
import struct
import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

from qlib import integers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from explorer_cells import EXPLORERS, explorer_cells, explorer_parts  # noqa: E402

STORED = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
    (ROOT / "solutions").glob("*.ipynb")
)
PNG = re.compile(r'<img[^>]*\ssrc="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')
CELL_ID = re.compile(r'\sid="cell-id=([^"]+)"')


@functools.cache
def views() -> tuple[frozenset[str], frozenset[str]]:
    """The explorers whose static copy is a PNG, and those whose copy is a
    table (each explorer built once, when first asked: at collection it
    would cost every test process seconds)."""
    parts = {kind: explorer_parts(kind)[0] for kind in EXPLORERS}
    figures = frozenset(k for k, view in parts.items() if view == "figure")
    return figures, frozenset(k for k, view in parts.items() if view == "table")


@pytest.fixture(scope="module")
def exporter() -> HTMLExporter:
    """One exporter for every notebook (its setup costs), rendering the outputs
    as a full export does but leaving out the code and the prose: their
    highlighting and sanitizing were 94 % of the time (10.4 s against 0.6 s
    for the 22 notebooks), and no check here reads them."""
    return HTMLExporter(exclude_input=True, exclude_markdown=True)


def cells_html(html: str) -> dict[str, str]:
    """Split the exported page into ``{cell id: its HTML}``."""
    marks = list(CELL_ID.finditer(html))
    ends = [m.start() for m in marks[1:]] + [len(html)]
    return {
        m.group(1): html[m.start() : end] for m, end in zip(marks, ends, strict=True)
    }


def png_size(b64: str) -> tuple[int, int]:
    data = base64.b64decode(b64)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def test_the_explorer_finder_sees_the_course_widgets():
    found = {k for p in STORED for kinds in explorer_cells(p).values() for k in kinds}
    assert found >= {"LevelsDemo"}, "00_start_here shows a LevelsDemo"
    figures, tables = views()
    assert figures | tables >= found, f"a new explorer needs a check here: {found}"


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_explorer_shows_its_default_state_in_html(path, exporter):
    nb = nbformat.read(path, as_version=4)
    html, _ = exporter.from_notebook_node(nb)
    by_id = cells_html(html)
    figure_kinds, table_kinds = views()
    for index, kinds in explorer_cells(path).items():
        cell = nb.cells[index]
        where = f"{path.name} cell {index} ({cell.get('id')}: {', '.join(kinds)})"
        assert cell.get("id") in by_id, f"{where}: no cell id in the HTML"
        part = by_id[cell.id]
        assert "run the notebook to interact" not in part, f"{where}: text repr only"
        figures = PNG.findall(part)
        if figure_kinds & set(kinds):
            n = sum(k in figure_kinds for k in kinds)
            assert len(figures) >= n, f"{where}: {len(figures)} PNG figures, want {n}"
            for b64 in figures:
                width, height = png_size(b64)
                assert width >= 100 and height >= 100, f"{where}: {width}x{height}"
        if table_kinds & set(kinds):
            assert "<table>" in part and "<th" in part, f"{where}: no HTML table"
        if "BitFlipper" in kinds:
            for scheme in integers.SCHEMES:
                assert f">{scheme}<" in part, f"{where}: no row for {scheme}"
