"""Numeric equality that respects magnitude, for math-verify's comparisons.

math-verify (0.x) compares numbers by rounding both to 6 decimals when one is a float, and
other expressions by `(a − b).evalf(chop=True) == 0`: both are absolute, so tiny values
collapse (1e-7 = 2e-7, e^-50 = e^-49, 1/100! = 2/100!, 2^-100 = 2^-99) and differences far
below a huge value vanish (√(10^40+1) = 10^20). `install()` replaces its `sympy_numeric_eq`
with `numeric_eq`: math-verify's verdict, and then a relative test:
- a decimal answer (a float on either side) must also agree to `DECIMAL_REL_TOL` relative
  (0.333333 still equals 1/3; 1e-7 no longer equals 2e-7);
- exact expressions must agree to `EXACT_REL_TOL` at `EXACT_DIGITS` digits: equal means equal
  at that magnitude (symbolic equality is still tried afterwards by math-verify).
"""

from typing import Any

DECIMAL_REL_TOL = 1e-5
EXACT_DIGITS = 80
EXACT_REL_TOL = 1e-60

_installed = False


def install() -> None:
    """Patch math-verify in this process (idempotent): its grader calls `numeric_eq`."""
    global _installed
    if _installed:
        return
    from math_verify import grader

    original = grader.sympy_numeric_eq

    def patched(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
        if grader.get_pct_val(a) is not None or grader.get_pct_val(b) is not None:
            return bool(original(a, b, float_rounding, numeric_precision))  # 50% = 50 = 0.5
        return numeric_eq(original, a, b, float_rounding, numeric_precision)

    grader.sympy_numeric_eq = patched
    _installed = True


def numeric_eq(original: Any, a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
    """math-verify's `original` verdict, vetoed when a and b differ at their magnitude."""
    from sympy import Float, MatrixBase

    if not original(a, b, float_rounding, numeric_precision):
        return False
    if isinstance(a, MatrixBase) or isinstance(b, MatrixBase):
        return True  # math-verify compared the elements through `numeric_eq` already
    if a.has(Float) or b.has(Float):
        return _relative_gap(a, b, digits=numeric_precision) <= DECIMAL_REL_TOL
    return _relative_gap(a, b, digits=EXACT_DIGITS) <= EXACT_REL_TOL


def _relative_gap(a: Any, b: Any, *, digits: int) -> float:
    """|a − b| / max(|a|, |b|) evaluated at `digits` significant digits; 0.0 when the
    difference is exactly 0, inf when it is not a number (e.g. has free symbols)."""
    try:
        gap = (a - b).evalf(n=digits)
        if gap == 0:
            return 0.0
        if not gap.is_number:
            return float("inf")
        scale = max(abs(a.evalf(n=digits)), abs(b.evalf(n=digits)))
        return float(abs(gap) / scale) if scale != 0 else float("inf")
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return float("inf")
