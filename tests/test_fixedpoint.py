"""qlib.fixedpoint against exact rational arithmetic (``fractions.Fraction``),
the rounding and overflow rules written out from their definitions, and
gemmlowp's QuantizeMultiplier.

The oracles below never call qlib: a code ``q`` of Qm.n stands for
``Fraction(q, 2**n)``; a rounding picks a neighbouring integer of the exact
rational ``x * 2**n`` by its definition; saturation clips to the codes of the
values ``[-2**m, 2**m - 2**-n]`` (``[0, ...]`` unsigned), wrapping reduces
modulo ``2**word`` into them, and "error" raises.
"""

from __future__ import annotations

import math
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qlib.fixedpoint import (
    OVERFLOWS,
    ROUNDINGS,
    QFormat,
    add,
    from_fixed,
    multiply,
    multiply_by_constant,
    product_format,
    quantize,
    quantize_multiplier,
    rescale,
    sum_format,
    to_fixed,
)

DETERMINISTIC = ("floor", "ceil", "toward_zero", "nearest_away", "nearest_even")
OVERFLOW_MODES = ("saturate", "wrap", "error")
HALF = Fraction(1, 2)


# ------------------------------------------------------------------ oracles


def roundings_exact(v: Fraction) -> dict[str, int]:
    """The integer each deterministic rounding picks for the exact rational
    ``v``, by definition (in integers: ``v = a / b``, ``b > 0``)."""
    a, b = v.numerator, v.denominator
    down = a // b  # floor, for negative a too
    rest = a - down * b  # v - floor(v) = rest / b, in [0, 1)
    if rest == 0:
        return dict.fromkeys(DETERMINISTIC, down)
    up = down + 1
    below, above = rest, b - rest  # distances to the two neighbours, times b
    nearer = down if below < above else up if above < below else None
    return {
        "floor": down,
        "ceil": up,
        "toward_zero": down if v > 0 else up,
        # a tie: the neighbour farther from zero, or the even one
        "nearest_away": nearer if nearer is not None else (up if v > 0 else down),
        "nearest_even": nearer if nearer is not None else down + down % 2,
    }


def round_exact(v: Fraction, rounding: str) -> int:
    return roundings_exact(v)[rounding]


def code_range(fmt: QFormat) -> tuple[int, int]:
    """The codes of Qm.n's values [-2**m, 2**m - 2**-n] (UQm.n: [0, ...])."""
    m, n = fmt.int_bits, fmt.frac_bits
    return (-(2**m) * 2**n if fmt.signed else 0), 2**m * 2**n - 1


def fit_exact(r: int, fmt: QFormat, overflow: str) -> int | None:
    """An integer into the code range; None where overflow="error" raises."""
    return fit_all([r], fmt, overflow)[0]


def fit_all(rs: list[int], fmt: QFormat, overflow: str) -> list[int | None]:
    lo, hi = code_range(fmt)
    if overflow == "saturate":
        return [min(max(r, lo), hi) for r in rs]
    if overflow == "wrap":  # modulo 2**word, the number of codes
        return [lo + (r - lo) % (hi - lo + 1) for r in rs]
    return [r if lo <= r <= hi else None for r in rs]


def value(q: int, fmt: QFormat) -> Fraction:
    return Fraction(q, 2**fmt.frac_bits)


def formats(max_word: int, min_word: int = 1) -> list[QFormat]:
    """Every (int_bits, frac_bits, signed) with a word of min_word..max_word."""
    out = []
    for signed in (True, False):
        for m in range(max_word + 1):
            for n in range(max_word + 1):
                if min_word <= m + n + signed <= max_word:
                    out.append(QFormat(m, n, signed))
    return out


FORMATS_10 = formats(10)
FORMATS_5 = formats(5)
FORMATS_4 = formats(4)


def assert_matches(call, expected: list, match: str, each_bad: bool = True) -> None:
    """``call(idx)`` on the inputs at ``idx`` gives ``expected`` there; where
    the oracle says None (out of range, overflow="error") it raises, alone
    (``each_bad``) and inside the whole array."""
    expected_arr = np.array(expected, dtype=object)
    bad = np.array([e is None for e in expected], dtype=bool)
    if bad.any():
        with pytest.raises(ValueError, match=match):
            call(np.arange(len(expected)))
        if each_bad:
            for i in np.flatnonzero(bad):
                with pytest.raises(ValueError, match=match):
                    call(np.array([i]))
    good = np.flatnonzero(~bad)
    got = call(good)
    assert got.dtype == np.int64
    want = expected_arr[good].tolist()
    wrong = [
        (int(i), g, w)
        for i, g, w in zip(good, got.tolist(), want, strict=True)
        if g != w
    ]
    assert not wrong, f"{len(wrong)} wrong (index, got, expected): {wrong[:5]}"


# ------------------------------------------------------------ to_fixed grid

# scaled magnitudes around int64's end and far beyond any word
BIG_SCALED = [2**52 + 1, 2**53 - 1, 2**63 - 2**10, 2**63, 2**63 + 2**11, 3 * 2**62]
BIG_SCALED += [2**64 - 2**11, 2**64, 2**65]
EXTREMES = [1e300, math.ldexp(1.0, 1023), sys.float_info.max, 1e-300]
EXTREMES += [5e-324, sys.float_info.min, 1e19, 1e20]


def grid(fmt: QFormat) -> np.ndarray:
    """Every code, tie and quarter of ``fmt`` (three codes past each end too),
    each with its two float64 neighbours; huge, tiny and subnormal values;
    0.0 and -0.0."""
    lo, hi = code_range(fmt)
    n = fmt.frac_bits
    xs = [0.0, -0.0]
    for q in range(lo - 3, hi + 4):
        for v in (q, q + 0.5, q + 0.25):
            x = math.ldexp(v, -n)
            xs += [x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)]
    for s in BIG_SCALED:
        x = math.ldexp(float(s), -n)
        xs += [x, -x, math.nextafter(x, 0.0), -math.nextafter(x, 0.0)]
    xs += EXTREMES + [-e for e in EXTREMES]
    return np.array(xs)


def test_the_mode_tuples_are_the_documented_ones():
    assert ROUNDINGS == (*DETERMINISTIC, "stochastic")
    assert OVERFLOWS == OVERFLOW_MODES


@pytest.mark.parametrize("fmt", FORMATS_10, ids=str)
def test_to_fixed_every_format_up_to_10_bits_every_mode_exact(fmt):
    xs = grid(fmt)
    scale = 2**fmt.frac_bits
    by_mode = [roundings_exact(Fraction(x) * scale) for x in xs.tolist()]
    for rounding in DETERMINISTIC:
        rounded = [d[rounding] for d in by_mode]
        for overflow in OVERFLOW_MODES:
            expected = fit_all(rounded, fmt, overflow)
            assert_matches(
                lambda i, r=rounding, o=overflow: to_fixed(xs[i], fmt, r, o),
                expected,
                rf"x holds a value outside {fmt} \(codes",
            )
            if overflow != "error":  # quantize = from_fixed o to_fixed, exactly
                got = quantize(xs, fmt, rounding, overflow)
                want = [math.ldexp(e, -fmt.frac_bits) for e in expected]
                assert got.tolist() == want


@pytest.mark.parametrize("fmt", FORMATS_10, ids=str)
def test_from_fixed_every_code_up_to_10_bits_exact(fmt):
    lo, hi = code_range(fmt)
    got = from_fixed(np.arange(lo, hi + 1), fmt)
    assert got.dtype == np.float64
    assert [Fraction(v) for v in got.tolist()] == [
        value(q, fmt) for q in range(lo, hi + 1)
    ]


@pytest.mark.parametrize("fmt", FORMATS_10, ids=str)
def test_qformat_fields_match_the_definition(fmt):
    m, n = fmt.int_bits, fmt.frac_bits
    lo, hi = code_range(fmt)
    assert fmt.word_bits == 1 + m + n if fmt.signed else m + n
    assert (fmt.min_code, fmt.max_code) == (lo, hi)
    assert Fraction(fmt.resolution) == Fraction(1, 2**n)
    assert Fraction(fmt.min) == (-(2**m) if fmt.signed else 0)
    assert Fraction(fmt.max) == 2**m - Fraction(1, 2**n)
    assert str(fmt) == ("" if fmt.signed else "U") + f"Q{m}.{n}"


# ------------------------------------------------- exhaustive arithmetic


def _codes_and_values(fmt: QFormat) -> tuple[np.ndarray, list[Fraction]]:
    lo, hi = code_range(fmt)
    return np.arange(lo, hi + 1), [value(q, fmt) for q in range(lo, hi + 1)]


@pytest.mark.parametrize("fmt", FORMATS_5, ids=str)
def test_rescale_every_code_into_every_small_format_every_mode(fmt):
    codes, values = _codes_and_values(fmt)
    for out in FORMATS_5:
        by_mode = [roundings_exact(v * 2**out.frac_bits) for v in values]
        for rounding in DETERMINISTIC:
            rounded = [d[rounding] for d in by_mode]
            for overflow in OVERFLOW_MODES:
                assert_matches(
                    lambda i, out=out, r=rounding, o=overflow: rescale(
                        codes[i], fmt, out, r, o
                    ),
                    fit_all(rounded, out, overflow),
                    rf"the result does not fit in {out} \(codes",
                    each_bad=False,
                )


def _all_pairs(fa: QFormat, fb: QFormat):
    ca, va = _codes_and_values(fa)
    cb, vb = _codes_and_values(fb)
    a, b = (g.ravel() for g in np.meshgrid(ca, cb, indexing="ij"))
    pairs = [(x, y) for x in va for y in vb]
    return a, b, pairs


def _exact_codes(exact: list[Fraction], full: QFormat) -> list[int]:
    """The codes of the exact results in ``full``, which must hold them all."""
    lo, hi = code_range(full)
    scaled = [e * 2**full.frac_bits for e in exact]
    assert all(s.denominator == 1 for s in scaled), f"{full} is too coarse"
    codes = [int(s) for s in scaled]
    assert lo <= min(codes) and max(codes) <= hi, f"{full} is too narrow"
    return codes


@pytest.mark.parametrize("fa", FORMATS_5, ids=str)
@pytest.mark.parametrize("op", ["add", "multiply"])
def test_exact_add_and_multiply_every_pair_of_codes(op, fa):
    fn, fmt_of = (add, sum_format) if op == "add" else (multiply, product_format)
    for fb in FORMATS_5:
        a, b, pairs = _all_pairs(fa, fb)
        if op == "add":
            exact = [x + y for x, y in pairs]
        else:
            exact = [x * y for x, y in pairs]
        want = _exact_codes(exact, fmt_of(fa, fb))
        got = fn(a, fa, b, fb)
        assert got.dtype == np.int64
        assert got.tolist() == want, (fa, fb)


@pytest.mark.parametrize("fa", FORMATS_4, ids=str)
@pytest.mark.parametrize("op", ["add", "multiply"])
def test_add_and_multiply_rounded_into_a_small_format_every_mode(op, fa):
    fn = add if op == "add" else multiply
    out = fa  # the usual case: the result back in the first operand's format
    for fb in FORMATS_4:
        a, b, pairs = _all_pairs(fa, fb)
        exact = [x + y if op == "add" else x * y for x, y in pairs]
        by_mode = [roundings_exact(e * 2**out.frac_bits) for e in exact]
        for rounding in DETERMINISTIC:
            rounded = [d[rounding] for d in by_mode]
            for overflow in OVERFLOW_MODES:
                assert_matches(
                    lambda i, fb=fb, a=a, b=b, r=rounding, o=overflow: fn(
                        a[i], fa, b[i], fb, out, r, o
                    ),
                    fit_all(rounded, out, overflow),
                    rf"the result does not fit in {out} \(codes",
                    each_bad=False,
                )


def _smallest_holding(values: list[Fraction], signed: bool) -> tuple[int, int]:
    """(int_bits, frac_bits) of the smallest Qm.n of this signedness that
    holds every value, searched upward from Q0.0."""
    n = max(int(math.log2(v.denominator)) for v in values)
    m = 0
    while not all(
        (-(2**m) if signed else 0) <= v <= 2**m - Fraction(1, 2**n) for v in values
    ):
        m += 1
    return m, n


def _odd(fmt: QFormat) -> Fraction:
    """The value of an odd code of ``fmt`` (1, or -1 in Q0.0)."""
    return value(1 if fmt.max_code >= 1 else -1, fmt)


@pytest.mark.parametrize("fa", FORMATS_10, ids=str)
def test_sum_and_product_formats_hold_every_exact_result(fa):
    lo_a, hi_a = value(fa.min_code, fa), value(fa.max_code, fa)
    for fb in FORMATS_10:
        lo_b, hi_b = value(fb.min_code, fb), value(fb.max_code, fb)
        signed = fa.signed or fb.signed
        both_signed = fa.signed and fb.signed

        # sums: the extremes and the finest step (an odd code plus zero)
        full = sum_format(fa, fb)
        sums = [lo_a + lo_b, hi_a + hi_b, _odd(fa), _odd(fb)]
        m, n = _smallest_holding(sums, signed)
        assert full.signed == signed and full.frac_bits == n
        assert m <= full.int_bits <= m + 1
        if both_signed:  # -2**a - 2**c needs the extra bit
            assert full.int_bits == m
        _exact_codes(sums, full)

        # products: the four corners and the finest step (odd times odd)
        full = product_format(fa, fb)
        corners = [x * y for x in (lo_a, hi_a) for y in (lo_b, hi_b)]
        products = [*corners, _odd(fa) * _odd(fb)]
        m, n = _smallest_holding(products, signed)
        assert full.signed == signed and full.frac_bits == n
        assert m <= full.int_bits <= m + 1
        if both_signed:
            # only (-2**a) * (-2**c) = 2**(a+c) needs the extra bit
            assert full.int_bits == m == fa.int_bits + fb.int_bits + 1
            narrower = QFormat(full.int_bits - 1, full.frac_bits)
            assert lo_a * lo_b > value(narrower.max_code, narrower)
        _exact_codes(products, full)


# ----------------------------------------------------------------- hypothesis


@st.composite
def qformats(draw, max_word: int = 32, min_word: int = 1) -> QFormat:
    signed = draw(st.booleans())
    word = draw(st.integers(min_word, max_word if signed else min(max_word, 63)))
    n = draw(st.integers(0, word - int(signed)))
    return QFormat(word - int(signed) - n, n, signed)


def reals(fmt: QFormat):
    """Any finite float64, or a code, tie or quarter near the format's range
    nudged by up to one float64 step."""
    lo, hi = code_range(fmt)
    near = st.builds(
        lambda k, step: _nudge(math.ldexp(float(k), -fmt.frac_bits - 2), step),
        st.integers(4 * lo - 16, 4 * hi + 16),
        st.sampled_from([0, 1, -1]),
    )
    anything = st.floats(allow_nan=False, allow_infinity=False)
    return st.one_of(near, anything)


def _nudge(x: float, step: int) -> float:
    return x if step == 0 else math.nextafter(x, step * math.inf)


def _check_to_fixed(fmt: QFormat, xs: list[float]) -> None:
    x = np.array(xs)
    scaled = [Fraction(v) * 2**fmt.frac_bits for v in xs]
    for rounding in DETERMINISTIC:
        rounded = [round_exact(v, rounding) for v in scaled]
        for overflow in OVERFLOW_MODES:
            assert_matches(
                lambda i, r=rounding, o=overflow: to_fixed(x[i], fmt, r, o),
                [fit_exact(v, fmt, overflow) for v in rounded],
                "x holds a value outside",
            )
    for overflow in ("saturate", "wrap"):  # stochastic: one of the neighbours
        got = to_fixed(x, fmt, "stochastic", overflow, rng=0).tolist()
        for g, v in zip(got, scaled, strict=True):
            neighbours = {fit_exact(math.floor(v), fmt, overflow)}
            neighbours.add(fit_exact(math.ceil(v), fmt, overflow))
            assert g in neighbours


@settings(deadline=None)
@given(st.data())
def test_hypothesis_to_fixed_up_to_32_bits(data):
    fmt = data.draw(qformats(32))
    _check_to_fixed(fmt, data.draw(st.lists(reals(fmt), min_size=1, max_size=20)))


@settings(deadline=None)
@given(st.data())
def test_hypothesis_to_fixed_33_to_64_bits(data):
    fmt = data.draw(qformats(64, min_word=33))
    _check_to_fixed(fmt, data.draw(st.lists(reals(fmt), min_size=1, max_size=20)))


@settings(deadline=None)
@given(st.data())
def test_hypothesis_from_fixed_up_to_64_bits_is_the_nearest_float(data):
    fmt = data.draw(qformats(64))
    lo, hi = code_range(fmt)
    q = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=20))
    got = from_fixed(np.array(q, dtype=np.int64), fmt).tolist()
    # float(Fraction) rounds to nearest, ties to even: exact up to 53 bits
    assert got == [float(value(c, fmt)) for c in q]


def _check_rescale(fmt, out, q):
    c = np.array(q, dtype=np.int64)
    scaled = [value(x, fmt) * 2**out.frac_bits for x in q]
    for rounding in DETERMINISTIC:
        rounded = [round_exact(v, rounding) for v in scaled]
        for overflow in OVERFLOW_MODES:
            assert_matches(
                lambda i, r=rounding, o=overflow: rescale(c[i], fmt, out, r, o),
                [fit_exact(v, out, overflow) for v in rounded],
                "the result does not fit",
            )
    for overflow in ("saturate", "wrap"):
        got = rescale(c, fmt, out, "stochastic", overflow, rng=1).tolist()
        for g, v in zip(got, scaled, strict=True):
            assert g in {
                fit_exact(math.floor(v), out, overflow),
                fit_exact(math.ceil(v), out, overflow),
            }


@settings(deadline=None)
@given(st.data())
def test_hypothesis_rescale_up_to_32_bits(data):
    fmt, out = data.draw(qformats(32)), data.draw(qformats(32))
    lo, hi = code_range(fmt)
    _check_rescale(fmt, out, data.draw(st.lists(st.integers(lo, hi), min_size=1)))


@settings(deadline=None)
@given(st.data())
def test_hypothesis_rescale_up_to_64_bits(data):
    fmt, out = data.draw(qformats(64)), data.draw(qformats(64))
    lo, hi = code_range(fmt)
    _check_rescale(fmt, out, data.draw(st.lists(st.integers(lo, hi), min_size=1)))


@settings(deadline=None)
@given(st.data())
def test_hypothesis_add_and_multiply_up_to_32_bits(data):
    fa = data.draw(qformats(32))
    fb = data.draw(qformats(min(32, (64 if fa.signed else 63) - fa.word_bits)))
    out = data.draw(qformats(32))
    (lo_a, hi_a), (lo_b, hi_b) = code_range(fa), code_range(fb)
    n = data.draw(st.integers(1, 12))
    a = data.draw(st.lists(st.integers(lo_a, hi_a), min_size=n, max_size=n))
    b = data.draw(st.lists(st.integers(lo_b, hi_b), min_size=n, max_size=n))
    pairs = [(value(x, fa), value(y, fb)) for x, y in zip(a, b, strict=True)]
    a_arr, b_arr = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)

    ops = [(multiply, product_format, [x * y for x, y in pairs])]
    if sum_format(fa, fb).word_bits <= 63:  # add's documented int64 limit
        ops.append((add, sum_format, [x + y for x, y in pairs]))
    for fn, fmt_of, exact in ops:
        assert fn(a_arr, fa, b_arr, fb).tolist() == _exact_codes(exact, fmt_of(fa, fb))
        scaled = [e * 2**out.frac_bits for e in exact]
        for rounding in DETERMINISTIC:
            rounded = [round_exact(v, rounding) for v in scaled]
            for overflow in OVERFLOW_MODES:
                assert_matches(
                    lambda i, fn=fn, r=rounding, o=overflow: fn(
                        a_arr[i], fa, b_arr[i], fb, out, r, o
                    ),
                    [fit_exact(v, out, overflow) for v in rounded],
                    "the result does not fit",
                )


# -------------------------------------------------------- stochastic rounding

N_DRAWS = 200_000
SIGMAS = 5  # the mean may sit this many standard errors from the exact value


def _check_unbiased(codes: np.ndarray, exact: Fraction) -> None:
    """Only the two neighbours of ``exact`` appear, up with probability its
    fraction f: the mean is within SIGMAS * sqrt(f(1-f)/N) of ``exact``."""
    down = math.floor(exact)
    f = exact - down
    assert set(np.unique(codes).tolist()) <= {down, down + 1}
    se = math.sqrt(f * (1 - f) / codes.size)
    assert abs(float(codes.mean() - exact)) <= SIGMAS * se
    assert abs(float(np.mean(codes == down + 1) - f)) <= SIGMAS * se


@pytest.mark.parametrize(
    "x", [1.3, -1.3, 0.3, -0.3, 2.53125, -2.53125, math.ldexp(41.0, -10)]
)
def test_to_fixed_stochastic_is_unbiased(x):
    fmt = QFormat(3, 4)
    codes = to_fixed(np.full(N_DRAWS, x), fmt, "stochastic", rng=2024)
    _check_unbiased(codes, Fraction(x) * 16)


@pytest.mark.parametrize("code", [16 * 7 + 5, -(16 * 7 + 5), 1, -1, 8, -8, 15])
def test_rescale_stochastic_is_unbiased(code):
    fmt, out = QFormat(3, 8), QFormat(3, 4)  # drops 4 fraction bits
    codes = rescale(np.full(N_DRAWS, code), fmt, out, "stochastic", rng=7)
    _check_unbiased(codes, Fraction(code, 16))


def test_stochastic_is_reproducible_with_a_seed_or_a_generator():
    fmt = QFormat(2, 3)
    x = np.random.default_rng(0).uniform(-4, 4, 1000)
    q = np.random.default_rng(0).integers(-(2**10), 2**10, 1000)
    for run in (
        lambda rng: to_fixed(x, fmt, "stochastic", rng=rng),
        lambda rng: rescale(q, QFormat(2, 8), fmt, "stochastic", rng=rng),
        lambda rng: multiply(
            q, QFormat(2, 8), q, QFormat(2, 8), fmt, "stochastic", rng=rng
        ),
    ):
        first = run(5)
        assert np.array_equal(first, run(5))
        assert np.array_equal(first, run(np.random.default_rng(5)))
        assert not np.array_equal(first, run(6))  # the seed is used
        fresh = run(None)  # a fresh generator still rounds to a neighbour
        assert np.all(np.abs(fresh - first) <= 1)


def test_stochastic_never_moves_an_exact_code():
    fmt = QFormat(3, 4)
    codes = np.arange(fmt.min_code, fmt.max_code + 1)
    x = np.repeat(from_fixed(codes, fmt), 200)
    assert np.array_equal(to_fixed(x, fmt, "stochastic", rng=3), np.repeat(codes, 200))
    wide = np.repeat(codes * 16, 200)  # the same values in Q3.8
    assert np.array_equal(
        rescale(wide, QFormat(3, 8), fmt, "stochastic", rng=3), np.repeat(codes, 200)
    )


# ------------------------------------------------------------ multipliers


def quantize_multiplier_exact(real: float, bits: int) -> tuple[int, int]:
    """m0 = round-half-away(M * 2**shift) with 2**(bits-1) <= m0 < 2**bits."""
    v = Fraction(real)
    e = v.numerator.bit_length() - v.denominator.bit_length()  # floor(log2 v) or +1
    if v < Fraction(2) ** e:
        e -= 1
    shift = bits - 1 - e  # now 2**(bits-1) <= v * 2**shift < 2**bits
    m0 = math.floor(v * Fraction(2) ** shift + HALF)  # v > 0: half away = half up
    if m0 == 2**bits:  # rounding carried into the next power of two
        m0, shift = m0 // 2, shift - 1
    return m0, shift


def gemmlowp_quantize_multiplier(real: float) -> tuple[int, int]:
    """gemmlowp / TFLite QuantizeMultiplier (quantization_util.cc), line by line:
    q = frexp(M, &shift); q_fixed = std::round(q * (1ll << 31)); on a carry
    q_fixed /= 2, ++shift.  M = q_fixed * 2**(shift - 31)."""
    q, shift = math.frexp(real)
    scaled = q * (1 << 31)  # exact: a power-of-two scaling
    whole = math.trunc(scaled)
    q_fixed = whole + (scaled - whole >= 0.5)  # std::round: half away from zero
    assert q_fixed <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    return q_fixed, shift


def _multipliers() -> list[float]:
    ms = [0.0072474, 0.5, 1.0, 0.75, 1 / 3, 2.0 / 3.0, 0.1, 123.456]
    for e in range(-40, 12):
        p = math.ldexp(1.0, e)
        ms += [p, math.nextafter(p, 0.0), math.nextafter(p, math.inf)]
        ms += [p * (1 - 2**-31), p * (1 - 2**-32), p * (1 + 2**-31)]  # carries
    # exact ties at 31 bits: (2k + 1) / 2**32, k in [2**30, 2**31)
    ms += [math.ldexp(2 * k + 1, -32) for k in (2**30, 2**30 + 1, 2**31 - 1)]
    rng = np.random.default_rng(31)
    ms += (10.0 ** rng.uniform(-8, 3, 2000)).tolist()
    return ms


def test_quantize_multiplier_matches_the_exact_rounding():
    for bits in (2, 8, 15, 16, 31, 32, 52, 53, 54, 62):
        for real in _multipliers():
            m0, shift = quantize_multiplier(real, bits)
            assert (m0, shift) == quantize_multiplier_exact(real, bits), (real, bits)
            assert 2 ** (bits - 1) <= m0 < 2**bits
            error = abs(Fraction(m0) / Fraction(2) ** shift - Fraction(real))
            assert error <= Fraction(1, 2) / Fraction(2) ** shift


def test_quantize_multiplier_equals_gemmlowp_at_31_bits():
    for real in _multipliers():
        q_fixed, g_shift = gemmlowp_quantize_multiplier(real)
        m0, shift = quantize_multiplier(real)
        # gemmlowp: M ~ q_fixed * 2**(g_shift - 31); ours: m0 * 2**-shift
        assert (m0, shift) == (q_fixed, 31 - g_shift), real


def test_quantize_multiplier_ties_round_away():
    # (2**31 + 1) / 2**32 * 2**31 = 2**30 + 1/2 exactly: up to 2**30 + 1
    assert quantize_multiplier(math.ldexp(2**31 + 1, -32)) == (2**30 + 1, 31)
    # just below 1: M * 2**31 rounds up to 2**31, which carries to 2**30 * 2**-30
    assert quantize_multiplier(math.nextafter(1.0, 0.0)) == (2**30, 30)


@settings(deadline=None)
@given(
    st.floats(min_value=5e-324, max_value=1e300, allow_nan=False),
    st.integers(2, 62),
)
def test_hypothesis_quantize_multiplier(real, bits):
    assert quantize_multiplier(real, bits) == quantize_multiplier_exact(real, bits)


def test_multiply_by_constant_every_small_case_every_rounding():
    q = np.arange(-70, 71)
    out = QFormat(4, 0)  # codes -16..15: many products overflow it
    for m0 in range(12):
        for shift in range(7):
            exact = [Fraction(int(c) * m0, 2**shift) for c in q]
            for rounding in DETERMINISTIC:
                rounded = [round_exact(v, rounding) for v in exact]
                got = multiply_by_constant(q, m0, shift, rounding)
                assert got.tolist() == rounded, (m0, shift, rounding)
                for overflow in OVERFLOW_MODES:
                    assert_matches(
                        lambda i, r=rounding, o=overflow, m0=m0, s=shift: (
                            multiply_by_constant(q[i], m0, s, r, out, o)
                        ),
                        [fit_exact(v, out, overflow) for v in rounded],
                        r"the product does not fit in Q4.0 \(codes",
                        each_bad=False,
                    )


def test_multiply_by_constant_exact_ties():
    # q * 3 / 2 for odd q is a tie: even and away differ in both signs
    q = np.array([1, 3, 5, -1, -3, -5])
    for rounding, want in [
        ("nearest_even", [2, 4, 8, -2, -4, -8]),
        ("nearest_away", [2, 5, 8, -2, -5, -8]),
        ("toward_zero", [1, 4, 7, -1, -4, -7]),
    ]:
        assert multiply_by_constant(q, 3, 1, rounding).tolist() == want


@settings(deadline=None)
@given(
    st.floats(min_value=1e-9, max_value=1e3, allow_nan=False),
    st.integers(2, 31),
    st.data(),
)
def test_hypothesis_multiply_by_constant(real, bits, data):
    m0, shift = quantize_multiplier(real, bits)
    assume(0 <= shift <= 63)
    limit = (2**63 - 1) // m0
    q = data.draw(st.lists(st.integers(-limit, limit), min_size=1, max_size=20))
    c = np.array(q, dtype=np.int64)
    for rounding in DETERMINISTIC:
        want = [round_exact(Fraction(x * m0, 2**shift), rounding) for x in q]
        assert multiply_by_constant(c, m0, shift, rounding).tolist() == want


# --------------------------------------------------------------- bad input

Q03 = QFormat(0, 3)


ALL_ROUNDINGS = "floor, ceil, toward_zero, nearest_away, nearest_even"
BAD_INPUT = [
    # bit counts and words
    (lambda: QFormat(-1, 3), ValueError, r"int_bits must be in \[0, 64\]; got -1"),
    (lambda: QFormat(3, -1), ValueError, r"frac_bits must be in \[0, 64\]; got -1"),
    (
        lambda: QFormat(40, 24),
        ValueError,
        r"the word \(signed: 1 \+ int_bits \+ frac_bits\) must have 1 to 64 bits; "
        "got 65",
    ),
    (
        lambda: QFormat(40, 24, signed=False),
        ValueError,
        r"the word \(unsigned: int_bits \+ frac_bits\) must have 1 to 63 bits; got 64",
    ),
    (lambda: QFormat(0, 0, signed=False), ValueError, r"1 to 63 bits; got 0"),
    (lambda: QFormat(True, 3), TypeError, r"int_bits must be an integer in \[0, 64\]"),
    (lambda: QFormat(3, False), TypeError, r"frac_bits must be an integer in \["),
    (lambda: QFormat(3, 4.0), TypeError, r"frac_bits must be an integer"),
    (lambda: QFormat(3, 4, signed=1), TypeError, r"signed must be True or False"),
    # formats, inputs, generators
    (lambda: to_fixed(1.0, (0, 3)), TypeError, r"fmt must be a QFormat; got tuple"),
    (lambda: from_fixed(1, "Q0.3"), TypeError, r"fmt must be a QFormat; got str"),
    (lambda: rescale(1, Q03, None), TypeError, r"out_fmt must be a QFormat; got None"),
    (lambda: sum_format(Q03, 3), TypeError, r"fb must be a QFormat; got int"),
    (lambda: product_format(3, Q03), TypeError, r"fa must be a QFormat; got int"),
    (lambda: to_fixed(["a"], Q03), TypeError, r"x must hold real numbers; got dtype"),
    (
        lambda: to_fixed(0.3, Q03, "stochastic", rng="seed"),
        TypeError,
        r"rng must be a numpy Generator, an integer seed or None; got 'seed'",
    ),
    # modes
    (
        lambda: to_fixed(0.3, Q03, rounding="up"),
        ValueError,
        rf"rounding must be one of {ALL_ROUNDINGS}, stochastic; got 'up'",
    ),
    (
        lambda: to_fixed(0.3, Q03, overflow="clip"),
        ValueError,
        r"overflow must be one of saturate, wrap, error; got 'clip'",
    ),
    (
        lambda: rescale([1], Q03, Q03, rounding="round"),
        ValueError,
        r"rounding must be one of floor, .*; got 'round'",
    ),
    (
        lambda: rescale([1], Q03, Q03, overflow="mod"),
        ValueError,
        r"overflow must be one of saturate, wrap, error; got 'mod'",
    ),
    (
        lambda: add([1], Q03, [1], Q03, Q03, overflow="clip"),
        ValueError,
        r"overflow must be one of saturate, wrap, error; got 'clip'",
    ),
    (
        lambda: multiply([1], Q03, [1], Q03, Q03, rounding="half_up"),
        ValueError,
        r"rounding must be one of floor, .*; got 'half_up'",
    ),
    (
        lambda: to_fixed(0.99, Q03, overflow="error"),
        ValueError,
        r"x holds a value outside Q0.3 \(codes \[-8, 7\]\): code 8; "
        "use overflow='saturate' or 'wrap'",
    ),
    # codes
    (lambda: from_fixed([0.5], Q03), ValueError, r"q must hold integer codes; got"),
    (
        lambda: from_fixed(np.array([1.0]), Q03),
        ValueError,
        r"q must hold integer codes; got dtype float64",
    ),
    (
        lambda: rescale(np.array([2.0]), Q03, QFormat(0, 1)),
        ValueError,
        r"q must hold integer codes; got dtype float64",
    ),
    (lambda: from_fixed([8], Q03), ValueError, r"q holds codes outside Q0.3's \[-8, 7"),
    (
        lambda: from_fixed([-1], QFormat(0, 3, signed=False)),
        ValueError,
        r"q holds codes outside UQ0.3's \[0, 7\]",
    ),
    (lambda: rescale([-9], Q03, Q03), ValueError, r"q holds codes outside Q0.3's"),
    (lambda: add([8], Q03, [0], Q03), ValueError, r"a holds codes outside Q0.3's"),
    (lambda: multiply([0], Q03, [1.5], Q03), ValueError, r"b must hold integer codes"),
    (lambda: multiply([0], Q03, [-9], Q03), ValueError, r"b holds codes outside Q0.3"),
    # exact formats beyond int64
    (
        lambda: product_format(QFormat(31, 32), QFormat(0, 1)),
        ValueError,
        r"the exact product of Q31.32 and Q0.1 needs a 66-bit word",
    ),
    (
        lambda: add([0], QFormat(30, 32), [0], QFormat(30, 32)),
        ValueError,
        r"the exact sum format Q31.32 is too wide for int64",
    ),
    # multipliers
    (lambda: quantize_multiplier(0.0), ValueError, r"real must be a finite number > 0"),
    (lambda: quantize_multiplier(-0.5), ValueError, r"real must be a finite number >"),
    (lambda: quantize_multiplier(math.nan), ValueError, r"finite number > 0; got nan"),
    (lambda: quantize_multiplier(math.inf), ValueError, r"finite number > 0; got inf"),
    (lambda: quantize_multiplier(0.5, 1), ValueError, r"bits must be in \[2, 62\]"),
    (lambda: quantize_multiplier(0.5, True), TypeError, r"bits must be an integer in"),
    (
        lambda: multiply_by_constant([1], -1, 3),
        ValueError,
        r"m0 must be a non-negative integer; got -1",
    ),
    (
        lambda: multiply_by_constant([1], 1.5, 3),
        ValueError,
        r"m0 must be a non-negative integer; got 1.5",
    ),
    (
        lambda: multiply_by_constant([1], 3, 64),
        ValueError,
        r"shift must be in \[0, 63\]; got 64",
    ),
    (
        lambda: multiply_by_constant([1], 3, 1, "stochastic"),
        ValueError,
        rf"rounding must be one of {ALL_ROUNDINGS}; got 'stochastic'",
    ),
    (
        lambda: multiply_by_constant([2**40], 2**30, 3),
        ValueError,
        r"q \* m0 does not fit in int64",
    ),
    (
        lambda: multiply_by_constant([0.5], 3, 1),
        ValueError,
        r"q must hold integer codes",
    ),
    (
        lambda: multiply_by_constant([99], 1, 0, out_fmt=Q03, overflow="error"),
        ValueError,
        r"the product does not fit in Q0.3 \(codes \[-8, 7\]\)",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUT)
def test_bad_input_names_the_argument_and_what_is_allowed(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_nan_raises_in_every_mode(rounding, overflow):
    with pytest.raises(ValueError, match="x holds NaN, which no fixed-point code"):
        to_fixed([0.5, math.nan], Q03, rounding, overflow)


@pytest.mark.parametrize("overflow", ["wrap", "error"])
@pytest.mark.parametrize("x", [math.inf, -math.inf])
def test_infinity_raises_unless_saturating(x, overflow):
    with pytest.raises(
        ValueError,
        match=rf"x holds an infinity, which overflow='{overflow}' cannot map to a "
        "code; use overflow='saturate'",
    ):
        to_fixed([0.5, x], Q03, overflow=overflow)


# --------------------------------------------------------------- edge cases


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_infinity_saturates_to_the_ends(rounding):
    for fmt in [*FORMATS_10, QFormat(0, 63), QFormat(63, 0), QFormat(0, 63, False)]:
        lo, hi = code_range(fmt)
        got = to_fixed([math.inf, -math.inf], fmt, rounding, rng=0)
        assert got.tolist() == [hi, lo]


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_both_zeros_give_code_zero_and_code_zero_is_plus_zero(rounding, overflow):
    for fmt in FORMATS_10:
        q = to_fixed(np.array([0.0, -0.0]), fmt, rounding, overflow, rng=0)
        assert q.tolist() == [0, 0]
        z = from_fixed(q, fmt)
        assert np.all(np.signbit(z) == [False, False])
        assert not np.signbit(quantize(-0.0, fmt, rounding, overflow, rng=0))


RANGE_END_FORMATS = [*FORMATS_10, QFormat(0, 15), QFormat(15, 16), QFormat(7, 45)]
RANGE_END_FORMATS += [QFormat(52, 0), QFormat(0, 52), QFormat(53, 0, signed=False)]


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_range_ends_convert_to_the_end_codes(rounding, overflow):
    for fmt in RANGE_END_FORMATS:  # words up to 53 bits: min and max are exact
        lo, hi = code_range(fmt)
        assert Fraction(fmt.min) == value(lo, fmt)
        assert Fraction(fmt.max) == value(hi, fmt)
        got = to_fixed([fmt.min, fmt.max], fmt, rounding, overflow, rng=0)
        assert got.tolist() == [lo, hi]
        assert from_fixed([lo, hi], fmt).tolist() == [fmt.min, fmt.max]


# hand-derived: Q3.0 ties at k + 1/2; Q1.2 ties at odd multiples of 1/8
TIES = [
    # (fmt, x, nearest_even, nearest_away)
    (QFormat(3, 0), 0.5, 0, 1),
    (QFormat(3, 0), -0.5, 0, -1),
    (QFormat(3, 0), 1.5, 2, 2),
    (QFormat(3, 0), -1.5, -2, -2),
    (QFormat(3, 0), 2.5, 2, 3),
    (QFormat(3, 0), -2.5, -2, -3),
    (QFormat(3, 0), 6.5, 6, 7),
    (QFormat(3, 0), -7.5, -8, -8),  # -8 is min_code either way
    (QFormat(1, 2), 0.125, 0, 1),
    (QFormat(1, 2), -0.125, 0, -1),
    (QFormat(1, 2), 0.375, 2, 2),
    (QFormat(1, 2), -0.375, -2, -2),
    (QFormat(1, 2), 0.625, 2, 3),
    (QFormat(1, 2), -0.625, -2, -3),
]


@pytest.mark.parametrize(("fmt", "x", "even", "away"), TIES)
def test_exact_ties_both_signs(fmt, x, even, away):
    assert to_fixed(x, fmt, "nearest_even") == even
    assert to_fixed(x, fmt, "nearest_away") == away
    # one float64 step toward zero is no longer a tie: both round toward zero
    inner = math.nextafter(x, 0.0)
    toward_zero = int(math.copysign(math.floor(abs(x) * 2**fmt.frac_bits), x))
    assert to_fixed(inner, fmt, "nearest_even") == toward_zero
    assert to_fixed(inner, fmt, "nearest_away") == toward_zero


def test_just_inside_minus_half_rounds_to_zero():
    # -0.49999999999999994 is nearer 0 than -1 in every rounding to nearest
    x = math.nextafter(-0.5, 0.0)
    for n in (0, 1, 5):
        fmt = QFormat(3, n)
        scaled = math.ldexp(x, -n)
        assert to_fixed(scaled, fmt, "nearest_away") == 0
        assert to_fixed(scaled, fmt, "nearest_even") == 0


def test_scalars_give_scalars_and_shapes_are_kept():
    q = to_fixed(0.3, Q03)
    assert isinstance(q, np.int64) and q == 2
    assert isinstance(from_fixed(q, Q03), np.float64)
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    assert to_fixed(x, Q03).shape == (3, 4)
    assert from_fixed(to_fixed(x, Q03), Q03).shape == (3, 4)
    assert rescale(to_fixed(x, Q03), Q03, QFormat(0, 1)).shape == (3, 4)


def test_numpy_integer_bit_counts_behave_like_python_ints():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no int64 overflow on the way
        for m, n, signed in [
            (0, 63, True),
            (63, 0, True),
            (0, 63, False),
            (3, 4, True),
        ]:
            fmt = QFormat(np.int64(m), np.int64(n), signed)
            assert fmt == QFormat(m, n, signed)
            assert (fmt.min_code, fmt.max_code) == code_range(QFormat(m, n, signed))
            assert type(fmt.max_code) is int


def test_rescale_saturates_and_wraps_whatever_the_left_shift():
    # Q31.0 -> Q0.40 shifts left by 40: 2**30 * 2**40 is far beyond int64
    fmt, out = QFormat(31, 0), QFormat(0, 40)
    q = np.array([2**30, -(2**31), 2**31 - 1, 0, 1, -1])
    for overflow in ("saturate", "wrap"):
        want = [fit_exact(int(c) * 2**40, out, overflow) for c in q]
        assert rescale(q, fmt, out, overflow=overflow).tolist() == want
    with pytest.raises(ValueError, match=r"the result does not fit in Q0.40"):
        rescale(q, fmt, out, overflow="error")
    # -1 in Q0.0 is -1.0, which Q0.63 holds as its min_code -2**63
    got = rescale([-1, 0], QFormat(0, 0), QFormat(0, 63), overflow="error")
    assert got.tolist() == [-(2**63), 0]
