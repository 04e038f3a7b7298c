//! The output budget of one parse: how much text, decompressed data,
//! sections and title a document may produce, relative to its size and
//! absolutely. [`Limits`] are the operator's settings; a [`Budget`] is one
//! document's running account, charged by the parsers *while* they
//! produce output, so a document built to expand (a JSON key repeated for
//! every array element, a CSV header repeated on every row, a zip or
//! deflate bomb) stops at the limit instead of after the memory is spent.
//!
//! Must not: parse anything itself, or decide what a limit is for a
//! format (each parser charges what it produces).

use super::ParseError;

const MIB: u64 = 1024 * 1024;
/// Below this, a parse worker may not even map its own program.
const MIN_PARSE_MEMORY_MIB: u64 = 512;

/// Operator limits on what one document may produce when parsed
/// (`[knowledge.parse]`). A limit relative to the input applies with a
/// floor (small documents may still expand a little) and under an
/// absolute cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Extracted text may reach this many times the input's size…
    pub text_ratio: u64,
    /// …or this many bytes, whichever is more…
    pub text_floor_bytes: u64,
    /// …but never more than this many bytes.
    pub max_text_bytes: u64,
    /// Decompressed data (DOCX parts, PDF streams) may reach this many times the input's size…
    pub inflate_ratio: u64,
    /// …or this many bytes, whichever is more…
    pub inflate_floor_bytes: u64,
    /// …but never more than this many bytes.
    pub max_inflated_bytes: u64,
    /// Sections (pages, heading blocks, row blocks) of one document.
    pub max_sections: usize,
    /// Chunks of one document (the chunker enforces this one).
    pub max_chunks: usize,
    /// Characters of a title or heading; longer ones are cut (they are
    /// repeated with every chunk).
    pub max_title_chars: usize,
    /// Wall-clock seconds one parse may take (checked between pages and
    /// while a page is read): the backstop for work no other limit
    /// measures exactly, such as a PDF reader re-reading a font per page.
    pub max_parse_secs: u64,
    /// Address space, in MiB, of the child process that parses a PDF or
    /// DOCX document (the server parses those in a child; everything the
    /// reader allocates counts, the program's own mappings included).
    pub max_parse_memory_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            text_ratio: 20,
            text_floor_bytes: 4 * MIB,
            max_text_bytes: 64 * MIB,
            inflate_ratio: 100,
            inflate_floor_bytes: 32 * MIB,
            max_inflated_bytes: 256 * MIB,
            max_sections: 50_000,
            max_chunks: 50_000,
            max_title_chars: 300,
            max_parse_secs: 120,
            max_parse_memory_mib: 2048,
        }
    }
}

impl Limits {
    /// Refuse limits that would reject every document or bound nothing useful.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.text_ratio == 0 || self.inflate_ratio == 0 {
            return Err("text_ratio and inflate_ratio must be at least 1");
        }
        if self.text_floor_bytes < 1024 || self.max_text_bytes < self.text_floor_bytes {
            return Err("text_floor_bytes must be at least 1024 and at most max_text_bytes");
        }
        if self.inflate_floor_bytes < 1024 || self.max_inflated_bytes < self.inflate_floor_bytes {
            return Err("inflate_floor_bytes must be at least 1024 and at most max_inflated_bytes");
        }
        if self.max_sections == 0 || self.max_chunks == 0 {
            return Err("max_sections and max_chunks must be at least 1");
        }
        if !(16..=10_000).contains(&self.max_title_chars) {
            return Err("max_title_chars must be between 16 and 10000");
        }
        if !(1..=86_400).contains(&self.max_parse_secs) {
            return Err("max_parse_secs must be between 1 and 86400");
        }
        if !(MIN_PARSE_MEMORY_MIB..=1 << 20).contains(&self.max_parse_memory_mib) {
            return Err("max_parse_memory_mib must be between 512 and 1048576");
        }
        Ok(())
    }

    /// The text limit for an input of `input_len` bytes.
    pub fn text_limit(&self, input_len: usize) -> u64 {
        relative(input_len, self.text_ratio, self.text_floor_bytes, self.max_text_bytes)
    }

    /// The decompressed-data limit for an input of `input_len` bytes.
    pub fn inflate_limit(&self, input_len: usize) -> u64 {
        relative(input_len, self.inflate_ratio, self.inflate_floor_bytes, self.max_inflated_bytes)
    }
}

fn relative(input_len: usize, ratio: u64, floor: u64, cap: u64) -> u64 {
    (input_len as u64).saturating_mul(ratio).max(floor).min(cap)
}

/// A limit as the error message shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Limit {
    Bytes(u64),
    Count(u64),
    Seconds(u64),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Limit::Bytes(n) if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            Limit::Bytes(n) if n >= 1024 => write!(f, "{:.1} MiB", n as f64 / MIB as f64),
            Limit::Bytes(n) => write!(f, "{n} bytes"),
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Seconds(n) => write!(f, "{n} seconds"),
        }
    }
}

/// One document's running account against its [`Limits`]. Every charge
/// that would go over fails with [`ParseError::TooLarge`]; a parser
/// returns that error at once.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    text_limit: u64,
    inflate_limit: u64,
    text: u64,
    inflated: u64,
    sections: usize,
    deadline: Deadline,
}

impl Budget {
    /// The budget of a document of `input_len` bytes.
    pub fn new(limits: &Limits, input_len: usize) -> Self {
        Self {
            limits: *limits,
            text_limit: limits.text_limit(input_len),
            inflate_limit: limits.inflate_limit(input_len),
            text: 0,
            inflated: 0,
            sections: 0,
            deadline: Deadline::after(limits.max_parse_secs),
        }
    }

    /// When this parse must be over.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// A budget whose time is already up (tests of the deadline, which
    /// never wait for it).
    #[cfg(test)]
    pub(super) fn expired(mut self) -> Self {
        self.deadline = Deadline { at: std::time::Instant::now(), secs: self.limits.max_parse_secs };
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Charge `bytes` of produced text.
    pub fn text(&mut self, bytes: usize) -> Result<(), ParseError> {
        self.text = self.text.saturating_add(bytes as u64);
        if self.text > self.text_limit {
            return Err(self.text_exceeded());
        }
        Ok(())
    }

    /// Text bytes still allowed (for producers that write elsewhere first).
    pub fn text_room(&self) -> u64 {
        self.text_limit.saturating_sub(self.text)
    }

    /// The error for text over the limit.
    pub fn text_exceeded(&self) -> ParseError {
        ParseError::TooLarge { what: "its extracted text".into(), limit: Limit::Bytes(self.text_limit) }
    }

    /// Charge `bytes` of decompressed data.
    pub fn inflated(&mut self, bytes: u64) -> Result<(), ParseError> {
        self.inflated = self.inflated.saturating_add(bytes);
        if self.inflated > self.inflate_limit {
            return Err(self.inflate_exceeded());
        }
        Ok(())
    }

    /// The decompressed-data limit of this document.
    pub fn inflate_limit(&self) -> u64 {
        self.inflate_limit
    }

    /// Decompressed bytes still allowed; a bounded decoder reads at most one more.
    pub fn inflate_remaining(&self) -> u64 {
        self.inflate_limit.saturating_sub(self.inflated)
    }

    /// The error for decompressed data over the limit.
    pub fn inflate_exceeded(&self) -> ParseError {
        ParseError::TooLarge { what: "its decompressed data".into(), limit: Limit::Bytes(self.inflate_limit) }
    }

    /// Charge one section.
    pub fn section(&mut self) -> Result<(), ParseError> {
        self.sections += 1;
        if self.sections > self.limits.max_sections {
            return Err(ParseError::TooLarge { what: "its number of sections (pages, headings or row blocks)".into(), limit: Limit::Count(self.limits.max_sections as u64) });
        }
        Ok(())
    }

    /// `text` cut to the title limit (on a character boundary).
    pub fn title(&self, text: &str) -> String {
        cut_chars(text, self.limits.max_title_chars)
    }
}

/// The wall-clock end of one parse ([`Limits::max_parse_secs`] after it
/// started). Copied into the parts of a parser that loop, which call
/// [`Deadline::check`] between units of work.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: std::time::Instant,
    secs: u64,
}

impl Deadline {
    fn after(secs: u64) -> Self {
        let now = std::time::Instant::now();
        Self { at: now.checked_add(std::time::Duration::from_secs(secs)).unwrap_or(now), secs }
    }

    /// [`ParseError::TooLarge`] once the time is up.
    pub fn check(&self) -> Result<(), ParseError> {
        if std::time::Instant::now() >= self.at {
            return Err(ParseError::TooLarge { what: "the time it takes to parse".into(), limit: Limit::Seconds(self.secs) });
        }
        Ok(())
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let keep = text[..end].char_indices().nth(max.saturating_sub(1)).map_or(end, |(i, _)| i);
            format!("{}…", text[..keep].trim_end())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_relative_with_a_floor_and_a_cap() {
        let limits = Limits::default();
        assert_eq!(limits.text_limit(10), 4 * MIB);
        assert_eq!(limits.text_limit(1024 * 1024), 20 * MIB);
        assert_eq!(limits.text_limit(100 * 1024 * 1024), 64 * MIB);
        assert!(limits.validate().is_ok());
        assert!(Limits { max_title_chars: 0, ..limits }.validate().is_err());
        assert!(Limits { max_parse_secs: 0, ..limits }.validate().is_err());
    }

    #[test]
    fn the_deadline_fails_with_its_limit_in_seconds() {
        let budget = Budget::new(&Limits::default(), 10);
        assert!(budget.deadline().check().is_ok());
        let error = budget.expired().deadline().check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("time") && error.contains("120 seconds"), "{error}");
    }

    #[test]
    fn charges_over_the_limit_fail() {
        let limits = Limits { text_floor_bytes: 1024, text_ratio: 1, max_sections: 2, ..Limits::default() };
        let mut budget = Budget::new(&limits, 10);
        assert!(budget.text(1000).is_ok());
        assert!(matches!(budget.text(100), Err(ParseError::TooLarge { .. })));
        assert!(budget.section().is_ok() && budget.section().is_ok());
        let error = budget.section().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("sections") && error.contains('2'), "{error}");
    }

    #[test]
    fn titles_are_cut_on_character_boundaries() {
        assert_eq!(cut_chars("short", 10), "short");
        assert_eq!(cut_chars("ééééé", 3), "éé…");
        assert_eq!(cut_chars(&"a".repeat(500), 300).chars().count(), 300);
    }
}
