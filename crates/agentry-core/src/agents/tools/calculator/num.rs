//! Numbers: exact rationals, or approximations (60 significant digits) of irrationals,
//! with size checks before and after every operation.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::format::{floor_log10, log2_abs, pow10, round_to};
use super::rational;
use super::{CalcError, INTERNAL_DIGITS, MAX_FACTORIAL, MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, MAX_ROOT_INDEX};

/// log2(10): bits per decimal digit.
const BITS_PER_DIGIT: f64 = std::f64::consts::LOG2_10;
/// pi to 70 decimals.
const PI: &str = "3.1415926535897932384626433832795028841971693993751058209749445923078164";
/// e to 70 decimals.
const E: &str = "2.7182818284590452353602874713526624977572470936999595749669676277240766";

/// A value: exact, or an approximation carrying [`INTERNAL_DIGITS`] significant digits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Num {
    pub(crate) v: BigRational,
    pub(crate) approx: bool,
}

fn too_large(what: &str) -> CalcError {
    CalcError::TooLarge(what.to_string())
}

fn int_limit_msg() -> String {
    format!("the result would have more than {MAX_INTEGER_DIGITS} digits")
}

fn fraction_limit_msg() -> String {
    format!("a fraction with more than {MAX_FRACTION_DIGITS} digits")
}

/// Refuse values beyond the size limits.
pub(crate) fn check_size(v: &BigRational) -> Result<(), CalcError> {
    let digits = |n: &BigInt| log2_abs(n) / BITS_PER_DIGIT;
    if v.is_integer() {
        if digits(v.numer()) > MAX_INTEGER_DIGITS as f64 {
            return Err(too_large(&int_limit_msg()));
        }
    } else if digits(v.numer()) + digits(v.denom()) > MAX_FRACTION_DIGITS as f64 {
        return Err(too_large(&fraction_limit_msg()));
    }
    Ok(())
}

impl Num {
    pub(crate) fn exact(v: BigRational) -> Result<Num, CalcError> {
        check_size(&v)?;
        Ok(Num { v, approx: false })
    }

    /// An approximation, rounded to the internal precision.
    pub(crate) fn approx(v: &BigRational) -> Result<Num, CalcError> {
        let v = round_to(v, INTERNAL_DIGITS)?;
        check_size(&v)?;
        Ok(Num { v, approx: true })
    }

    fn with(v: BigRational, approx: bool) -> Result<Num, CalcError> {
        if approx { Num::approx(&v) } else { Num::exact(v) }
    }

    pub(crate) fn int(n: i64) -> Num {
        Num { v: BigRational::from_integer(n.into()), approx: false }
    }

    pub(crate) fn constant_pi() -> Num {
        Num { v: parse_decimal(PI), approx: true }
    }

    pub(crate) fn constant_e() -> Num {
        Num { v: parse_decimal(E), approx: true }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.v.is_zero()
    }

    /// The exact integer value, if this is one.
    pub(crate) fn as_integer(&self) -> Option<&BigInt> {
        (!self.approx && self.v.is_integer()).then(|| self.v.numer())
    }
}

/// A short decimal string constant as an exact rational (falls back to 0, never hit).
fn parse_decimal(s: &str) -> BigRational {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let m: BigInt = format!("{int}{frac}").parse().unwrap_or_default();
    BigRational::new(m, pow10(frac.len() as u64))
}

/// An approximate sum this many orders of magnitude below its larger operand has lost
/// every reliable digit (approximations carry 60): it is cancellation noise and becomes an
/// approximate zero, so `sqrt(2)^2 - 2` is 0 and `sqrt(2)^2 = 2` is an identity.
const CANCELLATION_DIGITS: i64 = 45;

pub(crate) fn add(a: &Num, b: &Num) -> Result<Num, CalcError> {
    let approx = a.approx || b.approx;
    let sum = rational::add(&a.v, &b.v)?;
    if approx && !sum.is_zero() && !a.is_zero() && !b.is_zero() {
        let scale = floor_log10(&a.v).max(floor_log10(&b.v));
        if floor_log10(&sum) < scale - CANCELLATION_DIGITS {
            return Ok(Num { v: BigRational::zero(), approx: true });
        }
    }
    Num::with(sum, approx)
}

pub(crate) fn neg(a: &Num) -> Num {
    Num { v: -&a.v, approx: a.approx }
}

pub(crate) fn sub(a: &Num, b: &Num) -> Result<Num, CalcError> {
    add(a, &neg(b))
}

pub(crate) fn mul(a: &Num, b: &Num) -> Result<Num, CalcError> {
    if (a.is_zero() && !a.approx) || (b.is_zero() && !b.approx) {
        return Ok(Num::int(0));
    }
    Num::with(rational::mul(&a.v, &b.v)?, a.approx || b.approx)
}

pub(crate) fn div(a: &Num, b: &Num) -> Result<Num, CalcError> {
    Num::with(rational::div(&a.v, &b.v)?, a.approx || b.approx)
}

/// Floored remainder of integers: the sign follows the divisor (`-7 mod 3 = 2`).
pub(crate) fn modulo(a: &Num, b: &Num) -> Result<Num, CalcError> {
    let (Some(x), Some(y)) = (a.as_integer(), b.as_integer()) else {
        return Err(CalcError::Domain("mod needs integers".into()));
    };
    if y.is_zero() {
        return Err(CalcError::DivisionByZero);
    }
    let mut r = x % y;
    if !r.is_zero() && (r.is_negative() != y.is_negative()) {
        r += y;
    }
    Num::exact(BigRational::from_integer(r))
}

pub(crate) fn abs(a: &Num) -> Num {
    Num { v: a.v.abs(), approx: a.approx }
}

pub(crate) fn factorial(a: &Num) -> Result<Num, CalcError> {
    let n = a.as_integer().filter(|n| !n.is_negative()).ok_or_else(|| CalcError::Domain("factorial needs a non-negative integer".into()))?;
    let n = n.to_u32().filter(|n| *n <= MAX_FACTORIAL).ok_or_else(|| too_large(&format!("n! is limited to n ≤ {MAX_FACTORIAL}")))?;
    let mut acc = BigInt::one();
    for k in 2..=n {
        acc *= k;
    }
    Num::exact(BigRational::from_integer(acc))
}

/// Integer arguments for gcd/lcm, each limited in size (Euclid is quadratic).
fn integer_args<'a>(args: &'a [Num], name: &str) -> Result<Vec<&'a BigInt>, CalcError> {
    args.iter()
        .map(|a| {
            let n = a.as_integer().ok_or_else(|| CalcError::Domain(format!("{name} needs integers")))?;
            if log2_abs(n) / BITS_PER_DIGIT > MAX_FRACTION_DIGITS as f64 {
                return Err(too_large(&format!("{name} arguments are limited to {MAX_FRACTION_DIGITS} digits")));
            }
            Ok(n)
        })
        .collect()
}

pub(crate) fn gcd(args: &[Num]) -> Result<Num, CalcError> {
    let ints = integer_args(args, "gcd")?;
    let mut g = BigInt::zero();
    for n in ints {
        g = rational::gcd(&g, n)?;
    }
    Num::exact(BigRational::from_integer(g))
}

pub(crate) fn lcm(args: &[Num]) -> Result<Num, CalcError> {
    let ints = integer_args(args, "lcm")?;
    let mut l = BigInt::one();
    for n in ints {
        if n.is_zero() {
            return Ok(Num::int(0));
        }
        l = rational::lcm(&l, n)?;
        check_size(&BigRational::from_integer(l.clone()))?;
    }
    Num::exact(BigRational::from_integer(l))
}

/// Exact `n`-th root of a non-negative rational, when it is rational.
pub(crate) fn exact_root(x: &BigRational, n: u32) -> Option<BigRational> {
    if x.is_negative() || n == 0 {
        return None;
    }
    let (a, b) = (x.numer(), x.denom());
    let (ra, rb) = (a.nth_root(n), b.nth_root(n));
    (ra.pow(n) == *a && rb.pow(n) == *b).then(|| BigRational::new_raw(ra, rb))
}

/// `n`-th root of a positive rational to the internal precision (floor of the root of a
/// scaled integer: big-integer Newton iteration, no floating point).
pub(crate) fn approx_root(x: &BigRational, n: u32) -> Result<Num, CalcError> {
    if !x.is_positive() || n == 0 {
        return Ok(Num { v: BigRational::zero(), approx: true });
    }
    let e = floor_log10(x);
    let k = i64::from(INTERNAL_DIGITS) + 2 - e.div_euclid(i64::from(n));
    let nk = i64::from(n) * k;
    // floor(x·10^nk) by integer division (a rational division would run a big gcd).
    let (num, den) = if nk >= 0 { (x.numer() * pow10(nk.unsigned_abs()), x.denom().clone()) } else { (x.numer().clone(), x.denom() * pow10(nk.unsigned_abs())) };
    let root = (num / den).nth_root(n);
    let v = if k >= 0 { rational::ratio(root, pow10(k.unsigned_abs()))? } else { BigRational::from_integer(root * pow10(k.unsigned_abs())) };
    Num::approx(&v)
}

/// Real `n`-th root (`sqrt`, `cbrt`, `root`): odd roots of negatives are negative.
pub(crate) fn root(x: &Num, n: &Num) -> Result<Num, CalcError> {
    let n = n.as_integer().filter(|n| n.is_positive()).ok_or_else(|| CalcError::Domain("the root index must be a positive integer".into()))?;
    let n = n.to_u32().filter(|n| *n <= MAX_ROOT_INDEX).ok_or_else(|| too_large(&format!("root indices are limited to {MAX_ROOT_INDEX}")))?;
    if x.v.is_negative() {
        if n % 2 == 0 {
            return Err(CalcError::Domain(if n == 2 { "square root of a negative number".into() } else { "even root of a negative number".into() }));
        }
        return Ok(neg(&root_positive(&neg(x), n)?));
    }
    root_positive(x, n)
}

fn root_positive(x: &Num, n: u32) -> Result<Num, CalcError> {
    if !x.approx
        && let Some(r) = exact_root(&x.v, n)
    {
        return Num::exact(r);
    }
    approx_root(&x.v, n)
}

/// `base^exponent`: exact for integer exponents and for rational results of fractional
/// exponents; approximate otherwise.
pub(crate) fn pow(base: &Num, exponent: &Num) -> Result<Num, CalcError> {
    if exponent.approx {
        return Err(CalcError::Unsupported("irrational exponents are not supported".into()));
    }
    let e = &exponent.v;
    if e.is_zero() {
        return Ok(Num::int(1));
    }
    if base.is_zero() {
        if e.is_negative() {
            return Err(CalcError::Domain("0 to a negative power (0^-1) is undefined".into()));
        }
        return Ok(base.clone());
    }
    let (p, q) = (e.numer(), e.denom());
    if q.is_one() {
        return int_pow(base, p);
    }
    let q = q.to_u32().filter(|q| *q <= MAX_ROOT_INDEX).ok_or_else(|| too_large(&format!("the exponent {e} needs a root of index above {MAX_ROOT_INDEX}")))?;
    if base.v.is_negative() {
        let odd_exact = (q % 2 == 1 && !base.approx).then(|| exact_root(&-&base.v, q)).flatten();
        let Some(r) = odd_exact else {
            return Err(CalcError::Domain(
                "a negative number to a fractional power has no exact real value \
                 (use cbrt(x) or root(x, n) for real odd roots)"
                    .into(),
            ));
        };
        return int_pow(&Num::exact(-r)?, p);
    }
    int_pow(&root_positive(base, q)?, p)
}

/// `base^p` for an integer `p`, with the result size estimated first.
fn int_pow(base: &Num, p: &BigInt) -> Result<Num, CalcError> {
    if base.is_zero() {
        return if p.is_negative() { Err(CalcError::Domain("0 to a negative power (0^-1) is undefined".into())) } else { Ok(base.clone()) };
    }
    if !base.approx && base.v.abs().is_one() {
        let odd = (p % 2u32) != BigInt::zero();
        return Ok(if base.v.is_negative() && odd { Num::int(-1) } else { Num::int(1) });
    }
    let limit_bits = MAX_INTEGER_DIGITS as f64 * BITS_PER_DIGIT;
    let mag = p.abs().to_u32().filter(|m| f64::from(*m) <= limit_bits).ok_or_else(|| too_large(&int_limit_msg()))?;
    if base.approx {
        return approx_pow(base, mag, p.is_negative());
    }
    let (n, d) = (base.v.numer(), base.v.denom());
    let est_digits = f64::from(mag) * (log2_abs(n) + log2_abs(d)) / BITS_PER_DIGIT;
    let limit = if d.is_one() && !p.is_negative() { MAX_INTEGER_DIGITS } else { MAX_FRACTION_DIGITS };
    if est_digits > limit as f64 * 1.0001 + 1.0 {
        return Err(too_large(&if limit == MAX_INTEGER_DIGITS { int_limit_msg() } else { fraction_limit_msg() }));
    }
    // gcd(n, d) = 1 implies gcd(n^m, d^m) = 1: no reduction needed.
    let v = BigRational::new_raw(n.pow(mag), d.pow(mag));
    let v = if p.is_negative() { v.recip() } else { v };
    Num::exact(v)
}

/// Square-and-multiply on an approximation, re-rounding after every step.
fn approx_pow(base: &Num, mag: u32, invert: bool) -> Result<Num, CalcError> {
    let magnitude = (floor_log10(&base.v).abs() + 1) as f64;
    if f64::from(mag) * magnitude > MAX_INTEGER_DIGITS as f64 {
        return Err(too_large(&int_limit_msg()));
    }
    let mut acc = Num { v: BigRational::one(), approx: true };
    let mut sq = base.clone();
    let mut m = mag;
    while m > 0 {
        if m & 1 == 1 {
            acc = mul(&acc, &sq)?;
        }
        m >>= 1;
        if m > 0 {
            sq = mul(&sq, &sq)?;
        }
    }
    if invert { div(&Num::int(1), &acc) } else { Ok(acc) }
}
