//! CSV through the `csv` crate: the first row is the header, each record
//! becomes a line `column: value; column: value` (empty values left out),
//! and every block of up to [`ROWS_PER_SECTION`] records is one section
//! headed `rows 1-50`, so a chunk says which rows it holds.
//!
//! Must not: infer types or treat a file as CSV on its own say-so; sniffing
//! asks [`is_consistent`] first.

use ::csv::{ReaderBuilder, StringRecord};

use super::{ParseError, Parsed, Section};

const ROWS_PER_SECTION: usize = 50;

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

pub(super) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let mut reader = ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| malformed(&e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut sections = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let mut first_row = 1usize;
    let mut record = StringRecord::new();
    let mut row = 0usize;
    while reader.read_record(&mut record).map_err(|e| malformed(&e))? {
        row += 1;
        lines.push(record_line(&headers, &record));
        if lines.len() == ROWS_PER_SECTION {
            sections.push(section(first_row, row, &mut lines));
            first_row = row + 1;
        }
    }
    if !lines.is_empty() {
        sections.push(section(first_row, row, &mut lines));
    }
    Ok(Parsed { title: None, sections })
}

fn record_line(headers: &[String], record: &StringRecord) -> String {
    let mut fields = Vec::with_capacity(record.len());
    for (i, value) in record.iter().enumerate() {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match headers.get(i).filter(|h| !h.is_empty()) {
            Some(header) => fields.push(format!("{header}: {value}")),
            None => fields.push(format!("column {}: {value}", i + 1)),
        }
    }
    fields.join("; ")
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
    fn extra_fields_get_a_column_number_and_header_only_is_empty() -> Result<(), ParseError> {
        let parsed = parse(b"a,b\n1,2,3\n", Format::Csv)?;
        assert_eq!(parsed.sections[0].text, "a: 1; b: 2; column 3: 3");
        assert_eq!(parse(b"a,b\n", Format::Csv), Err(ParseError::Empty));
        Ok(())
    }
}
