//! Word (.docx) documents: the ZIP container through the `zip` crate and
//! `word/document.xml` (plus `word/styles.xml` for style names) through
//! quick-xml. Paragraphs (`w:p`) become lines, run text (`w:t`), tabs and
//! breaks are kept, and a paragraph whose style is a heading (`Heading1`…
//! `Heading6`, a style named `heading N`, an outline level, or `Title`)
//! opens a section with a heading path as in Markdown. Deleted text and
//! field codes are not `w:t`, so they are left out.
//!
//! Why not docx-rs: it models the whole format for writing, pulls the
//! `image` crate, and reads every part; text extraction needs two XML
//! parts and a streaming reader.
//!
//! Must not: inflate more than the budget's decompressed-data limit (all
//! parts together; a zip bomb), whatever the entries' headers claim: the
//! declared size is checked first and the reader is bounded with `take`,
//! so an entry that lies stops one byte past the limit. Nor open an
//! archive of more than [`MAX_ENTRIES`] entries (sniffing opens every ZIP
//! upload, and opening reads the whole central directory).

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use zip::ZipArchive;
use zip::result::ZipError;

use super::budget::{Budget, Limit};
use super::{Outline, ParseError, Parsed};

const DOCUMENT: &str = "word/document.xml";

/// Whether a ZIP archive is a Word document. An archive that cannot be
/// opened is malformed, whatever its name says.
pub(super) fn is_docx(bytes: &[u8]) -> Result<bool, ParseError> {
    let archive = open(bytes)?;
    Ok(archive.file_names().any(|name| name == DOCUMENT))
}

pub(super) fn parse(bytes: &[u8], mut budget: Budget) -> Result<Parsed, ParseError> {
    let mut archive = open(bytes)?;
    let document =
        read_entry(&mut archive, DOCUMENT, &mut budget)?.ok_or_else(|| ParseError::Malformed("DOCX: the archive has no word/document.xml, so it is not a Word document".into()))?;
    let styles = match read_entry(&mut archive, "word/styles.xml", &mut budget)? {
        Some(xml) => heading_styles(&xml)?,
        None => Vec::new(),
    };
    body(&document, &styles, budget)
}

fn open(bytes: &[u8]) -> Result<ZipArchive<Cursor<&[u8]>>, ParseError> {
    check_entry_count(bytes)?;
    ZipArchive::new(Cursor::new(bytes)).map_err(|e| ParseError::Malformed(format!("DOCX: cannot open the ZIP container: {e}")))
}

/// Entries a ZIP upload may have: Word writes a few dozen, and the zip
/// crate reads (and allocates for) every central-directory entry when it
/// opens an archive, which sniffing does for every ZIP upload.
const MAX_ENTRIES: u64 = 10_000;

/// Refuse an archive with more than [`MAX_ENTRIES`] entries before the zip
/// crate reads them: by the count its end-of-central-directory record
/// (or the ZIP64 one it points to) claims, and by the central-directory
/// headers actually in the bytes (the crate tries earlier records when
/// the last one fails, and checks each header's signature).
fn check_entry_count(bytes: &[u8]) -> Result<(), ParseError> {
    let too_many = || ParseError::TooLarge { what: "its number of ZIP entries".into(), limit: Limit::Count(MAX_ENTRIES) };
    let field = |at: usize, len: usize| bytes.get(at..).and_then(|b| b.get(..len));
    let le = |at: usize, len: usize| field(at, len).map(|b| b.iter().rev().fold(0u64, |n, &byte| (n << 8) | u64::from(byte)));
    let signed = |at: usize, magic: &[u8]| field(at, magic.len()) == Some(magic);
    // The record is 22 bytes plus a comment of at most 64 KiB, at the end.
    let tail = bytes.len().saturating_sub(22 + 0xFFFF);
    if let Some(eocd) = bytes[tail..].windows(4).rposition(|w| w == b"PK\x05\x06").map(|i| tail + i) {
        let entries = le(eocd + 10, 2).unwrap_or(0);
        if entries > MAX_ENTRIES && entries != 0xFFFF {
            return Err(too_many());
        }
        let zip64 = eocd.checked_sub(20).filter(|&at| signed(at, b"PK\x06\x07")).and_then(|at| le(at + 8, 8));
        if let Some(record) = zip64.and_then(|at| usize::try_from(at).ok()).filter(|&at| signed(at, b"PK\x06\x06"))
            && le(record.saturating_add(32), 8).is_some_and(|n| n > MAX_ENTRIES)
        {
            return Err(too_many());
        }
    }
    let headers = bytes.windows(4).filter(|w| *w == b"PK\x01\x02").count();
    if headers as u64 > MAX_ENTRIES {
        return Err(too_many());
    }
    Ok(())
}

/// One entry's bytes, charged to the budget's decompressed data; refused
/// when over it, whether the header says so or the inflated data only
/// turns out so.
fn read_entry(archive: &mut ZipArchive<Cursor<&[u8]>>, name: &str, budget: &mut Budget) -> Result<Option<Vec<u8>>, ParseError> {
    let limit = budget.inflate_remaining();
    let too_large = |budget: &Budget| ParseError::TooLarge { what: "the DOCX archive's decompressed parts".into(), limit: Limit::Bytes(budget.inflate_limit()) };
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(ZipError::UnsupportedArchive(reason)) => {
            return Err(ParseError::Unsupported(format!("DOCX: {reason}; save the document without a password or special compression")));
        }
        Err(e) => return Err(ParseError::Malformed(format!("DOCX: cannot read {name}: {e}"))),
    };
    if entry.size() > limit {
        return Err(too_large(budget));
    }
    // The declared size is only a hint: reserve little up front, so a
    // header that lies costs no memory the data does not fill.
    let mut data = Vec::with_capacity(usize::try_from(entry.size().min(1 << 20)).unwrap_or(0));
    (&mut entry).take(limit.saturating_add(1)).read_to_end(&mut data).map_err(|e| ParseError::Malformed(format!("DOCX: cannot inflate {name}: {e}")))?;
    if data.len() as u64 > limit {
        return Err(too_large(budget));
    }
    budget.inflated(data.len() as u64)?;
    Ok(Some(data))
}

fn xml_error(part: &str, error: impl std::fmt::Display) -> ParseError {
    ParseError::Malformed(format!("DOCX: {part} is not well-formed XML: {error}"))
}

/// `(style id, heading level)` for the styles whose name or outline level
/// makes them headings (level 0 is the document title).
fn heading_styles(xml: &[u8]) -> Result<Vec<(String, u8)>, ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut styles = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().map_err(|e| xml_error("word/styles.xml", e))? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "style" => current = attribute(&e, "styleId"),
                "name" => {
                    let level = attribute(&e, "val").and_then(|name| level_from_name(&name.to_ascii_lowercase().replace(' ', "")));
                    if let (Some(id), Some(level)) = (current.clone(), level) {
                        styles.push((id, level));
                    }
                }
                "outlineLvl" => {
                    let level = attribute(&e, "val").and_then(|v| v.parse::<u8>().ok()).filter(|l| *l < 6);
                    if let (Some(id), Some(level)) = (current.clone(), level) {
                        styles.push((id, level + 1));
                    }
                }
                _ => {}
            },
            Event::Eof => return Ok(styles),
            _ => {}
        }
    }
}

/// `title` → 0, `headingN` → N for N in 1..=6.
fn level_from_name(name: &str) -> Option<u8> {
    if name == "title" {
        return Some(0);
    }
    name.strip_prefix("heading").and_then(|n| n.parse::<u8>().ok()).filter(|n| (1..=6).contains(n))
}

fn body(xml: &[u8], styles: &[(String, u8)], budget: Budget) -> Result<Parsed, ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut body = Body::new(budget);
    loop {
        body.outline.check()?;
        match reader.read_event().map_err(|e| xml_error(DOCUMENT, e))? {
            Event::Start(e) => {
                body.open(&e);
                body.element(&e, styles);
            }
            Event::Empty(e) => body.element(&e, styles),
            Event::Text(e) if body.in_text => body.paragraph.push_str(&e.xml10_content()),
            Event::GeneralRef(e) if body.in_text => {
                let resolved = match e.resolve_char_ref().map_err(|e| xml_error(DOCUMENT, e))? {
                    Some(c) => Some(c.to_string()),
                    None => quick_xml::escape::resolve_predefined_entity(&e.xml10_content()).map(str::to_string),
                };
                body.paragraph.push_str(&resolved.unwrap_or_default());
            }
            Event::End(e) => body.close(e.local_name().as_ref()),
            Event::Eof => return body.outline.finish(None),
            _ => {}
        }
    }
}

/// Where the reader is in `document.xml`. Paragraphs nest (text boxes hold
/// paragraphs inside a run); nested ones join their outer paragraph.
struct Body {
    outline: Outline,
    paragraph: String,
    level: Option<u8>,
    paragraph_depth: usize,
    run_depth: usize,
    in_text: bool,
}

impl Body {
    fn new(budget: Budget) -> Self {
        Self { outline: Outline::new(budget), paragraph: String::new(), level: None, paragraph_depth: 0, run_depth: 0, in_text: false }
    }

    /// Elements that contain text.
    fn open(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            "p" => {
                self.paragraph_depth += 1;
                if self.paragraph_depth > 1 {
                    self.paragraph.push('\n');
                }
            }
            "r" => self.run_depth += 1,
            "t" if self.run_depth > 0 => self.in_text = true,
            _ => {}
        }
    }

    /// Elements that matter by their name and attributes alone.
    fn element(&mut self, e: &BytesStart<'_>, styles: &[(String, u8)]) {
        let in_run = self.run_depth > 0;
        match e.local_name().as_ref() {
            "pStyle" if self.paragraph_depth == 1 => {
                self.level = attribute(e, "val").and_then(|id| style_level(&id, styles)).or(self.level);
            }
            "outlineLvl" if self.paragraph_depth == 1 => {
                self.level = attribute(e, "val").and_then(|v| v.parse::<u8>().ok()).filter(|l| *l < 6).map(|l| l + 1).or(self.level);
            }
            "tab" if in_run => self.paragraph.push('\t'),
            "br" | "cr" if in_run => self.paragraph.push('\n'),
            "noBreakHyphen" if in_run => self.paragraph.push('-'),
            _ => {}
        }
    }

    fn close(&mut self, name: &str) {
        match name {
            "t" => self.in_text = false,
            "r" => self.run_depth = self.run_depth.saturating_sub(1),
            "p" => {
                self.paragraph_depth = self.paragraph_depth.saturating_sub(1);
                if self.paragraph_depth > 0 {
                    return;
                }
                match self.level.take() {
                    Some(level) => self.outline.heading(level, &self.paragraph),
                    None => {
                        self.outline.push_str(&self.paragraph);
                        self.outline.newline();
                    }
                }
                self.paragraph.clear();
            }
            _ => {}
        }
    }
}

/// A paragraph style's heading level: from `styles.xml`, else from the
/// built-in style ids Word writes in English (`Title`, `Heading1`…).
fn style_level(id: &str, styles: &[(String, u8)]) -> Option<u8> {
    styles.iter().find(|(style, _)| style == id).map(|(_, level)| *level).or_else(|| level_from_name(&id.to_ascii_lowercase()))
}

fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element.attributes().flatten().find(|a| a.key.local_name().as_ref() == name).map(|a| a.value.into_owned())
}

#[cfg(test)]
#[path = "docx_tests.rs"]
mod tests;
