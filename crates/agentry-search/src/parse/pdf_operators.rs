//! The operators of decoded page content that load resources, read the
//! way pdf-extract reads them (each operator with its first operand), so
//! the page budget measures what pdf-extract will draw, select and apply.
//!
//! Hand-written because lopdf's content parser builds every operand (the
//! memory this measure exists to bound); this scan builds none.
//!
//! Must not: decode streams or charge budgets.

use std::collections::{HashMap, HashSet};

use super::pdf_streams::is_delimiter;
use super::pdf_values::skip_literal_string;

/// The resource-loading operators of decoded content.
#[derive(Debug, Default)]
pub(super) struct Operators {
    /// How many times each name is drawn (`/Name Do`).
    pub(super) draws: HashMap<Vec<u8>, u64>,
    /// The font names selected (`/Name size Tf`).
    pub(super) fonts: Vec<Vec<u8>>,
    /// How many times each colour space is set (`/Name cs`, `/Name CS`).
    pub(super) colour_spaces: HashMap<Vec<u8>, u64>,
    /// How many times each graphics state is applied (`/Name gs`).
    pub(super) states: HashMap<Vec<u8>, u64>,
    /// The deepest nesting of `q` not yet closed by `Q` (pdf-extract keeps
    /// a copy of the whole graphics state for each).
    pub(super) saves: u64,
    /// The most operands one colour operator (`sc`, `scn`, `SC`, `SCN`)
    /// takes (kept in the graphics state, and so in every copy).
    pub(super) colour_operands: u64,
}

/// Scan decoded content for [`Operators`] the way pdf-extract reads
/// them: each operator with its first operand (a name, `#xx` escapes
/// decoded); strings, arrays and dictionaries are single operands, and an
/// inline image's data is skipped to its `EI`.
pub(super) fn operators(content: &[u8]) -> Operators {
    let mut found = Operators::default();
    let mut fonts: HashSet<Vec<u8>> = HashSet::new();
    let mut first: Option<Option<Vec<u8>>> = None;
    let mut operands = 0u64;
    let mut depth = 0u64;
    let mut i = 0;
    while i < content.len() {
        let c = content[i];
        let operand = match c {
            c if c.is_ascii_whitespace() || c == 0 => {
                i += 1;
                continue;
            }
            b'%' => {
                while i < content.len() && content[i] != b'\r' && content[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' => {
                let start = i + 1;
                i = start;
                while i < content.len() && !is_delimiter(content[i]) {
                    i += 1;
                }
                Some(decode_name(&content[start..i]))
            }
            b'(' | b'[' | b'<' => {
                i = skip_operand(content, i);
                None
            }
            c if is_delimiter(c) => {
                i += 1;
                continue;
            }
            _ => {
                let start = i;
                while i < content.len() && !is_delimiter(content[i]) {
                    i += 1;
                }
                let word = &content[start..i];
                if word.first().is_some_and(|b| b.is_ascii_digit() || b"+-.".contains(b)) || matches!(word, b"true" | b"false" | b"null") {
                    None
                } else {
                    match word {
                        b"q" => {
                            depth += 1;
                            found.saves = found.saves.max(depth);
                        }
                        b"Q" => depth = depth.saturating_sub(1),
                        b"sc" | b"scn" | b"SC" | b"SCN" => found.colour_operands = found.colour_operands.max(operands),
                        _ => {}
                    }
                    operands = 0;
                    match (word, first.take().flatten()) {
                        (b"Do", Some(name)) => *found.draws.entry(name).or_default() += 1,
                        (b"cs" | b"CS", Some(name)) => *found.colour_spaces.entry(name).or_default() += 1,
                        (b"gs", Some(name)) => *found.states.entry(name).or_default() += 1,
                        (b"Tf", Some(name)) if fonts.insert(name.clone()) => found.fonts.push(name),
                        (b"ID", _) => i = inline_image_end(content, i),
                        _ => {}
                    }
                    continue;
                }
            }
        };
        operands += 1;
        if first.is_none() {
            first = Some(operand);
        }
    }
    found
}

/// A name's bytes with `#xx` escapes decoded, as lopdf reads them.
fn decode_name(raw: &[u8]) -> Vec<u8> {
    let mut name = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#'
            && let Some(byte) = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            name.push(byte);
            i += 3;
            continue;
        }
        name.push(raw[i]);
        i += 1;
    }
    name
}

/// Past the string, hex string, array or dictionary starting at `start`
/// (nested ones and strings inside included).
fn skip_operand(content: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < content.len() {
        match content[i] {
            // Onto the string's `)` (or the end), past which the loop steps.
            b'(' => i = skip_literal_string(content, i) - 1,
            b'<' if content.get(i + 1) == Some(&b'<') => {
                depth += 1;
                i += 1;
            }
            b'<' => {
                while i < content.len() && content[i] != b'>' {
                    i += 1;
                }
            }
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'>' if content.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => {}
        }
        i += 1;
        if depth == 0 {
            return i;
        }
    }
    content.len()
}

/// Past an inline image's data: the next `EI` between whitespace.
fn inline_image_end(content: &[u8], from: usize) -> usize {
    let mut i = from;
    while i + 2 <= content.len() {
        if &content[i..i + 2] == b"EI" && content[i - 1].is_ascii_whitespace() && content.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) {
            return i + 2;
        }
        i += 1;
    }
    content.len()
}
