//! CSV through the `csv` crate: the first row is the header, each record
//! becomes a line `column: value; column: value` (empty values left out),
//! and every block of up to [`ROWS_PER_SECTION`] records is one section
//! headed `rows 1-50`, so a chunk says which rows it holds.
//!
//! Every row repeats the header names, so a wide header of long names over
//! many short rows expands without bound: header names are cut to
//! [`MAX_LABEL_CHARS`], and every line is charged to the budget before it
//! is kept, the first one over it stopping the parse.
//!
//! Must not: infer types or treat a file as CSV on its own say-so; sniffing
//! asks [`is_consistent`] first.

use ::csv::{ReaderBuilder, StringRecord};

use super::budget::{Budget, cut_chars};
use super::{ParseError, Parsed, Section};

const ROWS_PER_SECTION: usize = 50;
/// The longest header name repeated on each row.
const MAX_LABEL_CHARS: usize = 100;

/// Whether the text reads as CSV with the same number of columns on every row.
pub(super) fn is_consistent(text: &str) -> bool {
    let mut reader = ReaderBuilder::new().has_headers(false).flexible(false).from_reader(text.as_bytes());
    let mut rows = 0usize;
    for record in reader.records() {
        if record.is_err() {
            return false;
        }
        rows += 1;
    }
    rows > 0
}

pub(super) fn parse(text: &str, budget: &mut Budget) -> Result<Parsed, ParseError> {
    let mut reader = ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().map_err(|e| malformed(&e))?.iter().map(|h| cut_chars(h.trim(), MAX_LABEL_CHARS)).collect();
    let mut sections = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let mut first_row = 1usize;
    let mut record = StringRecord::new();
    let mut row = 0usize;
    while reader.read_record(&mut record).map_err(|e| malformed(&e))? {
        row += 1;
        let line = record_line(&headers, &record, budget)?;
        budget.text(line.len() + 1)?;
        lines.push(line);
        if lines.len() == ROWS_PER_SECTION {
            budget.section()?;
            sections.push(section(first_row, row, &mut lines));
            first_row = row + 1;
        }
    }
    if !lines.is_empty() {
        budget.section()?;
        sections.push(section(first_row, row, &mut lines));
    }
    Ok(Parsed { title: None, sections })
}

/// One record as a line; the budget is checked (not yet charged) field by
/// field, so a single wide row cannot outgrow it either.
fn record_line(headers: &[String], record: &StringRecord, budget: &Budget) -> Result<String, ParseError> {
    let room = budget.text_room();
    let mut line = String::new();
    for (i, value) in record.iter().enumerate() {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push_str("; ");
        }
        match headers.get(i).filter(|h| !h.is_empty()) {
            Some(header) => line.push_str(header),
            None => line.push_str(&format!("column {}", i + 1)),
        }
        line.push_str(": ");
        line.push_str(value);
        if line.len() as u64 > room {
            return Err(budget.text_exceeded());
        }
    }
    Ok(line)
}

fn section(first: usize, last: usize, lines: &mut Vec<String>) -> Section {
    let text = std::mem::take(lines).join("\n");
    Section { heading_path: vec![format!("rows {first}-{last}")], page: None, text }
}

fn malformed(error: &::csv::Error) -> ParseError {
    ParseError::Malformed(format!("CSV: {error}"))
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, parse};

    #[test]
    fn records_become_labelled_lines_in_blocks_of_fifty() -> Result<(), ParseError> {
        let mut csv = String::from("name,city,note\n\"Doe, Jane\",Paris,\n");
        for i in 2..=120 {
            csv.push_str(&format!("p{i},c{i},n{i}\n"));
        }
        let parsed = parse(csv.as_bytes(), Format::Csv)?;
        assert_eq!(parsed.title, None);
        let heads: Vec<String> = parsed.sections.iter().map(|s| s.heading_path.join("")).collect();
        assert_eq!(heads, ["rows 1-50", "rows 51-100", "rows 101-120"]);
        assert_eq!(parsed.sections[0].text.lines().next(), Some("name: Doe, Jane; city: Paris"));
        assert_eq!(parsed.sections[2].text.lines().last(), Some("name: p120; city: c120; note: n120"));
        assert_eq!(parsed.sections[1].text.lines().count(), 50);
        Ok(())
    }

    #[test]
    fn a_wide_header_repeated_on_every_row_stops_at_the_text_budget() {
        // 2,000 columns of 50-character names over rows of one-character
        // values: ~4 KB per row of input becomes ~108 KB of text.
        let header: Vec<String> = (0..2_000).map(|i| format!("{i:0>50}")).collect();
        let row = vec!["x"; 2_000].join(",");
        let mut csv = header.join(",");
        for _ in 0..200 {
            csv.push('\n');
            csv.push_str(&row);
        }
        assert!(csv.len() < 1_000_000);
        assert!(matches!(parse(csv.as_bytes(), Format::Csv), Err(ParseError::TooLarge { ref what, .. }) if what == "its extracted text"));
        // Long header names are cut before they are repeated.
        let parsed = parse(format!("{},b\n1,2\n", "h".repeat(500)).as_bytes(), Format::Csv).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.sections[0].text.len() < 120, "{}", parsed.sections[0].text);
    }

    #[test]
    fn extra_fields_get_a_column_number_and_header_only_is_empty() -> Result<(), ParseError> {
        let parsed = parse(b"a,b\n1,2,3\n", Format::Csv)?;
        assert_eq!(parsed.sections[0].text, "a: 1; b: 2; column 3: 3");
        assert_eq!(parse(b"a,b\n", Format::Csv), Err(ParseError::Empty));
        Ok(())
    }
}
