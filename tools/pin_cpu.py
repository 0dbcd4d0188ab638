"""The CPU code paths the course's stored numbers are computed with.

    import pin_cpu; pin_cpu.pin()   # first, before anything imports numpy

NumPy chooses machine code by CPU when it loads, in two places:

* its OpenBLAS picks matrix-product kernels: Haswell's or Zen's (AVX2) on
  many x86-64 CPUs, SkylakeX's, Cooperlake's or SapphireRapids' (AVX-512) on
  others, such as Intel's recent Xeons.  The kernels add a dot product's
  terms in different orders;
* its own loops have AVX-512 versions (float64 ``exp``, ``log`` and
  ``power`` among them; without AVX-512 NumPy hands these to the C library,
  and float32 ``exp`` has an AVX2 version), which round some results
  differently in the last bit.

A last bit is enough to change a stored output: a calibrated maximum, and
with it notebook 07's multiplier ``M0`` (1478349792 with Haswell's kernels,
1478349575 with SkylakeX's); a 2-bit test error (41.34% or 41.35%); the
share of AdaRound's soft roundings left between 0 and 1 in notebook 08
(0.007% with NumPy's AVX2 loops, 0.006% with its AVX-512 ones).

Every stored output (notebooks, solutions), committed model file and README
table is computed with OpenBLAS's Haswell kernels and NumPy's AVX2 loops
(its ``X86_V3`` level, no AVX-512), which every x86-64 CPU with AVX2, FMA,
BMI1/2, F16C, LZCNT and MOVBE runs (:func:`can_pin`).  :func:`pin` holds
this process, and every process started from it with its environment, to
them (``OPENBLAS_CORETYPE=Haswell``, ``NPY_DISABLE_CPU_FEATURES`` naming
NumPy's AVX-512 targets), and runs NumPy's products on one thread unless
told otherwise.  It must run before NumPy is imported: both are read once,
when NumPy loads.  :func:`problem` says whether the running process computes
as the stored outputs were computed; :func:`require` stops a tool that does
not.  Not pinned: other operating systems and CPUs (ARM, macOS, Windows, a
CPU without those instructions), a NumPy built on MKL or Accelerate (its
loops are pinned, its BLAS is not), and the grader's kernels, which start
from an environment of their own.  There the last digits of a few outputs
may differ from the stored ones.

Importing this module loads nothing beyond the standard library: NumPy is
imported only by the functions that ask it (:func:`core` and the checks),
after :func:`pin`.  Used by the repository's conftest.py (every pytest run),
tools/run_notebooks.py and the tools that write qlib/models/.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import shlex
import sys
from pathlib import Path

CORETYPE = "Haswell"  # OpenBLAS's kernels for every stored number
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# what Haswell's kernels and NumPy's X86_V3 loops execute (/proc/cpuinfo's
# names; "abm" is LZCNT)
_NEEDS = {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "abm", "movbe"}
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
    the instructions of NumPy's X86_V3 level (AVX2, FMA, ...).  OpenBLAS
    does not check a forced core type: on a CPU without them its kernels
    would stop the process on an illegal instruction."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        return cpu_has_x86_v3(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def cpu_flags(cpuinfo: str) -> set[str]:
    """The instruction sets named by the first ``flags`` line of a
    ``/proc/cpuinfo`` text (not its ``vmx flags``)."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return set()


def cpu_has_x86_v3(cpuinfo: str) -> bool:
    """Whether a ``/proc/cpuinfo`` text's flags name every instruction set
    the pinned code uses."""
    return _NEEDS <= cpu_flags(cpuinfo)


def avx512_targets(version: str | None = None) -> tuple[str, ...]:
    """NumPy's names for its AVX-512 targets: those of ``version``, by
    default the installed NumPy's, read without importing it."""
    try:
        version = version or importlib.metadata.version("numpy")
        major, minor = version.split(".")[:2]
        level = (int(major), int("".join(c for c in minor if c.isdigit()) or 0))
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return _AVX512_TARGETS["new"]
    return _AVX512_TARGETS["new" if level >= (2, 4) else "old"]


def pin() -> None:
    """Set ``OPENBLAS_CORETYPE`` and ``NPY_DISABLE_CPU_FEATURES`` (where
    :func:`can_pin`) and one BLAS thread in ``os.environ``, each unless
    already set: for this process's NumPy when it is not loaded yet
    (:func:`problem` tells), and for every process started from here."""
    for name in THREADS:
        os.environ.setdefault(name, "1")
    if can_pin():
        os.environ.setdefault("OPENBLAS_CORETYPE", CORETYPE)
        os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", " ".join(avx512_targets()))


def core() -> str | None:
    """The kernels this process's OpenBLAS runs (``'Haswell'``,
    ``'SkylakeX'``, ...), read from the library NumPy loaded; None where
    NumPy's BLAS is not OpenBLAS or cannot be asked (not Linux)."""
    import numpy  # noqa: F401  (loads its BLAS)

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    # a maps line: address perms offset dev inode path (the path may hold spaces)
    fields = (line.split(None, 5) for line in maps if "openblas" in line.lower())
    libraries = {f[5] for f in fields if len(f) == 6}
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


def _dispatch() -> tuple[list[str], dict[str, bool]]:
    """NumPy's dispatch targets and which of them this process has."""
    import numpy as np

    umath = (getattr(np, "_core", None) or np.core)._multiarray_umath
    return list(umath.__cpu_dispatch__), dict(umath.__cpu_features__)


def avx512_loops() -> list[str]:
    """NumPy's AVX-512 targets that this process dispatches to (none when
    pinned or on a CPU without AVX-512)."""
    dispatch, features = _dispatch()
    avx512 = set(_AVX512_TARGETS["new"] + _AVX512_TARGETS["old"])
    return [t for t in dispatch if t in avx512 and features.get(t)]


def avx2_loops() -> bool:
    """Whether this NumPy dispatches to its AVX2 loops (X86_V3, or AVX2 and
    FMA3 before NumPy 2.4), as the stored outputs' did."""
    dispatch, features = _dispatch()
    wanted = ["X86_V3"] if "X86_V3" in dispatch else ["AVX2", "FMA3"]
    return all(features.get(t) for t in wanted)


def problem() -> str | None:
    """What keeps this process from computing the stored numbers' bits, on a
    machine that can (:func:`can_pin`), and why, or None."""
    if not can_pin():
        return None
    wrong = []
    running = core()
    if running is not None and running.lower() != CORETYPE.lower():
        wrong.append(f"NumPy's OpenBLAS runs its {running} kernels, not {CORETYPE}'s")
    if loops := avx512_loops():
        wrong.append(f"NumPy runs its AVX-512 loops ({' '.join(loops)})")
    if not avx2_loops():
        wrong.append("NumPy does not run its AVX2 loops")
    if not wrong:
        return None
    wanted = {
        "OPENBLAS_CORETYPE": CORETYPE,
        "NPY_DISABLE_CPU_FEATURES": " ".join(avx512_targets()),
    }
    setting = " and ".join(f"{k}={shlex.quote(v)}" for k, v in wanted.items())
    missing = [k for k in wanted if k not in os.environ]
    if set_otherwise := [
        f"{k}={shlex.quote(os.environ[k])}"
        for k, v in wanted.items()
        if os.environ.get(k, v) != v
    ]:
        why = (
            f"this environment sets {', '.join(set_otherwise)}; unset "
            f"{'it' if len(set_otherwise) == 1 else 'them'}, or set {setting}"
        )
    elif missing:
        why = (
            f"{' and '.join(missing)} not set when NumPy loaded: set {setting} "
            "before numpy is imported (pin_cpu.pin() does)"
        )
    else:
        why = (
            "the variables are set, but NumPy was imported before they were (by "
            "a plugin, PYTHONSTARTUP or sitecustomize): pin_cpu.pin() must run "
            "first"
        )
    return (
        "; ".join(wrong) + ". The course's stored outputs were computed with "
        f"OpenBLAS's {CORETYPE} kernels and NumPy's AVX2 loops (a last bit "
        f"differs otherwise): {why}"
    )


def require() -> None:
    """Stop (exit status 2, with :func:`problem`'s words) unless this process
    computes as the stored outputs were computed: for the tools that write
    them."""
    if why := problem():
        print(f"{Path(sys.argv[0]).name}: {why}", file=sys.stderr)
        sys.exit(2)


def describe() -> str:
    """One line: the code paths in use and whether they are the stored
    outputs'."""
    running = core()
    blas = (
        "BLAS kernels unknown (not OpenBLAS, or it cannot be asked)"
        if running is None
        else f"OpenBLAS {running} kernels"
    )
    loops = avx512_loops()
    simd = f"AVX-512 loops {' '.join(loops)}" if loops else "no AVX-512 loops"
    if can_pin() and running is not None and problem() is None:
        return f"CPU code: {blas}, NumPy {simd} (as the stored outputs)"
    return (
        f"CPU code: {blas}, NumPy {simd} (stored outputs: OpenBLAS {CORETYPE} "
        "kernels, no AVX-512 loops; a few last digits may differ)"
    )
