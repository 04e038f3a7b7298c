//! How a model asks for tools. Models with native tool calling get OpenAI
//! `tools` and answer with `tool_calls` deltas, which [`ToolCallParts`]
//! assembles. Models without it (the local GGUF models) get the tools
//! described in the system prompt and answer with
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, which
//! [`parse_prompted_call`] reads; [`may_become_call`] tells the streaming
//! loop to hold text back while it could still turn into such a call.
//!
//! Hand-written: both formats are a few lines of JSON handling; no crate
//! covers the prompted protocol.
//!
//! Must not: execute tools or decide which are allowed.

use serde_json::Value;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// A tool call as the model made it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedCall {
    /// The model's id for the call (native), or one we made up (prompted).
    pub id: String,
    pub name: String,
    /// The parsed arguments, or the raw text when it was not JSON.
    pub arguments: Result<Value, String>,
}

/// The system-prompt section that teaches a model the prompted protocol.
pub fn tools_prompt(tools: &[Value]) -> String {
    let mut out = String::from(
        "You can call tools. To call one, reply with only this and nothing else:\n\
         <tool_call>{\"name\": \"TOOL\", \"arguments\": {…}}</tool_call>\n\
         You will then get the tool's result. Tools:\n",
    );
    for tool in tools {
        let function = &tool["function"];
        out.push_str(&format!(
            "- {}: {} Arguments (JSON Schema): {}\n",
            function["name"].as_str().unwrap_or_default(),
            function["description"].as_str().unwrap_or_default(),
            function["parameters"]
        ));
    }
    out
}

/// Whether text that starts an answer may still become a prompted call.
pub fn may_become_call(text: &str) -> bool {
    let trimmed = text.trim_start();
    trimmed.len() < OPEN.len() && OPEN.starts_with(trimmed) || trimmed.starts_with(OPEN)
}

/// The call in an answer that follows the prompted protocol, if any.
pub fn parse_prompted_call(text: &str, id: &str) -> Option<RequestedCall> {
    let rest = text.trim_start().strip_prefix(OPEN)?;
    let body = rest.split(CLOSE).next().unwrap_or(rest).trim();
    let parsed: Result<Value, _> = serde_json::from_str(body);
    let (name, arguments) = match parsed {
        Ok(Value::Object(mut object)) => {
            let name = object.remove("name").and_then(|n| n.as_str().map(str::to_owned)).unwrap_or_default();
            let arguments = object.remove("arguments").unwrap_or_else(|| Value::Object(Default::default()));
            (name, Ok(arguments))
        }
        _ => (String::new(), Err(body.to_owned())),
    };
    Some(RequestedCall { id: id.to_owned(), name, arguments })
}

/// Native `tool_calls` deltas, assembled by index.
#[derive(Debug, Default)]
pub struct ToolCallParts {
    calls: Vec<(String, String, String)>,
}

impl ToolCallParts {
    /// Add one delta's `tool_calls` array.
    pub fn add(&mut self, delta: &Value) {
        let Some(parts) = delta.as_array() else { return };
        for part in parts {
            let index = part.get("index").and_then(Value::as_u64).map_or(self.calls.len().saturating_sub(1), |i| i as usize);
            while self.calls.len() <= index {
                self.calls.push(Default::default());
            }
            let (id, name, arguments) = &mut self.calls[index];
            if let Some(new_id) = part.get("id").and_then(Value::as_str) {
                id.push_str(new_id);
            }
            let function = part.get("function");
            if let Some(piece) = function.and_then(|f| f.get("name")).and_then(Value::as_str) {
                name.push_str(piece);
            }
            if let Some(piece) = function.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
                arguments.push_str(piece);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The assembled calls; empty arguments mean `{}`.
    pub fn finish(self, id_prefix: &str) -> Vec<RequestedCall> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, arguments))| {
                let id = if id.is_empty() { format!("{id_prefix}_{i}") } else { id };
                let arguments = if arguments.trim().is_empty() { Ok(Value::Object(Default::default())) } else { serde_json::from_str(&arguments).map_err(|_| arguments) };
                RequestedCall { id, name, arguments }
            })
            .collect()
    }
}

/// The assistant message that records calls in the conversation (OpenAI shape).
pub fn assistant_calls_json(calls: &[RequestedCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                let arguments = match &c.arguments {
                    Ok(value) => value.to_string(),
                    Err(raw) => raw.clone(),
                };
                serde_json::json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": arguments } })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prompted_calls_are_read_with_or_without_the_closing_tag() {
        let call = parse_prompted_call(" <tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}</tool_call>", "c1").unwrap();
        assert_eq!(call.name, "calculator");
        assert_eq!(call.arguments, Ok(json!({"expression": "2+2"})));
        let open = parse_prompted_call("<tool_call>{\"name\": \"current_time\"}", "c2").unwrap();
        assert_eq!((open.name.as_str(), open.arguments), ("current_time", Ok(json!({}))));
        assert!(parse_prompted_call("<tool_call>not json", "c3").unwrap().arguments.is_err());
        assert!(parse_prompted_call("The answer is 4.", "c4").is_none());
    }

    #[test]
    fn text_is_held_back_only_while_it_may_become_a_call() {
        assert!(may_become_call(""));
        assert!(may_become_call("  <tool"));
        assert!(may_become_call("<tool_call>{\"na"));
        assert!(!may_become_call("Hello"));
        assert!(!may_become_call("<b>bold</b>"));
    }

    #[test]
    fn native_deltas_are_assembled_by_index() {
        let mut parts = ToolCallParts::default();
        parts.add(&json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": "calc", "arguments": "{\"expr"}}]));
        parts.add(&json!([{"index": 0, "function": {"arguments": "ession\": \"1\"}"}}]));
        parts.add(&json!([{"index": 1, "id": "call_2", "function": {"name": "current_time", "arguments": ""}}]));
        let calls = parts.finish("run");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, Ok(json!({"expression": "1"})));
        assert_eq!((calls[1].id.as_str(), calls[1].arguments.clone()), ("call_2", Ok(json!({}))));
    }
}
