//! JSON through serde_json, flattened to one line per scalar:
//! `a.b[0].c: value` (strings unquoted, empty objects and arrays left
//! out), all in one section. The title is a top-level `title` or `name`
//! string when there is one.
//!
//! Must not: interpret schemas. serde_json's recursion limit bounds the
//! nesting, so the flattening recursion is bounded too.

use serde_json::Value;

use super::{ParseError, Parsed, Section};

pub(super) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Malformed(format!("JSON: {e}")))?;
    let title = ["title", "name"].iter().find_map(|key| value.get(key).and_then(Value::as_str)).map(|t| t.trim().to_string());
    let mut lines = Vec::new();
    flatten(&value, &mut String::new(), &mut lines);
    let section = Section { heading_path: Vec::new(), page: None, text: lines.join("\n") };
    Ok(Parsed { title, sections: vec![section] })
}

fn flatten(value: &Value, path: &mut String, lines: &mut Vec<String>) {
    let scalar = match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                flatten(child, path, lines);
                path.truncate(len);
            }
            return;
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                flatten(child, path, lines);
                path.truncate(len);
            }
            return;
        }
        Value::String(s) if s.trim().is_empty() => return,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if path.is_empty() { lines.push(scalar) } else { lines.push(format!("{path}: {scalar}")) }
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
    fn invalid_json_is_malformed() {
        assert!(matches!(parse(b"{\"a\": ", Format::Json), Err(ParseError::Malformed(_))));
    }
}
