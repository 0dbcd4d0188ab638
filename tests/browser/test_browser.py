"""The course in a real browser: JupyterLab, ipywidgets and Debian's chromium.

One fresh JupyterLab server, one headless chromium and one JupyterLab page
serve all these tests in a process (loading the app costs seconds; opening a
notebook in the app already loaded costs its kernel start); ``make test``
runs the notebooks in two halves, one per process (tests/conftest.py). The
server works on temporary copies of notebooks/ and exercises/, with
temporary Jupyter config, data and runtime folders, so neither the
repository nor the user's Jupyter setup is touched; the copies carry no
stored outputs (drawing every notebook's stored figures only to clear them
cost chromium's page about 9 s of a core over the suite; what the stored
outputs show is tests/test_static_render.py's subject). For each notebook
the test opens it in a fresh kernel, runs Run -> Run All Cells, checks that
nothing failed, compares the outputs of the run with the stored ones as
nbval does (nbval then does not run the notebook a second time: see
tests/conftest.py), checks that every widget rendered, moves a control of
every qlib explorer and checks that the picture or table answered, saves a
screenshot of the notebook (its first
``SCREENSHOT_MAX_HEIGHT`` pixels) into artifacts/browser/, then closes the
notebook's tab, shuts its kernel down and checks that neither its DOM nor a
kernel is left for the next notebook. The suite ends with a table of the
time each notebook took, phase by phase.

Needs chromium (``apt-get install chromium-headless-shell``, or ``chromium``:
tests/conftest.py picks one) and the ``playwright`` package
(``pip install -e '.[test]'``); ``playwright install`` is not needed.  Without
them the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from explorer_cells import explorer_cells, explorer_parts  # noqa: E402

from qlib.course import assignments  # noqa: E402

NOTEBOOKS = [
    *sorted((ROOT / "notebooks").glob("*.ipynb")),
    ROOT / "exercises" / "02_integer_encodings.ipynb",
]
COPIED = ("notebooks", "exercises")  # what the server gets a temporary copy of
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
# The screenshot is for humans, not a check.  Laying out and encoding a taller
# viewport costs more than in proportion (01's 30,794 px took 1.8 s on an idle
# machine, 3.2 s on a busy one; its first 20,000 px 2.1 s and its first 10,000
# 0.6 s, with cells out of view not laid out): taller notebooks are cut.
SCREENSHOT_MAX_HEIGHT = 10_000
TARGET_SECONDS = 15.0  # per notebook; printed, not asserted (CI machines vary)
USER_SETTINGS = {
    # every cell attached to the DOM: off-screen outputs are rendered and checked
    # (JupyterLab's default, "contentVisibility", attaches them in idle time:
    # on a busy machine, not within a wait); OFF_SCREEN below keeps the cells
    # out of view from being laid out and painted
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # the test never saves, not even by accident
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


# What JupyterLab's "contentVisibility" mode gives each cell: one out of view
# is in the DOM but neither laid out nor painted (with every cell laid out,
# each output that arrives makes chromium lay out the whole notebook again)
OFF_SCREEN = """.jp-Notebook .jp-Cell {
    content-visibility: auto;
    contain-intrinsic-size: auto 200px;
}"""


def sliders(kind: str) -> int:
    """How many sliders the explorer's live view has (built when first asked:
    building all of them at collection cost every test process seconds)."""
    return explorer_parts(kind)[1]


# JavaScript run in the page (window.jupyterapp: --LabApp.expose_app_in_browser)
APP_RESTORED = """async () => {
    const app = window.jupyterapp;
    await app.restored;
    app.shell.collapseLeft();  // no file browser: the notebook gets the width
}"""
OPEN_NOTEBOOK = """async (path) => {
    await window.jupyterapp.commands.execute(
        "docmanager:open", { path, factory: "Notebook" }
    );
}"""
# dispose, not close: closing a changed notebook asks whether to save it
CLOSE_ALL_TABS = """() => {
    for (const widget of Array.from(window.jupyterapp.shell.widgets("main"))) {
        widget.dispose();
    }
}"""
# what a wait reads from an element: its text, an attribute ("@name"), or the
# text of the first element inside it that matches a selector (a widget that
# rewrites its HTML replaces the elements inside, not the widget's own)
READ = """(el, what) => what === "text" ? el.textContent
    : what.startsWith("@") ? el.getAttribute(what.slice(1))
    : el.querySelector(what)?.textContent ?? null"""
READ_DIFFERS = f"([el, what, old]) => ({READ})(el, what) !== old"
READ_EQUALS = f"([el, what, want]) => ({READ})(el, what) === want"
WAIT_MS = 20_000  # how long a wait or an expect() waits (the browser fixture)
SHA256_OF_IMG = """async (img) => {
    const data = await (await fetch(img.src)).arrayBuffer();
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}"""
RUN_FINISHED = """(wanted) => {
    const cells = document.querySelectorAll(".jp-NotebookPanel .jp-Cell");
    const prompt = (i) =>
        (cells[i]?.querySelector(".jp-InputPrompt")?.textContent ?? "").trim();
    if (wanted.some((i) => prompt(i) === "[*]:")) return false;
    // every cell ran, or an error stopped Run All (the rest went back to [ ])
    return wanted.every((i) => /^\\[\\d+\\]:$/.test(prompt(i)))
        || document.querySelector(
            '.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.stderr"]'
        ) !== null;
}"""
# the status bar shows ``text``: checked on every animation frame, where
# expect() looks again only after 100, 250, 500 and 1000 ms (a kernel
# started or finished was seen about 0.7 s late per notebook)
KERNEL_SAYS = """(text) => Array.from(
    document.querySelectorAll(".jp-StatusBar-TextItem"),
).some((item) => item.textContent.includes(text) && item.offsetParent !== null)"""
PROMPTS = """(wanted) => {
    const cells = document.querySelectorAll(".jp-NotebookPanel .jp-Cell");
    return wanted.map(
        (i) => (cells[i]?.querySelector(".jp-InputPrompt")?.textContent ?? "").trim()
    );
}"""
# the notebook as JupyterLab holds it, outputs of this run included, as the
# text of an .ipynb file (JSON.stringify drops the keys JupyterLab leaves
# undefined, as its own save does)
NOTEBOOK_JSON = """() => JSON.stringify(
    window.jupyterapp.shell.currentWidget.context.model.toJSON()
)"""
ERROR_OUTPUTS = """() => Array.from(
    document.querySelectorAll(".jp-NotebookPanel .jp-Cell"),
    (cell, i) => Array.from(
        cell.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
            + ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
        ),
        (out) => [i, out.textContent],
    ),
).flat()"""


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def screenshot_name(path: Path) -> str:
    """``<stem>.jpg`` for notebooks/; other folders prefix theirs (same stems)."""
    folder = path.parent.name
    return f"{path.stem}.jpg" if folder == "notebooks" else f"{folder}_{path.stem}.jpg"


# --------------------------------------------------------------------------
# requirements, processes


def processes_using(folder: Path) -> list[int]:
    """Pids of live processes with ``folder`` or a path in it as an argument."""
    inside = re.compile(rf"{re.escape(str(folder))}(?:{re.escape(os.sep)}|\0|$)")
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):  # Linux; elsewhere nothing is found
        with contextlib.suppress(OSError):
            if inside.search((entry / "cmdline").read_bytes().decode(errors="replace")):
                pids.append(int(entry.name))
    return [pid for pid in pids if pid != os.getpid()]


def kill_leftovers(folder: Path) -> list[int]:
    """SIGKILL what still runs with ``folder`` in its command line, by pid."""
    pids = processes_using(folder)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def file_hashes(folders: tuple[str, ...]) -> dict[str, str]:
    return {
        rel(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted((ROOT / folder).rglob("*.ipynb"))
    }


# --------------------------------------------------------------------------
# the JupyterLab server


@dataclass
class Lab:
    base: str
    token: str
    root: Path
    kernel_display_name: str = ""

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "DELETE") else None,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def url(self) -> str:
        # ?reset: an empty workspace, so no notebook opens with the app
        return f"{self.base}/lab?reset&token={self.token}"

    def shut_down_kernels(self, path: str | None = None) -> None:
        """Close the sessions (and their kernels) of ``path``, or of everything."""
        for session in self.api("GET", "/api/sessions"):
            if path is None or session["path"] == path:
                self.api("DELETE", f"/api/sessions/{session['id']}")
        if path is None:
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}")


def jupyter(*args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "jupyter", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr}"


def wait_until_ready(lab: Lab, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"jupyter lab exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            lab.api("GET", "/api/status")
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"jupyter lab did not answer in 60 s:\n{log.read_text()[-3000:]}"
    )


def stop_server(lab: Lab, server: subprocess.Popen) -> None:
    """Shut the kernels down, ask the server to stop, then wait for it."""
    if server.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            lab.shut_down_kernels()
        with contextlib.suppress(OSError, ValueError):
            lab.api("POST", "/api/shutdown")
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.terminate()  # SIGTERM: the server still cleans up its kernels
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def lab(chromium_path, tmp_path_factory, timings) -> Iterator[Lab]:
    """A fresh JupyterLab on temporary copies of notebooks/ and exercises/."""
    start = time.perf_counter()
    before = file_hashes(COPIED)
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "root"
    for folder in COPIED:
        shutil.copytree(ROOT / folder, root / folder)
    for path in root.rglob("*.ipynb"):
        assignments.write(assignments.strip_outputs(assignments.read(path)), path)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline figures
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),  # no user profile or startup files
    )
    # --level=user writes into JUPYTER_CONFIG_DIR (the default would edit the venv)
    announcements = "@jupyterlab/apputils-extension:announcements"
    jupyter("labextension", "disable", "--level=user", announcements, env=env)
    page_config = json.loads((tmp / "config/labconfig/page_config.json").read_text())
    assert page_config["disabledExtensions"].get(announcements) is True
    for plugin, settings in USER_SETTINGS.items():
        file = tmp / "config/lab/user-settings" / f"{plugin}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(settings))

    log_path = tmp / "server.log"
    token = secrets.token_hex(16)
    with log_path.open("wb") as log:
        for attempt in range(3):  # a free port can be taken before the server binds
            port = free_port()
            lab = Lab(f"http://127.0.0.1:{port}", token, root)
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "lab",
                    "--no-browser",
                    "--allow-root",
                    "--ip=127.0.0.1",
                    f"--port={port}",
                    "--ServerApp.port_retries=0",
                    f"--IdentityProvider.token={token}",
                    f"--ServerApp.root_dir={root}",
                    "--LabApp.expose_app_in_browser=True",  # window.jupyterapp
                ],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_until_ready(lab, server, log_path)
                break
            except RuntimeError:
                stop_server(lab, server)
                if attempt == 2:
                    raise
        try:
            specs = lab.api("GET", "/api/kernelspecs")
            default = specs["kernelspecs"].get(specs["default"])
            assert default, f"no default kernel: {specs}"
            argv0 = default["spec"]["argv"][0]
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            # jupyter_client runs these names with the server's own interpreter
            own = {"python", f"python{sys.version_info.major}", f"python{version}"}
            assert (
                argv0 in own or Path(argv0).resolve() == Path(sys.executable).resolve()
            ), f"the default kernel runs {argv0}, not this environment's Python"
            lab.kernel_display_name = default["spec"]["display_name"]
            timings.setup["server"] = time.perf_counter() - start
            yield lab
        finally:
            stop_server(lab, server)
            leftovers = kill_leftovers(tmp)  # kernels name their runtime file
    assert not leftovers, (
        f"processes left running after the server stopped: {leftovers}"
    )
    assert file_hashes(COPIED) == before, "the repository's notebooks changed on disk"


@pytest.fixture(scope="module")
def browser(chromium_path, tmp_path_factory, timings):
    """One headless chromium (a persistent context with a temporary profile)."""
    from playwright.sync_api import expect, sync_playwright

    start = time.perf_counter()
    expect.set_options(timeout=WAIT_MS)
    profile = tmp_path_factory.mktemp("chromium-profile")
    playwright = sync_playwright().start()
    try:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        context.set_default_timeout(30_000)
        timings.setup["chromium"] = time.perf_counter() - start
        try:
            yield context
        finally:
            context.close()
    finally:
        playwright.stop()
    leftovers = kill_leftovers(profile)
    assert not leftovers, f"chromium processes left running: {leftovers}"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def lab_page(lab, browser, timings) -> Iterator[LabPage]:
    """The JupyterLab page every notebook opens in, one after the other."""
    shared = LabPage(lab, browser, timings)
    try:
        yield shared
    finally:
        shared.discard()


# --------------------------------------------------------------------------
# timings


@dataclass(repr=False)  # a failure's traceback shows the fixture, not the table
class Timings:
    """Seconds per notebook and phase, and the table of them."""

    setup: dict[str, float] = field(default_factory=dict)  # shared by all notebooks
    rows: list[tuple[str, str, dict[str, float]]] = field(default_factory=list)

    def table(self) -> list[str]:
        names = ["open", "run", "nbval", "widgets", "screenshot", "close"]
        width = max(len(name) for name, _, _ in self.rows)
        lines = [
            f"{'notebook':<{width}} "
            + " ".join(f"{n:>10}" for n in [*names, "total"])
            + "  status"
        ]
        for name, status, phases in self.rows:
            total = sum(phases.values())
            over = f"  over the {TARGET_SECONDS:.0f} s target" * (
                total > TARGET_SECONDS
            )
            lines.append(
                f"{name:<{width}} "
                + " ".join(
                    f"{phases[n]:10.1f}" if n in phases else f"{'-':>10}" for n in names
                )
                + f" {total:10.1f}  {status}{over}"
            )
        notebooks = sum(sum(phases.values()) for _, _, phases in self.rows)
        setup = sum(self.setup.values())
        lines.append(
            f"{len(self.rows)} notebooks {notebooks:.1f} s"
            f" + shared setup {setup:.1f} s ("
            + ", ".join(f"{k} {v:.1f}" for k, v in self.setup.items())
            + f") = {notebooks + setup:.1f} s"
        )
        return lines


@pytest.fixture(scope="module")
def timings(request, summary_tables) -> Timings:
    """The table, handed at the end to tests/conftest.py, which prints it after
    the run (from this process, or from each pytest-xdist worker that ran
    browser tests), and appended to artifacts/browser/timings.txt."""
    table = Timings()
    yield table
    if table.rows:
        lines = table.table()
        with (ARTIFACTS / "timings.txt").open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {lines[-1]}\n")
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # one table per process
        title = "browser: seconds per notebook and phase"
        summary_tables[f"{title} ({worker})" if worker else title] = lines


# --------------------------------------------------------------------------
# page helpers


class LabPage:
    """One JupyterLab page, reused: each notebook opens in a tab, then goes.

    ``open`` starts from a page with no tab, no notebook DOM and no kernel on
    the server, so the notebook gets a fresh kernel and only its own outputs
    and widgets can satisfy its checks; ``close`` disposes the tab, shuts the
    kernels down and checks that.  A page that does not come back clean is
    thrown away, and the next notebook loads the app in a new one.
    """

    def __init__(self, lab: Lab, browser, timings: Timings) -> None:
        self.lab, self.browser, self.timings = lab, browser, timings
        self.page = None
        self.errors: list[str] = []  # uncaught JavaScript exceptions, widget code's too
        self.loads = 0

    def ready(self) -> None:
        """Load the app unless a page is open (the app's load is timed apart)."""
        if self.page is None:
            self.load()

    def load(self) -> None:
        """The app in a new page, with no tab open."""
        start = time.perf_counter()
        self.discard()
        page = self.browser.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        try:
            page.goto(self.lab.url())
            page.add_style_tag(content=OFF_SCREEN)
            page.wait_for_function("() => window.jupyterapp !== undefined")
            page.evaluate(APP_RESTORED)
            page.evaluate(CLOSE_ALL_TABS)  # the launcher
        except BaseException:
            page.close()  # the next notebook tries a new page
            raise
        self.page = page
        self.loads += 1
        key = "app load" if self.loads == 1 else f"app load {self.loads}"
        self.timings.setup[key] = time.perf_counter() - start

    def open(self, name: str):
        """Open notebook ``name`` (relative to the server's root) in a new tab."""
        from playwright.sync_api import expect

        self.ready()
        page = self.page
        page.evaluate(OPEN_NOTEBOOK, name)
        expect(page.locator(".jp-NotebookPanel")).to_have_count(1)
        return page

    def close(self) -> list[str]:
        """Close every tab and kernel; what was left behind (nothing, normally)."""
        from playwright.sync_api import expect

        problems, before = [], len(self.errors)
        if self.page is not None:
            page = self.page
            try:
                page.keyboard.press("Escape")  # a menu or dialog a failure left open
                page.evaluate(CLOSE_ALL_TABS)
                page.set_viewport_size(VIEWPORT)  # the screenshot changed it
                for left in (
                    # JupyterLab opens a launcher when the last tab goes
                    '#jp-main-dock-panel .lm-TabBar-tab:not([data-id^="launcher-"])',
                    ".jp-NotebookPanel",
                    ".jp-OutputArea",
                    ".jupyter-widgets",
                    ".jp-Dialog",
                ):
                    expect(
                        page.locator(left), f"left in the page: {left}"
                    ).to_have_count(0)
            except Exception as error:  # any failure: the next notebook reloads
                problems.append(f"the page did not come back clean: {error}")
                self.discard()
            if self.errors[before:]:
                problems.append(f"JavaScript errors on closing: {self.errors[before:]}")
        try:
            self.lab.shut_down_kernels()
            if kernels := self.lab.api("GET", "/api/kernels"):
                problems.append(f"kernels left running: {kernels}")
        except (OSError, ValueError) as error:
            problems.append(f"shutting the kernels down failed: {error}")
        self.errors.clear()
        return problems

    def discard(self) -> None:
        if self.page is not None:
            with contextlib.suppress(Exception):
                self.page.close()
            self.page = None


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in the menu bar, then ``item`` in its menu (exact labels)."""
    exact = re.compile(f"^{re.escape(top)}$")
    page.locator(".lm-MenuBar-itemLabel", has_text=exact).click()
    exact = re.compile(f"^{re.escape(item)}$")
    page.locator(".lm-Menu-itemLabel", has_text=exact).click()


def wait_until(page, test: str, el, what: str, value, message: str) -> None:
    """Wait until ``test`` (READ_DIFFERS or READ_EQUALS) holds for what ``el``
    shows, checked on every animation frame; else fail with ``message``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(test, arg=[el, what, value], timeout=WAIT_MS)
    except PlaywrightTimeout:
        raise AssertionError(
            f"{message} (after {WAIT_MS / 1000:.0f} s: {read(el, what)!r})"
        ) from None


def read(el, what: str):
    """What ``el`` shows, as READ reads it for the waits."""
    return el.evaluate(f"(el, what) => ({READ})(el, what)", what)


def new_picture(page, img, src: str, message: str) -> str:
    """Wait until the image's ``src`` is no longer ``src``; the SHA-256 of
    the PNG bytes behind the new blob: URL."""
    wait_until(page, READ_DIFFERS, img, "@src", src, message)
    return img.evaluate(SHA256_OF_IMG)


def move_slider(page, view, index: int, where: str) -> None:
    """Move slider ``index`` one step and back: the image changes, then returns."""
    slider = view.query_selector_all(".widget-slider")[index]
    handle = slider.query_selector(".noUi-handle")
    readout = slider.query_selector(".widget-readout")
    img = view.query_selector("img.widget-image")
    where = f"{where}, slider {slider.query_selector('.widget-label').inner_text()!r}"
    value = float(handle.get_attribute("aria-valuenow"))
    at_max = value == float(handle.get_attribute("aria-valuemax"))
    there, back = ("ArrowLeft", "ArrowRight") if at_max else ("ArrowRight", "ArrowLeft")
    first = read(readout, "text")
    shown = [img.evaluate(SHA256_OF_IMG)]  # the PNG bytes behind the blob: URL
    for key in (there, back):
        src, text = img.get_attribute("src"), read(readout, "text")
        handle.press(key)  # focuses the handle; the key moves it one step
        wait_until(
            page, READ_DIFFERS, readout, "text", text, f"{where}: {key} did not move it"
        )
        message = f"{where} after {key}: the image never changed"
        shown.append(new_picture(page, img, src, message))
    wait_until(page, READ_EQUALS, readout, "text", first, f"{where}: did not come back")
    assert shown[1] != shown[0], f"{where}: moved from {first}, same picture"
    assert shown[2] == shown[0], f"{where}: back to {first}, a different picture"


def there_and_back(page, view, where: str, first, other, set_to) -> None:
    """``set_to(other)``, then ``set_to(first)``: the image changes, then returns."""
    img = view.query_selector("img.widget-image")
    shown = [img.evaluate(SHA256_OF_IMG)]  # the PNG bytes behind the blob: URL
    for value in (other, first):
        src = img.get_attribute("src")
        set_to(value)
        message = f"{where}: setting {value!r} left the image"
        shown.append(new_picture(page, img, src, message))
    assert shown[1] != shown[0], f"{where}: {first!r} -> {other!r}, same picture"
    assert shown[2] == shown[0], f"{where}: back to {first!r}, a different picture"


def pick_option(page, view, index: int, where: str) -> None:
    """Pick another entry of dropdown ``index`` and back: the image follows."""
    select = view.query_selector_all(".widget-dropdown select")[index]
    first = select.evaluate("(s) => s.options[s.selectedIndex].label")
    labels = select.evaluate("(s) => Array.from(s.options, (o) => o.label)")
    other = next(o for o in labels if o != first)
    there_and_back(
        page, view, where, first, other, lambda o: select.select_option(label=o)
    )


def toggle_checkbox(page, view, index: int, where: str) -> None:
    """Tick (or untick) checkbox ``index`` and back: the image follows."""
    checkbox = view.query_selector_all(".widget-checkbox")[index]
    box = checkbox.query_selector("input[type=checkbox]")
    first = box.is_checked()
    where = f"{where}, checkbox {checkbox.inner_text()!r}"
    there_and_back(page, view, where, first, not first, box.set_checked)


def flip_bit(page, view, where: str) -> None:
    """Click the first toggle button twice: the table changes, then comes back."""
    first = view.query_selector(".widget-toggle-button")
    table = view.query_selector(".widget-html")

    def spelled() -> str:  # the bits the buttons spell
        return view.eval_on_selector_all(
            ".widget-toggle-button", "(bs) => bs.map((b) => b.textContent).join('')"
        )

    # "code <code>10000001</code> = 0x81 ...": the table is rewritten whole
    before, bit = read(table, "text"), read(first, "text")
    before_pattern = read(table, "code")
    assert bit in ("0", "1"), f"{where}: toggle button label {bit!r}"
    assert before_pattern == spelled(), where
    first.click()
    flipped = "1" if bit == "0" else "0"
    wait_until(
        page, READ_EQUALS, first, "text", flipped, f"{where}: the button stayed {bit}"
    )
    wait_until(
        page, READ_DIFFERS, table, "text", before, f"{where}: the table did not change"
    )
    # the table decodes the code the buttons spell
    wait_until(page, READ_EQUALS, table, "code", spelled(), where)
    first.click()
    wait_until(
        page,
        READ_EQUALS,
        first,
        "text",
        bit,
        f"{where}: the button stayed {flipped}",
    )
    # the code comes back (a float explorer also rewrites its value box, so
    # its table then shows the stored value rather than the typed one)
    wait_until(
        page,
        READ_EQUALS,
        table,
        "code",
        before_pattern,
        f"{where}: the bits did not come back",
    )


def check_explorer(page, view, kind: str, where: str) -> None:
    """The live view has the explorer's parts, and they answer.

    Past the first checks the parts are element handles, found once inside
    the view: a locator is looked up again from the document's root at every
    use, which cost chromium 15 ms a time in notebook 01's page."""
    from playwright.sync_api import expect

    expect(view.locator(".widget-slider"), where).to_have_count(sliders(kind))
    if explorer_parts(kind)[0] == "table":
        expect(view.locator(".widget-toggle-button").first, where).to_be_visible()
        expect(view.locator(".widget-html table"), where).to_have_count(1)
        flip_bit(page, view.element_handle(), where)
    else:
        expect(view.locator("img.widget-image"), where).to_have_count(1)
        box = view.element_handle()
        for i in range(sliders(kind)):
            move_slider(page, box, i, where)
        for i in range(len(box.query_selector_all(".widget-dropdown select"))):
            pick_option(page, box, i, where)
        for i in range(len(box.query_selector_all(".widget-checkbox"))):
            toggle_checkbox(page, box, i, where)  # QFormatExplorer's "signed"


def screenshot(page, path: Path) -> str:
    """The notebook in one picture: a viewport as tall as the notebook, capped.

    The cap (``SCREENSHOT_MAX_HEIGHT``) keeps the tallest notebooks from
    costing seconds; ``LabPage.close`` puts the viewport back.  Returns a note
    when the picture shows only the notebook's top, else "".
    """
    page.keyboard.press("Escape")
    scroller = page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer")
    height = scroller.evaluate("(e) => { e.scrollTop = 0; return e.scrollHeight; }")
    extra = VIEWPORT["height"] - scroller.evaluate("(e) => e.clientHeight")
    shown = min(height + extra, SCREENSHOT_MAX_HEIGHT)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": shown})
    scroller.evaluate("(e) => { e.scrollTop = 0; }")
    # JPEG: a notebook-tall PNG takes seconds to encode, a JPEG a fraction
    page.screenshot(path=path, type="jpeg", quality=80)
    cut = height + extra > SCREENSHOT_MAX_HEIGHT
    return f"screenshot: its first {shown - extra} of {height} px" if cut else ""


# --------------------------------------------------------------------------
# nbval's checks on the browser's run (tests/conftest.py)


def nbval_differences(cells: list[pytest.Item], executed) -> list[str]:
    """nbval's verdict on ``executed`` (an nbformat notebook run elsewhere),
    cell by cell: what nbval would report, or [] when every cell passes."""
    from nbval.plugin import coalesce_streams

    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    for parent in {id(item.parent): item.parent for item in cells}.values():
        parent.setup_sanitize_files()  # what nbval's setup does, minus a kernel
    problems = []
    for item in cells:
        name = f"Cell {item.cell_num}"
        if item.cell_num >= len(code) or code[item.cell_num].source != item.cell.source:
            problems.append(f"{name}: not the stored notebook's cell")
            continue
        ran = code[item.cell_num]
        if item.options["skip"]:  # nbval would not run it
            continue
        errors = [o for o in ran.outputs if o.output_type == "error"]
        if errors and not item.options["check_exception"]:
            problems.append(f"{name}: Cell execution caused an exception")
            continue
        if item.cell.execution_count is None:
            if item.cell.outputs:
                problems.append(f"{name}: Unrun reference cell has outputs")
            continue
        if not item.options["check"]:
            continue
        test = coalesce_streams(copy.deepcopy(ran.outputs))
        ref = coalesce_streams(copy.deepcopy(item.cell.outputs))
        if not item.compare_outputs(test, ref):
            diff = "\n".join(item.comparison_traceback)
            ran_text = "\n".join(  # nbval does not always show the text
                o.get("text") or o.get("data", {}).get("text/plain") or o.output_type
                for o in test
            )
            problems.append(
                f"{name}: Cell outputs differ\n{diff}\nthis run's outputs:\n"
                + ran_text[-2000:]
            )
    return problems


# --------------------------------------------------------------------------
# the test


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_runs_and_its_widgets_answer(
    path, lab_page, artifacts, timings, nbval_cells
):
    run_in_browser(
        rel(path),
        lab_page,
        artifacts / screenshot_name(path),
        timings,
        nbval_cells.get(rel(path), []),
    )


def run_in_browser(
    name: str, lab_page: LabPage, picture: Path, timings, nbval_items: list
) -> None:
    """Open ``name`` (relative to the server's root), Run All, check, screenshot.

    ``nbval_items``: the notebook's nbval items, when nbval does not run it
    itself (tests/conftest.py); they are applied to this run."""
    from playwright.sync_api import expect

    lab = lab_page.lab
    copy = lab.root / name
    nb = nbformat.read(copy, as_version=4)
    explorers = explorer_cells(copy)
    code = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()
    ]
    allowed_errors = {
        i
        for i, c in enumerate(nb.cells)
        if "raises-exception" in c.metadata.get("tags", [])
    }
    lab_page.ready()  # the app's load (once, or after a broken page) is timed apart
    start = lap = time.perf_counter()
    phases: dict[str, float] = {}  # seconds each phase took

    def phase(what: str) -> None:
        nonlocal lap
        now = time.perf_counter()
        phases[what], lap = now - lap, now

    passed, problems, note = False, [], ""
    try:
        page = lab_page.open(name)
        panel = page.locator(".jp-NotebookPanel")
        idle = f"{lab.kernel_display_name} | Idle"  # the status bar, kernel ready
        page.wait_for_function(KERNEL_SAYS, arg=idle, timeout=60_000)
        cells = panel.locator(".jp-Cell")
        expect(cells).to_have_count(len(nb.cells))
        phase("open")

        # the copy has no stored outputs: everything checked below is live
        menu(page, "Run", "Run All Cells")
        # seconds of computing: looked at every 100 ms, not on every animation
        # frame (which kept chromium drawing frames all along the run)
        page.wait_for_function(RUN_FINISHED, arg=code, timeout=120_000, polling=100)
        page.wait_for_function(KERNEL_SAYS, arg=idle, timeout=60_000)
        phase("run")

        errors = [
            f"cell {i}: {text[-1500:]}"
            for i, text in page.evaluate(ERROR_OUTPUTS)
            if i not in allowed_errors and re.search(r"Traceback|Error", text)
        ]
        assert not errors, f"{name}: error output\n" + "\n".join(errors)
        prompts = page.evaluate(PROMPTS, code)  # one round trip, not one per cell
        not_run = [
            i for i, p in zip(code, prompts, strict=True) if not re.search(r"\d", p)
        ]
        assert not not_run, f"{name}: cells never ran: {not_run}"

        if nbval_items:  # nbval's checks, on this run's outputs
            executed = nbformat.reads(page.evaluate(NOTEBOOK_JSON), as_version=4)
            differ = nbval_differences(nbval_items, executed)
            assert not differ, f"{name}, as nbval reports it:\n" + "\n\n".join(differ)
            phase("nbval")

        # every widget rendered
        for i, kinds in explorers.items():
            views = cells.nth(i).locator(".jp-OutputArea-output > .jupyter-widgets")
            expect(views, f"{name} cell {i}: no live {kinds}").to_have_count(len(kinds))
        outputs = panel.locator(".jp-OutputArea")  # 00 quotes the messages in prose
        expect(outputs.get_by_text("Loading widget")).to_have_count(0)
        expect(outputs.get_by_text("Error displaying widget")).to_have_count(0)
        if name.startswith("exercises/"):  # the stubs report, they do not crash
            expect(outputs.get_by_text("not answered yet").first).to_be_visible()

        # every explorer answers its controls
        for i, kinds in explorers.items():
            views = cells.nth(i).locator(".jp-OutputArea-output > .jupyter-widgets")
            for j, kind in enumerate(kinds):
                check_explorer(page, views.nth(j), kind, f"{name} cell {i} ({kind})")

        assert not lab_page.errors, f"{name}: JavaScript errors: {lab_page.errors}"
        phase("widgets")
        note = screenshot(page, picture)
        phase("screenshot")
        passed = True
    finally:
        # the next notebook starts with no tab, no notebook DOM and no kernel
        problems = lab_page.close()
        phase("close")
        status = "ok" if passed and not problems else "FAILED"
        timings.rows.append((name, status, phases))
        seconds = time.perf_counter() - start
        kinds = sorted({k for ks in explorers.values() for k in ks})
        line = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {name:<40} {seconds:6.1f} s"
            f"  {status}  widgets: {', '.join(kinds) or '-'}"
            f"  ({', '.join(f'{k} {v:.1f}' for k, v in phases.items())})"
        )
        if seconds > TARGET_SECONDS:
            line += f"  (over the {TARGET_SECONDS:.0f} s target)"
        if note:
            line += f"  ({note})"
        print(f"\n[browser] {line}")
        with (picture.parent / "timings.txt").open("a") as f:
            f.write(line + "\n")
    assert not problems, f"{name}: after closing: " + "; ".join(problems)


# --------------------------------------------------------------------------
# the comparison itself, without a browser: nbval's items of notebook 02


@pytest.fixture(scope="module")
def items_02(request) -> tuple[list, object]:
    """nbval's items for notebooks/02 (collected here, not run) and the notebook."""
    from nbval.plugin import IPyNbFile

    path = ROOT / "notebooks" / "02_integer_encodings.ipynb"
    items = list(IPyNbFile.from_parent(request.session, path=path).collect())
    return items, nbformat.read(path, as_version=4)


def code_cell(nb, n: int):
    return [c for c in nb.cells if c.cell_type == "code"][n]


def first(items, *, check: bool):
    """The first item with stored text output, compared (or not) by nbval."""
    return next(
        i
        for i in items
        if bool(i.options["check"]) == check
        and any(
            "text" in o or "text/plain" in o.get("data", {}) for o in i.cell.outputs
        )
    )


def changed(nb, n: int):
    """``nb`` with one character of code cell ``n``'s first text output changed."""
    nb = copy.deepcopy(nb)
    for out in code_cell(nb, n).outputs:
        if "text" in out:
            out.text = "#" + out.text[1:]
            return nb
        if "text/plain" in out.get("data", {}):
            out.data["text/plain"] = "#" + out.data["text/plain"][1:]
            return nb
    raise AssertionError(f"code cell {n} has no text output")


def test_the_stored_outputs_pass_nbvals_checks(items_02):
    items, nb = items_02
    assert len(items) == len([c for c in nb.cells if c.cell_type == "code"])
    assert nbval_differences(items, nb) == []


def test_a_changed_output_is_reported_as_nbval_reports_it(items_02):
    items, nb = items_02
    item = first(items, check=True)
    problems = nbval_differences(items, changed(nb, item.cell_num))
    assert len(problems) == 1
    assert problems[0].startswith(f"Cell {item.cell_num}: Cell outputs differ")


def test_a_cell_marked_nbval_ignore_output_is_not_compared(items_02):
    items, nb = items_02
    item = first(items, check=False)
    assert "nbval-ignore-output" in item.cell.metadata.get("tags", [])
    assert nbval_differences(items, changed(nb, item.cell_num)) == []


def test_a_missing_output_an_error_and_another_cell_are_reported(items_02):
    items, nb = items_02
    n = first(items, check=True).cell_num
    cleared = copy.deepcopy(nb)
    code_cell(cleared, n).outputs = []
    assert nbval_differences(items, cleared)[0].startswith(f"Cell {n}: Cell outputs")
    failed = copy.deepcopy(nb)
    code_cell(failed, 0).outputs.append(
        nbformat.v4.new_output("error", ename="ValueError", evalue="x", traceback=[])
    )
    assert nbval_differences(items, failed) == [
        "Cell 0: Cell execution caused an exception"
    ]
    edited = copy.deepcopy(nb)
    code_cell(edited, n).source += "\n"
    assert nbval_differences(items, edited) == [
        f"Cell {n}: not the stored notebook's cell"
    ]


def make_scheduling(request):
    """tests/conftest.py's pytest-xdist scheduler, as ``make test`` gets it."""
    make = request.config.pluginmanager.hook.pytest_xdist_make_scheduler
    option = request.config.option
    saved = {name: getattr(option, name, None) for name in ("dist", "tx")}
    option.dist, option.tx = "loadfile", ["2*popen"]  # as make test runs it
    try:
        return make(config=request.config, log=None)
    finally:
        for name, value in saved.items():
            setattr(option, name, value)


def test_the_suite_splits_in_two_halves_and_every_other_file_stays_whole(
    request,
):
    """tests/conftest.py's pytest-xdist scheduler: each browser notebook in
    one of two units, both used; any other test, nbval cell or doctest in
    the unit of its file, as --dist loadfile has it."""
    from xdist.scheduler import LoadFileScheduling

    scheduling = make_scheduling(request)
    assert isinstance(scheduling, LoadFileScheduling)
    ids = [
        f"tests/browser/test_browser.py::test_notebook_runs_and_its_widgets_answer"
        f"[{rel(path)}]"
        for path in NOTEBOOKS
    ]
    units = {scheduling._split_scope(i) for i in ids}
    assert units == {
        "tests/browser/test_browser.py[unit 0]",
        "tests/browser/test_browser.py[unit 1]",
    }
    for nodeid, unit in [
        ("tests/browser/test_browser.py::test_the_stored_outputs_pass_nbvals_checks",
         "tests/browser/test_browser.py"),
        ("tests/test_grader.py::test_outcome[wrong]", "tests/test_grader*.py"),
        ("tests/test_grader_anywhere.py::test_grader_suite_from_tmp",
         "tests/test_grader*.py"),
        ("tests/test_grader_cpu.py::test_a_cpu_hog_leaves_its_neighbour_on_time",
         "tests/test_grader*.py"),
        ("tests/test_gradescope.py::test_zip_layout", "tests/test_gradescope.py"),
        ("notebooks/06_kmeans_quantization.ipynb::Cell 3",
         "notebooks/06_kmeans_quantization.ipynb"),
        ("tests/test_mixed.py::test_divergence_is_kl_of_the_softmax_outputs[1]",
         "tests/test_mixed.py"),
        ("qlib/mixed.py::qlib.mixed.divergence", "qlib/mixed.py"),
    ]:  # fmt: skip
        assert scheduling._split_scope(nodeid) == unit


def test_the_longest_units_are_handed_out_first(request):
    """The scheduler deals conftest.FIRST_UNITS first, in their order, then
    every other unit in the order pytest-xdist queued it."""
    from collections import OrderedDict

    import conftest

    scheduling = make_scheduling(request)

    class Node:  # what the scheduler needs of a worker
        def send_runtest_some(self, indexes):
            pass

    others = ["tests/test_mixed.py", "qlib/mixed.py", "notebooks/00_start_here.ipynb"]
    queued = [*others[:2], *reversed(conftest.FIRST_UNITS), others[2]]
    scheduling.workqueue = OrderedDict((unit, {}) for unit in queued)
    node = Node()
    scheduling.registered_collections = {node: []}
    handed = []
    while scheduling.workqueue:
        scheduling._assign_work_unit(node)
        handed.append(list(scheduling.assigned_work[node])[-1])
    assert handed == [*conftest.FIRST_UNITS, *others]
