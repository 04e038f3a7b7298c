//! JSON through serde_json, flattened to one line per scalar:
//! `a.b[0].c: value` (strings unquoted, empty objects and arrays left
//! out), all in one section. The title is a top-level `title` or `name`
//! string when there is one.
//!
//! Flattening repeats every key path on every line, so a long key over a
//! long array expands without bound (`{"<10 KB key>": [1,1,1,…]}` makes
//! 10 KB of text per two input bytes): each line is charged to the budget
//! before it is written, and the first line over it stops the parse.
//!
//! Must not: interpret schemas. serde_json's recursion limit bounds the
//! nesting, so the flattening recursion is bounded too.

use serde_json::Value;

use super::budget::Budget;
use super::{ParseError, Parsed, Section};

pub(super) fn parse(text: &str, budget: &mut Budget) -> Result<Parsed, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Malformed(format!("JSON: {e}")))?;
    let title = ["title", "name"].iter().find_map(|key| value.get(key).and_then(Value::as_str)).map(|t| budget.title(t.trim()));
    let mut out = String::new();
    flatten(&value, &mut String::new(), &mut out, budget)?;
    budget.section()?;
    let section = Section { heading_path: Vec::new(), page: None, text: out };
    Ok(Parsed { title, sections: vec![section] })
}

fn flatten(value: &Value, path: &mut String, out: &mut String, budget: &mut Budget) -> Result<(), ParseError> {
    let scalar = match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                flatten(child, path, out, budget)?;
                path.truncate(len);
            }
            return Ok(());
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                flatten(child, path, out, budget)?;
                path.truncate(len);
            }
            return Ok(());
        }
        Value::String(s) if s.trim().is_empty() => return Ok(()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let separator = usize::from(!out.is_empty());
    let label = if path.is_empty() { 0 } else { path.len() + 2 };
    budget.text(separator + label + scalar.len())?;
    if separator == 1 {
        out.push('\n');
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(&scalar);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, parse};

    #[test]
    fn json_flattens_to_paths_and_takes_a_title() -> Result<(), ParseError> {
        let doc = br#"{"title": "Spec", "a": {"b": [{"c": 1}, {"c": "two"}], "empty": {}}, "ok": true, "none": null}"#;
        let parsed = parse(doc, Format::Json)?;
        assert_eq!(parsed.title.as_deref(), Some("Spec"));
        assert_eq!(parsed.sections.len(), 1);
        // Key order depends on serde_json's `preserve_order` feature; compare as sets.
        let mut lines: Vec<&str> = parsed.sections[0].text.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["a.b[0].c: 1", "a.b[1].c: two", "none: null", "ok: true", "title: Spec"]);
        let parsed = parse(br#"[{"name": "x"}]"#, Format::Json)?;
        assert_eq!(parsed.title, None);
        assert_eq!(parsed.sections[0].text, "[0].name: x");
        assert_eq!(parse(b"\"just text\"", Format::Json)?.sections[0].text, "just text");
        Ok(())
    }

    #[test]
    fn a_key_repeated_over_an_array_stops_at_the_text_budget() {
        // 100 KB of input: a 10 KB key over 45,000 one-digit elements would
        // flatten to ~450 MB of text.
        let key = "k".repeat(10_000);
        let bomb = format!("{{\"{key}\": [{}1]}}", "1,".repeat(45_000));
        assert!(bomb.len() < 110_000);
        match parse(bomb.as_bytes(), Format::Json) {
            Err(ParseError::TooLarge { what, limit }) => {
                assert_eq!(what, "its extracted text");
                assert_eq!(limit, super::super::Limit::Bytes(4 * 1024 * 1024));
            }
            other => panic!("expected TooLarge, got {:?}", other.map(|p| p.sections[0].text.len())),
        }
        // The same shape at a harmless size still parses.
        let small = format!("{{\"{}\": [1, 2]}}", "k".repeat(100));
        assert!(parse(small.as_bytes(), Format::Json).is_ok());
    }

    #[test]
    fn invalid_json_is_malformed() {
        assert!(matches!(parse(b"{\"a\": ", Format::Json), Err(ParseError::Malformed(_))));
    }
}
