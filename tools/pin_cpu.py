"""The CPU code paths the course's stored numbers are computed with.

    import pin_cpu; pin_cpu.pin()   # first, before anything imports numpy

NumPy chooses machine code by CPU when it loads, in two places:

* its OpenBLAS picks matrix-product kernels: Haswell's or Zen's (AVX2) on
  many x86-64 CPUs, SkylakeX's, Cooperlake's or SapphireRapids' (AVX-512) on
  others, such as Intel's recent Xeons.  The kernels add a dot product's
  terms in different orders;
* its own loops (``exp``, ``log``, ``power``, ...) have AVX2 and AVX-512
  versions, which round differently in the last bit.

A last bit is enough to change a stored output: a calibrated maximum, and
with it notebook 07's multiplier ``M0`` (1478349792 with Haswell's kernels,
1478349575 with SapphireRapids'); a 2-bit test error (41.34% or 41.35%); the
share of AdaRound's soft roundings left between 0 and 1 (0.007% with
AVX-512's ``exp``, 0.006% with AVX2's).

Every stored output (notebooks, solutions), committed model file and README
table is computed with OpenBLAS's Haswell kernels and NumPy's AVX2 loops
(``X86_V3``, no AVX-512), which every x86-64 CPU with AVX2 and FMA runs.
:func:`pin` holds this process and every process it starts to them
(``OPENBLAS_CORETYPE=Haswell``, ``NPY_DISABLE_CPU_FEATURES`` naming NumPy's
AVX-512 targets), and runs NumPy's products on one thread unless told
otherwise.  It must run before NumPy is imported: both are read once, when
NumPy loads.  :func:`problem` says whether the running process computes as
the stored outputs were computed.  Elsewhere (ARM, macOS's Accelerate, MKL,
a CPU without AVX2) nothing is pinned and the last digits of a few outputs
may differ from the stored ones.

This module imports nothing beyond the standard library (it must not load
NumPy).  Used by the repository's conftest.py (every pytest run),
tools/run_notebooks.py and the tools that write qlib/models/.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

CORETYPE = "Haswell"  # OpenBLAS's kernels for every stored number
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_NEEDS = {"avx2", "fma"}  # what Haswell's kernels and NumPy's X86_V3 loops execute
# NumPy's AVX-512 targets: named by level from NumPy 2.4 on, by feature before
_AVX512_TARGETS = {
    "new": ("X86_V4", "AVX512_ICL", "AVX512_SPR"),
    "old": ("AVX512F", "AVX512CD", "AVX512_KNL", "AVX512_KNM", "AVX512_SKX",
            "AVX512_CLX", "AVX512_CNL", "AVX512_ICL", "AVX512_SPR"),
}  # fmt: skip
_CORENAME = (  # NumPy's own build of OpenBLAS (scipy-openblas), then others
    "scipy_openblas_get_corename64_",
    "scipy_openblas_get_corename",
    "openblas_get_corename64_",
    "openblas_get_corename",
)


def can_pin() -> bool:
    """Whether this machine runs the pinned code: x86-64 Linux whose CPU has
    AVX2 and FMA (OpenBLAS does not check a forced core type: on a CPU
    without them its kernels would stop the process on an illegal
    instruction)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return _NEEDS <= set(line.partition(":")[2].split())
    return False


def _avx512_targets() -> tuple[str, ...]:
    """This NumPy's names for its AVX-512 targets, read without importing it."""
    try:
        major, minor = importlib.metadata.version("numpy").split(".")[:2]
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return _AVX512_TARGETS["new"]
    new = (int(major), int("".join(c for c in minor if c.isdigit()) or 0)) >= (2, 4)
    return _AVX512_TARGETS["new" if new else "old"]


def pin() -> None:
    """Set ``OPENBLAS_CORETYPE`` and ``NPY_DISABLE_CPU_FEATURES`` (where
    :func:`can_pin`) and one BLAS thread in ``os.environ``, each unless
    already set: for this process's NumPy when it is not loaded yet
    (:func:`problem` tells), and for every process started from here."""
    for name in THREADS:
        os.environ.setdefault(name, "1")
    if can_pin():
        os.environ.setdefault("OPENBLAS_CORETYPE", CORETYPE)
        os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", " ".join(_avx512_targets()))


def core() -> str | None:
    """The kernels this process's OpenBLAS runs (``'Haswell'``,
    ``'SkylakeX'``, ...), read from the library NumPy loaded; None where
    NumPy's BLAS is not OpenBLAS or cannot be asked (not Linux)."""
    import numpy  # noqa: F401  (loads its BLAS)

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    libraries = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    for path in sorted(libraries):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _CORENAME:
            function = getattr(library, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode()
    return None


def avx512_loops() -> list[str]:
    """NumPy's AVX-512 targets that this process dispatches to (none when
    pinned or on a CPU without AVX-512)."""
    import numpy as np

    umath = getattr(np, "_core", None) or np.core
    features = umath._multiarray_umath.__cpu_features__
    dispatch = umath._multiarray_umath.__cpu_dispatch__
    return [t for t in dispatch if t in _AVX512_TARGETS["new"] + _AVX512_TARGETS["old"]
            and features.get(t)]  # fmt: skip


def problem() -> str | None:
    """What keeps this process from computing the stored numbers' bits, on a
    machine that can (:func:`can_pin`), or None."""
    if not can_pin():
        return None
    wrong = []
    running = core()
    if running is not None and running.lower() != CORETYPE.lower():
        wrong.append(f"NumPy's OpenBLAS runs its {running} kernels, not {CORETYPE}'s")
    if loops := avx512_loops():
        wrong.append(f"NumPy runs its AVX-512 loops ({' '.join(loops)})")
    if not wrong:
        return None
    return (
        "; ".join(wrong) + ": the course's stored outputs were computed without "
        f"them (a last bit differs).  Set OPENBLAS_CORETYPE={CORETYPE} and "
        f"NPY_DISABLE_CPU_FEATURES='{' '.join(_avx512_targets())}' before numpy is "
        "imported (the repository's conftest.py and tools/run_notebooks.py do)"
    )


def describe() -> str:
    """One line: the code paths in use and whether they are the stored
    outputs'."""
    running = core()
    blas = "not OpenBLAS" if running is None else f"OpenBLAS {running} kernels"
    loops = avx512_loops()
    simd = f"AVX-512 loops {' '.join(loops)}" if loops else "no AVX-512 loops"
    if can_pin() and running is not None and problem() is None:
        return f"CPU code: {blas}, NumPy {simd} (as the stored outputs)"
    return (
        f"CPU code: {blas}, NumPy {simd} (stored outputs: OpenBLAS {CORETYPE} "
        "kernels, no AVX-512 loops; a few last digits may differ)"
    )
