//! How many values lopdf can build from some bytes of a PDF, at most,
//! counted before it builds them: lopdf builds a whole object (or a whole
//! object stream) before anything can step in, at about 120 bytes a value,
//! so a run of one-byte values (`////`, `.1.1`, `nullnull`) would take a
//! hundred times its size.
//!
//! The count follows lopdf's lexical structure: a literal string (nested
//! parentheses, backslash escapes), a hex string, a dictionary, an array
//! and a name are one value each whatever they hold; a run of regular
//! characters is at most one value per two bytes (`1+1`, `.1.1`), or one
//! for a single byte; `%` comments hold none. The data of a stream (the
//! keyword `stream` right after the object's top-level dictionary) is
//! skipped by that dictionary's `/Length` when it is known, since lopdf
//! holds it as bytes; otherwise it is counted like the rest, which only
//! counts more.
//!
//! Hand-written because lopdf's lexer is private; where this reading and
//! lopdf's differ, it errs towards counting more.
//!
//! Must not: parse values or decide what a document may spend.

/// How to read the bytes counted.
#[derive(Clone, Copy)]
pub(super) enum Reading {
    /// One object of the file: stop at the first bare `endobj` (lopdf
    /// cannot read past it), skip stream data by a known `/Length`.
    FileObject,
    /// One object of an object stream, from its own start: strings and
    /// comments hold nothing, nothing else is skipped (streams are not
    /// read there).
    StreamObject,
    /// Bytes where an object may start anywhere (an object stream, whose
    /// header points where it likes) or anything may hide (page content,
    /// whose inline image data can open a string): nothing is skipped, a
    /// string counts its contents and a comment its words.
    Content,
}

/// Values lopdf can build from `bytes` read as `reading` says, and where
/// an object read as [`Reading::FileObject`] ended (after its `endobj`),
/// if it did. `length_of` gives the integer a `/Length n g R` reference
/// names, when it is a listed integer.
pub(super) fn count_values(bytes: &[u8], length_of: &dyn Fn(u32, u16) -> Option<u64>, reading: Reading) -> (u64, Option<usize>) {
    if matches!(reading, Reading::Content) {
        return (count_runs(bytes), None);
    }
    let one_object = matches!(reading, Reading::FileObject);
    let mut count = 0u64;
    let mut depth = 0usize;
    let mut length: Option<u64> = None;
    let mut closed_top_dictionary = false;
    let mut i = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if is_whitespace(c) {
            i += 1;
            continue;
        }
        let after_dictionary = std::mem::take(&mut closed_top_dictionary);
        match c {
            b'%' => {
                closed_top_dictionary = after_dictionary;
                while i < bytes.len() && bytes[i] != b'\r' && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                count += 1;
                i = skip_literal_string(bytes, i);
            }
            b'<' if bytes.get(i + 1) == Some(&b'<') => {
                count += 1;
                depth += 1;
                i += 2;
            }
            b'<' => {
                count += 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'>' {
                    i += 1;
                }
                i += 1;
            }
            b'>' if bytes.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                closed_top_dictionary = depth == 0;
                i += 2;
            }
            b'[' => {
                count += 1;
                i += 1;
            }
            b'/' => {
                count += 1;
                let start = i + 1;
                i = start;
                while i < bytes.len() && is_regular(bytes[i]) {
                    i += 1;
                }
                if depth == 1 && &bytes[start..i] == b"Length" {
                    length = length_value(bytes, i, length_of);
                }
            }
            c if is_regular(c) => {
                let start = i;
                while i < bytes.len() && is_regular(bytes[i]) {
                    i += 1;
                }
                let run = &bytes[start..i];
                if one_object && run == b"endobj" {
                    return (count, Some(i));
                }
                if one_object
                    && after_dictionary
                    && run == b"stream"
                    && let Some(data) = stream_data_start(bytes, i)
                    && let Some(skip) = length.take()
                {
                    i = usize::try_from(skip).map_or(bytes.len(), |skip| data.saturating_add(skip).min(bytes.len()));
                    continue;
                }
                count += (run.len() as u64).div_ceil(2);
            }
            _ => i += 1,
        }
    }
    (count, None)
}

/// At most one value per delimiter that opens one and per two bytes of
/// every other run, strings and comments included.
fn count_runs(bytes: &[u8]) -> u64 {
    let mut count = 0u64;
    let mut run = 0u64;
    for &c in bytes {
        if is_regular(c) {
            run += 1;
            continue;
        }
        count += run.div_ceil(2) + u64::from(b"([</{".contains(&c));
        run = 0;
    }
    count + run.div_ceil(2)
}

/// After `(` at `open`: where the string ends (lopdf's nesting and
/// escapes), or the end of the bytes.
fn skip_literal_string(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The value after `/Length` (ending at `at`): a direct integer, or a
/// reference to a listed integer.
fn length_value(bytes: &[u8], at: usize, length_of: &dyn Fn(u32, u16) -> Option<u64>) -> Option<u64> {
    let words: Vec<&[u8]> = bytes[at..bytes.len().min(at + 64)].split(|&c| is_whitespace(c)).filter(|w| !w.is_empty()).take(3).collect();
    let number = |w: &[u8]| std::str::from_utf8(w).ok()?.parse::<u64>().ok();
    match words.as_slice() {
        [n, g, r, ..] if r.starts_with(b"R") => length_of(u32::try_from(number(n)?).ok()?, u16::try_from(number(g)?).ok()?),
        [n, ..] => number(n.split(|&c| !c.is_ascii_digit()).next()?),
        _ => None,
    }
}

/// Where a stream's data starts after the keyword ending at `at`: spaces
/// or tabs, then an end of line (lopdf's `space0, eol`).
fn stream_data_start(bytes: &[u8], mut at: usize) -> Option<usize> {
    while bytes.get(at).is_some_and(|&c| c == b' ' || c == b'\t') {
        at += 1;
    }
    match bytes.get(at..at + 2) {
        Some(b"\r\n") => Some(at + 2),
        _ if matches!(bytes.get(at), Some(b'\n' | b'\r')) => Some(at + 1),
        _ => None,
    }
}

fn is_whitespace(c: u8) -> bool {
    b" \t\n\r\0\x0C".contains(&c)
}

fn is_regular(c: u8) -> bool {
    !is_whitespace(c) && !b"()<>[]{}/%".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::count_values;

    use super::Reading;

    fn count(bytes: &[u8]) -> u64 {
        count_values(bytes, &|_, _| Some(5), Reading::FileObject).0
    }

    #[test]
    fn runs_without_separators_count_one_value_per_two_bytes() {
        assert!(count(b".1.1.1.1") >= 4);
        assert!(count(b"+1+1+1+1") >= 4);
        assert!(count(b"nullnull") >= 2);
        assert_eq!(count(b"////"), 4);
        assert_eq!(count(b"1 0 R"), 3);
    }

    #[test]
    fn strings_comments_and_stream_data_hold_no_values() {
        assert_eq!(count(b"(a (nested) \\) string /with /names)"), 1);
        assert_eq!(count(b"<414243> % a /comment /here\n/N"), 2);
        // Stream data skipped by a direct length, and by a listed one.
        assert_eq!(count(b"<< /Length 5 >>\nstream\n/////\nendstream"), 3 + 5);
        assert_eq!(count(b"<< /Length 9 0 R >>\nstream\n/////\nendstream"), 5 + 5);
        // `stream` not right after the top-level dictionary is no stream.
        assert_eq!(count(b"<< /Length 5 >> [ stream\n///// ]"), 4 + 3 + 5);
        // An object ends at `endobj` (lopdf cannot read past it).
        assert_eq!(count_values(b"[/a /b] endobj /c /d /e", &|_, _| None, Reading::FileObject), (3, Some(14)));
        // Content counts what strings and comments hold too.
        assert_eq!(count_values(b"(/a/b) %/c\n", &|_, _| None, Reading::Content).0, 7);
    }
}
