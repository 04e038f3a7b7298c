//! Exact rational primitives that keep big-integer gcds cheap.
//!
//! num-bigint's gcd (Stein's algorithm) is quadratic and is slow even when one operand
//! is small (`gcd(10^99999, 3)` walks all 330 000 bits), and num-rational reduces with
//! it after every operation. Here a huge-versus-small gcd starts with Euclid's remainder
//! steps, additions use Knuth's denominator trick, and every remaining quadratic gcd is
//! charged to a per-evaluation work budget.

use std::cell::Cell;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};

use super::CalcError;

/// Work allowed per evaluation, in units of (thousand digits)² of quadratic gcd
/// (about 0.75 s of release-build work).
const WORK_BUDGET: f64 = 20_000.0;

thread_local! {
    static WORK: Cell<f64> = const { Cell::new(0.0) };
}

/// Start a new evaluation's work budget.
pub(crate) fn reset_budget() {
    WORK.with(|w| w.set(0.0));
}

/// Charge quadratic work on numbers of `bits` bits.
pub(crate) fn charge(bits: u64) -> Result<(), CalcError> {
    let thousands = bits as f64 / 3321.9;
    let cost = thousands * thousands;
    let total = WORK.with(|w| {
        let t = w.get() + cost;
        w.set(t);
        t
    });
    if total > WORK_BUDGET {
        return Err(CalcError::TooLarge("the computation needs too much work".into()));
    }
    Ok(())
}

/// Greatest common divisor (non-negative; `gcd(0, 0) = 0`).
pub(crate) fn gcd(a: &BigInt, b: &BigInt) -> Result<BigInt, CalcError> {
    let (mut a, mut b) = (a.abs(), b.abs());
    if a < b {
        std::mem::swap(&mut a, &mut b);
    }
    // Remainder steps while the sizes differ: each is cheap and shrinks `a` to `b`'s size.
    while !b.is_zero() && a.bits() > b.bits() + 32 {
        let r = &a % &b;
        a = b;
        b = r;
    }
    if b.is_zero() {
        return Ok(a);
    }
    if b.is_one() {
        return Ok(b);
    }
    charge(a.bits())?;
    // Comparable sizes: num-rational's reduction runs num-integer's binary gcd.
    let reduced = BigRational::new(a.clone(), b);
    Ok(a / reduced.numer())
}

/// Least common multiple of two integers (non-negative).
pub(crate) fn lcm(a: &BigInt, b: &BigInt) -> Result<BigInt, CalcError> {
    if a.is_zero() || b.is_zero() {
        return Ok(BigInt::zero());
    }
    Ok((a / gcd(a, b)?).abs() * b.abs())
}

/// The reduced fraction `n/d`.
pub(crate) fn ratio(n: BigInt, d: BigInt) -> Result<BigRational, CalcError> {
    if d.is_zero() {
        return Err(CalcError::DivisionByZero);
    }
    let g = gcd(&n, &d)?;
    let (n, d) = if g.is_one() { (n, d) } else { (n / &g, d / g) };
    Ok(if d.is_negative() { BigRational::new_raw(-n, -d) } else { BigRational::new_raw(n, d) })
}

/// `a + b` (Knuth, TAOCP 4.5.1: only the denominators' gcd is needed).
pub(crate) fn add(a: &BigRational, b: &BigRational) -> Result<BigRational, CalcError> {
    let (an, ad, bn, bd) = (a.numer(), a.denom(), b.numer(), b.denom());
    if ad.is_one() && bd.is_one() {
        return Ok(BigRational::from_integer(an + bn));
    }
    let g = gcd(ad, bd)?;
    if g.is_one() {
        // gcd(an·bd + bn·ad, ad·bd) = 1 when the inputs are reduced and gcd(ad, bd) = 1.
        return Ok(BigRational::new_raw(an * bd + bn * ad, ad * bd));
    }
    let t = an * (bd / &g) + bn * (ad / &g);
    let g2 = gcd(&t, &g)?;
    if t.is_zero() {
        return Ok(BigRational::zero());
    }
    Ok(BigRational::new_raw(t / &g2, (ad / &g) * (bd / g2)))
}

/// `a · b` with cross-cancellation.
pub(crate) fn mul(a: &BigRational, b: &BigRational) -> Result<BigRational, CalcError> {
    let (an, ad, bn, bd) = (a.numer(), a.denom(), b.numer(), b.denom());
    if ad.is_one() && bd.is_one() {
        return Ok(BigRational::from_integer(an * bn));
    }
    if an.is_zero() || bn.is_zero() {
        return Ok(BigRational::zero());
    }
    let g1 = gcd(an, bd)?;
    let g2 = gcd(bn, ad)?;
    Ok(BigRational::new_raw((an / &g1) * (bn / &g2), (ad / g2) * (bd / g1)))
}

/// `a / b`.
pub(crate) fn div(a: &BigRational, b: &BigRational) -> Result<BigRational, CalcError> {
    if b.is_zero() {
        return Err(CalcError::DivisionByZero);
    }
    mul(a, &b.recip())
}
