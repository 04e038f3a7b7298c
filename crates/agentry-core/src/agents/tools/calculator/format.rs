//! Decimal rendering and rounding to significant digits, in exact big-integer arithmetic.

use std::cmp::Ordering;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};

use super::num::Num;
use super::rational::ratio;
use super::{Answer, CalcError, SHOWN_DIGITS};

/// `10^k` for `k ≥ 0` (callers bound `k` by the size limits).
pub(crate) fn pow10(k: u64) -> BigInt {
    BigInt::from(10u32).pow(u32::try_from(k).unwrap_or(u32::MAX))
}

/// `log2 |n|` to about 15 significant digits (0 for 0); used only for size estimates.
pub(crate) fn log2_abs(n: &BigInt) -> f64 {
    let bits = n.bits();
    if bits == 0 {
        return 0.0;
    }
    let shift = bits.saturating_sub(64);
    let top = (n.magnitude() >> shift).to_f64().unwrap_or(1.0);
    shift as f64 + top.log2()
}

/// Compares `n/d` (both positive) with `10^e`.
fn cmp_pow10(n: &BigInt, d: &BigInt, e: i64) -> Ordering {
    if e >= 0 { n.cmp(&(d * pow10(e.unsigned_abs()))) } else { (n * pow10(e.unsigned_abs())).cmp(d) }
}

/// `floor(log10 |v|)` for `v ≠ 0`, exactly.
pub(crate) fn floor_log10(v: &BigRational) -> i64 {
    let n = v.numer().abs();
    let d = v.denom().abs();
    let estimate = (log2_abs(&n) - log2_abs(&d)) * std::f64::consts::LOG10_2;
    let mut e = estimate.floor() as i64;
    // The estimate is off by at most one; step until 10^e ≤ n/d < 10^(e+1).
    for _ in 0..8 {
        if cmp_pow10(&n, &d, e) == Ordering::Less {
            e -= 1;
        } else if cmp_pow10(&n, &d, e + 1) != Ordering::Less {
            e += 1;
        } else {
            break;
        }
    }
    e
}

/// `|v|` rounded half away from zero to `digits` significant digits, as
/// `(mantissa, exponent, exact)` with `|v| ≈ mantissa · 10^exponent`, the mantissa having
/// exactly `digits` digits, and `exact` telling whether no rounding happened.
/// `None` for zero.
pub(crate) fn round_sig(v: &BigRational, digits: u32) -> Option<(BigInt, i64, bool)> {
    if v.is_zero() {
        return None;
    }
    let n = v.numer().abs();
    let d = v.denom().abs();
    let mut shift = i64::from(digits) - 1 - floor_log10(v);
    let (num, den) = if shift >= 0 { (n * pow10(shift.unsigned_abs()), d) } else { (n, d * pow10(shift.unsigned_abs())) };
    let mut mantissa = &num / &den;
    let rem = num - &mantissa * &den;
    let exact = rem.is_zero();
    if rem * 2u32 >= den {
        mantissa += 1u32;
    }
    if mantissa == pow10(u64::from(digits)) {
        mantissa = pow10(u64::from(digits.saturating_sub(1)));
        shift -= 1;
    }
    Some((mantissa, -shift, exact))
}

/// `v` rounded to `digits` significant digits, as an exact rational.
pub(crate) fn round_to(v: &BigRational, digits: u32) -> Result<BigRational, CalcError> {
    match round_sig(v, digits) {
        None => Ok(BigRational::zero()),
        Some((m, exp, _)) => {
            let m = if v.is_negative() { -m } else { m };
            if exp >= 0 { Ok(BigRational::from_integer(m * pow10(exp.unsigned_abs()))) } else { ratio(m, pow10(exp.unsigned_abs())) }
        }
    }
}

/// Render `v` with at most 30 significant digits (rounded half away from zero).
/// Returns the text and whether it is the whole value. Trailing zeros are dropped when
/// `strip` is set or the rendering is exact.
fn render(v: &BigRational, strip: bool) -> (String, bool) {
    let Some((mantissa, exp, exact)) = round_sig(v, SHOWN_DIGITS) else {
        return ("0".into(), true);
    };
    let mut digits = mantissa.to_string();
    // Exponent of the leading digit.
    let lead = exp + i64::try_from(digits.len()).unwrap_or(0) - 1;
    if strip || exact {
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
    }
    let sign = if v.is_negative() { "-" } else { "" };
    let len = i64::try_from(digits.len()).unwrap_or(0);
    let body = if (0..i64::from(SHOWN_DIGITS)).contains(&lead) {
        let int_len = usize::try_from(lead + 1).unwrap_or(0);
        if digits.len() <= int_len { format!("{digits}{}", "0".repeat(int_len - digits.len())) } else { format!("{}.{}", &digits[..int_len], &digits[int_len..]) }
    } else if (-7..0).contains(&lead) {
        let zeros = usize::try_from(-lead - 1).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else {
        let (first, rest) = digits.split_at(1);
        let exp_sign = if lead < 0 { "-" } else { "+" };
        let frac = if len > 1 { format!(".{rest}") } else { String::new() };
        format!("{first}{frac}e{exp_sign}{}", lead.unsigned_abs())
    };
    (format!("{sign}{body}"), exact)
}

/// Decimal of an exact value: "0.75", or "0.916666666666666666666666666667…" when the
/// 30 shown digits are not the whole value.
pub(crate) fn decimal_exact(v: &BigRational) -> String {
    match render(v, false) {
        (s, true) => s,
        (s, false) => format!("{s}…"),
    }
}

/// Decimal of an approximate value: 30 significant digits, trailing zeros dropped.
pub(crate) fn decimal_approx(v: &BigRational) -> String {
    render(v, true).0
}

/// The answer for a plain expression's value.
pub(crate) fn value_answer(value: &Num) -> Answer {
    if value.approx {
        return Answer { exact: decimal_approx(&value.v), decimal: None, approximate: true };
    }
    if value.v.is_integer() {
        return Answer { exact: value.v.numer().to_string(), decimal: None, approximate: false };
    }
    Answer { exact: value.v.to_string(), decimal: Some(decimal_exact(&value.v)), approximate: false }
}
