//! Anthropic's Messages API (`POST {base_url}/v1/messages`), plain and
//! streamed, mapped to the same events and usage as every other provider:
//! system messages become `system`, OpenAI tools become Anthropic tools,
//! `tool_use` blocks become OpenAI `tool_calls`.
//!
//! Owns only the wire mapping; no retries or timeouts.

use std::collections::BTreeMap;

use agentry_types::{ChatMessage, ContentPart, FinishReason, MessageContent, Role, Usage};
use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::upstream::{Response, Upstream};
use crate::{ChatModel, ChatRequest, ChatResponse, ChatStream, LlmError, StreamEvent};

const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const DEFAULT_VERSION: &str = "2023-06-01";

/// `type = "anthropic"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    pub name: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default, serialize_with = "super::serialize_secret")]
    pub api_key: Option<SecretString>,
    /// `anthropic-version` header.
    #[serde(default)]
    pub version: Option<String>,
    /// `max_tokens` when the client sends none (Anthropic requires one).
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
}

/// A connected Anthropic upstream.
pub struct Anthropic {
    name: String,
    /// Parsed once, not per request.
    endpoint: http::Uri,
    upstream: Upstream,
    headers: http::HeaderMap,
    default_max_tokens: u32,
}

impl Anthropic {
    pub fn new(config: &AnthropicConfig) -> Result<Self, String> {
        let upstream = Upstream::new(&config.name, config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let mut headers = http::HeaderMap::new();
        if let Some(key) = &config.api_key {
            let mut value = http::HeaderValue::from_str(key.expose_secret()).map_err(|_| "api_key contains invalid characters".to_owned())?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let version = config.version.as_deref().unwrap_or(DEFAULT_VERSION);
        headers.insert("anthropic-version", http::HeaderValue::from_str(version).map_err(|_| "version contains invalid characters".to_owned())?);
        Ok(Self { name: config.name.clone(), endpoint: upstream.endpoint("/v1/messages")?, upstream, headers, default_max_tokens: config.default_max_tokens.unwrap_or(4096) })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Value, LlmError> {
        if let Some(format) = &request.response_format
            && format.get("type").and_then(Value::as_str) != Some("text")
        {
            return Err(LlmError::Unsupported { message: "response_format is not supported by Anthropic models".into(), param: Some("response_format".into()) });
        }
        let (system, messages) = convert_messages(&request.messages)?;
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens.unwrap_or(self.default_max_tokens),
            "stream": stream,
        });
        if !system.is_empty() {
            body["system"] = Value::from(system);
        }
        if let Some(t) = request.temperature {
            // Anthropic's range is 0..1, OpenAI's 0..2.
            body["temperature"] = Value::from((t / 2.0).clamp(0.0, 1.0));
        }
        if let Some(p) = request.top_p {
            body["top_p"] = Value::from(p);
        }
        if !request.stop.is_empty() {
            body["stop_sequences"] = json!(request.stop);
        }
        if let Some(user) = &request.user {
            body["metadata"] = json!({ "user_id": user });
        }
        if let Some(tools) = &request.tools {
            body["tools"] = convert_tools(tools)?;
        }
        if let Some(choice) = &request.tool_choice {
            match convert_tool_choice(choice)? {
                Some(choice) => body["tool_choice"] = choice,
                None => {
                    body.as_object_mut().map(|o| o.remove("tools"));
                }
            }
        }
        Ok(body)
    }

    async fn post(&self, body: &Value) -> Result<Response, LlmError> {
        self.upstream.post_json(&self.endpoint, &self.headers, body).await
    }
}

fn invalid(message: impl Into<String>, param: &str) -> LlmError {
    LlmError::InvalidRequest { message: message.into(), param: Some(param.into()) }
}

/// OpenAI messages → (system prompt, Anthropic messages). Consecutive messages
/// of the same Anthropic role are merged, as the API requires alternation.
fn convert_messages(messages: &[ChatMessage]) -> Result<(String, Vec<Value>), LlmError> {
    let mut system = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role {
            Role::System | Role::Developer => {
                system.push(message.content_text());
                continue;
            }
            Role::User => ("user", content_blocks(message.content.as_ref())?),
            Role::Assistant => {
                let mut blocks = content_blocks(message.content.as_ref())?;
                for call in message.tool_calls.as_ref().and_then(Value::as_array).into_iter().flatten() {
                    let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input: Value = serde_json::from_str(arguments).map_err(|_| invalid("tool call arguments must be a JSON object", "messages"))?;
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.get("id").cloned().unwrap_or(Value::Null),
                        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "input": input,
                    }));
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                let id = message.tool_call_id.clone().ok_or_else(|| invalid("tool messages need tool_call_id", "messages"))?;
                ("user", vec![json!({ "type": "tool_result", "tool_use_id": id, "content": message.content_text() })])
            }
        };
        match out.last_mut() {
            Some((last_role, last_blocks)) if last_role == role => last_blocks.extend(blocks),
            _ => out.push((role.to_owned(), blocks)),
        }
    }
    let messages = out.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect();
    Ok((system.join("\n\n"), messages))
}

fn content_blocks(content: Option<&MessageContent>) -> Result<Vec<Value>, LlmError> {
    Ok(match content {
        None => Vec::new(),
        Some(MessageContent::Text(text)) if text.is_empty() => Vec::new(),
        Some(MessageContent::Text(text)) => vec![json!({ "type": "text", "text": text })],
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => Ok(json!({ "type": "text", "text": text })),
                ContentPart::ImageUrl { image_url } => image_block(&image_url.url),
            })
            .collect::<Result<_, _>>()?,
    })
}

fn image_block(url: &str) -> Result<Value, LlmError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| invalid("image data URLs must be base64 (data:<type>;base64,<data>)", "messages"))?;
        Ok(json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data } }))
    } else {
        Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }))
    }
}

fn convert_tools(tools: &Value) -> Result<Value, LlmError> {
    let tools = tools.as_array().ok_or_else(|| invalid("tools must be an array", "tools"))?;
    tools
        .iter()
        .map(|tool| {
            let function = tool.get("function").ok_or_else(|| invalid("only function tools are supported", "tools"))?;
            Ok(json!({
                "name": function.get("name").cloned().unwrap_or(Value::Null),
                "description": function.get("description").cloned().unwrap_or(Value::from("")),
                "input_schema": function.get("parameters").cloned().unwrap_or(json!({ "type": "object", "properties": {} })),
            }))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::from)
}

/// `None` means "no tools" (OpenAI's `"none"`).
fn convert_tool_choice(choice: &Value) -> Result<Option<Value>, LlmError> {
    match choice {
        Value::String(s) if s == "none" => Ok(None),
        Value::String(s) if s == "auto" => Ok(Some(json!({ "type": "auto" }))),
        Value::String(s) if s == "required" => Ok(Some(json!({ "type": "any" }))),
        Value::Object(_) => {
            let name = choice.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| invalid("tool_choice.function.name is required", "tool_choice"))?;
            Ok(Some(json!({ "type": "tool", "name": name })))
        }
        _ => Err(invalid("tool_choice must be none, auto, required or a function", "tool_choice")),
    }
}

fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    model: Option<String>,
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

#[async_trait]
impl ChatModel for Anthropic {
    fn provider(&self) -> &'static str {
        "anthropic"
    }

    fn supports_vision(&self) -> bool {
        true
    }

    fn supports_tools(&self) -> bool {
        true
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let response = self.post(&self.body(request, false)?).await?;
        let wire: WireMessage = response.json().await?;
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in &wire.content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
                Some("tool_use") => tool_calls.push(json!({
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                    },
                })),
                _ => {}
            }
        }
        Ok(ChatResponse {
            model: wire.model.unwrap_or_else(|| request.model.clone()),
            content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
            tool_calls: (!tool_calls.is_empty()).then(|| Value::from(tool_calls)),
            finish_reason: wire.stop_reason.as_deref().map_or(FinishReason::Stop, stop_reason),
            usage: Usage::new(wire.usage.input_tokens, wire.usage.output_tokens),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let response = self.post(&self.body(request, true)?).await?;
        let upstream = self.name.clone();
        let events = response
            .into_stream()
            .eventsource()
            .scan(StreamState::default(), move |state, event| {
                let items = match event {
                    Err(e) => vec![Err(LlmError::Protocol { upstream: upstream.clone(), message: e.to_string() })],
                    Ok(event) => match serde_json::from_str::<Value>(&event.data) {
                        Err(e) => vec![Err(LlmError::Protocol { upstream: upstream.clone(), message: format!("bad event: {e}") })],
                        Ok(data) => state.on_event(&upstream, &data),
                    },
                };
                futures::future::ready(Some(futures::stream::iter(items)))
            })
            .flatten();
        Ok(Box::pin(events))
    }
}

/// What a stream remembers between events: input tokens from `message_start`,
/// which content block is which tool call, the stop reason.
#[derive(Default)]
struct StreamState {
    input_tokens: u32,
    output_tokens: u32,
    stop: Option<FinishReason>,
    tool_index_by_block: BTreeMap<u64, usize>,
}

impl StreamState {
    fn on_event(&mut self, upstream: &str, data: &Value) -> Vec<Result<StreamEvent, LlmError>> {
        let tool_delta = |index: usize, function: Value, extra: Option<(&Value, &Value)>| {
            let mut call = json!({ "index": index, "function": function });
            if let Some((id, _)) = extra {
                call["id"] = id.clone();
                call["type"] = Value::from("function");
            }
            Ok(StreamEvent::Delta { content: None, tool_calls: Some(json!([call])) })
        };
        match data.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                self.input_tokens = data.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
                Vec::new()
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Vec::new();
                }
                let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let tool_index = self.tool_index_by_block.len();
                self.tool_index_by_block.insert(block_index, tool_index);
                let name = block.get("name").cloned().unwrap_or(Value::Null);
                let id = block.get("id").cloned().unwrap_or(Value::Null);
                vec![tool_delta(tool_index, json!({ "name": name, "arguments": "" }), Some((&id, &name)))]
            }
            "content_block_delta" => {
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
                        if text.is_empty() { Vec::new() } else { vec![Ok(StreamEvent::Delta { content: Some(text), tool_calls: None })] }
                    }
                    Some("input_json_delta") => {
                        let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let Some(&tool_index) = self.tool_index_by_block.get(&block_index) else { return Vec::new() };
                        let partial = delta.get("partial_json").cloned().unwrap_or(Value::from(""));
                        vec![tool_delta(tool_index, json!({ "arguments": partial }), None)]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(stop_reason(reason));
                }
                if let Some(out) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.output_tokens = out as u32;
                }
                Vec::new()
            }
            "message_stop" => vec![Ok(StreamEvent::Finish(self.stop.unwrap_or(FinishReason::Stop))), Ok(StreamEvent::Usage(Usage::new(self.input_tokens, self.output_tokens)))],
            "error" => {
                let kind = data.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
                let message = data.pointer("/error/message").and_then(Value::as_str).unwrap_or("stream error").to_owned();
                let status = match kind {
                    "overloaded_error" => 529,
                    "rate_limit_error" => 429,
                    "invalid_request_error" => 400,
                    _ => 500,
                };
                vec![Err(LlmError::Upstream { upstream: upstream.to_owned(), status, message, retry_after: None })]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_tool_messages_convert() {
        let mut tool = ChatMessage::text(Role::Tool, "42");
        tool.tool_call_id = Some("call_1".into());
        let mut assistant = ChatMessage::text(Role::Assistant, "");
        assistant.tool_calls = Some(json!([{ "id": "call_1", "type": "function", "function": { "name": "calc", "arguments": "{\"x\":1}" } }]));
        let messages = vec![ChatMessage::text(Role::System, "be brief"), ChatMessage::text(Role::User, "hi"), assistant, tool];
        let (system, converted) = convert_messages(&messages).unwrap();
        assert_eq!(system, "be brief");
        assert_eq!(converted.len(), 3);
        assert_eq!(converted[1]["content"][0]["type"], "tool_use");
        assert_eq!(converted[1]["content"][0]["input"]["x"], 1);
        assert_eq!(converted[2]["content"][0]["tool_use_id"], "call_1");
    }

    #[test]
    fn data_url_images_become_base64_blocks() {
        let block = image_block("data:image/png;base64,AAAA").unwrap();
        assert_eq!(block["source"]["media_type"], "image/png");
        assert!(image_block("data:image/png,raw").is_err());
    }

    #[test]
    fn streamed_tool_use_becomes_openai_tool_call_deltas() {
        let mut state = StreamState::default();
        let events = [
            json!({ "type": "message_start", "message": { "usage": { "input_tokens": 20 } } }),
            json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "tool_use", "id": "toolu_1", "name": "add" } }),
            json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "{\"a\":" } }),
            json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "1}" } }),
            json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": 9 } }),
            json!({ "type": "message_stop" }),
        ];
        let out: Vec<StreamEvent> = events.iter().flat_map(|e| state.on_event("up", e)).map(Result::unwrap).collect();
        let StreamEvent::Delta { tool_calls: Some(first), .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!(first[0]["id"], "toolu_1");
        assert_eq!(first[0]["function"]["name"], "add");
        assert_eq!(first[0]["index"], 0);
        let arguments: String = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta { tool_calls: Some(calls), .. } => calls[0]["function"]["arguments"].as_str().map(str::to_owned),
                _ => None,
            })
            .collect();
        assert_eq!(arguments, "{\"a\":1}");
        assert_eq!(out[out.len() - 2], StreamEvent::Finish(FinishReason::ToolCalls));
        assert_eq!(out[out.len() - 1], StreamEvent::Usage(Usage::new(20, 9)));
    }

    #[test]
    fn stream_errors_keep_their_retry_class() {
        let mut state = StreamState::default();
        let overloaded = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "busy" } });
        let error = state.on_event("up", &overloaded).remove(0).unwrap_err();
        assert!(error.is_retryable());
    }
}
