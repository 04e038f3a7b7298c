//! Recursive-descent parser (see the grammar in the module root) and the printer that
//! produces the normalised expression.

use std::collections::BTreeSet;

use num_rational::BigRational;

use super::lex::{Tok, lex};
use super::{CalcError, MAX_NESTING, MAX_TREE_DEPTH};

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

/// Supported functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Sqrt,
    Cbrt,
    Root,
    Abs,
    Gcd,
    Lcm,
}

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Sqrt => "sqrt",
            Func::Cbrt => "cbrt",
            Func::Root => "root",
            Func::Abs => "abs",
            Func::Gcd => "gcd",
            Func::Lcm => "lcm",
        }
    }

    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sqrt" => Func::Sqrt,
            "cbrt" => Func::Cbrt,
            "root" => Func::Root,
            "abs" => Func::Abs,
            "gcd" => Func::Gcd,
            "lcm" => Func::Lcm,
            _ => return None,
        })
    }
}

/// Built-in constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Constant {
    Pi,
    E,
}

/// Functions people ask for that the exact calculator does not offer.
const UNSUPPORTED_FUNCTIONS: &[&str] = &[
    "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "log", "ln", "lg", "exp", "floor", "ceil", "round",
    "min", "max",
];

/// Expression tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Num {
        text: String,
        value: BigRational,
    },
    Const(Constant),
    Var(String),
    Neg(Box<Expr>),
    /// `a ^ b` (the only binary operator that nests: it is right-associative).
    Bin(Op, Box<Expr>, Box<Expr>),
    /// A left-associative run of one precedence level: `a + b - c`, `a * b / c mod d`.
    /// Kept flat so that long sums need no deep recursion.
    Chain(Box<Expr>, Vec<(Op, Expr)>),
    Factorial(Box<Expr>),
    Percent(Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// A parsed input: an expression, or an equation when `rhs` is present.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) lhs: Expr,
    pub(crate) rhs: Option<Expr>,
}

impl Parsed {
    /// The variable names used, sorted.
    pub(crate) fn variables(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        collect_vars(&self.lhs, &mut out);
        if let Some(rhs) = &self.rhs {
            collect_vars(rhs, &mut out);
        }
        out
    }

    /// The normalised text: `2x+3=11` → `2*x + 3 = 11`.
    pub(crate) fn normalized(&self) -> String {
        match &self.rhs {
            None => show(&self.lhs),
            Some(rhs) => format!("{} = {}", show(&self.lhs), show(rhs)),
        }
    }
}

fn collect_vars(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Var(name) => {
            out.insert(name.clone());
        }
        Expr::Num { .. } | Expr::Const(_) => {}
        Expr::Neg(a) | Expr::Factorial(a) | Expr::Percent(a) => collect_vars(a, out),
        Expr::Bin(_, a, b) => {
            collect_vars(a, out);
            collect_vars(b, out);
        }
        Expr::Chain(first, rest) => {
            collect_vars(first, out);
            rest.iter().for_each(|(_, e)| collect_vars(e, out));
        }
        Expr::Call(_, args) => args.iter().for_each(|a| collect_vars(a, out)),
    }
}

fn tree_depth(e: &Expr) -> usize {
    1 + match e {
        Expr::Num { .. } | Expr::Const(_) | Expr::Var(_) => 0,
        Expr::Neg(a) | Expr::Factorial(a) | Expr::Percent(a) => tree_depth(a),
        Expr::Bin(_, a, b) => tree_depth(a).max(tree_depth(b)),
        Expr::Chain(first, rest) => rest.iter().map(|(_, e)| tree_depth(e)).fold(tree_depth(first), usize::max),
        Expr::Call(_, args) => args.iter().map(tree_depth).max().unwrap_or(0),
    }
}

/// Parse an expression or an equation.
pub(crate) fn parse(input: &str) -> Result<Parsed, CalcError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(CalcError::Parse("empty expression".into()));
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let lhs = p.expr()?;
    let rhs = if p.eat(&Tok::Eq) {
        if p.peek().is_none() {
            return Err(CalcError::Parse("nothing after '='".into()));
        }
        Some(p.expr()?)
    } else {
        None
    };
    if let Some(tok) = p.peek() {
        return Err(CalcError::Parse(match tok {
            Tok::RParen => "unbalanced ')'".to_string(),
            Tok::Eq => "only one '=' is allowed".to_string(),
            Tok::Num { text, .. } => {
                format!("unexpected number '{text}' (write an operator between numbers)")
            }
            other => format!("unexpected {}", other.describe()),
        }));
    }
    let depth = tree_depth(&lhs).max(rhs.as_ref().map_or(0, tree_depth));
    if depth > MAX_TREE_DEPTH {
        return Err(CalcError::Parse("the expression is nested too deeply".into()));
    }
    Ok(Parsed { lhs, rhs })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).cloned();
        if tok.is_some() {
            self.pos += 1;
        }
        tok
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), CalcError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(CalcError::Parse("the expression is nested too deeply".into()));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expr(&mut self) -> Result<Expr, CalcError> {
        self.enter()?;
        let first = self.term()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => Op::Add,
                Some(Tok::Minus) => Op::Sub,
                _ => break,
            };
            self.pos += 1;
            rest.push((op, self.term()?));
        }
        self.leave();
        Ok(chain(first, rest))
    }

    fn term(&mut self) -> Result<Expr, CalcError> {
        let first = self.unary()?;
        let mut rest = Vec::new();
        loop {
            let (op, explicit) = match self.peek() {
                Some(Tok::Star) => (Op::Mul, true),
                Some(Tok::Slash) => (Op::Div, true),
                Some(Tok::Ident(name)) if name.eq_ignore_ascii_case("mod") => (Op::Mod, true),
                // Implicit multiplication: 2x, 3(4+5), (1+2)(3+4), 2sqrt(9), 2√3.
                Some(Tok::Ident(_) | Tok::LParen | Tok::Radical) => (Op::Mul, false),
                _ => break,
            };
            let rhs = if explicit {
                self.pos += 1;
                self.unary()?
            } else {
                self.power()?
            };
            rest.push((op, rhs));
        }
        Ok(chain(first, rest))
    }

    fn unary(&mut self) -> Result<Expr, CalcError> {
        self.enter()?;
        let e = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                Expr::Neg(Box::new(self.unary()?))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary()?
            }
            _ => self.power()?,
        };
        self.leave();
        Ok(e)
    }

    fn power(&mut self) -> Result<Expr, CalcError> {
        let base = self.postfix()?;
        if self.eat(&Tok::Caret) {
            let exponent = self.unary()?;
            return Ok(Expr::Bin(Op::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, CalcError> {
        let mut e = self.primary()?;
        loop {
            e = match self.peek() {
                Some(Tok::Bang) => Expr::Factorial(Box::new(e)),
                Some(Tok::Percent) => Expr::Percent(Box::new(e)),
                Some(Tok::Square) => Expr::Bin(Op::Pow, Box::new(e), Box::new(small_num(2))),
                Some(Tok::Cube) => Expr::Bin(Op::Pow, Box::new(e), Box::new(small_num(3))),
                _ => break,
            };
            self.pos += 1;
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, CalcError> {
        match self.next() {
            Some(Tok::Num { text, value }) => Ok(Expr::Num { text, value }),
            Some(Tok::LParen) => {
                let e = self.expr()?;
                if !self.eat(&Tok::RParen) {
                    return Err(CalcError::Parse("missing ')'".into()));
                }
                Ok(e)
            }
            Some(Tok::Radical) => {
                self.enter()?;
                let arg = self.postfix()?;
                self.leave();
                Ok(Expr::Call(Func::Sqrt, vec![arg]))
            }
            Some(Tok::Ident(name)) => self.named(name),
            Some(other) => Err(CalcError::Parse(format!("unexpected {}", other.describe()))),
            None => Err(CalcError::Parse("unexpected end of the expression".into())),
        }
    }

    /// A name: constant, function call, or single-letter variable.
    fn named(&mut self, name: String) -> Result<Expr, CalcError> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "pi" => return Ok(Expr::Const(Constant::Pi)),
            "e" => return Ok(Expr::Const(Constant::E)),
            "mod" => return Err(CalcError::Parse("'mod' needs a number on each side".into())),
            _ => {}
        }
        let followed_by_paren = self.peek() == Some(&Tok::LParen);
        if let Some(func) = Func::from_name(&lower) {
            if !followed_by_paren {
                return Err(CalcError::Parse(format!("write {lower}(...) with parentheses")));
            }
            self.pos += 1;
            let args = self.arguments()?;
            let wanted = match func {
                Func::Sqrt | Func::Cbrt | Func::Abs => Some(1),
                Func::Root => Some(2),
                Func::Gcd | Func::Lcm => None,
            };
            match wanted {
                Some(n) if args.len() != n => {
                    let plural = if n == 1 { "" } else { "s" };
                    return Err(CalcError::Parse(format!("{lower} takes {n} argument{plural}")));
                }
                None if args.len() < 2 => {
                    return Err(CalcError::Parse(format!("{lower} takes two or more integers")));
                }
                _ => {}
            }
            return Ok(Expr::Call(func, args));
        }
        if followed_by_paren && UNSUPPORTED_FUNCTIONS.contains(&lower.as_str()) {
            return Err(CalcError::Unsupported(format!("the function '{lower}' is not supported (available: sqrt, cbrt, root, abs, gcd, lcm)")));
        }
        if name.chars().count() == 1 {
            return Ok(Expr::Var(name));
        }
        Err(CalcError::Parse(format!("unknown name '{name}'")))
    }

    /// Comma-separated arguments after an opening parenthesis, through the closing one.
    fn arguments(&mut self) -> Result<Vec<Expr>, CalcError> {
        let mut args = vec![self.expr()?];
        while self.eat(&Tok::Comma) {
            args.push(self.expr()?);
        }
        if !self.eat(&Tok::RParen) {
            return Err(CalcError::Parse("missing ')'".into()));
        }
        Ok(args)
    }
}

fn chain(first: Expr, rest: Vec<(Op, Expr)>) -> Expr {
    if rest.is_empty() { first } else { Expr::Chain(Box::new(first), rest) }
}

fn small_num(n: u32) -> Expr {
    Expr::Num { text: n.to_string(), value: BigRational::from_integer(n.into()) }
}

/// Binding strength used by the printer: higher binds tighter.
fn prec(e: &Expr) -> u8 {
    match e {
        Expr::Chain(_, rest) => match rest.first() {
            Some((Op::Add | Op::Sub, _)) => 1,
            _ => 2,
        },
        Expr::Bin(Op::Add | Op::Sub, ..) => 1,
        Expr::Bin(Op::Mul | Op::Div | Op::Mod, ..) => 2,
        Expr::Neg(_) => 3,
        Expr::Bin(Op::Pow, ..) => 4,
        Expr::Factorial(_) | Expr::Percent(_) => 5,
        Expr::Num { .. } | Expr::Const(_) | Expr::Var(_) | Expr::Call(..) => 6,
    }
}

/// `e` printed, in parentheses when it binds looser than `min`.
fn show_at(e: &Expr, min: u8) -> String {
    let s = show(e);
    if prec(e) < min { format!("({s})") } else { s }
}

/// Print an expression with the fewest parentheses that keep its meaning.
pub(crate) fn show(e: &Expr) -> String {
    match e {
        Expr::Num { text, .. } => text.clone(),
        Expr::Const(Constant::Pi) => "pi".into(),
        Expr::Const(Constant::E) => "e".into(),
        Expr::Var(name) => name.clone(),
        Expr::Neg(a) => format!("-{}", show_at(a, 3)),
        Expr::Bin(op, a, b) => match op {
            Op::Add => format!("{} + {}", show_at(a, 1), show_at(b, 2)),
            Op::Sub => format!("{} - {}", show_at(a, 1), show_at(b, 2)),
            Op::Mul => format!("{}*{}", show_at(a, 2), show_at(b, 3)),
            Op::Div => format!("{}/{}", show_at(a, 2), show_at(b, 3)),
            Op::Mod => format!("{} mod {}", show_at(a, 2), show_at(b, 3)),
            Op::Pow => format!("{}^{}", show_at(a, 5), show_at(b, 3)),
        },
        Expr::Chain(first, rest) => {
            let level = prec(e);
            let mut out = show_at(first, level);
            for (op, operand) in rest {
                let symbol = match op {
                    Op::Add => " + ",
                    Op::Sub => " - ",
                    Op::Mul => "*",
                    Op::Div => "/",
                    Op::Mod => " mod ",
                    Op::Pow => "^",
                };
                out.push_str(symbol);
                out.push_str(&show_at(operand, level + 1));
            }
            out
        }
        Expr::Factorial(a) => format!("{}!", show_at(a, 5)),
        Expr::Percent(a) => format!("{}%", show_at(a, 5)),
        Expr::Call(func, args) => {
            let args: Vec<String> = args.iter().map(show).collect();
            format!("{}({})", func.name(), args.join(", "))
        }
    }
}
