//! Plain text: one section, or one per page when the text has form feeds
//! (the page separator `pdftotext` and printers use). No title: a first
//! line is not reliably one.
//!
//! Must not: guess structure (headings, lists) from plain text.

use super::{Parsed, Section, tidy_lines};

pub(super) fn parse(text: &str) -> Parsed {
    let sections = if text.contains('\u{c}') {
        (1u32..)
            .zip(text.split('\u{c}'))
            .map(|(page, text)| Section { heading_path: Vec::new(), page: Some(page), text: tidy_lines(text) })
            .collect()
    } else {
        vec![Section { heading_path: Vec::new(), page: None, text: tidy_lines(text) }]
    };
    Parsed { title: None, sections }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, parse};

    #[test]
    fn text_is_one_section_without_a_title() -> Result<(), ParseError> {
        let parsed = parse("\u{feff}First line  \n\n\n\nsecond paragraph\r\n".as_bytes(), Format::Text)?;
        assert_eq!(parsed.title, None);
        assert_eq!(parsed.sections.len(), 1);
        assert_eq!(parsed.sections[0].text, "First line\n\nsecond paragraph");
        assert_eq!(parsed.sections[0].page, None);
        Ok(())
    }

    #[test]
    fn form_feeds_split_pages_and_blank_pages_are_skipped() -> Result<(), ParseError> {
        let parsed = parse(b"one\x0c\n\x0cthree", Format::Text)?;
        let pages: Vec<_> = parsed.sections.iter().map(|s| (s.page, s.text.as_str())).collect();
        assert_eq!(pages, [(Some(1), "one"), (Some(3), "three")]);
        Ok(())
    }
}
