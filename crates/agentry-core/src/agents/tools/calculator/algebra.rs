//! Polynomials with rational (or approximate) coefficients, and the solver for linear
//! and quadratic equations, including the exact surd form of irrational roots.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};

use super::eval::eval;
use super::format::{decimal_approx, decimal_exact};
use super::num::{self, Num};
use super::parse::Expr;
use super::rational;
use super::{Answer, CalcError, MAX_POLY_DEGREE};

/// Largest factor `f` tried when pulling `f²` out of a radicand.
const SQUARE_TRIAL_LIMIT: u32 = 10_000;

/// Coefficients, lowest power first; never empty, no zero leading coefficient beyond
/// the constant term.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Poly(Vec<Num>);

fn degree_error(degree: usize) -> CalcError {
    CalcError::Unsupported(format!("equations of degree {degree} are not supported"))
}

impl Poly {
    fn trimmed(mut coeffs: Vec<Num>) -> Poly {
        while coeffs.len() > 1 && coeffs.last().is_some_and(Num::is_zero) {
            coeffs.pop();
        }
        if coeffs.is_empty() {
            coeffs.push(Num::int(0));
        }
        Poly(coeffs)
    }

    pub(crate) fn of(n: Num) -> Poly {
        Poly(vec![n])
    }

    pub(crate) fn variable() -> Poly {
        Poly(vec![Num::int(0), Num::int(1)])
    }

    /// The value when the polynomial does not depend on the variable.
    pub(crate) fn constant(&self) -> Option<Num> {
        match self.0.as_slice() {
            [c] => Some(c.clone()),
            _ => None,
        }
    }

    pub(crate) fn neg(&self) -> Poly {
        Poly(self.0.iter().map(num::neg).collect())
    }

    pub(crate) fn add(&self, other: &Poly) -> Result<Poly, CalcError> {
        let len = self.0.len().max(other.0.len());
        let zero = Num::int(0);
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            let a = self.0.get(i).unwrap_or(&zero);
            let b = other.0.get(i).unwrap_or(&zero);
            out.push(num::add(a, b)?);
        }
        Ok(Poly::trimmed(out))
    }

    pub(crate) fn mul(&self, other: &Poly) -> Result<Poly, CalcError> {
        let degree = self.0.len() + other.0.len() - 2;
        if degree > MAX_POLY_DEGREE {
            return Err(degree_error(degree));
        }
        let mut out = vec![Num::int(0); degree + 1];
        for (i, a) in self.0.iter().enumerate() {
            for (j, b) in other.0.iter().enumerate() {
                if let Some(slot) = out.get_mut(i + j) {
                    *slot = num::add(slot, &num::mul(a, b)?)?;
                }
            }
        }
        Ok(Poly::trimmed(out))
    }

    pub(crate) fn div_const(&self, d: &Num) -> Result<Poly, CalcError> {
        let coeffs: Result<Vec<Num>, CalcError> = self.0.iter().map(|c| num::div(c, d)).collect();
        Ok(Poly::trimmed(coeffs?))
    }

    pub(crate) fn pow(&self, n: u32) -> Result<Poly, CalcError> {
        let degree = (self.0.len() - 1).saturating_mul(n as usize);
        if degree > MAX_POLY_DEGREE {
            return Err(degree_error(degree));
        }
        let mut acc = Poly::of(Num::int(1));
        for _ in 0..n {
            acc = acc.mul(self)?;
        }
        Ok(acc)
    }
}

fn answer(exact: String) -> Answer {
    Answer { exact, decimal: None, approximate: false }
}

/// Solve `lhs = rhs` for `var`.
pub(crate) fn solve(lhs: &Expr, rhs: &Expr, var: &str) -> Result<Answer, CalcError> {
    let p = eval(lhs, Some(var))?.add(&eval(rhs, Some(var))?.neg())?;
    match p.0.as_slice() {
        [c] if c.is_zero() => Ok(Answer { approximate: c.approx, ..answer(format!("every {var} is a solution")) }),
        [c] => Ok(Answer { approximate: c.approx, ..answer("no solution".into()) }),
        [c0, c1] => {
            let root = num::div(&num::neg(c0), c1)?;
            Ok(roots_answer(&[root], var))
        }
        [c, b, a] => quadratic(a, b, c, var),
        coeffs => Err(degree_error(coeffs.len() - 1)),
    }
}

/// "x = 2 or x = 3" for exact roots (decimal when one is not an integer), or
/// "x ≈ 1.414… or …" when any root is approximate.
fn roots_answer(roots: &[Num], var: &str) -> Answer {
    if roots.iter().any(|r| r.approx) {
        let exact: Vec<String> = roots.iter().map(|r| format!("{var} ≈ {}", decimal_approx(&r.v))).collect();
        return Answer { exact: exact.join(" or "), decimal: None, approximate: true };
    }
    let exact: Vec<String> = roots.iter().map(|r| format!("{var} = {}", r.v)).collect();
    let decimal = roots.iter().any(|r| !r.v.is_integer()).then(|| {
        let parts: Vec<String> = roots.iter().map(|r| if r.v.is_integer() { format!("{var} = {}", r.v) } else { format!("{var} = {}", decimal_exact(&r.v)) }).collect();
        parts.join(" or ")
    });
    Answer { exact: exact.join(" or "), decimal, approximate: false }
}

fn quadratic(a: &Num, b: &Num, c: &Num, var: &str) -> Result<Answer, CalcError> {
    let approximate = a.approx || b.approx || c.approx;
    let four_ac = num::mul(&Num::int(4), &num::mul(a, c)?)?;
    let disc = num::sub(&num::mul(b, b)?, &four_ac)?;
    let two_a = num::mul(&Num::int(2), a)?;
    if disc.v.is_negative() {
        return Ok(Answer { exact: "no real solution".into(), decimal: None, approximate });
    }
    if disc.is_zero() {
        let root = num::div(&num::neg(b), &two_a)?;
        return Ok(roots_answer(&[root], var));
    }
    if !approximate && let Some(s) = num::exact_root(&disc.v, 2) {
        let s = Num::exact(s)?;
        let mut roots = vec![num::div(&num::sub(&num::neg(b), &s)?, &two_a)?, num::div(&num::add(&num::neg(b), &s)?, &two_a)?];
        roots.sort_by(|x, y| x.v.cmp(&y.v));
        return Ok(roots_answer(&roots, var));
    }
    let sq = num::root(&disc, &Num::int(2))?;
    let decimals = approx_roots(a, b, c, &sq)?;
    if approximate {
        return Ok(roots_answer(&decimals, var));
    }
    let exact = surd_form(&a.v, &b.v, &disc.v, var)?;
    let decimal: Vec<String> = decimals.iter().map(|r| format!("{var} ≈ {}", decimal_approx(&r.v))).collect();
    Ok(Answer { exact, decimal: Some(decimal.join(" or ")), approximate: false })
}

/// Both roots from an approximate √disc, ascending, without cancellation:
/// q = -(b + sign(b)·√disc)/2, roots q/a and c/q.
fn approx_roots(a: &Num, b: &Num, c: &Num, sq: &Num) -> Result<Vec<Num>, CalcError> {
    let mut roots = if b.is_zero() {
        let r = num::div(sq, &num::mul(&Num::int(2), a)?)?;
        vec![num::neg(&r), r]
    } else {
        let signed = if b.v.is_negative() { num::neg(sq) } else { sq.clone() };
        let q = num::div(&num::neg(&num::add(b, &signed)?), &Num::int(2))?;
        vec![num::div(&q, a)?, num::div(c, &q)?]
    };
    roots.sort_by(|x, y| x.v.cmp(&y.v));
    Ok(roots)
}

/// `n = s²·m` with square factors up to [`SQUARE_TRIAL_LIMIT`]² pulled out.
fn split_square(n: &BigInt) -> (BigInt, BigInt) {
    let mut m = n.clone();
    let mut s = BigInt::one();
    for f in 2..=SQUARE_TRIAL_LIMIT {
        let f2 = BigInt::from(f) * f;
        if f2 > m {
            break;
        }
        while (&m % &f2).is_zero() {
            m /= &f2;
            s *= f;
        }
    }
    let r = m.sqrt();
    if &r * &r == m {
        s *= r;
        m = BigInt::one();
    }
    (s, m)
}

/// Exact roots `(-b ± √disc)/(2a)` of a rational quadratic with irrational roots, as
/// `P ± C√m` over a common denominator, ascending:
/// "x = (5 - √13)/2 or x = (5 + √13)/2", "x = -√2 or x = √2", "x = 1 - 2√3 or x = 1 + 2√3".
fn surd_form(a: &BigRational, b: &BigRational, disc: &BigRational, var: &str) -> Result<String, CalcError> {
    // √(n/d) = √(n·d)/d = s√m/d
    let (s, m) = split_square(&(disc.numer() * disc.denom()));
    let two_a = rational::mul(a, &BigRational::from_integer(2.into()))?;
    let p = rational::div(&-b, &two_a)?;
    let coeff = rational::div(&rational::ratio(s, disc.denom().clone())?, &two_a.abs())?;
    let l = rational::lcm(p.denom(), coeff.denom())?;
    let p_int = p.numer() * (&l / p.denom());
    let c_int = coeff.numer() * (&l / coeff.denom());
    let term = if c_int.is_one() { format!("√{m}") } else { format!("{c_int}√{m}") };
    let (low, high) = match (l.is_one(), p_int.is_zero()) {
        (true, true) => (format!("-{term}"), term),
        (true, false) => (format!("{p_int} - {term}"), format!("{p_int} + {term}")),
        (false, true) => (format!("-{term}/{l}"), format!("{term}/{l}")),
        (false, false) => (format!("({p_int} - {term})/{l}"), format!("({p_int} + {term})/{l}")),
    };
    Ok(format!("{var} = {low} or {var} = {high}"))
}
