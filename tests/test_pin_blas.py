"""tools/pin_blas.py: every stored number computed with one set of OpenBLAS
kernels, and a run with other kernels stopped before it compares anything.

Each check runs in a fresh Python process: OpenBLAS reads
``OPENBLAS_CORETYPE`` once, when NumPy loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import pin_blas  # noqa: E402

needs_haswell = pytest.mark.skipif(
    not pin_blas.can_pin(), reason="this CPU cannot run OpenBLAS's Haswell kernels"
)


TOOLS = str(ROOT / "tools")


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python with tools/ on its path, and
    ``OPENBLAS_CORETYPE`` only as ``env`` sets it."""
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {TOOLS!r})\n{code}"],
        env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@needs_haswell
def test_pin_before_numpy_runs_the_haswell_kernels_in_the_process_and_its_children():
    """The process that pins, and a child it starts, report Haswell's kernels
    from the library itself (OpenBLAS's get_corename)."""
    child = (
        f"import sys; sys.path[:0] = [{TOOLS!r}]\n"
        "import pin_blas; print(pin_blas.core())"
    )
    done = python(
        "import pin_blas, subprocess, sys; pin_blas.pin(); print(pin_blas.core())\n"
        f"print(subprocess.run([sys.executable, '-c', {child!r}],"
        " capture_output=True, text=True).stdout.strip())"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Haswell", "Haswell"]


@needs_haswell
def test_pin_keeps_a_core_type_already_chosen_and_problem_names_it():
    """A kernel set chosen by the user is kept, and problem() says that the
    stored outputs were computed with another: Sandybridge's kernels (AVX,
    which every AVX2 CPU runs) are not Haswell's."""
    done = python(
        "import pin_blas; pin_blas.pin(); print(pin_blas.core()); "
        "print(pin_blas.problem())",
        OPENBLAS_CORETYPE="Sandybridge",
    )
    assert done.returncode == 0, done.stderr
    first, why = done.stdout.split("\n", 1)
    assert first == "Sandybridge"
    assert "Sandybridge kernels" in why and "OPENBLAS_CORETYPE=Haswell" in why


@needs_haswell
def test_the_suite_refuses_to_start_with_other_kernels(tmp_path):
    """pytest with OPENBLAS_CORETYPE=Sandybridge stops at once with a usage
    error (exit status 4) that says which kernels it found and what to set,
    before collecting a test: nbval would otherwise report last-digit
    differences in notebooks 07-09 with no word of why."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--collect-only", "-q", str(ROOT / "tests" / "test_pin_blas.py")],
        cwd=ROOT, env={**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "Sandybridge kernels" in said and "OPENBLAS_CORETYPE=Haswell" in said
    assert "test_pin_keeps" not in said  # nothing collected
