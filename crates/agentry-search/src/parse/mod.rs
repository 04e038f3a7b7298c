//! Turning uploaded bytes into text sections: [`sniff`] decides the format
//! from the content (the file name and declared content type are hints
//! that only choose between readings the bytes allow), and [`parse`] hands
//! the bytes to one module per format. Every format yields the same
//! [`Parsed`] shape: an optional title and sections that carry their
//! heading path (h1 > h2 > …) or page number, so chunks can say where they
//! came from.
//!
//! Must not: chunk, embed or store anything, or trust a file extension.
//! It never panics on hostile input and never returns binary noise as text:
//! anything it cannot read is a [`ParseError`] the uploader can act on.
//!
//! The shared pieces here (the heading [`Outline`], line tidying) are
//! hand-written: they are a few lines each and specific to this shape.
//!
//! Every parse runs against a [`Budget`] built from the operator's
//! [`Limits`] and the input's size: produced text, decompressed data,
//! sections and title length. The parsers charge it while they produce
//! output and stop at the first charge over the limit with
//! [`ParseError::TooLarge`], so a document built to expand fails fast,
//! not after the memory is gone.

mod budget;
mod csv;
mod docx;
mod html;
mod isolated;
mod json;
mod markdown;
mod pdf;
mod pdf_cursor;
mod pdf_decode;
mod pdf_fonts;
mod pdf_load;
mod pdf_operators;
mod pdf_raw;
mod pdf_streams;
mod pdf_values;
mod pdf_xref;
mod text;
mod worker;

pub use budget::{Budget, Deadline, Limit, Limits, cut_chars};
pub use isolated::{ParseFailure, Parser};
pub use worker::{WORKER_COMMAND, run_worker};

/// A document format this crate can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
    Json,
}

impl Format {
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed document: the title when the format names one, and its text in
/// reading order. Sections with no text are never included.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parsed {
    pub title: Option<String>,
    pub sections: Vec<Section>,
}

/// A run of text under one heading path (Markdown, HTML, DOCX), on one page
/// (PDF, text with form feeds) or one block of rows (CSV).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    pub heading_path: Vec<String>,
    /// 1-based page number, for paged formats.
    pub page: Option<u32>,
    pub text: String,
}

/// Why a document could not be read. Serialisable, because a parse in a
/// child process ([`isolated`]) reports it back over a pipe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ParseError {
    #[error("unsupported file: {0}")]
    Unsupported(String),
    #[error("the file is damaged or not what it claims to be: {0}")]
    Malformed(String),
    /// Over a [`Limits`] budget: deterministic, so never worth retrying.
    #[error("the document is too large to process: {what} would exceed the limit of {limit}")]
    TooLarge { what: std::borrow::Cow<'static, str>, limit: Limit },
    #[error("the document has no extractable text (scanned pages and images would need OCR, which is not supported)")]
    Empty,
}

/// Decide a document's format from its bytes. Binary signatures win over
/// any name or declared type; among text readings the declared type picks
/// Markdown or CSV, which plain text cannot be told apart from, and only
/// when the bytes fit (a CSV must have a consistent column count).
pub fn sniff(bytes: &[u8], file_name: Option<&str>, content_type: Option<&str>) -> Result<Format, ParseError> {
    let declared = Declared::new(file_name, content_type);
    if bytes.starts_with(b"%PDF-") {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return if docx::is_docx(bytes)? {
            Ok(Format::Docx)
        } else {
            Err(ParseError::Unsupported("a ZIP archive that is not a Word (.docx) document; upload the files inside it one by one".into()))
        };
    }
    if let Some(reason) = known_binary(bytes) {
        return Err(ParseError::Unsupported(reason.into()));
    }
    let text = utf8_text(bytes, "the file")?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    if starts_with_ignore_case(trimmed, "{\\rtf") {
        return Err(ParseError::Unsupported("RTF documents are not supported; save it as DOCX, PDF or plain text".into()));
    }
    let markup = skip_prologue(trimmed);
    if starts_with_ignore_case(markup, "<!doctype html") || starts_with_ignore_case(markup, "<html") {
        return Ok(Format::Html);
    }
    if declared.is_any(&["html", "htm", "xhtml", "text/html", "application/xhtml+xml"]) && contains_tag(text) {
        return Ok(Format::Html);
    }
    let looks_json = trimmed.starts_with('{') || trimmed.starts_with('[');
    if (looks_json || declared.is_json()) && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        return Ok(Format::Json);
    }
    if declared.is_any(&["csv", "text/csv"]) && csv::is_consistent(text) {
        return Ok(Format::Csv);
    }
    if declared.is_any(&["md", "markdown", "text/markdown", "text/x-markdown"]) {
        return Ok(Format::Markdown);
    }
    Ok(Format::Text)
}

/// [`parse_with_limits`] under the default [`Limits`].
pub fn parse(bytes: &[u8], format: Format) -> Result<Parsed, ParseError> {
    parse_with_limits(bytes, format, &Limits::default())
}

/// Extract the text of a document whose format [`sniff`] decided (or the
/// caller knows), within `limits`. Bytes that do not fit the format are an
/// error, never noise in the output; a document over a limit fails as
/// soon as it reaches it.
pub fn parse_with_limits(bytes: &[u8], format: Format, limits: &Limits) -> Result<Parsed, ParseError> {
    let mut budget = Budget::new(limits, bytes.len());
    let parsed = match format {
        Format::Text => text::parse(utf8_text(bytes, "the text file")?, &mut budget)?,
        Format::Markdown => markdown::parse(utf8_text(bytes, "the Markdown file")?, budget)?,
        Format::Html => html::parse(utf8_text(bytes, "the HTML file")?, budget)?,
        Format::Csv => csv::parse(utf8_text(bytes, "the CSV file")?, &mut budget)?,
        Format::Json => json::parse(utf8_text(bytes, "the JSON file")?, &mut budget)?,
        Format::Pdf => pdf::parse(bytes, &mut budget)?,
        Format::Docx => docx::parse(bytes, budget)?,
    };
    let sections: Vec<Section> = parsed.sections.into_iter().filter(|s| !s.text.trim().is_empty()).collect();
    if sections.is_empty() {
        return Err(ParseError::Empty);
    }
    let title = parsed.title.map(|t| cut_chars(&t, limits.max_title_chars)).filter(|t| !t.is_empty());
    Ok(Parsed { title, sections })
}

/// The name's extension and the declared media type, lowercased.
struct Declared {
    extension: Option<String>,
    media_type: Option<String>,
}

impl Declared {
    fn new(file_name: Option<&str>, content_type: Option<&str>) -> Self {
        let extension = file_name.and_then(|n| n.rsplit_once('.')).map(|(_, ext)| ext.trim().to_ascii_lowercase());
        let media_type = content_type.map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        Self { extension, media_type }
    }

    /// Whether the extension or the media type is one of `names`.
    fn is_any(&self, names: &[&str]) -> bool {
        [&self.extension, &self.media_type].into_iter().flatten().any(|d| names.contains(&d.as_str()))
    }

    fn is_json(&self) -> bool {
        self.is_any(&["json", "application/json", "text/json"]) || self.media_type.as_deref().is_some_and(|t| t.ends_with("+json"))
    }
}

/// A reason for binary formats people commonly upload by mistake.
fn known_binary(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "legacy Office files (.doc, .xls, .ppt) are not supported; save it as DOCX or PDF"),
        (b"\x89PNG", "images are not supported (no OCR)"),
        (b"\xFF\xD8\xFF", "images are not supported (no OCR)"),
        (b"GIF8", "images are not supported (no OCR)"),
        (b"\x1F\x8B", "compressed (gzip) files are not supported; upload the file uncompressed"),
        (b"\xFF\xFE", "UTF-16 text is not supported; save it as UTF-8"),
        (b"\xFE\xFF", "UTF-16 text is not supported; save it as UTF-8"),
    ];
    SIGNATURES.iter().find(|(magic, _)| bytes.starts_with(magic)).map(|(_, reason)| *reason)
}

/// The bytes as UTF-8 text without a byte-order mark, or why they are not text.
fn utf8_text<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, ParseError> {
    let not_text = || ParseError::Unsupported(format!("{what} is binary data, not UTF-8 text, and not a supported document format"));
    let text = std::str::from_utf8(bytes).map_err(|_| not_text())?;
    if text.contains('\0') {
        return Err(not_text());
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The text after a leading XML declaration and comments (XHTML files and
/// exported pages often open with them).
fn skip_prologue(mut text: &str) -> &str {
    loop {
        let end = if text.starts_with("<?xml") {
            text.find("?>").map(|i| i + 2)
        } else if text.starts_with("<!--") {
            text.find("-->").map(|i| i + 3)
        } else {
            None
        };
        match end {
            Some(end) => text = text[end..].trim_start(),
            None => return text,
        }
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether the text contains something shaped like an HTML tag: `<` then a
/// letter, `/` or `!`, and a later `>`.
fn contains_tag(text: &str) -> bool {
    text.match_indices('<').any(|(i, _)| {
        let rest = &text[i + 1..];
        rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') && rest.contains('>')
    })
}

/// Tidy extracted text: trim each line, collapse runs of blank lines into
/// one, and drop leading and trailing blank lines.
fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_pending = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank_pending = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_pending { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank_pending = false;
    }
    out
}

/// Collapse every run of whitespace (spaces, tabs, newlines) into one space.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds heading-delimited sections for the structured formats (Markdown,
/// HTML, DOCX): text accumulates under the current heading path until the
/// next heading closes it. Everything it takes is charged to its
/// [`Budget`]; the first charge over the limit is kept, later input is
/// dropped, and [`Outline::check`] reports it so the parser stops.
struct Outline {
    path: Vec<(u8, String)>,
    text: String,
    sections: Vec<Section>,
    title: Option<String>,
    headings: Vec<String>,
    budget: Budget,
    error: Option<ParseError>,
}

impl Outline {
    fn new(budget: Budget) -> Self {
        Self { path: Vec::new(), text: String::new(), sections: Vec::new(), title: None, headings: Vec::new(), budget, error: None }
    }

    /// The budget error, once one charge went over.
    fn check(&self) -> Result<(), ParseError> {
        self.error.clone().map_or(Ok(()), Err)
    }

    /// Charge `bytes` of text; false (and the error kept) when over.
    fn charge(&mut self, bytes: usize) -> bool {
        if self.error.is_some() {
            return false;
        }
        match self.budget.text(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Start a new section under a heading of `level` (1 = h1; 0 is a
    /// document title above the h1s). The first h1 or title is the title.
    /// Headings are cut to the title length: each one is repeated in the
    /// heading path of every chunk under it.
    fn heading(&mut self, level: u8, heading: &str) {
        let heading = self.budget.title(&collapse_whitespace(heading));
        if heading.is_empty() || !self.charge(heading.len()) {
            return;
        }
        self.close_section();
        while self.path.last().is_some_and(|(l, _)| *l >= level) {
            self.path.pop();
        }
        if level <= 1 && self.title.is_none() {
            self.title = Some(heading.clone());
        }
        self.headings.push(heading.clone());
        self.path.push((level, heading));
    }

    fn push_str(&mut self, text: &str) {
        if self.charge(text.len()) {
            self.text.push_str(text);
        }
    }

    /// Append inline text with whitespace collapsed as a browser would:
    /// runs become one space, and no space doubles up or opens a line.
    fn push_inline(&mut self, text: &str) {
        let mut space_before = text.starts_with(char::is_whitespace);
        for word in text.split_whitespace() {
            if space_before {
                self.space();
            }
            self.push_str(word);
            space_before = true;
        }
        if text.ends_with(char::is_whitespace) {
            self.space();
        }
    }

    /// One space, unless at the start of a line or after another space.
    fn space(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with([' ', '\n']) {
            self.push_str(" ");
        }
    }

    fn newline(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.push_str("\n");
        }
    }

    fn paragraph_break(&mut self) {
        self.newline();
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.push_str("\n");
        }
    }

    /// Close the open section; its heading path is charged as text again
    /// (every section repeats it).
    fn close_section(&mut self) {
        let text = tidy_lines(&std::mem::take(&mut self.text));
        if text.is_empty() || self.error.is_some() {
            return;
        }
        let repeated: usize = self.path.iter().map(|(_, h)| h.len()).sum();
        if let Err(e) = self.budget.section() {
            self.error = Some(e);
            return;
        }
        if self.charge(repeated) {
            let heading_path = self.path.iter().map(|(_, h)| h.clone()).collect();
            self.sections.push(Section { heading_path, page: None, text });
        }
    }

    /// The sections; a document of headings only keeps its headings as
    /// text. The budget error, if a charge went over.
    fn finish(mut self, title: Option<String>) -> Result<Parsed, ParseError> {
        self.close_section();
        self.check()?;
        if self.sections.is_empty() && !self.headings.is_empty() {
            self.sections.push(Section { heading_path: Vec::new(), page: None, text: self.headings.join("\n") });
        }
        let title = title.map(|t| self.budget.title(&t)).or(self.title);
        Ok(Parsed { title, sections: self.sections })
    }
}

#[cfg(test)]
mod tests;
