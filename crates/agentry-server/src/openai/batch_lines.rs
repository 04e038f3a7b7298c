//! A batch line answered the way its route answers a direct call: the same
//! request checks, the same gateway call (or agent run for
//! `agent:<name>`), the same response body — or the same error body with
//! its status. A rate-limited line is handed back to wait; streaming is
//! refused (a batch stores whole answers).

use agentry_core::agents::Agents;
use agentry_core::batches::{BatchEndpoint, LineAnswer, LineAnswerer};
use agentry_core::{CallContext, Gateway, TenantAccess};
use agentry_types::{ErrorCode, FinishReason};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::chat::{ChatCompletionRequest, completion};
use super::embeddings::{EmbeddingsRequest, embed};
use crate::error::ApiError;

/// Answers batch lines with the gateway and the agents.
pub struct BatchLines {
    pub gateway: Gateway,
    pub agents: Agents,
}

fn request<T: DeserializeOwned>(body: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(body)).map_err(|e| ApiError::bad_request(format!("the line's 'body' is not a valid request: {e}"), "body"))
}

impl BatchLines {
    async fn chat(&self, access: &TenantAccess, ctx: &CallContext, body: Map<String, Value>) -> Result<Value, ApiError> {
        let parsed = request::<ChatCompletionRequest>(body)?.parse()?;
        if parsed.stream {
            return Err(ApiError::bad_request("'stream' is not available in a batch: its answers are stored whole", "stream"));
        }
        let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        if let Some(agent) = parsed.model.strip_prefix("agent:") {
            let (_, text, usage) = super::agent::answer(&self.agents, ctx, access, agent, parsed.request.messages).await?;
            return Ok(serde_json::to_value(completion(&id, &parsed.model, Some(&text), None, FinishReason::Stop, &usage)).unwrap_or_default());
        }
        let served = self.gateway.chat(ctx, &parsed.model, parsed.request).await?;
        let (model, answer) = (served.routed.model, served.routed.value);
        let body = completion(&id, &model, answer.content.as_deref(), answer.tool_calls.as_ref(), answer.finish_reason, &answer.usage);
        Ok(serde_json::to_value(body).unwrap_or_default())
    }

    async fn embeddings(&self, ctx: &CallContext, body: Map<String, Value>) -> Result<Value, ApiError> {
        let (body, _) = embed(&self.gateway, ctx, request::<EmbeddingsRequest>(body)?).await?;
        Ok(serde_json::to_value(body).unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl LineAnswerer for BatchLines {
    async fn answer(&self, access: &TenantAccess, ctx: &CallContext, endpoint: BatchEndpoint, body: Map<String, Value>) -> LineAnswer {
        let answered = match endpoint {
            BatchEndpoint::ChatCompletions => self.chat(access, ctx, body).await,
            BatchEndpoint::Embeddings => self.embeddings(ctx, body).await,
        };
        match answered {
            Ok(body) => LineAnswer::Answered { status: 200, body },
            // A rate limit the gateway measured: it says when to come back.
            Err(ApiError { code: ErrorCode::RateLimited, rate_limit: Some(decision), .. }) => LineAnswer::RateLimited(decision.retry_after),
            Err(error) => LineAnswer::Answered { status: error.status.as_u16(), body: error.body(Some(&ctx.request_id)) },
        }
    }
}
