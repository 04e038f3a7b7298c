//! Rendering chat messages into a prompt with the model's own Jinja chat
//! template (`tokenizer.chat_template` in the GGUF), the way Hugging Face's
//! `apply_chat_template` does: `messages` (role + text content),
//! `add_generation_prompt = true`, `bos_token` / `eos_token`, Jinja's
//! `trim_blocks` + `lstrip_blocks`, Python string methods (pycompat) and
//! `raise_exception`. A GGUF without a template gets ChatML.
//!
//! Must not: tokenize or know about the model's weights.

use agentry_types::{ChatMessage, Role};
use candle_core::quantized::gguf_file::Content;
use minijinja::{Environment, ErrorKind, context};
use serde::Serialize;

use crate::LlmError;

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const NAME: &str = "chat";

/// A compiled chat template.
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

#[derive(Serialize)]
struct TemplateMessage {
    role: &'static str,
    content: String,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

impl ChatTemplate {
    /// The GGUF's template, or ChatML when it has none.
    pub fn from_gguf(ct: &Content, bos_token: Option<&str>, eos_token: Option<&str>) -> Result<Self, LlmError> {
        let source = ct.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned().unwrap_or_else(|| {
            tracing::info!("GGUF has no chat template, using ChatML");
            CHATML.to_string()
        });
        Self::new(source, bos_token.unwrap_or(""), eos_token.unwrap_or(""))
    }

    pub fn new(source: String, bos_token: &str, eos_token: &str) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> { Err(minijinja::Error::new(ErrorKind::InvalidOperation, message)) });
        env.add_template_owned(NAME, source).map_err(|e| LlmError::Local(format!("the model's chat template does not parse: {e}")))?;
        Ok(Self { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// The prompt for `messages`, ending where the assistant's answer starts.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let messages: Vec<TemplateMessage> = messages.iter().map(|m| TemplateMessage { role: role_name(m.role), content: m.content_text() }).collect();
        let template = self.env.get_template(NAME).map_err(|e| LlmError::Local(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| LlmError::InvalidRequest { message: format!("the model's chat template rejected these messages: {e}"), param: Some("messages".into()) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_smollm2_template_like_transformers() {
        let t = ChatTemplate::new(SMOLLM2.into(), "<|im_start|>", "<|im_end|>").unwrap();
        let out = t.render(&[ChatMessage::text(Role::User, "Hi")]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t.render(&[ChatMessage::text(Role::Developer, "Be brief."), ChatMessage::text(Role::User, "Hi")]).unwrap();
        assert!(out.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi"));
    }

    #[test]
    fn chatml_fallback_and_python_methods() {
        let t = ChatTemplate::new(CHATML.into(), "", "").unwrap();
        assert_eq!(t.render(&[ChatMessage::text(Role::User, "a")]).unwrap(), "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n");
        let py = ChatTemplate::new("{{ messages[0]['content'].strip().upper() }}{{ bos_token }}".into(), "<s>", "").unwrap();
        assert_eq!(py.render(&[ChatMessage::text(Role::User, "  x ")]).unwrap(), "X<s>");
    }

    #[test]
    fn raise_exception_is_an_invalid_request() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}".into(), "", "").unwrap();
        let err = t.render(&[]).unwrap_err();
        assert!(matches!(err, LlmError::InvalidRequest { .. }));
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }
}
