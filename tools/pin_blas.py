"""The arithmetic the course's stored numbers are computed in.

    import pin_blas; pin_blas.pin()   # first, before anything imports numpy

NumPy's wheels carry OpenBLAS, which picks its matrix-product kernels for
the CPU when it loads: Haswell's or Zen's (AVX2) on many x86-64 CPUs,
SkylakeX's, Cooperlake's or SapphireRapids' (AVX-512) on others, such as
Intel's recent Xeons.  The kernels add a dot product's terms in different
orders, so a float32 product can differ in its last bit, and a last bit is
enough to change a stored output: a calibrated maximum, and with it notebook
07's multiplier ``M0`` (1478349792 with Haswell's kernels, 1478349575 with
SapphireRapids'), a test image that sits on a class boundary, a count of
outputs that round the other way.

Every stored output (notebooks, solutions), committed model file and README
table is computed with Haswell's kernels.  :func:`pin` holds this process
and every process it starts to them (``OPENBLAS_CORETYPE=Haswell``), on any
x86-64 Linux CPU with AVX2 and FMA, the instructions those kernels use, and
runs NumPy's products on one thread unless told otherwise.  It must run
before NumPy is imported: OpenBLAS reads the variable once, when it loads.
:func:`core` says which kernels the running process has.  Elsewhere (ARM,
macOS's Accelerate, MKL, a CPU without AVX2) nothing is pinned and the last
digits of a few outputs may differ from the stored ones.

This module imports nothing beyond the standard library (numpy must not be
loaded by it).  Used by tests/conftest.py, tools/run_notebooks.py and the
tools that write qlib/models/.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

CORETYPE = "Haswell"  # the kernels every stored number was computed with
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_NEEDS = {"avx2", "fma"}  # what Haswell's kernels execute
_CORENAME = (  # NumPy's own build of OpenBLAS (scipy-openblas), then others
    "scipy_openblas_get_corename64_",
    "scipy_openblas_get_corename",
    "openblas_get_corename64_",
    "openblas_get_corename",
)


def can_pin() -> bool:
    """Whether this machine runs Haswell's kernels: x86-64 Linux whose CPU
    has AVX2 and FMA (OpenBLAS does not check a forced core type: on a CPU
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


def pin() -> None:
    """Set ``OPENBLAS_CORETYPE`` (where :func:`can_pin`) and one BLAS thread
    in ``os.environ``, unless already set: for this process's NumPy when it
    is not loaded yet (:func:`problem` tells), and for every process started
    from here."""
    for name in THREADS:
        os.environ.setdefault(name, "1")
    if can_pin():
        os.environ.setdefault("OPENBLAS_CORETYPE", CORETYPE)


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


def problem() -> str | None:
    """What keeps this process from computing the stored numbers' bits, or
    None: its OpenBLAS runs other kernels than :data:`CORETYPE` on a machine
    that can run them."""
    running = core()
    if can_pin() and running is not None and running.lower() != CORETYPE.lower():
        return (
            f"NumPy's OpenBLAS runs its {running} kernels, and the course's stored "
            f"outputs were computed with its {CORETYPE} kernels (the last bit of a "
            f"float32 product differs): set OPENBLAS_CORETYPE={CORETYPE} before "
            "numpy is imported (make test and tools/run_notebooks.py do)"
        )
    return None


def describe() -> str:
    """One line: the kernels in use and whether they are the stored outputs'."""
    running = core()
    if running is None:
        return "BLAS: not OpenBLAS; stored outputs may differ in their last digits"
    if running.lower() == CORETYPE.lower():
        return f"BLAS: OpenBLAS, {running} kernels (as the stored outputs)"
    why = "" if can_pin() else f"; this CPU cannot run {CORETYPE}'s"
    return f"BLAS: OpenBLAS, {running} kernels (stored outputs: {CORETYPE}{why})"
