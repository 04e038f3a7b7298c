//! Measuring what drawing a PDF's pages costs, after loading and before
//! pdf-extract walks them: pdf-extract decompresses without a limit (a
//! page's contents, every form it draws, once per `Do`, and the fonts and
//! colour spaces it selects, again on every page), so a small file can
//! expand to gigabytes. (What lopdf inflates while loading is measured
//! before, by [`super::pdf_raw`].)
//!
//! [`PageWork`] charges a page's content and the forms it draws, each as
//! many times as it is drawn, with the colour spaces each `cs`/`CS` loads,
//! the way pdf-extract will walk them; and the fonts the page selects,
//! once per page and name, since pdf-extract builds one font per name and
//! forgets them between pages: the streams under each, what parsing its
//! CMaps takes, and its dictionaries' values (widths, encodings). A form
//! that draws itself, or forms nested deeper than [`MAX_FORM_DEPTH`]
//! (pdf-extract recurses once per level, on a 2 MiB stack), fail the
//! document. Every stream is read with the bounded decoders of
//! [`super::pdf_decode`].
//!
//! Hand-written because no PDF crate offers a bounded measure; the lexing
//! here is the little needed to find the operators that load resources,
//! and errs towards charging more.
//!
//! Must not: change the document or extract text.

use std::collections::{HashMap, HashSet};

use pdf_extract::{Dictionary, Document, Object, ObjectId};

use super::ParseError;
use super::budget::{Deadline, Limit};
use super::pdf_decode::decode_stream;
use super::pdf_fonts::{FontData, check_font_data, widths_held};
use super::pdf_operators::operators;
use super::pdf_values::{Reading, count_values};
use super::pdf_xref::VALUE_BYTES;

/// What lopdf's content parser holds for one operation: four operand
/// slots reserved up front (an `Object` is 120 bytes), the operator's
/// string and the operation itself (measured: ~580 bytes). Content values
/// are charged at this, each a possible operation.
const OPERATION_BYTES: u64 = 640;

/// Forms drawn inside forms deeper than this are refused: pdf-extract
/// recurses once per level (and so would [`PageWork`]).
pub(super) const MAX_FORM_DEPTH: usize = 32;

/// How many references, arrays and dictionaries deep the streams under a
/// font or colour space are looked for (a Type0 font's file is five down).
const RESOURCE_DEPTH: usize = 8;

/// The work of drawing pages: decoded content plus, for every `Do`, the
/// work of the form it draws, and for every `cs`/`CS` the streams under
/// the colour space it loads. Charged to `spent` against `limit`, for
/// the whole document; the fonts a page selects are measured per page.
pub(super) struct PageWork<'a> {
    document: &'a Document,
    /// Per form as drawn with some resources: its work and nesting height.
    memo: HashMap<FormKey, FormCost>,
    /// Per form: the fonts its own content selects, and the forms it draws.
    form_fonts: HashMap<FormKey, Vec<(Vec<u8>, FontCost)>>,
    form_draws: HashMap<FormKey, Vec<FormKey>>,
    /// Decoded sizes of the streams under fonts and colour spaces.
    stream_sizes: HashMap<ObjectId, u64>,
    /// Font CMaps and programs already checked by [`check_font_data`].
    font_data_checked: HashSet<ObjectId>,
    /// What building each font costs (see [`Self::font_cost`]), by address.
    font_costs: HashMap<usize, FontCost>,
    /// What parsing each font CMap or program holds (see [`check_font_data`]).
    font_data_held: HashMap<ObjectId, u64>,
    drawing: HashSet<ObjectId>,
    deadline: Deadline,
    pub(super) spent: u64,
    pub(super) limit: u64,
    /// What one page's operators may take in pdf-extract's memory.
    memory_limit: u64,
}

/// What building one font takes: the decoded streams under it (against
/// the page's limit), and all it holds (streams, parsed CMaps and
/// programs, values) against the memory limit.
#[derive(Debug, Clone, Copy, Default)]
struct FontCost {
    streams: u64,
    held: u64,
}

/// A form and the resources it is drawn with (by address).
type FormKey = (ObjectId, usize);

#[derive(Debug, Clone, Copy)]
struct FormCost {
    work: u64,
    /// Operands and operators pdf-extract holds while drawing it (its
    /// own, and the forms it draws, each once).
    values: u64,
    /// Levels of forms from this one down (1 for a form that draws none).
    height: usize,
}

/// What drawing one content stream costs.
struct Drawn {
    work: u64,
    values: u64,
    height: usize,
    fonts: Vec<(Vec<u8>, FontCost)>,
    forms: Vec<FormKey>,
}

impl<'a> PageWork<'a> {
    pub(super) fn new(document: &'a Document, limit: u64, memory_limit: u64, deadline: Deadline) -> Self {
        Self {
            document,
            memo: HashMap::new(),
            form_fonts: HashMap::new(),
            form_draws: HashMap::new(),
            stream_sizes: HashMap::new(),
            font_data_checked: HashSet::new(),
            font_costs: HashMap::new(),
            font_data_held: HashMap::new(),
            drawing: HashSet::new(),
            deadline,
            spent: 0,
            limit,
            memory_limit,
        }
    }

    fn over(&self) -> ParseError {
        ParseError::TooLarge { what: "the page content it draws (forms counted each time they are drawn)".into(), limit: Limit::Bytes(self.limit) }
    }

    fn fonts_over(&self) -> ParseError {
        ParseError::TooLarge { what: "the fonts and colour profiles one page loads (read again for every page)".into(), limit: Limit::Bytes(self.limit) }
    }

    fn operations_over(&self) -> ParseError {
        ParseError::TooLarge { what: "the memory one page's drawing operations take".into(), limit: Limit::Bytes(self.memory_limit) }
    }

    fn too_deep() -> ParseError {
        ParseError::TooLarge { what: "its forms drawn inside forms (nesting depth)".into(), limit: Limit::Count(MAX_FORM_DEPTH as u64) }
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
        self.deadline.check()?;
        let resources = page_resources(self.document, page_id);
        let mut measured = 0u64;
        for id in self.document.get_page_contents(page_id) {
            let Ok(stream) = self.document.get_object(id).and_then(Object::as_stream) else {
                continue;
            };
            let room = self.room().saturating_sub(measured);
            measured = measured.saturating_add(decode_stream(stream, room, &self.deadline).map_err(|why| why.or_over(self.over()))?.len() as u64 + 1);
        }
        // Measured within the room: now the very bytes pdf-extract reads
        // (lopdf's decoding, predictors applied, a line end after each stream).
        let content = self.document.get_page_content(page_id).unwrap_or_default();
        let drawn = self.content_work(&content, resources, 0)?;
        self.charge(drawn.work)?;
        // pdf-extract decodes a page's (and each form's) operations whole.
        if drawn.values.saturating_mul(OPERATION_BYTES) > self.memory_limit {
            return Err(self.operations_over());
        }
        self.page_fonts(&drawn)
    }

    /// The fonts a page selects, by name (pdf-extract keeps one font per
    /// name for a page and forgets them all before the next): the
    /// streams under each, against the limit for one page.
    fn page_fonts(&self, drawn: &Drawn) -> Result<(), ParseError> {
        let mut seen: HashSet<FormKey> = HashSet::new();
        let mut stack: Vec<FormKey> = drawn.forms.clone();
        let mut fonts: Vec<&[(Vec<u8>, FontCost)]> = vec![&drawn.fonts];
        while let Some(key) = stack.pop() {
            if !seen.insert(key) {
                continue;
            }
            if seen.len().is_multiple_of(1024) {
                self.deadline.check()?;
            }
            fonts.extend(self.form_fonts.get(&key).map(Vec::as_slice));
            stack.extend(self.form_draws.get(&key).into_iter().flatten().copied());
        }
        let mut by_name: HashMap<&[u8], FontCost> = HashMap::new();
        for (name, cost) in fonts.into_iter().flatten() {
            let largest = by_name.entry(name.as_slice()).or_default();
            *largest = FontCost { streams: largest.streams.max(cost.streams), held: largest.held.max(cost.held) };
        }
        let streams = by_name.values().fold(0u64, |sum, cost| sum.saturating_add(cost.streams));
        if streams > self.limit {
            return Err(self.fonts_over());
        }
        let held = by_name.values().fold(0u64, |sum, cost| sum.saturating_add(cost.held));
        if held > self.memory_limit {
            return Err(ParseError::TooLarge { what: "the memory the fonts one page selects take (one built per name)".into(), limit: Limit::Bytes(self.memory_limit) });
        }
        Ok(())
    }

    /// What pdf-extract's building `font` costs, again for every name a
    /// page selects it by: the streams under it, what parsing its CMaps
    /// and programs holds, and its values (widths, encoding differences)
    /// at [`VALUE_BYTES`], and its width map ([`widths_held`]).
    fn font_cost(&mut self, font: &'a Object) -> Result<FontCost, ParseError> {
        let target = resolve(self.document, font).unwrap_or(font);
        let key = std::ptr::from_ref(target) as usize;
        if let Some(&cost) = self.font_costs.get(&key) {
            return Ok(cost);
        }
        let widths = target.as_dict().map_or(Ok(0), |dict| widths_held(self.document, dict))?;
        let streams = self.streams_under(font)?;
        let parsing = self.font_data_under(font).saturating_add(widths);
        let held = streams.saturating_add(parsing).saturating_add(self.values_under(font).saturating_mul(VALUE_BYTES));
        let cost = FontCost { streams, held };
        self.font_costs.insert(key, cost);
        Ok(cost)
    }

    /// Work of decoded `content` drawn with `resources` at `depth` forms
    /// down, bounded by the room left.
    fn content_work(&mut self, content: &[u8], resources: Option<&'a Dictionary>, depth: usize) -> Result<Drawn, ParseError> {
        self.deadline.check()?;
        let mut work = content.len() as u64;
        if work > self.room() {
            return Err(self.over());
        }
        let mut values = count_values(content, &|_, _| None, Reading::Content).0;
        // Parsed (below, and by pdf-extract) whole: within the memory limit first.
        if values.saturating_mul(OPERATION_BYTES) > self.memory_limit {
            return Err(self.operations_over());
        }
        let operators = operators(content);
        let mut fonts = Vec::new();
        for name in operators.fonts {
            if let Some(font) = resources.and_then(|r| self.named(r, b"Font", &name)) {
                let cost = self.font_cost(font)?;
                fonts.push((name, cost));
            }
        }
        // What one copy of the graphics state may hold: pdf-extract copies
        // it whole (colour space, colour operands, soft mask) on every `q`.
        let mut state_bytes = 1024u64.saturating_add(operators.colour_operands.saturating_mul(8));
        for (name, times) in &operators.colour_spaces {
            let Some(space) = resources.and_then(|r| self.named(r, b"ColorSpace", name)) else {
                continue;
            };
            // pdf-extract builds the space (its arrays as vectors) on every
            // `cs`/`CS`, and copies it with the graphics state on every `q`.
            self.deadline.check()?;
            let cost = self.streams_under(space)?.saturating_add(self.values_under(space).saturating_mul(VALUE_BYTES));
            state_bytes = state_bytes.max(cost.saturating_add(1024));
            work = work.saturating_add(cost.saturating_mul(*times));
            if work > self.room() {
                return Err(self.over());
            }
        }
        // pdf-extract walks a graphics state's whole dictionary (and
        // clones its soft mask) each time `gs` applies it.
        for (name, times) in &operators.states {
            let Some(state) = resources.and_then(|r| self.named(r, b"ExtGState", name)) else {
                continue;
            };
            let cost = self.streams_under(state)?.saturating_add(self.values_under(state).saturating_mul(VALUE_BYTES));
            state_bytes = state_bytes.saturating_add(cost);
            work = work.saturating_add(cost.saturating_mul(*times));
            if work > self.room() {
                return Err(self.over());
            }
        }
        values = values.saturating_add(operators.saves.saturating_mul(state_bytes).div_ceil(OPERATION_BYTES));
        // Every `q` copies the state, kept or not (no output call in between).
        work = work.saturating_add(operators.save_count.saturating_mul(state_bytes));
        if work > self.room() {
            return Err(self.over());
        }
        let mut height = 0usize;
        let mut forms = Vec::new();
        for (name, times) in operators.draws {
            let Some((id, form_resources)) = resources.and_then(|r| self.xobject(r, &name)) else {
                continue;
            };
            let drawn_with = form_resources.or(resources);
            let key = (id, drawn_with.map_or(0, |r| std::ptr::from_ref(r) as usize));
            let cost = match self.memo.get(&key) {
                Some(&cost) => cost,
                None => {
                    if depth >= MAX_FORM_DEPTH {
                        return Err(Self::too_deep());
                    }
                    if !self.drawing.insert(id) {
                        return Err(ParseError::Malformed("PDF: a form draws itself".into()));
                    }
                    let Ok(stream) = self.document.get_object(id).and_then(Object::as_stream) else {
                        self.drawing.remove(&id);
                        continue;
                    };
                    decode_stream(stream, self.room(), &self.deadline).map_err(|why| why.or_over(self.over()))?;
                    // Measured: now the bytes pdf-extract reads (its `get_contents`).
                    let content = if stream.filters().is_ok() { stream.decompressed_content().unwrap_or_else(|_| stream.content.clone()) } else { stream.content.clone() };
                    let drawn = self.content_work(&content, drawn_with, depth + 1)?;
                    self.drawing.remove(&id);
                    let cost = FormCost { work: drawn.work, values: drawn.values, height: drawn.height + 1 };
                    self.memo.insert(key, cost);
                    self.form_fonts.insert(key, drawn.fonts);
                    self.form_draws.insert(key, drawn.forms);
                    cost
                }
            };
            if depth + cost.height > MAX_FORM_DEPTH {
                return Err(Self::too_deep());
            }
            height = height.max(cost.height);
            values = values.saturating_add(cost.values);
            forms.push(key);
            work = work.saturating_add(cost.work.saturating_mul(times));
            if work > self.room() {
                return Err(self.over());
            }
        }
        Ok(Drawn { work, values, height, fonts, forms })
    }

    /// The stream a resource name draws, and its own resources if it has them.
    fn xobject(&self, resources: &'a Dictionary, name: &[u8]) -> Option<(ObjectId, Option<&'a Dictionary>)> {
        let xobjects = resolve(self.document, resources.get(b"XObject").ok()?)?.as_dict().ok()?;
        let id = xobjects.get(name).ok()?.as_reference().ok()?;
        let stream = self.document.get_object(id).ok()?.as_stream().ok()?;
        let own = stream.dict.get(b"Resources").ok().and_then(|r| resolve(self.document, r)).and_then(|r| r.as_dict().ok());
        Some((id, own))
    }

    /// Resource `name` of `category` (`Font`, `ColorSpace`).
    fn named(&self, resources: &'a Dictionary, category: &[u8], name: &[u8]) -> Option<&'a Object> {
        resolve(self.document, resources.get(category).ok()?)?.as_dict().ok()?.get(name).ok()
    }

    /// How many values `object` holds, references followed once, as deep
    /// as [`RESOURCE_DEPTH`].
    fn values_under(&self, object: &'a Object) -> u64 {
        let mut seen = HashSet::new();
        let mut count = 0u64;
        let mut stack = vec![(object, RESOURCE_DEPTH)];
        while let Some((object, depth)) = stack.pop() {
            count += 1;
            if depth == 0 {
                continue;
            }
            match object {
                Object::Reference(id) if seen.insert(*id) => stack.extend(self.document.get_object(*id).ok().map(|o| (o, depth - 1))),
                Object::Dictionary(dict) => stack.extend(dict.iter().map(|(_, v)| (v, depth - 1))),
                Object::Stream(stream) => stack.extend(stream.dict.iter().map(|(_, v)| (v, depth - 1))),
                Object::Array(items) => stack.extend(items.iter().map(|v| (v, depth - 1))),
                _ => {}
            }
        }
        count
    }

    /// What parsing the CMaps and programs under `font` holds (those
    /// referenced from it and checked by [`Self::streams_under`]; one
    /// inline in the font dictionary was checked, not kept).
    fn font_data_under(&self, font: &'a Object) -> u64 {
        let mut seen = HashSet::new();
        let mut held = 0u64;
        let mut stack = vec![(font, RESOURCE_DEPTH)];
        while let Some((object, depth)) = stack.pop() {
            if depth == 0 {
                continue;
            }
            match object {
                Object::Reference(id) if seen.insert(*id) => {
                    held = held.saturating_add(self.font_data_held.get(id).copied().unwrap_or(0));
                    stack.extend(self.document.get_object(*id).ok().map(|o| (o, depth - 1)));
                }
                Object::Dictionary(dict) => stack.extend(dict.iter().filter(|(key, _)| !matches!(key.as_slice(), b"Parent" | b"Resources")).map(|(_, v)| (v, depth - 1))),
                Object::Stream(stream) => stack.extend(stream.dict.iter().map(|(_, v)| (v, depth - 1))),
                Object::Array(items) => stack.extend(items.iter().map(|v| (v, depth - 1))),
                _ => {}
            }
        }
        held
    }

    /// The decoded size of every stream under `object` (a font: its font
    /// files, CMaps and descendants; a colour space: its ICC profile and
    /// functions), each counted once. The CMaps and Type 1 programs of a
    /// font (`/ToUnicode`, `/Encoding`, `/UseCMap`, `/FontFile`) are also
    /// checked for what pdf-extract's font parsers would do with them
    /// ([`super::pdf_fonts`]).
    fn streams_under(&mut self, object: &'a Object) -> Result<u64, ParseError> {
        let mut seen = HashSet::new();
        let mut total = 0u64;
        let mut stack = vec![(object, RESOURCE_DEPTH, None)];
        while let Some((object, depth, font_data)) = stack.pop() {
            if depth == 0 {
                continue;
            }
            match object {
                Object::Reference(id) => {
                    // Reached once as a font's CMap or program (checked) and once otherwise.
                    if !seen.insert((*id, font_data)) {
                        continue;
                    }
                    let Ok(target) = self.document.get_object(*id) else {
                        continue;
                    };
                    if let Object::Stream(stream) = target {
                        let checked = font_data.is_none() || self.font_data_checked.contains(id);
                        let size = match self.stream_sizes.get(id) {
                            Some(&size) if checked => size,
                            _ => {
                                let decoded = decode_stream(stream, self.limit, &self.deadline).map_err(|why| why.or_over(self.fonts_over()))?;
                                if let Some(kind) = font_data {
                                    self.deadline.check()?;
                                    let held = check_font_data(&decoded, kind, self.memory_limit)?;
                                    self.font_data_held.insert(*id, held);
                                    self.font_data_checked.insert(*id);
                                }
                                self.stream_sizes.insert(*id, decoded.len() as u64);
                                decoded.len() as u64
                            }
                        };
                        total = total.saturating_add(size);
                        stack.extend(keyed_entries(&stream.dict, depth - 1));
                    } else {
                        stack.push((target, depth - 1, font_data));
                    }
                }
                Object::Stream(stream) => {
                    let decoded = decode_stream(stream, self.limit, &self.deadline).map_err(|why| why.or_over(self.fonts_over()))?;
                    if let Some(kind) = font_data {
                        check_font_data(&decoded, kind, self.memory_limit)?;
                    }
                    total = total.saturating_add(decoded.len() as u64);
                    stack.extend(keyed_entries(&stream.dict, depth - 1));
                }
                Object::Dictionary(dict) => stack.extend(keyed_entries(dict, depth - 1)),
                Object::Array(items) => stack.extend(items.iter().map(|o| (o, depth - 1, font_data))),
                _ => {}
            }
            if total > self.limit {
                return Err(self.fonts_over());
            }
        }
        Ok(total)
    }
}

/// A dictionary's values with `depth`, except the links back up or out to
/// other resources (a Type3 font's `/Resources`, a `/Parent`), each marked
/// when it is a font's CMap or Type 1 program.
fn keyed_entries(dict: &Dictionary, depth: usize) -> impl Iterator<Item = (&Object, usize, Option<FontData>)> {
    dict.iter().filter(|(key, _)| !matches!(key.as_slice(), b"Parent" | b"Resources")).map(move |(key, value)| {
        let kind = match key.as_slice() {
            b"ToUnicode" | b"Encoding" | b"UseCMap" => Some(FontData::CMap),
            b"FontFile" => Some(FontData::Program),
            _ => None,
        };
        (value, depth, kind)
    })
}

pub(super) fn resolve<'a>(document: &'a Document, object: &'a Object) -> Option<&'a Object> {
    match object {
        Object::Reference(id) => document.get_object(*id).ok(),
        other => Some(other),
    }
}

/// The resources a page draws with, found as pdf-extract finds them: the
/// page's `/Resources` when it is a dictionary (direct or referenced),
/// else the nearest ancestor's (lopdf's own lookup skips direct ones).
/// The page tree's depth was checked before ([`super::pdf`]).
fn page_resources(document: &Document, page_id: ObjectId) -> Option<&Dictionary> {
    let mut node = document.get_dictionary(page_id).ok()?;
    loop {
        if let Some(found) = node.get(b"Resources").ok().and_then(|r| resolve(document, r)).and_then(|r| r.as_dict().ok()) {
            return Some(found);
        }
        node = node.get(b"Parent").and_then(Object::as_reference).and_then(|id| document.get_dictionary(id)).ok()?;
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum Token {
    Name(Vec<u8>),
    Open,
    Close,
    Other,
}

/// Names (with `#xx` escapes resolved), array brackets and other tokens,
/// each with where it starts; `%` comments are skipped to the end of the
/// line when `comments` is set (lopdf's reading outside strings).
#[derive(Clone, Copy)]
pub(super) struct Lexer<'b> {
    pub(super) bytes: &'b [u8],
    pub(super) at: usize,
    pub(super) comments: bool,
}

impl Iterator for Lexer<'_> {
    type Item = (usize, Token);

    fn next(&mut self) -> Option<(usize, Token)> {
        let bytes = self.bytes;
        loop {
            let start = self.at;
            match *bytes.get(start)? {
                b'%' if self.comments => {
                    while self.at < bytes.len() && !matches!(bytes[self.at], b'\r' | b'\n') {
                        self.at += 1;
                    }
                }
                b'/' => {
                    let mut name = Vec::new();
                    self.at += 1;
                    while self.at < bytes.len() && !is_delimiter(bytes[self.at]) {
                        if bytes[self.at] == b'#'
                            && let Some(byte) = bytes.get(self.at + 1..self.at + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok())
                        {
                            name.push(byte);
                            self.at += 3;
                            continue;
                        }
                        name.push(bytes[self.at]);
                        self.at += 1;
                    }
                    return Some((start, Token::Name(name)));
                }
                b'[' => {
                    self.at += 1;
                    return Some((start, Token::Open));
                }
                b']' => {
                    self.at += 1;
                    return Some((start, Token::Close));
                }
                c if is_delimiter(c) => self.at += 1,
                _ => {
                    while self.at < bytes.len() && !is_delimiter(bytes[self.at]) {
                        self.at += 1;
                    }
                    return Some((start, Token::Other));
                }
            }
        }
    }
}

pub(super) fn is_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || b"()<>[]{}/%\0".contains(&c)
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[path = "pdf_streams_tests.rs"]
mod tests;
