//! The math agent's exact `calculator` tool.
//!
//! [`evaluate`] computes an arithmetic expression, or solves a one-variable linear or
//! quadratic equation, exactly: every number is a [`num_rational::BigRational`], so
//! `0.1 + 0.2` is exactly `3/10` and `2^100` has all of its 31 digits. Only genuinely
//! irrational results (`sqrt(2)`, `2^(1/2)`, `pi`) are approximate, and those are
//! computed with big-integer arithmetic (an integer n-th root of a scaled value), never
//! with `f64`. [`extract`] pulls the math out of a natural-language question.
//!
//! # Why a hand-written parser
//! The grammar is tiny (one precedence level per operator, postfix `!` and `%`, function
//! calls, one optional `=`), it must produce exact rationals and understand implicit
//! multiplication (`2x`, `3(4+5)`, `(1+2)(3+4)`, `2sqrt(9)`), and it must be able to
//! build polynomials for equations. No parser crate fits: expression crates such as
//! `meval` evaluate in `f64`, and a generic parser generator would be more code than the
//! recursive descent in `parse.rs` (with its tokeniser in `lex.rs`).
//!
//! # Grammar
//! ```text
//! input   := expr ('=' expr)?
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/' | 'mod') unary | implicit-operand)*
//! unary   := ('-' | '+') unary | power
//! power   := postfix (('^' | '**') unary)?          right-associative: 2^3^2 = 2^9
//! postfix := primary ('!' | '%' | '²' | '³')*
//! primary := number | constant | variable | name '(' expr (',' expr)* ')'
//!          | '(' expr ')' | '√' postfix
//! ```
//! `-2^2 = -4` (power binds tighter than unary minus), `2^-1 = 1/2`, `x%` is `x/100`
//! (so `200 + 10%` is `200.1`), `a mod b` is the floored remainder of integers (the sign
//! follows `b`: `-7 mod 3 = 2`). Implicit multiplication has the precedence of `*`
//! (`1/2x` is `(1/2)*x`); it never applies to two adjacent numbers (`2 3` is an error).
//! Numbers: `12`, `0.5`, `.5`, `6.02e23`, `1e-3`. Functions: `sqrt`, `cbrt`, `root(x, n)`,
//! `abs`, `gcd`, `lcm` (two or more integers). Constants `pi` and `e` (hard-coded to 70
//! digits, results marked approximate). `×`, `÷`, `−`, `·`, `√`, `²`, `³` and `π` are
//! accepted too. `0^0 = 1`. `e` is always the constant; an equation's unknown is any
//! other single letter (`x`, `y`, `t`…), and longer unknown names are parse errors.
//!
//! # Roots and fractional powers
//! `sqrt`, `cbrt`, `root` and `x^(p/q)` are exact when the result is rational
//! (`sqrt(9/4) = 3/2`, `27^(2/3) = 9`, `cbrt(-8) = -2`). `cbrt`/`root` with an odd index
//! give the real root of a negative number (`cbrt(-2) ≈ -1.2599…`), but `x^(p/q)` with a
//! negative `x` is a domain error unless the exact odd root exists (`(-8)^(1/3) = -2`).
//! Irrational exponents (`2^sqrt(2)`) are unsupported, and a fractional exponent's reduced
//! denominator must be at most 100 (`2^0.01` works, `2^0.123` = `2^(123/1000)` does not).
//! An approximate sum more than 45 orders of magnitude below its larger operand is
//! cancellation noise and becomes an approximate 0 (`sqrt(2)^2 - 2` → `"0"`, approximate).
//!
//! # Output formats
//! * Integer: `exact = "12"`, `decimal = None`.
//! * Fraction: `exact = "11/12"` (reduced, sign in front: `"-7/2"`), `decimal` = the value
//!   rounded half away from zero to 30 significant digits, followed by `…` when that is
//!   not the whole value (`"0.916666666666666666666666666667…"`, `"0.75"`). Values below
//!   `1e-7` or from `1e30` up use `e` notation (`2^-100` →
//!   `"7.88860905221011805411728565283e-31…"`).
//! * Approximate (irrational): `exact` = the value rounded half away from zero to 30
//!   significant digits with trailing zeros removed (`sqrt(2)` →
//!   `"1.41421356237309504880168872421"`), `decimal = None`, `approximate = true`.
//!   Internally approximations carry 60 significant digits.
//! * Equations: `"x = 4"`, `"x = 7/2"` (decimal `"x = 3.5"`), `"x = 2 or x = 3"`
//!   (ascending), `"x = 3"` for a double root; when a rational root is not an integer the
//!   decimal lists every root the same way (`"x = -2 or x = 0.5"`, `"y = 0.333…"`). Irrational roots of a rational quadratic
//!   are given exactly in surd form, ascending, as `"x = (5 - √13)/2 or x = (5 + √13)/2"`,
//!   `"x = -√2 or x = √2"`, `"x = 1 - 2√3 or x = 1 + 2√3"`, `"x = -√5/2 or x = √5/2"` (the
//!   radicand freed of square factors up to 10 000²), with
//!   `decimal = "x ≈ -1.41421356237309504880168872421 or x ≈ 1.41421356237309504880168872421"`
//!   and `approximate = false`. When a coefficient is itself approximate (`x = sqrt(2)`)
//!   the answer reads `"x ≈ 1.41421356237309504880168872421"` with `approximate = true`.
//!   Otherwise `"no real solution"`, `"every x is a solution"`, `"no solution"`.
//!
//! # Limits (denial of service)
//! Input ≤ 1000 characters, nesting ≤ 64 levels (and expression trees ≤ 100 deep),
//! integers ≤ 100 000 digits, fractions ≤ 20 000 digits (numerator and denominator
//! together; big-integer gcd is quadratic), `n!` for `n ≤ 5000`, root indices ≤ 100,
//! polynomial degree ≤ 16 while expanding. Sizes are estimated before computing powers,
//! and the remaining quadratic big-integer gcds share a per-evaluation work budget
//! (`rational.rs`), so one request costs well under a second.

mod algebra;
mod eval;
mod extract;
mod format;
mod lex;
mod num;
mod parse;
mod rational;
#[cfg(test)]
mod tests;

pub use extract::extract;

/// Longest accepted input, in characters.
pub(crate) const MAX_INPUT_CHARS: usize = 1000;
/// Deepest accepted nesting of parentheses, signs and powers while parsing.
pub(crate) const MAX_NESTING: usize = 64;
/// Deepest accepted expression tree (`+`/`*` runs are flat; this bounds `!!!…` and
/// nested calls, keeping evaluation recursion well inside a 2 MB thread stack).
pub(crate) const MAX_TREE_DEPTH: usize = 100;
/// Most decimal digits of an integer result.
pub(crate) const MAX_INTEGER_DIGITS: u64 = 100_000;
/// Most decimal digits of a fraction's numerator and denominator together.
pub(crate) const MAX_FRACTION_DIGITS: u64 = 20_000;
/// Largest accepted `n` in `n!`.
pub(crate) const MAX_FACTORIAL: u32 = 5000;
/// Largest accepted root index (`root(x, n)`, the `q` in `x^(p/q)`).
pub(crate) const MAX_ROOT_INDEX: u32 = 100;
/// Highest polynomial degree kept while expanding an equation.
pub(crate) const MAX_POLY_DEGREE: usize = 16;
/// Significant digits shown in decimal renderings.
pub(crate) const SHOWN_DIGITS: u32 = 30;
/// Significant digits carried by approximate values.
pub(crate) const INTERNAL_DIGITS: u32 = 60;

/// The calculator's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// The input as understood, normalised (e.g. "3/4 + 1/6", "2*x + 3 = 11").
    pub expression: String,
    /// The exact result: an integer "12", a reduced fraction "11/12", "-7/2", a surd
    /// form when exact roots are irrational for equations ("x = (5 - √13)/2 or
    /// x = (5 + √13)/2"), "x = 4", "x = 2 or x = 3", or for approximate results the
    /// decimal itself.
    pub exact: String,
    /// A decimal rendering when it differs from `exact` (e.g. "0.75" for 3/4), up to 30
    /// significant digits, marked with a trailing "…" when it's truncated
    /// (non-terminating), None when `exact` is an integer.
    pub decimal: Option<String>,
    /// True when the result could not be exact (irrational: sqrt(2), 2^(1/2)); then
    /// `exact` holds the decimal to 30 significant digits.
    pub approximate: bool,
}

/// Why the calculator could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("cannot parse the expression: {0}")]
    Parse(String),
    #[error("division by zero")]
    DivisionByZero,
    #[error("{0}")]
    Domain(String),
    #[error("result too large: {0}")]
    TooLarge(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The result part of an [`Evaluation`], before the normalised expression is attached.
pub(crate) struct Answer {
    pub(crate) exact: String,
    pub(crate) decimal: Option<String>,
    pub(crate) approximate: bool,
}

/// Evaluate an expression or solve a one-variable equation (linear or quadratic).
pub fn evaluate(input: &str) -> Result<Evaluation, CalcError> {
    if input.chars().count() > MAX_INPUT_CHARS {
        return Err(CalcError::TooLarge(format!("the input is longer than {MAX_INPUT_CHARS} characters")));
    }
    rational::reset_budget();
    let parsed = parse::parse(input)?;
    let variables = parsed.variables();
    let expression = parsed.normalized();
    let answer = match &parsed.rhs {
        None => {
            if let Some(name) = variables.iter().next() {
                return Err(CalcError::Parse(format!("unknown name '{name}' (a variable needs an equation with '=')")));
            }
            let value = eval::eval_constant(&parsed.lhs)?;
            format::value_answer(&value)
        }
        Some(rhs) => {
            if variables.len() > 1 {
                let names: Vec<&str> = variables.iter().map(String::as_str).collect();
                return Err(CalcError::Unsupported(format!("equations with more than one unknown ({}) are not supported", names.join(", "))));
            }
            let var = variables.iter().next().map_or("x", String::as_str);
            algebra::solve(&parsed.lhs, rhs, var)?
        }
    };
    Ok(Evaluation { expression, exact: answer.exact, decimal: answer.decimal, approximate: answer.approximate })
}
