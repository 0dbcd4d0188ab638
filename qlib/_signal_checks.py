"""Argument checks shared by :mod:`qlib.signals` and its images.

Learners import from :mod:`qlib.signals`.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

MAX_BITS = 32


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise TypeError(f"bits must be an integer in [1, {MAX_BITS}]; got {bits!r}")
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in [1, {MAX_BITS}]; got {bits}")
    return int(bits)


def _check_positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number; got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number; got {value}")
    return float(value)


def _as_signal(x: ArrayLike, name: str = "x") -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers; got an array of dtype {a.dtype}")
    a = a.astype(np.float64)
    if np.isnan(a).any():
        raise ValueError(f"{name} must not contain NaN")
    return a
