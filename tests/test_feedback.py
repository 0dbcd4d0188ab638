"""qlib.feedback: what a learner sees when a check runs."""

from __future__ import annotations

import numpy as np
import pytest

from qlib.feedback import RESULTS, Case, Question, check, compare


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
    assert "FAIL  f(2)" in out and "expected 4" in out and "got      3" in out
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
