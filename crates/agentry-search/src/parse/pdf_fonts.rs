//! What pdf-extract's font parsers would do with a font's CMaps and
//! Type 1 program, checked before a page selects the font: its CMap parser
//! (adobe-cmap-parser) inserts one map entry per code of every
//! `bfrange`/`cidrange` and recurses once per nested `[`, `(`, `<<` or
//! `{`, as does the Type 1 encoding parser, on a stack that a deep nesting
//! overflows (the process aborts; `catch_unwind` cannot help).
//!
//! Hand-written because neither parser offers limits; the scan is the
//! little needed to find nesting and ranges, and errs towards refusing.
//!
//! Must not: parse fonts or decode text.

use super::ParseError;
use super::pdf_values::{Reading, count_values};

/// Nesting a real CMap or Type 1 program never reaches.
const MAX_NESTING: usize = 64;

/// Codes the ranges of one CMap may cover (a font has at most 65 535
/// glyphs; twice that leaves room for a map and its fallbacks).
const MAX_RANGE_CODES: u64 = 1 << 17;

/// What the font parsers hold for one token of a CMap or program.
const TOKEN_BYTES: u64 = 64;

/// Check a decoded CMap or Type 1 font program (only its clear-text part,
/// before `eexec`): nesting, range codes, and the tokens the parsers hold
/// (every one, at [`TOKEN_BYTES`], within `memory_limit`).
pub(super) fn check_font_data(data: &[u8], memory_limit: u64) -> Result<(), ParseError> {
    let clear = data.windows(5).position(|w| w == b"eexec").map_or(data, |at| &data[..at]);
    check_nesting(clear)?;
    let tokens = count_values(clear, &|_, _| None, Reading::Content).0;
    if tokens.saturating_mul(TOKEN_BYTES) > memory_limit {
        return Err(ParseError::TooLarge { what: "the memory its fonts' CMaps or programs take to parse", limit: super::budget::Limit::Bytes(memory_limit) });
    }
    let mut codes = 0u64;
    for keyword in [b"beginbfrange".as_slice(), b"begincidrange"] {
        let mut at = 0usize;
        while let Some(found) = find(&clear[at..], keyword) {
            let start = at + found + keyword.len();
            let end = find(&clear[start..], b"endbfrange").or_else(|| find(&clear[start..], b"endcidrange")).map_or(clear.len(), |n| start + n);
            codes = codes.saturating_add(range_codes(&clear[start..end]));
            if codes > MAX_RANGE_CODES {
                return Err(ParseError::TooLarge { what: "the codes its fonts' CMap ranges cover", limit: super::budget::Limit::Count(MAX_RANGE_CODES) });
            }
            at = end;
        }
    }
    Ok(())
}

/// Refuse nesting of arrays, strings, dictionaries and procedures deeper
/// than [`MAX_NESTING`] (a string's own parentheses count too).
fn check_nesting(data: &[u8]) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < data.len() {
        match data[i] {
            b'\\' => i += 1,
            b'[' | b'(' | b'{' => depth += 1,
            b'<' if data.get(i + 1) == Some(&b'<') => {
                depth += 1;
                i += 1;
            }
            b']' | b')' | b'}' => depth = depth.saturating_sub(1),
            b'>' if data.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(ParseError::Malformed(format!("PDF: a font's CMap or program nests more than {MAX_NESTING} levels deep")));
        }
        i += 1;
    }
    Ok(())
}

/// The codes the ranges of one `begin…range` section cover: each entry
/// starts with two hex strings, low and high; its destination (a hex
/// string, an array or a number) follows.
fn range_codes(section: &[u8]) -> u64 {
    let mut items: Vec<Option<u64>> = Vec::new();
    let mut i = 0usize;
    while i < section.len() {
        match section[i] {
            b'<' => {
                let end = section[i + 1..].iter().position(|&c| c == b'>').map_or(section.len(), |n| i + 1 + n);
                let digits: Vec<u8> = section[i + 1..end].iter().copied().filter(u8::is_ascii_hexdigit).collect();
                let value = if digits.len() > 16 { Some(u64::MAX) } else { u64::from_str_radix(std::str::from_utf8(&digits).unwrap_or("0"), 16).ok() };
                items.push(value.or(Some(0)));
                i = end + 1;
            }
            b'[' => {
                let end = section[i..].iter().position(|&c| c == b']').map_or(section.len(), |n| i + n);
                items.push(None);
                i = end + 1;
            }
            c if c.is_ascii_digit() => {
                while i < section.len() && section[i].is_ascii_digit() {
                    i += 1;
                }
                items.push(None);
            }
            _ => i += 1,
        }
    }
    items.chunks(3).map(|entry| if let [Some(low), Some(high), ..] = entry { high.saturating_sub(*low).saturating_add(1) } else { 0 }).fold(0u64, u64::saturating_add)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::check_font_data;
    use crate::parse::ParseError;

    #[test]
    fn wide_ranges_and_deep_nesting_are_refused_and_real_cmaps_pass() {
        // Before: 4 billion map entries, or a stack overflow that aborted the process.
        let wide = b"1 beginbfrange\n<00000000> <FFFFFFFF> <0000>\nendbfrange";
        assert!(matches!(check_font_data(wide, 1 << 28), Err(ParseError::TooLarge { .. })));
        let deep = [b"/CIDInit /ProcSet findresource begin ".to_vec(), vec![b'['; 200_000]].concat();
        assert!(matches!(check_font_data(&deep, 1 << 28), Err(ParseError::Malformed(_))));
        assert!(matches!(check_font_data(&b"1 ".repeat(1 << 20), 1 << 20), Err(ParseError::TooLarge { .. })));
        let real = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Adobe-Identity-UCS def\n\
            1 begincodespacerange <0000> <FFFF> endcodespacerange\n2 beginbfrange <0020> <007E> <0020> <00A0> <00FF> [<00A0> <00A1>] endbfrange\n\
            1 beginbfchar <0003> <0020> endbfchar endcmap CMapName currentdict /CMap defineresource pop end end";
        assert_eq!(check_font_data(real, 1 << 28), Ok(()));
    }
}
