"""qlib.feedback: what a learner sees when a check runs."""

from __future__ import annotations

import numpy as np
import pytest

from qlib.feedback import RESULTS, Case, Question, check, compare, explain


def run(capsys, question, func, **kw):
    check(question, func, **kw)
    return capsys.readouterr().out


Q = Question("t.1", 2, "f", [Case((1,), 2), Case((2,), 4)])


def test_all_pass_reports_bit_exact(capsys):
    out = run(capsys, Q, lambda x: 2 * x)
    assert out.count("PASS") == 2 and "bit-exact" in out and "2/2 passed" in out
    assert RESULTS["t.1"].ok


def test_wrong_answer_shows_expected_and_got(capsys):
    out = run(capsys, Q, lambda x: x + 1)
    assert "PASS  f(1) == 2" in out
    assert "FAIL  f(2)\n        wrong value\n" in out
    assert "expected: int 4" in out and "got:      int 3" in out
    assert "3 where 4 is expected" in out
    assert "1/2 passed" in out
    assert not RESULTS["t.1"].ok and RESULTS["t.1"].passed == 1


def test_stub_is_not_answered_yet_not_a_traceback(capsys):
    def stub(x):
        raise NotImplementedError("not answered yet")

    out = run(capsys, Q, stub)
    assert "not answered yet" in out and "Traceback" not in out
    assert RESULTS["t.1"].answered is False


def test_exception_is_reported_and_other_cases_still_run(capsys):
    out = run(capsys, Q, lambda x: 4 if x == 2 else 1 / 0)
    assert "raised ZeroDivisionError" in out and "1/2 passed" in out


def test_close_is_not_exact(capsys):
    q = Question("t.2", 1, "add", [Case((0.1, 0.2), 0.3)])
    out = run(capsys, q, lambda a, b: a + b)
    assert "FAIL" in out and "close but not bit-exact" in out
    q_close = Question("t.3", 1, "add", [Case((0.1, 0.2), 0.3)], exact=False)
    out = run(capsys, q_close, lambda a, b: a + b)
    assert "PASS" in out and "close, not bit-exact" in out


def test_hidden_checks_do_not_print_inputs_or_answers(capsys):
    out = run(capsys, Q, lambda x: x + 1, cases=[Case((12345,), 24690)], hidden=True)
    assert "12345" not in out and "24690" not in out and "case 1" in out


@pytest.mark.parametrize(
    ("expected", "got", "verdict"),
    [
        ((-8, 7), (-8, 7), "exact"),
        ((-8, 7), [-8, 7], "exact"),
        (np.array([1, 2], np.uint8), np.array([1, 2], np.int64), "exact"),
        (2**64 - 1, np.uint64(2**64 - 1), "exact"),
        (2**63, np.int64(-(2**63)), "different"),
        (0.0, -0.0, "close"),
        (np.nan, np.nan, "exact"),
        (1.0, 1.0 + 2**-52, "close"),
        (1.0, 1.1, "different"),
        ((1, 2), (1, 2, 3), "different"),
        ("0101", "0101", "exact"),
        ("0101", 101, "different"),
        (np.array(["01", "10"]), np.array(["01", "11"]), "different"),
        (3, None, "different"),
        (3, object(), "different"),
        (2**53 + 1, 2.0**53, "different"),
        ((-(2**63), 2**63 - 1), (-(2.0**63), 2.0**63 - 1), "different"),
        ((-8, 7), (-8.0, 7.0), "different"),
        (4.0, 4, "exact"),
    ],
)
def test_compare(expected, got, verdict):
    assert compare(expected, got)[0] == verdict


def test_dtype_checked_only_when_asked():
    codes, wide = np.array([1, 2], np.uint8), np.array([1, 2], np.int64)
    assert compare(codes, wide)[0] == "exact"
    verdict, detail = compare(codes, wide, check_dtype=True)
    assert verdict == "different" and "dtype int64, expected dtype uint8" in detail


def test_hidden_results_kept_apart(capsys):
    run(capsys, Q, lambda x: 2 * x)
    run(capsys, Q, lambda x: 0, cases=[Case((1,), 2)], hidden=True)
    assert RESULTS["t.1"].ok and not RESULTS["t.1:hidden"].ok


def test_question_validation():
    with pytest.raises(ValueError, match="points must be a positive number"):
        Question("x", 0, "f", [Case((1,), 1)])
    with pytest.raises(ValueError, match="function must be a Python identifier"):
        Question("x", 1, "f g", [Case((1,), 1)])
    with pytest.raises(TypeError, match="cases must be a non-empty sequence of Case"):
        Question("x", 1, "f", [((1,), 2)])
    with pytest.raises(TypeError, match="cases must be a non-empty sequence of Case"):
        Question("x", 1, "f", [])
    with pytest.raises(ValueError, match="points must be a positive number"):
        Question("x", True, "f", [Case((1,), 1)])
    with pytest.raises(ValueError, match="function must be a Python identifier"):
        Question("x", 1, 3, [Case((1,), 1)])
    with pytest.raises(ValueError, match="cases must not be empty"):
        check(Question("x", 1, "f", [Case((1,), 1)]), abs, cases=[])


def test_cases_from_a_generator_survive_two_checks(capsys):
    q = Question("t.g", 1, "ident", (Case((x,), x) for x in range(3)))
    assert run(capsys, q, lambda x: x).count("PASS") == 3
    assert run(capsys, q, lambda x: x).count("PASS") == 3


# explain: why an answer fails, written for the learner


def why(expected, got, *args, kwargs=None, **rules):
    """explain() for a one-case question with ``rules`` (exact, rtol, ...)."""
    case = Case(args, expected, kwargs or {})
    return explain(Question("t.e", 1, "f", [case], **rules), case, got)


def test_first_difference_and_count_1d():
    x = np.arange(1000)
    got = 2 * x
    got[[7, 40, 41]] += 1  # three wrong elements, the first at index 7
    text = why(2 * x, got, x)
    assert text.startswith("3 of 1000 elements differ\n")
    assert "first difference: 15 where 14 is expected at index 7" in text
    assert "input: argument 1 at index 7 is 7" in text


def test_first_difference_and_count_2d():
    x = np.arange(12.0).reshape(3, 4)
    got = np.zeros((3, 4))
    got[2, 0] = got[1, 2] = 1.0  # row-major order: (1, 2) comes first
    text = why(np.zeros((3, 4)), got, x)
    assert text.startswith("2 of 12 elements differ (max abs difference 1)")
    assert "first difference: 1.0 where 0.0 is expected at index (1, 2)" in text
    assert "input: argument 1 at index (1, 2) is 6.0" in text  # x[1, 2] = 4 + 2


def test_inputs_shown_only_where_they_have_the_answer_shape():
    x = np.array([0.1, 0.2, 0.5, 0.75])
    scale = np.array([1.0, 2.0, 4.0, 8.0])
    other = np.arange(3.0)  # another shape: no element at "index 2" to show
    text = why(
        np.array([0.0, 0.0, 0.0, 1.0]),
        np.array([0.0, 0.0, 1.0, 1.0]),
        x,
        3,
        other,
        kwargs={"scale": scale, "bits": 4},
    )
    inputs = [line for line in text.splitlines() if line.startswith("input")]
    assert inputs == [
        "input: argument 1 at index 2 is 0.5",
        "input: scale at index 2 is 4.0",
    ]


def test_shapes_and_dtypes_in_full_for_a_large_array(capsys):
    expected = np.zeros(10_000, np.int8)
    got = np.zeros(10_000, np.int64)
    got[-1] = 1
    text = why(expected, got)
    assert "expected: shape (10000,), dtype int8" in text
    assert "got:      shape (10000,), dtype int64" in text
    assert "1 of 10000 elements differs" in text
    assert "first difference: 1 where 0 is expected at index 9999" in text
    q = Question("t.big", 1, "f", [Case((), expected)])
    out = run(capsys, q, lambda: got)
    assert "shape (10000,), dtype int8" in out and "shape (10000,), dtype int64" in out


@pytest.mark.parametrize(
    ("expected", "got", "first", "counts"),
    [
        (
            [1.0, 0.0, 2.0, -0.0],
            [1.0, -0.0, 2.0, 0.0],
            "-0.0 where 0.0 is expected at index 1",
            "of these, 1 is -0.0 where 0.0 is expected,"
            " 1 is 0.0 where -0.0 is expected",
        ),
        (
            [-0.0, -0.0, 2.0],
            [0.0, 0.0, 2.0],
            "0.0 where -0.0 is expected at index 0",
            "of these, 2 are 0.0 where -0.0 is expected",
        ),
    ],
)
def test_sign_of_zero_is_named(expected, got, first, counts):
    text = why(np.array(expected), np.array(got))
    assert text.startswith("close but not bit-exact (")  # -0.0 == 0.0 as numbers
    assert f"first difference: {first}" in text
    assert counts in text.splitlines()


def test_sign_of_zero_of_a_scalar():
    text = why(0.0, -0.0)
    assert text.splitlines()[0] == "close but not bit-exact (max abs difference 0)"
    assert text.splitlines()[-1] == "-0.0 where 0.0 is expected"


@pytest.mark.parametrize(
    ("expected", "got", "first", "counts"),
    [
        (
            [1.0, 2.0, 1.5],
            [1.0, 2.0, np.nan],
            "nan where 1.5 is expected at index 2",
            "of these, 1 is nan where a number is expected",
        ),
        (
            [1.0, 2.0, np.nan, np.nan],
            [1.0, 2.0, 1.5, -3.0],
            "1.5 where nan is expected at index 2",
            "of these, 2 are numbers where nan is expected",
        ),
    ],
)
def test_nan_against_a_number_is_named(expected, got, first, counts):
    text = why(np.array(expected), np.array(got))
    assert f"first difference: {first}" in text
    assert counts in text.splitlines()


def test_nan_against_a_number_compares_without_a_warning():
    # every difference is NaN: nanmax over them would warn (an error here)
    assert compare(np.array([np.nan]), np.array([1.5]))[0] == "different"


def test_close_not_exact_keeps_its_wording_and_shows_where():
    x = np.array([0.6, 0.3])
    got = np.array([0.6, 0.1 + 0.2])  # 0.1 + 0.2 is one ulp, 2**-54, above 0.3
    text = why(x, got)
    head = "close but not bit-exact (1 of 2 elements differs, max abs difference"
    assert text.splitlines()[0] == f"{head} {2**-54:.3g})"
    assert f"first difference: {0.1 + 0.2!r} where 0.3 is expected at index 1" in text


def test_beyond_tolerance_says_which():
    text = why(np.array([1.0, 2.0]), np.array([1.0, 2.5]), exact=False, rtol=1e-9)
    assert text.splitlines()[0] == (
        "1 of 2 elements differs (max abs difference 0.5,"
        " more than rtol=1e-09, atol=0 allows)"
    )


def test_shape_mismatch_is_one_line_with_both_shapes_and_dtypes():
    text = why(np.zeros(4, np.int8), np.zeros((2, 2), np.int64))
    assert text == (
        "wrong shape: expected shape (4,), dtype int8; got shape (2, 2), dtype int64"
    )


def test_dtype_mismatch_is_one_line_when_dtypes_are_checked():
    codes = np.array([1, 2], np.uint8)
    text = why(codes, codes.astype(np.int64), check_dtype=True)
    assert text == (
        "wrong dtype: expected shape (2,), dtype uint8; got shape (2,), dtype int64"
    )


def test_floats_where_integers_are_expected_is_one_line():
    text = why((-8, 7), (-8.0, 7.0))
    assert "\n" not in text
    assert text.startswith("floating-point numbers where integers are expected: ")
    assert "shape (2,), dtype int64" in text and "shape (2,), dtype float64" in text


def test_not_comparable_is_one_line():
    text = why(np.zeros(3), np.zeros(3, complex))
    assert text == (
        "not comparable: expected shape (3,), dtype float64;"
        " got shape (3,), dtype complex128"
    )
    assert why(3, None) == (
        "not a number, string or array of them: expected int 3 (dtype int64); got None"
    )


def test_check_prints_explain_under_the_fail_line(capsys):
    x = np.array([0.5, 1.5, 2.5])
    case = Case((x,), np.array([0.0, 2.0, 2.0]))  # round half to even
    q = Question("t.r", 1, "round_even", [case])
    out = run(capsys, q, lambda x: np.floor(x + 0.5))
    lines = [
        f"        {line}" for line in explain(q, case, np.floor(x + 0.5)).split("\n")
    ]
    assert (
        "\n".join(["  FAIL  round_even(array([0.5, 1.5, 2.5], dtype=float64))", *lines])
        in out
    )
    assert "first difference: 1.0 where 0.0 is expected at index 0" in out


def test_hidden_fail_reveals_nothing(capsys):
    x = np.array([12345.0, 0.625])
    hidden = [
        Case((x,), np.array([24690.0, 1.25])),  # doubled; got: x itself
        Case((np.array([0.1, 0.2]),), np.array([0.3, 0.6000000000000001])),
    ]

    def answer(x):
        if x[0] == 0.1:
            return np.array([x[0] + x[1], 0.6])  # close, not bit-exact
        return x

    out = run(capsys, Q, answer, cases=hidden, hidden=True)
    for value in ("12345", "0.625", "24690", "1.25", "0.3", "0.6", "0.1"):
        assert value not in out
    for word in ("shape", "dtype", "index", "difference", "expected", "got"):
        assert word not in out
    assert out.splitlines()[1:] == [
        "  FAIL  case 1",
        "  FAIL  case 2: close but not bit-exact",
        "  0/2 passed",
    ]

    def raises(x):
        raise ValueError(f"cannot double {x[0]}")

    out = run(capsys, Q, raises, cases=hidden[:1], hidden=True)
    assert "12345" not in out and "FAIL  case 1 raised ValueError" in out


class _Hostile:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array")

    def __repr__(self):
        raise RuntimeError("no repr")


class _NoName(type):
    @property
    def __name__(cls):
        raise RuntimeError("no name")


class _Nameless(metaclass=_NoName):
    pass


class _BrokenArray(np.ndarray):
    @property
    def shape(self):
        raise RuntimeError("no shape")


@pytest.mark.parametrize(
    "got",
    [
        None,
        object(),
        _Hostile(),
        _Nameless(),
        np.zeros(3).view(_BrokenArray),
        np.array([object(), object(), object()]),
        [1.0, [2.0, 3.0]],  # ragged
        "abc",
        b"abc",
        np.array(["a", "b", "c"]),
        np.array([1 + 2j, 0, 0]),
        np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
        {"a": 1},
        np.zeros(10**6),
        list(range(10**5)),
        "x" * 10**5,
        np.array([np.inf, -np.inf, np.nan]),
        np.array([True, False, True]),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, _Nameless) else "nameless",
)
def test_odd_answers_never_raise(capsys, got):
    text = why(np.array([0.0, 1.0, 2.0]), got, np.arange(3.0))
    assert isinstance(text, str) and text
    assert all(0 < len(line) < 300 for line in text.splitlines())
    q = Question("t.odd", 1, "f", [Case((), np.array([0.0, 1.0, 2.0]))])
    assert "FAIL  f()" in run(capsys, q, lambda: got)
