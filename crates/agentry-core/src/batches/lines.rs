//! Batch input lines: a splitter that turns a stream of bytes into request
//! lines (the same numbering at upload and when the batch runs), and the
//! check of one line against OpenAI's format — `{"custom_id", "method":
//! "POST", "url", "body": {…}}`.
//!
//! Must not: answer lines (the batch runner does) or store bytes.

use serde::Deserialize;

use super::BatchEndpoint;

/// The longest request line: a line longer than this is refused, so one
/// upload cannot make the splitter hold more than this much.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// The longest `custom_id`.
pub const MAX_CUSTOM_ID_CHARS: usize = 512;

/// Splits bytes into lines (`\n` or `\r\n`); blank lines are skipped and
/// do not count. Each request line gets its ordinal (from 0) and its
/// physical line number (from 1, for error messages).
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    physical: u64,
    requests: i64,
}

/// One request line, not parsed yet.
#[derive(Debug)]
pub struct RawLine {
    /// Its ordinal among the request lines (from 0): the line's id in results.
    pub index: i64,
    /// Its line number in the file (from 1).
    pub number: u64,
    pub bytes: Vec<u8>,
}

impl LineSplitter {
    /// The request lines completed by `chunk`; an error names a line that is too long.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RawLine>, String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            self.check_length()?;
            if let Some(line) = self.take() {
                lines.push(line);
            }
        }
        self.partial.extend_from_slice(rest);
        self.check_length()?;
        Ok(lines)
    }

    /// The last line, when the bytes did not end with a newline.
    pub fn finish(&mut self) -> Option<RawLine> {
        if self.partial.is_empty() {
            return None;
        }
        self.take()
    }

    /// Request lines seen so far.
    pub fn requests(&self) -> i64 {
        self.requests
    }

    fn check_length(&self) -> Result<(), String> {
        if self.partial.len() > MAX_LINE_BYTES {
            return Err(format!("line {} is longer than {} MiB", self.physical + 1, MAX_LINE_BYTES / (1024 * 1024)));
        }
        Ok(())
    }

    fn take(&mut self) -> Option<RawLine> {
        let mut bytes = std::mem::take(&mut self.partial);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        self.physical += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let line = RawLine { index: self.requests, number: self.physical, bytes };
        self.requests += 1;
        Some(line)
    }
}

/// A request line, checked.
#[derive(Debug)]
pub struct RequestLine {
    pub custom_id: String,
    pub endpoint: BatchEndpoint,
    pub body: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLine<Body> {
    custom_id: serde_json::Value,
    method: serde_json::Value,
    url: serde_json::Value,
    body: Body,
}

/// A JSON object, checked without building it: an upload of large lines
/// costs no more memory than the line itself.
struct AnObject;

impl<'de> Deserialize<'de> for AnObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AnObject;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnObject, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnObject)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Check one line without keeping its body: its `custom_id` and endpoint.
pub fn check_line(bytes: &[u8]) -> Result<(String, BatchEndpoint), String> {
    let wire: WireLine<AnObject> = serde_json::from_slice(bytes).map_err(|e| describe(&e))?;
    checked(wire).map(|(custom_id, endpoint, AnObject)| (custom_id, endpoint))
}

/// Parse one line; the error says what is wrong (without the line number).
pub fn parse_line(bytes: &[u8]) -> Result<RequestLine, String> {
    let wire: WireLine<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(bytes).map_err(|e| describe(&e))?;
    checked(wire).map(|(custom_id, endpoint, body)| RequestLine { custom_id, endpoint, body })
}

fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.contains("a JSON object") || text.contains("a map") {
        return "'body' must be a JSON object".into();
    }
    format!("not a request object ({error}); each line is {{\"custom_id\", \"method\", \"url\", \"body\"}}")
}

fn checked<Body>(wire: WireLine<Body>) -> Result<(String, BatchEndpoint, Body), String> {
    let custom_id = match wire.custom_id {
        serde_json::Value::String(id) if !id.trim().is_empty() && id.chars().count() <= MAX_CUSTOM_ID_CHARS && !id.chars().any(char::is_control) => id,
        _ => return Err(format!("'custom_id' must be a non-blank string of at most {MAX_CUSTOM_ID_CHARS} characters, without control characters")),
    };
    if wire.method.as_str() != Some("POST") {
        return Err("'method' must be \"POST\"".into());
    }
    let endpoint = wire.url.as_str().and_then(BatchEndpoint::parse).ok_or_else(|| format!("'url' must be one of {}", BatchEndpoint::LIST))?;
    Ok((custom_id, endpoint, wire.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str]) -> Vec<(i64, u64, String)> {
        let mut splitter = LineSplitter::default();
        let mut out: Vec<RawLine> = chunks.iter().flat_map(|c| splitter.push(c.as_bytes()).unwrap()).collect();
        out.extend(splitter.finish());
        out.into_iter().map(|l| (l.index, l.number, String::from_utf8(l.bytes).unwrap())).collect()
    }

    #[test]
    fn lines_span_chunks_and_blank_lines_do_not_count() {
        let lines = split(&["{\"a\"", ":1}\r\n\n  \n{\"b\":2}\n{\"c\"", ":3}"]);
        assert_eq!(lines, vec![(0, 1, "{\"a\":1}".into()), (1, 4, "{\"b\":2}".into()), (2, 5, "{\"c\":3}".into())]);
    }

    #[test]
    fn an_overlong_line_is_refused_before_it_is_held() {
        let mut splitter = LineSplitter::default();
        let chunk = vec![b'x'; MAX_LINE_BYTES / 2 + 1];
        assert!(splitter.push(&chunk).is_ok());
        assert!(splitter.push(&chunk).unwrap_err().contains("line 1 is longer"));
    }

    #[test]
    fn lines_are_checked_field_by_field() {
        let ok = parse_line(br#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}"#).unwrap();
        assert_eq!((ok.custom_id.as_str(), ok.endpoint), ("a", BatchEndpoint::Embeddings));
        for (line, expected) in [
            (r#"{"custom_id":"","method":"POST","url":"/v1/embeddings","body":{}}"#, "custom_id"),
            (r#"{"custom_id":"a\u0000b","method":"POST","url":"/v1/embeddings","body":{}}"#, "custom_id"),
            (r#"{"custom_id":"a","method":"GET","url":"/v1/embeddings","body":{}}"#, "method"),
            (r#"{"custom_id":"a","method":"POST","url":"/v1/files","body":{}}"#, "url"),
            (r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":[]}"#, "body"),
            (r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{},"x":1}"#, "request object"),
            ("not json", "request object"),
        ] {
            let error = parse_line(line.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
            let error = check_line(line.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "checked: {line}: {error}");
        }
    }
}
