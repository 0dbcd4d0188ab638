"""`make lab` from a fresh clone starts JupyterLab on the start notebook.

The README's first command, run the way a learner runs it, minus the browser:
the test clones the committed HEAD into a temporary folder (what a learner
gets: a Makefile change is tested here once it is committed), runs ``make lab``
there and talks to the server over HTTP.  Only what a headless run needs is
added, through the Makefile's ``LAB_ARGS``: no browser, a free port, a random
token.  Jupyter's config, data and runtime folders are temporary.

The clone reuses the virtual environment running this test (``VENV=``), and
``make -o $(STAMP)`` tells make not to rebuild it: the clone's pyproject.toml
is newer than the environment's stamp, so the stamp rule would otherwise
reinstall into the shared environment.  Building a fresh environment is what
``.ci/run`` does; this test checks what ``make lab`` does once it exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START = "notebooks/00_start_here.ipynb"
ROOT_LINE = "running as root: passing --allow-root to Jupyter"
READY_SECONDS = 60
STOP_SECONDS = 30


def require(ok: bool, message: str) -> None:
    """Skip when ``ok`` is false, except under CI=true, where the test fails."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member we may not signal
        return True
    return True


def stop_group(proc: subprocess.Popen, sig: int, seconds: float) -> bool:
    """Send ``sig`` to the process group; True when every member is gone in time."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + seconds
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=seconds)
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # make has exited; jupyter may still be cleaning up
    return proc.poll() is not None and not group_alive(proc.pid)


def test_make_lab_from_a_fresh_clone(tmp_path):
    venv = Path(sys.prefix)
    require(shutil.which("git") is not None, "`git` is not on PATH")
    require(shutil.which("make") is not None, "`make` is not on PATH")
    require((ROOT / ".git").exists(), f"{ROOT} is not a git checkout")
    require((venv / "bin" / "jupyter").is_file(), f"no jupyter in {venv}/bin")

    # A checkout owned by another user (CI containers) is "dubious" to git; a
    # local clone reads safe.directory only from global or system config.
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[safe]\n\tdirectory = {ROOT}\n\tdirectory = {ROOT}/.git\n")
    clone = tmp_path / "course"
    subprocess.run(
        ["git", "clone", "--quiet", ROOT, clone],
        env={**os.environ, "GIT_CONFIG_GLOBAL": str(gitconfig)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    head = subprocess.run(
        ["git", "-C", clone, "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    port, token = free_port(), secrets.token_hex(16)
    lab_args = (
        f"--no-browser --port={port} --ServerApp.port_retries=0 "
        f"--IdentityProvider.token={token}"
    )
    stamp = f"{venv}/.installed"  # the Makefile's $(STAMP) for this VENV
    make = ["make", "-o", stamp, "lab", f"VENV={venv}", f"LAB_ARGS={lab_args}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    for name in ("CONFIG", "DATA", "RUNTIME"):
        env[f"JUPYTER_{name}_DIR"] = str(tmp_path / f"jupyter-{name.lower()}")
    env.pop("JUPYTER_PATH", None)

    # what make would run: the server and nothing else (no install)
    plan = subprocess.run(
        [make[0], "-n", *make[1:]],
        cwd=clone,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "pip" not in plan and "make_venv" not in plan, plan
    assert f"{venv}/bin/jupyter lab" in plan, plan

    log_path = tmp_path / "make-lab.log"
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            make,
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"make lab (clone of {head}) exited with {proc.returncode}:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(
                    f"{base}/api/status?token={token}", timeout=5
                ) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"make lab (clone of {head}) did not answer in {READY_SECONDS}"
                    " s:\n" + log_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)

        # the start notebook, from the repository root the file browser shows
        model = get(f"{base}/api/contents/{START}", token)
        assert model["type"] == "notebook"
        assert model["name"] == "00_start_here.ipynb"
        assert model["path"] == START
        stored = json.loads((clone / START).read_text())
        assert len(model["content"]["cells"]) == len(stored["cells"])
        assert model["content"]["cells"][0]["source"] == "".join(
            stored["cells"][0]["source"]
        )
        listing = get(f"{base}/api/contents/", token)
        names = {item["name"] for item in listing["content"]}
        assert {"notebooks", "exercises", "solutions"} <= names

        # the page Jupyter opens (in the browser it did not start)
        runtime = tmp_path / "jupyter-runtime"
        opened = [p.read_text() for p in runtime.glob("jpserver-file-to-run-*.html")]
        assert len(opened) == 1, sorted(p.name for p in runtime.iterdir())
        assert f"/lab/tree/{START}?token=" in opened[0]
    finally:
        stopped = stop_group(proc, signal.SIGTERM, STOP_SECONDS)
        if not stopped:
            stop_group(proc, signal.SIGKILL, 10)
    output = log_path.read_text(errors="replace")
    assert stopped, f"make lab did not stop on SIGTERM in {STOP_SECONDS} s:\n{output}"

    assert "received signal 15, stopping" in output, output  # a clean shutdown
    assert f"http://127.0.0.1:{port}/lab?token=" in output, output  # the URL
    assert "Running as root is not recommended" not in output, output
    assert (ROOT_LINE in output) == (os.geteuid() == 0), output
