//! Measuring a PDF's streams in the raw bytes, before lopdf loads the
//! file: lopdf inflates cross-reference and object streams while loading,
//! without a limit. [`check_raw`]: every `stream` keyword starts data that
//! is decoded through every filter chain named before it in the file (the
//! largest result is charged to the document's decompressed-data budget),
//! with the bounded decoders of [`super::pdf_decode`], which stop at the
//! parse deadline.
//!
//! Names are read twice, once skipping `%` comments as lopdf does and once
//! not (a `%` inside a string is no comment), and a `/Filter` whose value
//! neither reading can make into a chain fails the document as malformed.
//! Chains are not tied to the nearest dictionary on purpose: strings and
//! names can hold decoy `stream` and `endstream` words, so any attempt to
//! cut the file into objects without a full parser can be misled, and a
//! chain named earlier only makes the check charge more. An encrypted
//! file's streams cannot be decoded before decryption, so every stream
//! after the first `/ObjStm` is charged at deflate's worst ratio instead.
//!
//! Hand-written because no PDF crate offers a bounded measure.
//!
//! Must not: load the document or extract text.

use std::collections::HashMap;

use super::ParseError;
use super::budget::{Budget, Deadline};
use super::pdf_decode::{Decoded, decode, decoded_len};
use super::pdf_streams::{Lexer, Token, find};

/// Deflate's largest expansion (a 258-byte match per 2 bits, roughly).
const DEFLATE_WORST_RATIO: u64 = 1032;

/// Distinct filter chains a file may name (real files use a handful);
/// each is tried on every stream.
const MAX_CHAINS: usize = 16;

/// Filters one chain may name (real chains have one to three).
const MAX_CHAIN_NAMES: usize = 16;

/// The filters lopdf decodes; a chain stops at any other (lopdf gives up there).
const DECODED: [&[u8]; 3] = [b"FlateDecode", b"LZWDecode", b"ASCII85Decode"];

/// Charge every stream in `bytes` to `budget` at its decoded size.
pub(super) fn check_raw(bytes: &[u8], budget: &mut Budget) -> Result<(), ParseError> {
    let deadline = budget.deadline();
    let names = Names::read(bytes)?;
    let mut chains: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut mentions = names.chains.iter().peekable();
    let keywords = stream_keywords(bytes);
    for (i, &(keyword, start)) in keywords.iter().enumerate() {
        deadline.check()?;
        while let Some((_, chain)) = mentions.next_if(|(at, _)| *at < keyword) {
            if !chain.is_empty() && !chains.contains(chain) {
                chains.push(chain.clone());
            }
        }
        if chains.len() > MAX_CHAINS {
            return Err(ParseError::Malformed(format!("PDF: the file names more than {MAX_CHAINS} different stream filter chains")));
        }
        if chains.is_empty() {
            continue;
        }
        if names.encrypted {
            if names.object_stream.is_some_and(|at| at < keyword) {
                // Up to the next `stream` keyword: a decoy `endstream` cannot shorten it,
                // and the streams after the first object stream together cover the file.
                let end = keywords.get(i + 1).map_or(bytes.len(), |&(next, _)| next);
                let stages = chains.iter().map(|c| c.iter().filter(|f| f.as_slice() != b"ASCII85Decode").count()).max().unwrap_or(0);
                let worst = (0..stages).fold(end.saturating_sub(start) as u64, |n, _| n.saturating_mul(DEFLATE_WORST_RATIO));
                budget.inflated(worst)?;
            }
            continue;
        }
        // The data runs to the end of the file: the decoders stop at their
        // own end marker, so a decoy `endstream` cannot cut it short.
        let cap = budget.inflate_remaining();
        let data = &bytes[start..];
        budget.inflated(largest_decoded(data, &chains, cap, &deadline)?)?;
    }
    Ok(())
}

/// The most `data` decodes to through any of `chains`, each distinct
/// first stage decoded once (chains share their first filter; decoding it
/// again per chain multiplied the work of data that inflates to nothing).
fn largest_decoded(data: &[u8], chains: &[Vec<Vec<u8>>], cap: u64, deadline: &Deadline) -> Result<u64, ParseError> {
    let mut largest = 0u64;
    let mut firsts: Vec<&[u8]> = chains.iter().filter_map(|chain| chain.first().map(Vec::as_slice)).collect();
    firsts.sort_unstable();
    firsts.dedup();
    for first in firsts {
        let rests: Vec<&[Vec<u8>]> = chains.iter().filter(|chain| chain.first().is_some_and(|f| f.as_slice() == first)).map(|chain| &chain[1..]).collect();
        let keep = rests.iter().any(|rest| !rest.is_empty());
        let (stage, output) = match decode(first, data, cap, keep, deadline)? {
            Decoded::Data(output) => (output.len() as u64, output),
            Decoded::Len(n) => (n, Vec::new()),
            Decoded::Unknown => continue,
        };
        largest = largest.max(stage);
        if stage > cap {
            continue;
        }
        for rest in rests.into_iter().filter(|rest| !rest.is_empty()) {
            largest = largest.max(stage.saturating_add(decoded_len(&output, rest, cap - stage, deadline)?));
        }
    }
    Ok(largest)
}

/// Each `stream` keyword lopdf would accept (not the end of `endstream`,
/// then spaces or tabs and an end of line): where the keyword starts and
/// where its data starts.
fn stream_keywords(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut keywords = Vec::new();
    let mut at = 0usize;
    while let Some(found) = find(&bytes[at..], b"stream") {
        let keyword = at + found;
        at = keyword + b"stream".len();
        if keyword >= 3 && &bytes[keyword - 3..keyword] == b"end" {
            continue;
        }
        let mut data = at;
        while bytes.get(data).is_some_and(|c| *c == b' ' || *c == b'\t') {
            data += 1;
        }
        match bytes.get(data..data + 2) {
            Some(b"\r\n") => keywords.push((keyword, data + 2)),
            _ if matches!(bytes.get(data), Some(b'\n' | b'\r')) => keywords.push((keyword, data + 1)),
            _ => {}
        }
    }
    keywords
}

/// What the names in a file say, read both with and without comments.
struct Names {
    /// Each `/Filter`'s chain (cut at the first filter lopdf cannot
    /// decode) by position, in file order.
    chains: Vec<(usize, Vec<Vec<u8>>)>,
    /// The first `/ObjStm`.
    object_stream: Option<usize>,
    /// Some `/Encrypt`.
    encrypted: bool,
}

impl Names {
    /// Both readings; malformed when a `/Filter` has no chain in either.
    fn read(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut found: HashMap<usize, Option<Vec<Vec<u8>>>> = HashMap::new();
        let mut object_stream: Option<usize> = None;
        let mut encrypted = false;
        for comments in [true, false] {
            let mut lexer = Lexer { bytes, at: 0, comments };
            while let Some((at, token)) = lexer.next() {
                let Token::Name(name) = token else { continue };
                match name.as_slice() {
                    b"Filter" => {
                        let chain = filter_chain(&mut Lexer { ..lexer });
                        let entry = found.entry(at).or_default();
                        if entry.is_none() {
                            *entry = chain;
                        }
                    }
                    b"ObjStm" => object_stream = Some(object_stream.map_or(at, |first| first.min(at))),
                    b"Encrypt" => encrypted = true,
                    _ => {}
                }
            }
        }
        let mut chains = Vec::with_capacity(found.len());
        for (at, chain) in found {
            let Some(chain) = chain else {
                return Err(ParseError::Malformed(format!("PDF: the /Filter entry at byte {at} is not a filter name or an array of them")));
            };
            let known = chain.into_iter().take_while(|f| DECODED.contains(&f.as_slice())).collect();
            chains.push((at, known));
        }
        chains.sort_unstable();
        Ok(Self { chains, object_stream, encrypted })
    }
}

/// The chain the tokens after a `/Filter` name: a name, or an array of
/// names. An array with any other item is an empty chain (lopdf decodes
/// nothing then), and one of more than [`MAX_CHAIN_NAMES`] names cannot be
/// read; so each `/Filter` reads a bounded number of tokens (reading to
/// the array's end made a file of `/Filter[` repeated quadratic).
fn filter_chain(lexer: &mut Lexer<'_>) -> Option<Vec<Vec<u8>>> {
    match lexer.next()?.1 {
        Token::Name(name) => Some(vec![name]),
        Token::Open => {
            let mut chain = Vec::new();
            loop {
                match lexer.next()?.1 {
                    Token::Close => return Some(chain),
                    Token::Name(name) if chain.len() < MAX_CHAIN_NAMES => chain.push(name),
                    Token::Name(_) => return None,
                    Token::Open | Token::Other => return Some(Vec::new()),
                }
            }
        }
        Token::Close | Token::Other => None,
    }
}

#[cfg(test)]
#[path = "pdf_raw_tests.rs"]
mod tests;
