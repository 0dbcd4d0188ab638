"""tools/pin_cpu.py: every stored number computed with one set of machine
code (OpenBLAS's Haswell kernels, NumPy's AVX2 loops), and a run with other
code stopped before it compares anything.

Each check runs in a fresh Python process: OpenBLAS and NumPy read their
variables once, when NumPy loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = str(ROOT / "tools")
sys.path.insert(0, TOOLS)
import pin_cpu  # noqa: E402

PINNED = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")
needs_avx2 = pytest.mark.skipif(
    not pin_cpu.can_pin(), reason="this CPU runs neither Haswell's kernels nor AVX2"
)


def _avx512() -> bool:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " avx512f " in text


needs_avx512 = pytest.mark.skipif(not _avx512(), reason="this CPU has no AVX-512")


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python with tools/ on its path, and the pinning
    variables only as ``env`` sets them."""
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {TOOLS!r})\n{code}"],
        env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@needs_avx2
def test_pin_before_numpy_holds_the_process_and_its_children():
    """The process that pins, and a child it starts, report Haswell's kernels
    from the library itself (OpenBLAS's get_corename) and no AVX-512 loop
    in NumPy's dispatch table."""
    child = (
        f"import sys; sys.path[:0] = [{TOOLS!r}]\n"
        "import pin_cpu; print(pin_cpu.core(), pin_cpu.avx512_loops())"
    )
    done = python(
        "import pin_cpu, subprocess, sys; pin_cpu.pin()\n"
        "print(pin_cpu.core(), pin_cpu.avx512_loops())\n"
        f"print(subprocess.run([sys.executable, '-c', {child!r}],"
        " capture_output=True, text=True).stdout.strip())"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Haswell []", "Haswell []"]


@needs_avx2
def test_pinned_float64_exp_log_power_are_glibcs_to_the_bit():
    """NumPy's AVX2 build of float64 exp, log and power hands them to the C
    library: pinned, they equal Python's math module (glibc) on 100,000
    values; AVX-512's own versions differ on thousands of them (next test)."""
    code = (
        "import pin_cpu; pin_cpu.pin()\n"
        "import math, numpy as np\n"
        "x = np.random.default_rng(0).uniform(-20, 20, 100_000)\n"
        "a = np.abs(x)\n"
        "print(sum(int(u != math.exp(v)) for u, v in zip(np.exp(x), x)),\n"
        "      sum(int(u != math.log(v)) for u, v in zip(np.log(a), a)),\n"
        "      sum(int(u != math.pow(v, 1.7)) for u, v in zip(a ** 1.7, a)))"
    )
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0", "0"]


@needs_avx512
def test_unpinned_avx512_exp_rounds_otherwise():
    """Why the pin: on this AVX-512 CPU, NumPy's own float64 exp differs from
    glibc's in the last bit on some of the same 100,000 values."""
    done = python(
        "import math, numpy as np\n"
        "x = np.random.default_rng(0).uniform(-20, 20, 100_000)\n"
        "print(sum(int(u != math.exp(v)) for u, v in zip(np.exp(x), x)))"
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


@needs_avx2
def test_pin_keeps_a_core_type_already_chosen_and_problem_names_it():
    """A kernel set chosen by the user is kept, and problem() says that the
    stored outputs were computed with another: Sandybridge's kernels (AVX,
    which every AVX2 CPU runs) are not Haswell's."""
    done = python(
        "import pin_cpu; pin_cpu.pin()\n"
        "print(pin_cpu.core())\nprint(pin_cpu.problem())",
        OPENBLAS_CORETYPE="Sandybridge",
    )
    assert done.returncode == 0, done.stderr
    first, why = done.stdout.split("\n", 1)
    assert first == "Sandybridge"
    assert "Sandybridge kernels" in why and "OPENBLAS_CORETYPE=Haswell" in why


def _pytest_collect(**env: str) -> subprocess.CompletedProcess:
    """pytest collecting one notebook alone, as a learner checking a notebook
    would: the repository's conftest.py applies to it too."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--collect-only", "-q", str(ROOT / "notebooks" / "00_start_here.ipynb")],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@needs_avx2
def test_the_suite_refuses_to_start_with_other_kernels():
    """pytest with OPENBLAS_CORETYPE=Sandybridge, given a notebook alone,
    stops at once with a usage error (exit status 4) that says which kernels
    it found and what to set, before collecting a cell: nbval would
    otherwise report last-digit differences in notebooks 07-09 with no word
    of why."""
    done = _pytest_collect(OPENBLAS_CORETYPE="Sandybridge")
    said = done.stdout + done.stderr
    assert done.returncode == 4, said
    assert "Sandybridge kernels" in said and "OPENBLAS_CORETYPE=Haswell" in said
    assert "Cell 0" not in said  # nothing collected


@needs_avx512
def test_the_suite_refuses_to_start_with_avx512_loops():
    """The same for NumPy's loops: NPY_DISABLE_CPU_FEATURES set to leave
    X86_V4 on, on this AVX-512 CPU, stops the run and names it."""
    done = _pytest_collect(NPY_DISABLE_CPU_FEATURES="AVX512_SPR")
    said = done.stdout + done.stderr
    assert done.returncode == 4, said
    assert "AVX-512 loops" in said and "NPY_DISABLE_CPU_FEATURES=" in said
