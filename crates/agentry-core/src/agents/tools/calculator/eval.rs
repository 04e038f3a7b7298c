//! Evaluation of the expression tree. Every node evaluates to a polynomial in the
//! equation's variable (a constant polynomial for plain expressions), so expressions and
//! equations share one code path.

use super::CalcError;
use super::algebra::Poly;
use super::num::{self, Num};
use super::parse::{Constant, Expr, Func, Op};

/// Evaluate an expression without variables.
pub(crate) fn eval_constant(e: &Expr) -> Result<Num, CalcError> {
    let p = eval(e, None)?;
    p.constant().ok_or_else(|| CalcError::Parse("the expression contains an unknown name".into()))
}

/// Evaluate `e` as a polynomial in `var`.
pub(crate) fn eval(e: &Expr, var: Option<&str>) -> Result<Poly, CalcError> {
    match e {
        Expr::Num { value, .. } => Ok(Poly::of(Num::exact(value.clone())?)),
        Expr::Const(Constant::Pi) => Ok(Poly::of(Num::constant_pi())),
        Expr::Const(Constant::E) => Ok(Poly::of(Num::constant_e())),
        Expr::Var(name) => {
            if var == Some(name.as_str()) {
                Ok(Poly::variable())
            } else {
                Err(CalcError::Parse(format!("unknown name '{name}'")))
            }
        }
        Expr::Neg(a) => Ok(eval(a, var)?.neg()),
        Expr::Percent(a) => eval(a, var)?.div_const(&Num::int(100)),
        Expr::Factorial(a) => {
            let x = constant_operand(eval(a, var)?, var, "factorials")?;
            Ok(Poly::of(num::factorial(&x)?))
        }
        Expr::Bin(op, a, b) => binary(*op, eval(a, var)?, eval(b, var)?, var),
        Expr::Chain(first, rest) => {
            let mut acc = eval(first, var)?;
            for (op, operand) in rest {
                acc = binary(*op, acc, eval(operand, var)?, var)?;
            }
            Ok(acc)
        }
        Expr::Call(func, args) => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(constant_operand(eval(arg, var)?, var, "functions")?);
            }
            call(*func, &values).map(Poly::of)
        }
    }
}

/// The constant value of `p`, or Unsupported when it depends on the variable.
fn constant_operand(p: Poly, var: Option<&str>, what: &str) -> Result<Num, CalcError> {
    p.constant().ok_or_else(|| CalcError::Unsupported(format!("{what} of an expression containing {} are not supported", var.unwrap_or("a variable"))))
}

fn binary(op: Op, a: Poly, b: Poly, var: Option<&str>) -> Result<Poly, CalcError> {
    let name = var.unwrap_or("the variable");
    match op {
        Op::Add => a.add(&b),
        Op::Sub => a.add(&b.neg()),
        Op::Mul => a.mul(&b),
        Op::Div => match b.constant() {
            Some(d) => a.div_const(&d),
            None => Err(CalcError::Unsupported(format!("division by an expression containing {name} is not supported"))),
        },
        Op::Mod => {
            let x = constant_operand(a, var, "remainders")?;
            let y = constant_operand(b, var, "remainders")?;
            Ok(Poly::of(num::modulo(&x, &y)?))
        }
        Op::Pow => {
            let Some(exponent) = b.constant() else {
                return Err(CalcError::Unsupported(format!("exponents containing {name} are not supported")));
            };
            if let Some(base) = a.constant() {
                return Ok(Poly::of(num::pow(&base, &exponent)?));
            }
            let n = exponent
                .as_integer()
                .and_then(num_traits::ToPrimitive::to_u32)
                .ok_or_else(|| CalcError::Unsupported(format!("only whole non-negative powers of {name} are supported")))?;
            a.pow(n)
        }
    }
}

fn call(func: Func, args: &[Num]) -> Result<Num, CalcError> {
    let arg = |i: usize| args.get(i).ok_or_else(|| CalcError::Parse("missing function argument".into()));
    match func {
        Func::Sqrt => num::root(arg(0)?, &Num::int(2)),
        Func::Cbrt => num::root(arg(0)?, &Num::int(3)),
        Func::Root => num::root(arg(0)?, arg(1)?),
        Func::Abs => Ok(num::abs(arg(0)?)),
        Func::Gcd => num::gcd(args),
        Func::Lcm => num::lcm(args),
    }
}
