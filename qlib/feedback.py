"""Learner feedback for exercises: run a question's cases and say what happened.

A graded question is declared once, next to the exercise, as a
:class:`Question`: an id, its points, the name of the function the learner
writes, and visible :class:`Case` s whose expected answers were worked out
independently (by hand, from a published formula, or by an oracle).

:func:`check` calls the learner's function on every case and prints, per case,
PASS or FAIL, what was expected and what came back, and whether the match was
*bit-exact* or only *close* -- the distinction this whole subject is about.
Under a FAIL, :func:`explain` says where the answer goes wrong: shapes and
dtypes, how many elements differ, and the first of them with its inputs.  A
function that still raises ``NotImplementedError`` is reported as "not
answered yet", so a fresh exercise notebook runs top to bottom.

Introduced in ``notebooks/00_start_here.ipynb``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "RESULTS",
    "Case",
    "CheckResult",
    "Question",
    "check",
    "compare",
    "explain",
]


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


def _max_abs(err: np.ndarray) -> float:
    """Largest absolute difference; NaN only when every difference is NaN."""
    err = err[~np.isnan(err)]
    return float(err.max()) if err.size else float("nan")


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
        worst = _max_abs(err)
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


def _type_name(x: Any) -> str:
    try:
        t = type(x)
        module = t.__module__.split(".")[0]
        return t.__name__ if module == "builtins" else f"{module}.{t.__name__}"
    except Exception:  # a hostile class may break even this
        return "object"


def _text(x: Any, limit: int = 60) -> str:
    """A short text of any value, truncated after ``limit`` characters."""
    try:
        if isinstance(x, np.ndarray):
            return _short(x, limit)
        short = reprlib.Repr()
        short.maxstring = short.maxother = limit
        text = short.repr(x)
    except Exception:  # a __repr__ that raises is the learner's, not ours
        return f"<{_type_name(x)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _array_or_none(x: Any) -> np.ndarray | None:
    """``np.asarray(x)`` when that gives numbers or strings, else None."""
    try:
        a = np.asarray(x)
    except Exception:  # ragged lists, objects whose __array__ raises
        return None
    return None if a.dtype == object else a


def _describe(x: Any, a: np.ndarray | None) -> str:
    """What ``x`` is: shape and dtype of an array, type and value otherwise."""
    if isinstance(x, np.ndarray):
        return f"shape {x.shape}, dtype {x.dtype}"
    text = "None" if x is None else f"{_type_name(x)} {_text(x)}"
    if a is None:
        return text
    if a.ndim == 0:
        return f"{text} (dtype {a.dtype})"
    return f"{text} (shape {a.shape}, dtype {a.dtype})"


def _element(a: np.ndarray, index: tuple[int, ...]) -> str:
    """One element; floats with the digits that identify them (``str``)."""
    value = a[index]
    if a.dtype.kind == "U":
        return _text(str(value))
    if a.dtype.kind == "S":
        return _text(bytes(value))
    return str(value)


def _where(index: tuple[int, ...]) -> str:
    return f"index {index[0]}" if len(index) == 1 else f"index {index}"


_Kind = tuple[int, str, str, bool]  # count, singular, plural, worth a mention


def _kinds(
    question: Question, e: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, list[_Kind], float | None]:
    """Which elements fail, how they fail, and the largest difference.

    Returns ``(mask, kinds, worst)``: ``kinds`` has one entry per way of
    failing that occurs; ``worst`` is None for integers and text.
    """
    if e.dtype.kind in "US":
        mask = np.asarray(e != g)
        return mask, [], None
    if e.dtype.kind in "biu" and g.dtype.kind in "biu":
        if e.dtype.kind != g.dtype.kind and "i" in (e.dtype.kind, g.dtype.kind):
            # a signed value below zero equals no unsigned one
            s, u = (e, g) if e.dtype.kind == "i" else (g, e)
            mask = (s < 0) | (s.astype(np.uint64) != u.astype(np.uint64))
        elif e.dtype.kind != g.dtype.kind:
            mask = e.astype(np.uint64) != g.astype(np.uint64)
        else:
            mask = e != g
        return np.asarray(mask), [], None
    ef, gf = e.astype(np.float64), g.astype(np.float64)
    nan_e, nan_g = np.isnan(ef), np.isnan(gf)
    same = (ef.view(np.int64) == gf.view(np.int64)) | (nan_e & nan_g)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.isclose(
            gf, ef, rtol=question.rtol, atol=question.atol, equal_nan=True
        )
        err = np.abs(gf - ef)
    mask = ~same if question.exact else ~close
    zero = mask & (ef == 0) & (gf == 0)
    minus = zero & np.signbit(gf)
    plus = zero & ~np.signbit(gf)
    got_nan = mask & nan_g & ~nan_e
    want_nan = mask & nan_e & ~nan_g
    near = mask & close & ~zero
    other = mask & ~(zero | got_nan | want_nan | near)
    one_nan = "a number where nan is expected"
    kinds = [
        (minus, "-0.0 where 0.0 is expected", "", True),
        (plus, "0.0 where -0.0 is expected", "", True),
        (got_nan, "nan where a number is expected", "", True),
        (want_nan, one_nan, "numbers where nan is expected", True),
        (near, "close but not bit-exact", "", False),
        (other, "a different number", "different numbers", False),
    ]
    counted = [(int(np.count_nonzero(m)), *rest) for m, *rest in kinds]
    found = [(n, one, many or one, note) for n, one, many, note in counted if n]
    return mask, found, _max_abs(err[mask])


def _explain(question: Question, case: Case, got: Any) -> str:
    expected = case.expected
    try:
        verdict, _ = compare(
            expected, got, question.rtol, question.atol, question.check_dtype
        )
    except Exception:  # compare trusts numpy to raise only TypeError/ValueError
        verdict = "different"
    e, g = _array_or_none(expected), _array_or_none(got)
    sides = f"expected {_describe(expected, e)}; got {_describe(got, g)}"
    if e is None or g is None:
        return f"not a number, string or array of them: {sides}"
    if e.shape != g.shape:
        return f"wrong shape: {sides}"
    if question.check_dtype and e.dtype != g.dtype:
        return f"wrong dtype: {sides}"
    text_e, text_g = e.dtype.kind in "US", g.dtype.kind in "US"
    if text_e != text_g:
        what = "text where a number is" if text_g else "a number where text is"
        return f"{what} expected: {sides}"
    if text_e and e.dtype.kind != g.dtype.kind:  # str against bytes
        return f"not comparable: {sides}"
    if not text_e and not (e.dtype.kind in "biuf" and g.dtype.kind in "biuf"):
        return f"not comparable: {sides}"
    if e.dtype.kind in "biu" and g.dtype.kind == "f":
        return f"floating-point numbers where integers are expected: {sides}"
    if verdict == "exact":
        return f"bit-exact: {sides}"
    mask, kinds, worst = _kinds(question, e, g)
    n = int(np.count_nonzero(mask))
    tolerance = f"rtol={question.rtol:g}, atol={question.atol:g}"
    if n == 0:
        return f"close, not bit-exact, within {tolerance}: {sides}"
    plural = "s" if mask.size != 1 else ""
    count = f"{n} of {mask.size} element{plural} differ{'s' if n == 1 else ''}"
    notes = []
    if worst is not None and not np.isnan(worst):
        notes.append(f"max abs difference {worst:.3g}")
    if verdict == "close":  # the wording check has always used
        summary = "close but not bit-exact"
        notes = [count, *notes] if e.ndim else notes
    else:
        summary = count if e.ndim else "wrong value"
        notes += [] if question.exact else [f"more than {tolerance} allows"]
    lines = [f"{summary} ({', '.join(notes)})" if notes else summary]
    if e.ndim and (len(kinds) > 1 or any(note for *_, note in kinds)):
        parts = [
            f"{k} is {one}" if k == 1 else f"{k} are {many}"
            for k, one, many, _ in kinds
        ]
        lines.append(f"of these, {', '.join(parts)}")
    lines += [f"expected: {_describe(expected, e)}", f"got:      {_describe(got, g)}"]
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
    at = f" at {_where(index)}" if e.ndim else ""
    first = f"{_element(g, index)} where {_element(e, index)} is expected{at}"
    lines.append(f"first difference: {first}" if e.ndim else first)
    if e.ndim:
        named = [(f"argument {i}", v) for i, v in enumerate(case.args, 1)]
        named += [(str(k), v) for k, v in case.kwargs.items()]
        for label, value in named:
            if isinstance(value, np.ndarray | list | tuple):
                a = _array_or_none(value)
                if a is not None and a.shape == e.shape:
                    lines.append(
                        f"input: {label} at {_where(index)} is {_element(a, index)}"
                    )
    return "\n".join(lines)


def explain(question: Question, case: Case, got: Any) -> str:
    """Say why ``got`` does not match ``case.expected`` under ``question``'s rules.

    The rules are those of :func:`compare` (``exact``, ``rtol``, ``atol``,
    ``check_dtype``).  The text always shows the shape and dtype of both sides
    (type and value for scalars, strings and tuples), never cut short.  For
    arrays of the right shape it counts the elements that differ, names the
    ways they differ (``-0.0`` where ``0.0`` is expected, NaN where a number is
    expected, close but not bit-exact, ...) and shows the first one: its index,
    the expected and the returned element, and the element of each input array
    of the same shape there.  Lines carry no indentation; the caller indents.
    Never raises: an answer that defeats the analysis gets a plain line.
    :func:`check` prints it under each FAIL (``notebooks/00_start_here.ipynb``).

    Example:
        >>> x = np.array([1.0, 3.0, 5.0])
        >>> q = Question("00.2", 1, "halve", [Case((x,), x / 2)])
        >>> print(explain(q, q.cases[0], np.array([0.5, 1.5, 2.0])))
        1 of 3 elements differs (max abs difference 0.5)
        expected: shape (3,), dtype float64
        got:      shape (3,), dtype float64
        first difference: 2.0 where 2.5 is expected at index 2
        input: argument 1 at index 2 is 5.0
    """
    try:
        return _explain(question, case, got)
    except Exception:  # the last resort: a line that cannot fail
        return (
            f"the answer does not match: got {_type_name(got)},"
            f" expected {_type_name(case.expected)}"
        )


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
            # a hidden input may be spelled out in the message
            message = "" if hidden else f": {err}"
            print(f"  FAIL  {call} raised {type(err).__name__}{message}")
            continue
        try:
            verdict, detail = compare(
                case.expected, got, question.rtol, question.atol, question.check_dtype
            )
        except Exception:  # an answer whose __array__ raises is wrong, not a crash
            verdict, detail = "different", ""
        if verdict == "exact":
            passed += 1
            shown = "" if hidden else f" == {_short(case.expected)}"
            print(f"  PASS  {call}{shown}  (bit-exact)")
        elif verdict == "close" and not question.exact:
            passed += 1
            print(f"  PASS  {call}  (close, not bit-exact: {detail})")
        elif hidden:  # the verdict only: no value, difference, shape or dtype
            note = ": close but not bit-exact" if verdict == "close" else ""
            print(f"  FAIL  {call}{note}")
        else:
            print(f"  FAIL  {call}")
            for line in explain(question, case, got).splitlines():
                print(f"        {line}")
    print(f"  {passed}/{len(cases)} passed")
    RESULTS[key] = CheckResult(question.id, passed, len(cases), True)
