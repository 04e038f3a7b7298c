//! Plain text: one section, or one per page when the text has form feeds
//! (the page separator `pdftotext` and printers use). No title: a first
//! line is not reliably one.
//!
//! Text cannot expand, but form feeds can make a section per byte: blank
//! pages are skipped here and every kept one is charged to the budget.
//!
//! Must not: guess structure (headings, lists) from plain text.

use super::budget::Budget;
use super::{ParseError, Parsed, Section, tidy_lines};

pub(super) fn parse(text: &str, budget: &mut Budget) -> Result<Parsed, ParseError> {
    let paged = text.contains('\u{c}');
    let mut sections = Vec::new();
    for (page, part) in (1u32..).zip(text.split('\u{c}')) {
        let part = tidy_lines(part);
        if part.is_empty() {
            continue;
        }
        budget.section()?;
        budget.text(part.len())?;
        sections.push(Section { heading_path: Vec::new(), page: paged.then_some(page), text: part });
    }
    Ok(Parsed { title: None, sections })
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
