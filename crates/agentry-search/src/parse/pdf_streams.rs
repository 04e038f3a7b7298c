//! Measuring a PDF's streams before lopdf and pdf-extract inflate them.
//! Both decompress without a limit (lopdf while loading: cross-reference
//! and object streams; pdf-extract while reading a page: its contents and
//! every form it draws, once per `Do`), so a small file can expand to
//! gigabytes. Two checks run first, both with bounded decoders (flate2 and
//! weezl, the decoders lopdf itself uses, reading at most one byte past
//! what the budget has left):
//!
//! - [`check_raw`], before loading: every `stream … endstream` in the raw
//!   bytes, decoded through the filter chain its dictionary names (every
//!   `/Filter` near it counts; the largest result is charged), adds to the
//!   document's decompressed-data budget. An encrypted file's streams
//!   cannot be decoded before decryption, so its object streams (which
//!   lopdf inflates while loading) are charged at deflate's worst ratio.
//! - [`page_work`], after loading (decrypted): a page's content and the
//!   forms it draws, each as many times as it is drawn, the way
//!   pdf-extract will walk them. A form that draws itself (which would
//!   overflow pdf-extract's stack) is malformed.
//!
//! Hand-written because no PDF crate offers a bounded decode; the lexing
//! here is the little needed to find filter names and `Do` operators, and
//! errs towards charging more.
//!
//! Must not: change the document or extract text.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use pdf_extract::{Dictionary, Document, Object, ObjectId};

use super::ParseError;
use super::budget::Budget;

/// Deflate's largest expansion (a 258-byte match per 2 bits, roughly).
const DEFLATE_WORST_RATIO: u64 = 1032;

/// A stream found in the raw bytes.
struct RawStream {
    /// Every filter chain a `/Filter` before it names.
    chains: Vec<Vec<Vec<u8>>>,
    /// Its dictionary names `/ObjStm` (lopdf inflates those while loading).
    object_stream: bool,
    /// Where its data starts (before the end of line) and the next `endstream`.
    start: usize,
    end: usize,
}

/// Charge every stream in `bytes` to `budget` at its decoded size.
pub(super) fn check_raw(bytes: &[u8], budget: &mut Budget) -> Result<(), ParseError> {
    let mut encrypted = false;
    let mut region_start = 0usize;
    let mut streams: Vec<RawStream> = Vec::new();
    let mut at = 0usize;
    while let Some(found) = find(&bytes[at..], b"stream") {
        let keyword = at + found;
        at = keyword + b"stream".len();
        if keyword >= 3 && &bytes[keyword - 3..keyword] == b"end" {
            region_start = at;
            continue;
        }
        let tokens = names(&bytes[region_start..keyword]);
        encrypted |= tokens.iter().any(|t| matches!(t, Token::Name(n) if n == b"Encrypt"));
        let object_stream = tokens.iter().any(|t| matches!(t, Token::Name(n) if n == b"ObjStm"));
        let end = find(&bytes[at..], b"endstream").map_or(bytes.len(), |e| at + e);
        streams.push(RawStream { chains: filter_chains(&tokens), object_stream, start: at, end });
        // The data is not searched for keywords (a decoy `endstream` in it only
        // makes the scan find more streams, never decode less: see below).
        at = end;
        region_start = end;
    }
    for RawStream { chains, object_stream, start, end } in streams {
        if chains.is_empty() {
            continue;
        }
        if encrypted {
            if object_stream {
                let stages = chains.iter().map(|c| c.iter().filter(|f| f.as_slice() == b"FlateDecode" || f.as_slice() == b"LZWDecode").count()).max().unwrap_or(0);
                let worst = (0..stages).fold((end - start) as u64, |n, _| n.saturating_mul(DEFLATE_WORST_RATIO));
                budget.inflated(worst)?;
            }
            continue;
        }
        let cap = budget.inflate_remaining();
        let mut largest = 0u64;
        // The data starts after the end of line that follows `stream`; try
        // each reading. It runs to the end of the file: the decoders stop at
        // their own end marker, so a decoy `endstream` cannot cut it short.
        for skip in [0usize, 1, 2] {
            let Some(data) = bytes.get(start + skip..) else { continue };
            for chain in &chains {
                largest = largest.max(decoded_len(data, chain, cap));
            }
        }
        budget.inflated(largest)?;
    }
    Ok(())
}

/// The work of drawing a page: its decoded content plus, for every `Do`,
/// the work of the form it draws. Charged to `spent` against `limit`.
pub(super) struct PageWork<'a> {
    document: &'a Document,
    memo: HashMap<(ObjectId, usize), u64>,
    drawing: HashSet<ObjectId>,
    pub(super) spent: u64,
    pub(super) limit: u64,
}

impl<'a> PageWork<'a> {
    pub(super) fn new(document: &'a Document, limit: u64) -> Self {
        Self { document, memo: HashMap::new(), drawing: HashSet::new(), spent: 0, limit }
    }

    fn over(&self) -> ParseError {
        ParseError::TooLarge { what: "the page content it draws (forms counted each time they are drawn)", limit: super::budget::Limit::Bytes(self.limit) }
    }

    fn room(&self) -> u64 {
        self.limit.saturating_sub(self.spent)
    }

    fn charge(&mut self, work: u64) -> Result<(), ParseError> {
        self.spent = self.spent.saturating_add(work);
        if self.spent > self.limit { Err(self.over()) } else { Ok(()) }
    }

    /// Charge drawing page `page_id`.
    pub(super) fn page(&mut self, page_id: ObjectId) -> Result<(), ParseError> {
        let resources = page_resources(self.document, page_id);
        let mut content = Vec::new();
        for id in self.document.get_page_contents(page_id) {
            let Ok(stream) = self.document.get_object(id).and_then(Object::as_stream) else { continue };
            let room = self.room().saturating_sub(content.len() as u64);
            let decoded = decode_stream(stream, room).ok_or_else(|| self.over())?;
            content.extend_from_slice(&decoded);
        }
        let work = self.content_work(&content, resources)?;
        self.charge(work)
    }

    /// Work of decoded `content` drawn with `resources`, bounded by the room left.
    fn content_work(&mut self, content: &[u8], resources: Option<&'a Dictionary>) -> Result<u64, ParseError> {
        let mut work = content.len() as u64;
        if work > self.room() {
            return Err(self.over());
        }
        for (name, times) in drawn_names(content) {
            let Some((id, form_resources)) = resources.and_then(|r| self.xobject(r, &name)) else { continue };
            let key = (id, form_resources.or(resources).map_or(0, |r| std::ptr::from_ref(r) as usize));
            let once = match self.memo.get(&key) {
                Some(&w) => w,
                None => {
                    if !self.drawing.insert(id) {
                        return Err(ParseError::Malformed("PDF: a form draws itself".into()));
                    }
                    let Ok(stream) = self.document.get_object(id).and_then(Object::as_stream) else {
                        self.drawing.remove(&id);
                        continue;
                    };
                    let decoded = decode_stream(stream, self.room()).ok_or_else(|| self.over())?;
                    let w = self.content_work(&decoded, form_resources.or(resources))?;
                    self.drawing.remove(&id);
                    self.memo.insert(key, w);
                    w
                }
            };
            work = work.saturating_add(once.saturating_mul(times));
            if work > self.room() {
                return Err(self.over());
            }
        }
        Ok(work)
    }

    /// The stream a resource name draws, and its own resources if it has them.
    fn xobject(&self, resources: &'a Dictionary, name: &[u8]) -> Option<(ObjectId, Option<&'a Dictionary>)> {
        let xobjects = resolve(self.document, resources.get(b"XObject").ok()?)?.as_dict().ok()?;
        let id = xobjects.get(name).ok()?.as_reference().ok()?;
        let stream = self.document.get_object(id).ok()?.as_stream().ok()?;
        let own = stream.dict.get(b"Resources").ok().and_then(|r| resolve(self.document, r)).and_then(|r| r.as_dict().ok());
        Some((id, own))
    }
}

fn resolve<'a>(document: &'a Document, object: &'a Object) -> Option<&'a Object> {
    match object {
        Object::Reference(id) => document.get_object(*id).ok(),
        other => Some(other),
    }
}

/// The resources a page draws with: its own, else the nearest ancestor's.
fn page_resources(document: &Document, page_id: ObjectId) -> Option<&Dictionary> {
    let (own, inherited) = document.get_page_resources(page_id).ok()?;
    own.or_else(|| inherited.into_iter().find_map(|id| document.get_dictionary(id).ok()))
}

/// A loaded stream's content decoded through its filters, or `None` when it
/// decodes to more than `cap` bytes. Filters lopdf cannot decode leave the
/// content as it is (pdf-extract then reads it raw).
fn decode_stream(stream: &pdf_extract::Stream, cap: u64) -> Option<Vec<u8>> {
    let filters: Vec<Vec<u8>> = match stream.filters() {
        Ok(filters) => filters.into_iter().map(<[u8]>::to_vec).collect(),
        Err(_) => Vec::new(),
    };
    let mut data = stream.content.clone();
    for filter in &filters {
        match decode(filter, &data, cap, true) {
            Decoded::Data(out) => data = out,
            Decoded::Unknown => return Some(stream.content.clone()).filter(|c| c.len() as u64 <= cap),
            Decoded::Len(_) => return None,
        }
        if data.len() as u64 > cap {
            return None;
        }
    }
    Some(data).filter(|d| d.len() as u64 <= cap)
}

/// The decoded size of `data` through `chain`, at most `cap + 1`.
fn decoded_len(data: &[u8], chain: &[Vec<u8>], cap: u64) -> u64 {
    let mut current: Vec<u8> = Vec::new();
    let mut input = data;
    for (i, filter) in chain.iter().enumerate() {
        let last = i + 1 == chain.len();
        match decode(filter, input, cap, !last) {
            Decoded::Len(n) => return n,
            Decoded::Data(out) if out.len() as u64 > cap => return out.len() as u64,
            Decoded::Data(out) => current = out,
            // lopdf gives up here, having inflated the stages before.
            Decoded::Unknown => return current.len() as u64,
        }
        input = &current;
    }
    current.len() as u64
}

enum Decoded {
    /// The output (when kept), at most `cap + 1` bytes.
    Data(Vec<u8>),
    /// Only the output's size, at most `cap + 1`.
    Len(u64),
    /// A filter lopdf does not decode either.
    Unknown,
}

/// One filter stage, reading at most `cap + 1` bytes of output.
fn decode(filter: &[u8], input: &[u8], cap: u64, keep: bool) -> Decoded {
    let mut out = Capped { data: Vec::new(), len: 0, cap: cap.saturating_add(1), keep };
    match filter {
        b"FlateDecode" => {
            // lopdf: zlib; when that fails having produced nothing, raw deflate after the header.
            let zlib = std::io::copy(&mut flate2::read::ZlibDecoder::new(input).take(out.cap), &mut out);
            if zlib.is_err() && out.len == 0 && input.len() > 2 {
                let _ = std::io::copy(&mut flate2::read::DeflateDecoder::new(&input[2..]).take(out.cap), &mut out);
            }
        }
        b"LZWDecode" => {
            // lopdf switches code size early unless told otherwise; count the larger reading.
            let mut other = Capped { data: Vec::new(), len: 0, cap: out.cap, keep };
            let _ = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8).into_stream(&mut out).decode_all(input).status;
            let _ = weezl::decode::Decoder::new(weezl::BitOrder::Msb, 8).into_stream(&mut other).decode_all(input).status;
            if other.len > out.len {
                out = other;
            }
        }
        b"ASCII85Decode" => ascii85(input, &mut out),
        _ => return Decoded::Unknown,
    }
    if keep { Decoded::Data(out.data) } else { Decoded::Len(out.len) }
}

/// lopdf's ASCII85 reading (stop at the first byte outside the alphabet), counted.
fn ascii85(input: &[u8], out: &mut Capped) {
    let input = input.strip_suffix(b"~>").unwrap_or(input);
    let mut group = 0usize;
    for &c in input {
        if out.len >= out.cap {
            return;
        }
        if c == b'z' && group == 0 {
            let _ = out.write_all(&[0; 4]);
        } else if c.is_ascii_whitespace() {
            continue;
        } else if (b'!'..=b'u').contains(&c) {
            group += 1;
            if group == 5 {
                group = 0;
                let _ = out.write_all(&[0; 4]);
            }
        } else {
            break;
        }
    }
    if group > 1 {
        let _ = out.write_all(&vec![0; group - 1]);
    }
}

/// A writer that keeps (or only counts) up to `cap` bytes, then fails.
struct Capped {
    data: Vec<u8>,
    len: u64,
    cap: u64,
    keep: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.cap.saturating_sub(self.len)).unwrap_or(usize::MAX);
        if room == 0 {
            return Err(std::io::Error::other("over the decompression budget"));
        }
        let n = buf.len().min(room);
        if self.keep {
            self.data.extend_from_slice(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Name(Vec<u8>),
    Open,
    Close,
    Other,
}

/// Names (with `#xx` escapes resolved), array brackets and other tokens of a dictionary region.
fn names(region: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < region.len() {
        match region[i] {
            b'/' => {
                let mut name = Vec::new();
                i += 1;
                while i < region.len() && !is_delimiter(region[i]) {
                    if region[i] == b'#'
                        && let Some(byte) = region.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        name.push(byte);
                        i += 3;
                        continue;
                    }
                    name.push(region[i]);
                    i += 1;
                }
                tokens.push(Token::Name(name));
                continue;
            }
            b'[' => tokens.push(Token::Open),
            b']' => tokens.push(Token::Close),
            c if is_delimiter(c) => {}
            _ => {
                while i < region.len() && !is_delimiter(region[i]) {
                    i += 1;
                }
                tokens.push(Token::Other);
                continue;
            }
        }
        i += 1;
    }
    tokens
}

fn is_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || b"()<>[]{}/%\0".contains(&c)
}

/// Every filter chain a `/Filter` entry in the tokens names.
fn filter_chains(tokens: &[Token]) -> Vec<Vec<Vec<u8>>> {
    let mut chains = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token, Token::Name(n) if n == b"Filter") {
            continue;
        }
        match tokens.get(i + 1) {
            Some(Token::Name(name)) => chains.push(vec![name.clone()]),
            Some(Token::Open) => {
                let chain: Vec<Vec<u8>> = tokens[i + 2..]
                    .iter()
                    .take_while(|t| **t != Token::Close)
                    .filter_map(|t| if let Token::Name(n) = t { Some(n.clone()) } else { None })
                    .collect();
                if !chain.is_empty() {
                    chains.push(chain);
                }
            }
            _ => {}
        }
    }
    chains
}

/// How many times each name is drawn (`/Name Do`) in decoded content.
fn drawn_names(content: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut drawn: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut last_name: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < content.len() {
        let c = content[i];
        if c == b'/' {
            let start = i + 1;
            i = start;
            while i < content.len() && !is_delimiter(content[i]) {
                i += 1;
            }
            last_name = Some(content[start..i].to_vec());
            continue;
        }
        if is_delimiter(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < content.len() && !is_delimiter(content[i]) {
            i += 1;
        }
        if &content[start..i] == b"Do"
            && let Some(name) = last_name.take()
        {
            *drawn.entry(name).or_default() += 1;
        } else {
            last_name = None;
        }
    }
    drawn
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_chains_are_read_with_escapes_and_arrays() {
        let tokens = names(b"<< /Length 5 /F#69lter [/ASCII85Decode /FlateDecode] /DecodeParms << /Filter /LZWDecode >> >>");
        assert_eq!(filter_chains(&tokens), vec![vec![b"ASCII85Decode".to_vec(), b"FlateDecode".to_vec()], vec![b"LZWDecode".to_vec()]]);
    }

    #[test]
    fn drawn_names_count_each_do() {
        let drawn = drawn_names(b"q /Fm1 Do Q /Fm1 Do /Im0 Do BT (x) Tj ET 1 0 0 1 0 0 cm /Fm2 gs");
        assert_eq!(drawn.get(b"Fm1".as_slice()), Some(&2));
        assert_eq!(drawn.get(b"Im0".as_slice()), Some(&1));
        assert_eq!(drawn.get(b"Fm2".as_slice()), None);
    }

    #[test]
    fn decoding_stops_past_the_cap() {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = encoder.write_all(&vec![b'a'; 1 << 20]);
        let compressed = encoder.finish().unwrap_or_default();
        let chain = [b"FlateDecode".to_vec()];
        assert_eq!(decoded_len(&compressed, &chain, 100), 101);
        assert_eq!(decoded_len(&compressed, &chain, 2 << 20), 1 << 20);
        let double = [b"FlateDecode".to_vec(), b"FlateDecode".to_vec()];
        let mut outer = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = outer.write_all(&compressed);
        assert_eq!(decoded_len(&outer.finish().unwrap_or_default(), &double, 1000), 1001);
    }
}
