"""Learner feedback for exercises: run a question's cases and say what happened.

A graded question is declared once, next to the exercise, as a
:class:`Question`: an id, its points, the name of the function the learner
writes, and visible :class:`Case` s whose expected answers were worked out
independently (by hand, from a published formula, or by an oracle).

:func:`check` calls the learner's function on every case and prints, per case,
PASS or FAIL, what was expected and what came back, and whether the match was
*bit-exact* or only *close* -- the distinction this whole subject is about.  A
function that still raises ``NotImplementedError`` is reported as "not
answered yet", so a fresh exercise notebook runs top to bottom.

Introduced in ``notebooks/00_start_here.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RESULTS", "Case", "CheckResult", "Question", "check", "compare"]


@dataclass(frozen=True)
class Case:
    """One call of the learner's function and the answer it must give.

    Example:
        >>> Case((4,), (-8, 7))
        Case(args=(4,), expected=(-8, 7), kwargs={})
    """

    args: tuple
    expected: Any
    kwargs: dict = field(default_factory=dict)

    def call_text(self, name: str) -> str:
        parts = [_short(a) for a in self.args]
        parts += [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"{name}({', '.join(parts)})"


@dataclass(frozen=True)
class Question:
    """A graded question: what to call, what it is worth, how to compare.

    Args:
        id: stable identifier, ``"<chapter>.<n>"`` such as ``"02.1"``.
        points: points the question is worth.
        function: name of the function the learner defines.
        cases: visible cases, shown to the learner with their answers.
        exact: if True (the default) only a bit-exact match passes; if False a
            match within ``rtol``/``atol`` passes too.
        rtol, atol: tolerances for ``exact=False``.
        check_dtype: if True, an array answer must also have the dtype of the
            expected array (e.g. ``uint8`` codes, not ``int64``).

    Example:
        >>> q = Question("00.1", 1, "double", [Case((2,), 4)])
        >>> q.id, q.points
        ('00.1', 1)
    """

    id: str
    points: float
    function: str
    cases: Sequence[Case]
    exact: bool = True
    rtol: float = 1e-7
    atol: float = 0.0
    check_dtype: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty string; got {self.id!r}")
        points_ok = isinstance(self.points, int | float) and not isinstance(
            self.points, bool
        )
        if not (points_ok and self.points > 0):
            raise ValueError(f"points must be a positive number; got {self.points!r}")
        if not (isinstance(self.function, str) and self.function.isidentifier()):
            raise ValueError(
                f"function must be a Python identifier; got {self.function!r}"
            )
        cases = tuple(self.cases)  # a generator would be used up by one check
        if not cases or not all(isinstance(c, Case) for c in cases):
            raise TypeError("cases must be a non-empty sequence of Case")
        object.__setattr__(self, "cases", cases)


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found: ``passed`` of ``total`` cases."""

    question: str
    passed: int
    total: int
    answered: bool

    @property
    def ok(self) -> bool:
        return self.answered and self.passed == self.total


RESULTS: dict[str, CheckResult] = {}
"""The latest :class:`CheckResult` of each question id checked in this session."""


def _short(x: Any, limit: int = 60) -> str:
    if isinstance(x, np.ndarray):
        # "unique": every float printed with the digits that identify it
        text = np.array2string(
            x, separator=", ", threshold=8, edgeitems=3, floatmode="unique"
        )
        text = text.replace("\n", "")
        text = f"array({text}, dtype={x.dtype})"
    else:
        text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_array(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object:
        raise TypeError("not a number, string or array of them")
    return a


def compare(
    expected: Any,
    got: Any,
    rtol: float = 1e-7,
    atol: float = 0.0,
    check_dtype: bool = False,
) -> tuple[str, str]:
    """Compare an answer with the expected one.

    Returns ``(verdict, detail)`` where verdict is ``"exact"`` (same shape and
    the same value in every element, bit for bit for floats: ``-0.0`` differs
    from ``0.0``, NaN matches NaN), ``"close"`` (within ``rtol``/``atol``) or
    ``"different"``.  Floats returned where integers are expected are
    ``"different"``: above 2**53 a float cannot even hold every integer.  With
    ``check_dtype`` the dtypes of ``expected`` and ``got`` must agree as well.

    Example:
        >>> compare(0.3, 0.1 + 0.2)[0]
        'close'
        >>> compare((-8, 7), (-8, 7))[0]
        'exact'
    """
    try:
        e, g = _as_array(expected), _as_array(got)
    except (TypeError, ValueError) as err:
        return "different", f"cannot compare: {err}"
    if e.shape != g.shape:
        return "different", f"shape {g.shape}, expected shape {e.shape}"
    if check_dtype and e.dtype != g.dtype:
        return "different", f"dtype {g.dtype}, expected dtype {e.dtype}"
    if e.dtype.kind in "US" or g.dtype.kind in "US":
        same = e.dtype.kind == g.dtype.kind and bool(np.all(e == g))
        return ("exact", "") if same else ("different", "")
    if e.dtype.kind not in "biuf" or g.dtype.kind not in "biuf":
        return "different", f"got dtype {g.dtype}, expected dtype {e.dtype}"
    if e.dtype.kind in "biu" and g.dtype.kind == "f":
        return "different", "got floating-point numbers, expected integers"
    if e.dtype.kind == "f" or g.dtype.kind == "f":
        ef, gf = e.astype(np.float64), g.astype(np.float64)
        same_bits = (ef.view(np.int64) == gf.view(np.int64)) | (
            np.isnan(ef) & np.isnan(gf)
        )
        if bool(np.all(same_bits)):
            return "exact", ""
        with np.errstate(invalid="ignore"):
            close = np.isclose(gf, ef, rtol=rtol, atol=atol, equal_nan=True)
            err = np.abs(gf - ef)
        worst = float(np.nanmax(err)) if err.size else 0.0
        if bool(np.all(close)):
            return "close", f"max abs difference {worst:.3g}"
        return "different", f"max abs difference {worst:.3g}"
    # integers: an int64/uint64 mix is equal only where the signed side is >= 0
    if e.dtype.kind != g.dtype.kind:
        signed = e if e.dtype.kind == "i" else g
        if signed.size and signed.min() < 0:
            return "different", ""
        e, g = e.astype(np.uint64), g.astype(np.uint64)
    return ("exact", "") if np.array_equal(e, g) else ("different", "")


def check(
    question: Question,
    func: Callable,
    cases: Sequence[Case] | None = None,
    *,
    hidden: bool = False,
) -> None:
    """Run ``question``'s cases (or ``cases``) through ``func`` and print a report.

    With ``hidden=True`` (instructor checks) inputs and answers are not
    printed, only the verdict per case.  The outcome is kept in
    :data:`RESULTS` under the question's id (hidden checks under
    ``"<id>:hidden"``).

    Example:
        >>> q = Question("00.1", 1, "double", [Case((2,), 4), Case((0.5,), 1.0)])
        >>> check(q, lambda x: 2 * x)
        [00.1] double -- 1 point
          PASS  double(2) == 4  (bit-exact)
          PASS  double(0.5) == 1.0  (bit-exact)
          2/2 passed
        >>> RESULTS["00.1"].ok
        True
    """
    cases = list(question.cases if cases is None else cases)
    if not cases:
        raise ValueError("cases must not be empty: a check of nothing proves nothing")
    key = f"{question.id}:hidden" if hidden else question.id
    plural = "" if question.points == 1 else "s"
    kind = "hidden checks" if hidden else f"{question.points:g} point{plural}"
    print(f"[{question.id}] {question.function} -- {kind}")
    passed = 0
    for i, case in enumerate(cases, 1):
        call = f"case {i}" if hidden else case.call_text(question.function)
        try:
            got = func(*case.args, **case.kwargs)
        except NotImplementedError:
            print(
                "  not answered yet: replace `raise NotImplementedError` with your code"
            )
            RESULTS[key] = CheckResult(question.id, 0, len(cases), False)
            return
        except Exception as err:  # a learner's bug is feedback, not a crash
            print(f"  FAIL  {call} raised {type(err).__name__}: {err}")
            continue
        verdict, detail = compare(
            case.expected, got, question.rtol, question.atol, question.check_dtype
        )
        want = "" if hidden else f"\n        expected {_short(case.expected)}"
        seen = "" if hidden else f"\n        got      {_short(got)}"
        if verdict == "exact":
            passed += 1
            shown = "" if hidden else f" == {_short(case.expected)}"
            print(f"  PASS  {call}{shown}  (bit-exact)")
        elif verdict == "close" and not question.exact:
            passed += 1
            print(f"  PASS  {call}  (close, not bit-exact: {detail})")
        elif verdict == "close":
            print(f"  FAIL  {call}: close but not bit-exact ({detail}){want}{seen}")
        else:
            note = f" ({detail})" if detail else ""
            print(f"  FAIL  {call}{note}{want}{seen}")
    print(f"  {passed}/{len(cases)} passed")
    RESULTS[key] = CheckResult(question.id, passed, len(cases), True)
