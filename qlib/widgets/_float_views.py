"""What :class:`~qlib.widgets.floats.FloatExplorer` shows, as pure functions.

Each takes a :class:`~qlib.floats.FloatFormat` and a code (or a value) and
returns text or HTML: a typed number read exactly, the decoded fields with the
value formula filled in, the neighbouring values and codes (and what happens
past the largest value), and one value in every format; the value's place on
two number lines (inline SVG) is drawn by ``_float_lines.py``.  Kept apart
from the explorer so that its module reads as wiring.

Taught in ``notebooks/04_ieee754.ipynb`` and
``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

import ast
import html
import math
import operator
from decimal import Decimal
from fractions import Fraction

import numpy as np

from .. import floats as _floats

MINUS = "\N{MINUS SIGN}"
TIMES = "\N{MULTIPLICATION SIGN}"
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def num(v: float, digits: int | None = None) -> str:
    """A float as a learner reads it: shortest form, true minus sign.

    Example:
        >>> num(448.0), num(-0.1), num(float("nan")), num(2 / 3, 4)
        ('448', '−0.1', 'NaN', '0.6667')
    """
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return ("-" if v < 0 else "+") + "inf"
    text = f"{v:.{digits}g}" if digits else repr(v)
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace("-", MINUS)


def parse_real(text: str) -> Fraction | float:
    """The number typed: exact (a Fraction) for arithmetic on decimals, such as
    ``0.1``, ``1/3``, ``-2**-9`` or ``1.5e3``; a float for ``nan`` and ``inf``.

    Raises ValueError for anything else.

    Example:
        >>> parse_real("1/3"), parse_real("-2**-3"), parse_real("0.1")
        (Fraction(1, 3), Fraction(-1, 8), Fraction(1, 10))
    """
    t = text.strip().lower().replace(MINUS, "-").replace("^", "**").replace("_", "")
    word = t.lstrip("+-")
    if word in ("nan", "inf", "infinity"):
        v = math.nan if word == "nan" else math.inf
        return -v if t.startswith("-") else v
    try:
        tree = ast.parse(t, mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot read {text!r} as a number") from None
    return _exact(tree.body, t, text)


def _exact(node: ast.AST, source: str, text: str) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, int):
            return Fraction(node.value)
        return Fraction(ast.get_source_segment(source, node))  # the decimal typed
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        inner = _exact(node.operand, source, text)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        a, b = _exact(node.left, source, text), _exact(node.right, source, text)
        if isinstance(node.op, ast.Pow):
            if b.denominator != 1 or abs(b) > 1100:
                raise ValueError(f"{text!r}: powers must be whole, at most 1100")
            if a == 0 and b < 0:
                raise ValueError(f"{text!r}: 0 to a negative power")
            return a ** int(b)
        if type(node.op) in _OPS:
            if isinstance(node.op, ast.Div) and b == 0:
                raise ValueError(f"{text!r}: division by zero")
            return _OPS[type(node.op)](a, b)
    raise ValueError(f"cannot read {text!r} as a number")


def to_float(x: Fraction | float) -> float:
    """``x`` rounded to float64 (to nearest; beyond its range, infinity)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _pow2(exponent: str | int, markup: bool) -> str:
    e = str(exponent).replace("-", MINUS)
    if markup:
        return f"2<sup>{e}</sup>"
    return f"2^({e})" if " " in e else f"2^{e}"


def _fraction(m: int, man_bits: int, markup: bool) -> str:
    return f"{m}/{2**man_bits}" if man_bits <= 10 else f"{m}/{_pow2(man_bits, markup)}"


def decode_rows(
    fmt: _floats.FloatFormat, code: int, markup: bool = True
) -> list[tuple[str, str]]:
    """The fields of ``code`` and the value formula with its numbers filled in.

    Rows ``(what, text)``: sign, exponent, mantissa (fields a format has) and
    value.  ``markup=False`` gives plain text (``2^(123 − 127)``).

    Example:
        >>> rows = dict(decode_rows(_floats.FORMATS["bf16"], 0x3DCD, markup=False))
        >>> rows["value"]
        '(−1)^0 × 2^(123 − 127) × (1 + 77/128) = 2^−4 × 1.6015625 = 0.10009765625'
    """
    s, e, m = (int(f) for f in fmt.fields(code))
    M, bias, top = fmt.man_bits, fmt.bias, 2**fmt.exp_bits - 1
    kind = str(fmt.classify(code))
    value = float(fmt.decode(code))
    sup = (lambda x: f"<sup>{x}</sup>") if markup else (lambda x: f"^{x}")
    e_bits = format(e, f"0{fmt.exp_bits}b")
    rows = []
    if fmt.signed:
        rows.append(("sign s", f"{s}: {'negative' if s else 'positive'}"))
    if kind == "nan":
        why = {
            "ieee": "e all ones and m ≠ 0",
            "fn": f"e and m all ones, {fmt.name}'s only NaN pattern per sign",
            "fnuz": f"the code of −0, {fmt.name}'s only NaN",
            "e8m0": "e all ones",
        }[fmt.specials]
        exponent = f"{e} = 0b{e_bits}"
        formula = f"NaN ({why})"
    elif kind == "inf":
        exponent = f"{e} = 0b{e_bits}: all ones, with m = 0 reserved for infinity"
        formula = f"{'−' if s else '+'}inf (e all ones, m = 0)"
    elif fmt.specials == "e8m0":
        exponent = f"{e} = 0b{e_bits}; e {MINUS} bias = {e} {MINUS} {bias}"
        formula = f"{_pow2(f'{e} − {bias}', markup)} = {num(value)}"
    else:
        normal = e > 0
        shift = e - bias if normal else 1 - bias
        lead = 1 if normal else 0
        significand = Decimal(math.ldexp(lead * 2**M + m, -M))
        if normal:
            exponent = (
                f"{e} = 0b{e_bits}; e {MINUS} bias = {e} {MINUS} {bias} = {num(shift)}"
            )
            power = _pow2(f"{e} − {bias}", markup)
        else:
            exponent = (
                f"0: subnormal, so the exponent is 1 {MINUS} bias = {num(shift)}"
                " (not 0 − bias) and there is no hidden 1"
            )
            power = _pow2(f"1 − {bias}", markup)
        rows.append(
            (
                "mantissa m",
                f"{m} = 0b{format(m, f'0{M}b')}; significand {lead} + "
                f"{_fraction(m, M, markup)} = {significand}",
            )
        )
        formula = (
            f"(−1){sup(s)} {TIMES} {power} {TIMES} ({lead} + {_fraction(m, M, markup)})"
            f" = {'−' if s else ''}{_pow2(num(shift), markup)} {TIMES} {significand}"
            f" = {exact(value)}"
        )
    rows.insert(int(fmt.signed), ("exponent e", exponent.replace("-", MINUS)))
    if kind == "nan" and fmt.specials != "e8m0" and e == top:
        rows.append(("mantissa m", f"{m} = 0b{format(m, f'0{M}b')}"))
    rows.append(("value", formula.replace("-", MINUS)))
    return rows


def exact(v: float) -> str:
    """The exact decimal value of a float (every format here fits float64)."""
    if not math.isfinite(v):
        return num(v)
    text = str(Decimal(v))
    if text in ("0", "-0"):
        return "−0" if math.copysign(1.0, v) < 0 else "0"
    return text.replace("-", MINUS)


def neighbour_rows(fmt: _floats.FloatFormat, code: int) -> list[tuple[str, str]]:
    """Next value down and up, and the codes one below and above, with what
    happens at the ends of the range (a format without infinity has no value
    past its largest; the code past the largest positive one is negative).

    Example:
        >>> rows = dict(neighbour_rows(_floats.FORMATS["fp4_e2m1fn"], 0x7))
        >>> rows["next up"]
        'none: 6 is the largest value, and fp4_e2m1fn has no infinity and no NaN'
        >>> rows["code + 1"]
        '0x8 = −0 (the sign bit turns on)'
    """
    value = float(fmt.decode(code))
    rows = []
    if math.isnan(value):
        rows += [("next down", "none: NaN is not ordered"), ("next up", "none")]
    else:
        for label, step, end in (
            ("next down", fmt.next_down, -fmt.max),
            ("next up", fmt.next_up, fmt.max),
        ):
            moved = float(step(value))
            if value == end and not fmt.has_inf:
                word = "largest" if end > 0 else "most negative"
                lacks = "no infinity" + ("" if fmt.has_nan else " and no NaN")
                text = (
                    f"none: {num(end)} is the {word} value, and {fmt.name} has {lacks}"
                )
            elif math.isinf(value) and math.copysign(1, value) == math.copysign(1, end):
                text = "none: infinity is the end"
            elif math.isnan(moved):
                text = "none"
            else:
                text = num(moved)
                if math.isinf(moved):
                    text += " (past the largest finite value: overflow)"
            rows.append((label, text))
    mask = 2**fmt.bits - 1
    sign_bit = 1 << (fmt.bits - 1)
    for label, other in (
        ("code − 1", (code - 1) & mask),
        ("code + 1", (code + 1) & mask),
    ):
        text = f"0x{other:X} = {num(float(fmt.decode(other)))}"
        if abs(other - code) != 1:
            text += " (the code wraps around)"
        elif fmt.signed and (other ^ code) & sign_bit:
            turns = "on" if other & sign_bit else "off"
            text += f" (the sign bit turns {turns})"
        rows.append((label, text))
    return rows


def note(
    fmt: _floats.FloatFormat,
    code: int,
    typed: Fraction | float | None,
    saturate: bool = False,
) -> str:
    """What happened to the ``typed`` number stored as ``code``: overflow
    (to infinity, to NaN, or saturated), underflow, a subnormal's lost bits.

    Example:
        >>> fp8 = _floats.FORMATS["fp8_e4m3fn"]
        >>> note(fp8, 0x7F, Fraction(1000)).startswith("overflow: fp8_e4m3fn has no")
        True
        >>> note(fp8, 0x7E, Fraction(1000), saturate=True)
        'beyond the largest value 448: saturate clamps it to ±448'
    """
    if typed is None:
        return ""
    value, x = float(fmt.decode(code)), to_float(typed)
    if math.isnan(x):
        if fmt.has_nan:
            return ""
        return (
            f"{fmt.name} has no NaN: casts write a NaN as a zero "
            f"({exact(value)} here), as ml_dtypes does"
        )
    if fmt.specials == "e8m0" and x <= 0:
        return f"{fmt.name} has no sign and no zero: it holds powers of two only"
    if abs(typed) > fmt.max:
        top = num(fmt.max)
        if saturate:
            return f"beyond the largest value {top}: saturate clamps it to ±{top}"
        if math.isinf(value):
            return f"overflow: beyond the largest value {top}, it rounds to infinity"
        if math.isnan(value):
            return (
                f"overflow: {fmt.name} has no infinity, so a value past its top "
                "becomes NaN (tick saturate to clamp it instead)"
            )
        if not fmt.has_nan:
            return f"{fmt.name} has no infinity and no NaN: it saturates to ±{top}"
        return f"beyond the largest value {top}, but within half a step: rounds to it"
    if value == 0 and typed != 0:
        half = num(fmt.min_subnormal / 2)
        return (
            f"underflow: at most half the smallest subnormal ({half}), "
            "so it rounds to 0"
        )
    if fmt.classify(code) == "subnormal":
        kept = int(fmt.fields(code)[2]).bit_length()
        bits = "bit is" if kept == 1 else "bits are"
        return f"subnormal: only {kept} significant {bits} left"
    return ""


def every_format(
    x: float,
    typed: Fraction | None,
    saturate: bool,
    current: str,
) -> tuple[list[tuple[str, int, float, str]], str]:
    """``x`` rounded into every format of :data:`qlib.floats.FORMATS`: the
    exact ``typed`` number when given (``x`` is then its float64), rounded
    once (:meth:`~qlib.floats.FloatFormat.encode_rational`).

    Returns the rows ``(name, code, stored value, error)`` (the error relative
    to the exact ``typed`` number when given, else to ``x``) and the same as
    an HTML block of aligned text, the row of ``current`` in bold.

    Example:
        >>> rows, _ = every_format(0.1, Fraction(1, 10), False, "bf16")
        >>> [r for r in rows if r[0] == "fp4_e2m1fn"]
        [('fp4_e2m1fn', 0, 0.0, 'flushed to 0')]
    """
    reference = (
        typed if typed is not None else (Fraction(x) if math.isfinite(x) else None)
    )
    rows = []
    for name, fmt in _floats.FORMATS.items():
        if typed is not None:
            code = fmt.encode_rational(typed, saturate)
        else:
            with np.errstate(over="ignore"):  # from 2**1023 up, rounding overflows
                code = int(fmt.encode(np.float64(x), saturate=saturate))
        stored = float(fmt.decode(code))
        if math.isnan(x):
            error = "" if math.isnan(stored) else "no NaN in this format"
        elif math.isnan(stored):
            error = "NaN: out of range"
        elif math.isinf(stored):
            error = "" if stored == x else "overflow to inf"
        elif reference is None:  # x is infinite, stored is finite
            error = "saturated to the largest value"
        elif stored == 0 and reference != 0:
            error = "flushed to 0"
        elif Fraction(stored) == reference:
            error = "exact"
        else:
            rel = (Fraction(stored) - reference) / reference
            error = f"{float(rel):+.2e}".replace("-", MINUS)
            if abs(reference) > fmt.max:
                error += " (saturated)"
        rows.append((name, code, stored, error))
    width = max(len(f"0x{c:X}") for _, c, _, _ in rows)
    head = f"{'format':<14}{'code':<{width + 2}}{'stored value':<26}error (relative)"
    lines = [html.escape(head)]
    for name, code, stored, error in rows:
        line = html.escape(
            f"{name:<14}{f'0x{code:X}':<{width + 2}}{num(stored):<26}{error}"
        )
        lines.append(f"<b>{line}</b>" if name == current else line)
    block = (
        "<pre style='margin:0.4em 0;font-size:0.85em;line-height:1.25'>"
        + "\n".join(lines)
        + "</pre>"
    )
    return rows, block
