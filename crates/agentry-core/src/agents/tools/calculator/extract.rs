//! Pulling the math out of a natural-language question, conservatively: a false positive
//! routes a chat question to the math agent, so the candidate must parse.

use super::parse::{Expr, parse};
use super::{CalcError, MAX_INPUT_CHARS, evaluate};

/// Leading phrases dropped (repeatedly, in any order) before the math.
const PREFIXES: &[&str] = &[
    "please",
    "hey",
    "hi",
    "ok",
    "okay",
    "can you",
    "could you",
    "would you",
    "will you",
    "help me",
    "i need to",
    "tell me",
    "what is",
    "what's",
    "whats",
    "what does",
    "how much is",
    "how much",
    "calculate",
    "compute",
    "evaluate",
    "solve",
    "find",
    "work out",
    "figure out",
    "simplify",
    "determine",
    "the value of",
    "the result of",
    "the answer to",
    "the",
    "value of",
];

/// Trailing phrases dropped.
const SUFFIXES: &[&str] = &["please", "for me", "exactly", "equal", "equals", "equal to"];

/// Word phrases and what they become.
enum Piece {
    /// A word kept as is (spaced from neighbouring words).
    Word(String),
    /// An infix operator glued to both neighbours: "12 times 7" → "12*7".
    Infix(&'static str),
    /// A postfix operator glued to the left: "5 squared" → "5^2".
    Postfix(&'static str),
    /// A prefix glued to the right: "negative 5" → "-5".
    Prefix(&'static str),
    /// An operator written with spaces: " mod ", " = ".
    Spaced(&'static str),
}

/// Phrase → mapping, longest phrases first where they overlap.
const PHRASES: &[(&[&str], Mapping)] = &[
    (&["raised", "to", "the", "power", "of"], Mapping::Infix("^")),
    (&["to", "the", "power", "of"], Mapping::Infix("^")),
    (&["raised", "to"], Mapping::Infix("^")),
    (&["multiplied", "by"], Mapping::Infix("*")),
    (&["divided", "by"], Mapping::Infix("/")),
    (&["the", "square", "root", "of"], Mapping::Func("sqrt")),
    (&["square", "root", "of"], Mapping::Func("sqrt")),
    (&["sqrt", "of"], Mapping::Func("sqrt")),
    (&["the", "cube", "root", "of"], Mapping::Func("cbrt")),
    (&["cube", "root", "of"], Mapping::Func("cbrt")),
    (&["factorial", "of"], Mapping::FactorialOf),
    (&["percent", "of"], Mapping::Infix("/100*")),
    (&["half", "of"], Mapping::Prefix("1/2*")),
    (&["is", "equal", "to"], Mapping::Spaced(" = ")),
    (&["equal", "to"], Mapping::Spaced(" = ")),
    (&["equals"], Mapping::Spaced(" = ")),
    (&["times"], Mapping::Infix("*")),
    (&["over"], Mapping::Infix("/")),
    (&["plus"], Mapping::Infix("+")),
    (&["minus"], Mapping::Infix("-")),
    (&["mod"], Mapping::Spaced(" mod ")),
    (&["modulo"], Mapping::Spaced(" mod ")),
    (&["squared"], Mapping::Postfix("^2")),
    (&["cubed"], Mapping::Postfix("^3")),
    (&["factorial"], Mapping::Postfix("!")),
    (&["percent"], Mapping::Postfix("%")),
    (&["negative"], Mapping::Prefix("-")),
];

enum Mapping {
    Infix(&'static str),
    Postfix(&'static str),
    Prefix(&'static str),
    Spaced(&'static str),
    /// `sqrt`/`cbrt` applied to the next word.
    Func(&'static str),
    /// "factorial of 10" → "10!".
    FactorialOf,
}

/// Pull the math out of a natural-language question, or None when it holds none.
/// "What is 3/4 + 1/6?" → "3/4 + 1/6"; "Solve 2x + 3 = 11" → "2x + 3 = 11";
/// "what's the square root of 144" → "sqrt(144)"; "5 squared" → "5^2";
/// "2 to the power of 100" → "2^100"; "15% of 80" → "15/100*80";
/// "12 times 7 plus 3" → "12*7+3"; "what is 100 divided by 8" → "100/8";
/// "cube root of 27" → "cbrt(27)"; "10 factorial" / "10!" → "10!".
/// Returns None for "tell me a joke", "write a python function", "what is the capital of
/// France", "how are you 2day", and for a bare number ("what is 1984").
pub fn extract(question: &str) -> Option<String> {
    if question.chars().count() > MAX_INPUT_CHARS {
        return None;
    }
    let text = question.trim().to_lowercase().replace(['’', '‘'], "'");
    let text = strip_phrases(&text);
    let candidate = rewrite(&text.replace('%', " percent "));
    if !candidate.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let parsed = parse(&candidate).ok()?;
    let bare_number = |e: &Expr| match e {
        Expr::Num { .. } => true,
        Expr::Neg(inner) => matches!(**inner, Expr::Num { .. }),
        _ => false,
    };
    if parsed.rhs.is_none() && bare_number(&parsed.lhs) {
        return None;
    }
    // Math that fails to evaluate (1/0, a cubic) still belongs to the math agent.
    match evaluate(&candidate) {
        Ok(_) => Some(candidate),
        Err(CalcError::Parse(_)) => None,
        Err(_) => Some(candidate),
    }
}

fn trim_punctuation(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || matches!(c, '?' | '.' | ',' | ';' | ':')).trim_end_matches(|c: char| c.is_whitespace() || c == '=')
}

/// Drop leading and trailing filler: "what's the square root of 144?" →
/// "square root of 144" (the leading "the" goes with "what's").
fn strip_phrases(text: &str) -> String {
    let mut s = trim_punctuation(text);
    loop {
        let before = s;
        for prefix in PREFIXES {
            if let Some(rest) = s.strip_prefix(prefix)
                && (rest.is_empty() || rest.starts_with([' ', ':', ',']))
            {
                s = trim_punctuation(rest);
            }
        }
        // "solve for x: 2x + 3 = 11"
        if let Some(rest) = s.strip_prefix("for ") {
            let mut chars = rest.chars();
            if chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.next().is_some_and(|c| matches!(c, ':' | ',')) {
                s = trim_punctuation(chars.as_str());
            }
        }
        // "find x if 2x + 1 = 7"
        for joiner in [" if ", " when ", " where ", " such that "] {
            if let Some((var, rest)) = s.split_once(joiner)
                && var.len() == 1
                && var.chars().all(|c| c.is_ascii_alphabetic())
            {
                s = trim_punctuation(rest);
            }
        }
        for suffix in SUFFIXES {
            if let Some(rest) = s.strip_suffix(suffix)
                && rest.ends_with(' ')
            {
                s = trim_punctuation(rest);
            }
        }
        // "solve 2x + 3 = 11 for x"
        if let Some((rest, var)) = s.rsplit_once(" for ")
            && var.len() == 1
            && var.chars().all(|c| c.is_ascii_alphabetic())
        {
            s = trim_punctuation(rest);
        }
        if s == before {
            return s.to_string();
        }
    }
}

/// "1,000,000" → "1000000" when the whole word is a grouped number.
fn ungroup(word: &str) -> String {
    let int = word.split('.').next().unwrap_or(word);
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = groups.len() > 1
        && groups.first().is_some_and(|g| (1..=3).contains(&g.len()))
        && groups.iter().skip(1).all(|g| g.len() == 3)
        && word.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.');
    if grouped { word.replace(',', "") } else { word.to_string() }
}

fn numeric_end(w: &str) -> bool {
    w.ends_with(|c: char| c.is_ascii_digit() || c == ')')
}

fn numeric_start(w: &str) -> bool {
    w.starts_with(|c: char| c.is_ascii_digit() || c == '(' || c == '.')
}

/// Map number words to symbols and glue the pieces back together.
fn rewrite(text: &str) -> String {
    let words: Vec<String> = text.split_whitespace().map(ungroup).collect();
    let equation = text.contains('=') || text.contains("equal");
    let mut pieces = Vec::new();
    let mut i = 0;
    'words: while let Some(word) = words.get(i) {
        // "12 x 7" → "12*7" outside equations.
        if word == "x" && !equation && i > 0 && words.get(i - 1).is_some_and(|w| numeric_end(w)) && words.get(i + 1).is_some_and(|w| numeric_start(w)) {
            pieces.push(Piece::Infix("*"));
            i += 1;
            continue;
        }
        for (phrase, mapping) in PHRASES {
            let matches = phrase.iter().enumerate().all(|(k, p)| words.get(i + k).is_some_and(|w| w == p));
            if !matches {
                continue;
            }
            i += phrase.len();
            match mapping {
                Mapping::Infix(s) => pieces.push(Piece::Infix(s)),
                Mapping::Postfix(s) => pieces.push(Piece::Postfix(s)),
                Mapping::Prefix(s) => pieces.push(Piece::Prefix(s)),
                Mapping::Spaced(s) => pieces.push(Piece::Spaced(s)),
                Mapping::Func(name) => match words.get(i) {
                    Some(next) if next.starts_with('(') => pieces.push(Piece::Prefix(name)),
                    Some(next) => {
                        pieces.push(Piece::Word(format!("{name}({next})")));
                        i += 1;
                    }
                    None => pieces.push(Piece::Word((*name).to_string())),
                },
                Mapping::FactorialOf => match words.get(i) {
                    Some(next) => {
                        pieces.push(Piece::Word(next.clone()));
                        pieces.push(Piece::Postfix("!"));
                        i += 1;
                    }
                    None => pieces.push(Piece::Word("factorial".into())),
                },
            }
            continue 'words;
        }
        pieces.push(Piece::Word(word.clone()));
        i += 1;
    }
    join(&pieces)
}

fn join(pieces: &[Piece]) -> String {
    let mut out = String::new();
    // Whether the next word needs a space before it.
    let mut space_before_word = false;
    for piece in pieces {
        match piece {
            Piece::Word(w) => {
                if space_before_word {
                    out.push(' ');
                }
                out.push_str(w);
                space_before_word = true;
            }
            Piece::Infix(s) | Piece::Prefix(s) => {
                if matches!(piece, Piece::Prefix(_)) && space_before_word {
                    out.push(' ');
                }
                out.push_str(s);
                space_before_word = false;
            }
            Piece::Postfix(s) => {
                out.push_str(s);
                space_before_word = true;
            }
            Piece::Spaced(s) => {
                out.push_str(s);
                space_before_word = false;
            }
        }
    }
    out.trim().to_string()
}
