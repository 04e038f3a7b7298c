//! Tokeniser: turns the input into numbers (already exact rationals), names and symbols.

use num_bigint::BigInt;
use num_rational::BigRational;

use super::{CalcError, MAX_INTEGER_DIGITS};

/// One token of the calculator grammar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A number literal: its text (for the normalised expression) and its exact value.
    Num {
        text: String,
        value: BigRational,
    },
    /// A run of ASCII letters: a function, constant, `mod`, or a variable.
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Bang,
    Percent,
    LParen,
    RParen,
    Comma,
    Eq,
    /// `√`, a prefix square root.
    Radical,
    /// `²`
    Square,
    /// `³`
    Cube,
}

impl Tok {
    /// How the token is shown in error messages.
    pub(crate) fn describe(&self) -> String {
        let s = match self {
            Tok::Num { text, .. } => return format!("'{text}'"),
            Tok::Ident(name) => return format!("'{name}'"),
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Caret => "^",
            Tok::Bang => "!",
            Tok::Percent => "%",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Eq => "=",
            Tok::Radical => "√",
            Tok::Square => "²",
            Tok::Cube => "³",
        };
        format!("'{s}'")
    }
}

/// Split `input` into tokens.
pub(crate) fn lex(input: &str) -> Result<Vec<Tok>, CalcError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '0'..='9' | '.' => {
                let (tok, end) = lex_number(&chars, i)?;
                out.push(tok);
                i = end;
                continue;
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while chars.get(i).is_some_and(char::is_ascii_alphabetic) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
                continue;
            }
            '*' if next == Some('*') => {
                i += 1;
                Tok::Caret
            }
            '!' if next == Some('=') => {
                return Err(CalcError::Parse("'!=' is not supported".into()));
            }
            '+' => Tok::Plus,
            '-' | '−' | '–' => Tok::Minus,
            '*' | '×' | '·' | '⋅' => Tok::Star,
            '/' | '÷' => Tok::Slash,
            '^' => Tok::Caret,
            '!' => Tok::Bang,
            '%' => Tok::Percent,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '=' => Tok::Eq,
            '√' => Tok::Radical,
            '²' => Tok::Square,
            '³' => Tok::Cube,
            'π' => Tok::Ident("pi".into()),
            other => return Err(CalcError::Parse(format!("unexpected character '{other}'"))),
        };
        out.push(tok);
        i += 1;
    }
    Ok(out)
}

/// Read a number starting at `start`: `12`, `0.5`, `.5`, `5.`, `6.02e23`, `1E-3`.
/// Returns the token and the index just past it.
fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize), CalcError> {
    let mut i = start;
    let mut int_digits = String::new();
    let mut frac_digits = String::new();
    while let Some(c) = chars.get(i).filter(|c| c.is_ascii_digit()) {
        int_digits.push(*c);
        i += 1;
    }
    if chars.get(i) == Some(&'.') {
        i += 1;
        while let Some(c) = chars.get(i).filter(|c| c.is_ascii_digit()) {
            frac_digits.push(*c);
            i += 1;
        }
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(CalcError::Parse("a '.' without digits".into()));
    }
    let mut text: String = chars[start..i].iter().collect();
    let mut exponent: i64 = 0;
    // An exponent only when 'e' is followed by digits (optionally signed): `2e` is 2·e.
    if matches!(chars.get(i), Some('e' | 'E')) {
        let (sign, digits_at) = match chars.get(i + 1) {
            Some('+') => (1, i + 2),
            Some('-') => (-1, i + 2),
            _ => (1, i + 1),
        };
        if chars.get(digits_at).is_some_and(char::is_ascii_digit) {
            let mut j = digits_at;
            let mut exp_digits = String::new();
            while let Some(c) = chars.get(j).filter(|c| c.is_ascii_digit()) {
                exp_digits.push(*c);
                j += 1;
            }
            let limit = i64::try_from(MAX_INTEGER_DIGITS).unwrap_or(i64::MAX);
            exponent = match exp_digits.parse::<i64>() {
                Ok(e) if e <= limit => sign * e,
                _ => {
                    return Err(CalcError::TooLarge(format!("the exponent in '{}' is too large", chars[start..j].iter().collect::<String>())));
                }
            };
            text = chars[start..j].iter().collect::<String>().replace('E', "e");
            i = j;
        }
    }
    let mantissa: BigInt = format!("{int_digits}{frac_digits}").parse().map_err(|_| CalcError::Parse(format!("malformed number '{text}'")))?;
    let frac_len = i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
    let scale = exponent - frac_len;
    let ten_pow = |k: i64| -> BigInt { BigInt::from(10u32).pow(u32::try_from(k).unwrap_or(0)) };
    let value = if scale >= 0 { BigRational::from_integer(mantissa * ten_pow(scale)) } else { super::rational::ratio(mantissa, ten_pow(-scale))? };
    Ok((Tok::Num { text, value }, i))
}
