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
    not pin_cpu.can_pin(),
    reason="the pinned code needs x86-64 Linux and a CPU with AVX2 (X86_V3)",
)


def _avx512() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and "avx512f" in pin_cpu.cpu_flags(cpuinfo.read_text())


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


@needs_avx2
def test_a_jupyter_kernel_started_by_the_suite_runs_pinned():
    """What nbval and the browser suite start: a kernel launched from this
    (pinned) process reports Haswell's kernels and no AVX-512 loop."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT))
    said: list[str] = []
    try:
        kc.execute_interactive(
            f"import sys; sys.path.insert(0, {TOOLS!r}); import pin_cpu; "
            "print(pin_cpu.core(), pin_cpu.avx512_loops())",
            output_hook=lambda m: said.append(m["content"].get("text", "")),
            timeout=60,
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert "".join(said).strip() == "Haswell []"


@needs_avx2
def test_a_tool_that_writes_stored_numbers_stops_with_other_kernels():
    """tools/readme_tables.py (like the other tools that write stored
    numbers) exits with status 2 and the reason before computing anything."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "readme_tables.py"), "--check"],
        env={**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(
        "readme_tables.py: NumPy's OpenBLAS runs its Sandybridge"
    )


@needs_avx512
def test_numpy_imported_before_the_pin_is_named_as_the_cause():
    """The variables set, but after NumPy loaded (as a plugin or a startup
    file would do it): problem() says so instead of asking to set them."""
    done = python("import numpy, pin_cpu; pin_cpu.pin(); print(pin_cpu.problem())")
    assert done.returncode == 0, done.stderr
    assert "NumPy was imported before they were" in done.stdout


LINE = "flags\t\t: fpu sse2 avx f16c fma movbe abm bmi1 avx2 bmi2 popcnt"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (f"processor\t: 0\n{LINE}\n", True),
        (f"processor\t: 0\n{LINE.replace(' bmi2', '')}\n", False),  # a VM's mask
        ("vmx flags\t: ept vpid avx2 fma\n", False),  # not the CPU's flags
        ("", False),
    ],
)
def test_cpu_flags_are_read_from_the_flags_line(cpuinfo, expected):
    assert pin_cpu.cpu_has_x86_v3(cpuinfo) is expected


@pytest.mark.parametrize(
    ("version", "names"),
    [("2.4.6", "new"), ("2.10.0", "new"), ("2.5.0rc1", "new"), ("2.4.0.dev0", "new"),
     ("2.3.5", "old"), ("1.26.4", "old")],
)  # fmt: skip
def test_numpy_s_avx512_targets_are_named_as_its_version_names_them(version, names):
    """NumPy 2.4 named its x86 targets by level (X86_V4, ...); before, by
    feature (AVX512F, AVX512_SKX, ...)."""
    expected = "X86_V4" if names == "new" else "AVX512_SKX"
    assert expected in pin_cpu.avx512_targets(version)
