//! `POST /v1/embeddings`: string or array-of-strings input, `float` or
//! `base64` (little-endian f32, what the official SDKs ask for by default).
//! [`embed`] answers a direct call and a batch line alike.

use agentry_core::coord::RateDecision;
use agentry_core::{CallContext, Gateway, TenantAccess};
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::middleware::RequestId;
use crate::state::AppState;

/// Most inputs accepted in one request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

/// OpenAI's embeddings request, with the limits this gateway checks.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmbeddingsRequest {
    #[schema(min_length = 1)]
    model: String,
    #[schema(schema_with = input_schema)]
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<EncodingFormat>,
    #[serde(default)]
    #[schema(minimum = 1)]
    dimensions: Option<u32>,
    #[serde(default, rename = "user")]
    _user: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize, Clone, Copy, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum EncodingFormat {
    Float,
    Base64,
}

/// [`EmbeddingInput`]'s schema: one non-empty string, or up to [`MAX_INPUTS`] of them.
fn input_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String).min_length(Some(1));
    OneOfBuilder::new().item(text()).item(ArrayBuilder::new().items(text()).min_items(Some(1)).max_items(Some(MAX_INPUTS))).build().into()
}

impl EmbeddingsRequest {
    fn inputs(self) -> Result<(String, Vec<String>, EncodingFormat, Option<u32>), ApiError> {
        let inputs = match self.input {
            EmbeddingInput::One(text) => vec![text],
            EmbeddingInput::Many(texts) => texts,
            EmbeddingInput::Other(_) => {
                return Err(ApiError::bad_request("'input' must be a string or an array of strings (token arrays are not supported)", "input"));
            }
        };
        if inputs.is_empty() {
            return Err(ApiError::bad_request("'input' must not be empty", "input"));
        }
        if inputs.len() > MAX_INPUTS {
            return Err(ApiError::bad_request(format!("'input' has {} items; at most {MAX_INPUTS} are allowed", inputs.len()), "input"));
        }
        if let Some(i) = inputs.iter().position(|s| s.is_empty()) {
            return Err(ApiError::bad_request(format!("input[{i}] is an empty string"), "input"));
        }
        if self.dimensions == Some(0) {
            return Err(ApiError::bad_request("'dimensions' must be at least 1", "dimensions"));
        }
        Ok((self.model, inputs, self.encoding_format.unwrap_or(EncodingFormat::Float), self.dimensions))
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    access: Option<Extension<TenantAccess>>,
    ApiJson(request): ApiJson<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let ctx = super::call_context(request_id, "/v1/embeddings", access.as_deref());
    let (body, rate_limit) = embed(&state.gateway, &ctx, request).await?;
    Ok(super::with_rate_limit(Json(body).into_response(), rate_limit))
}

/// Answer an embeddings request (a direct call or a batch line).
pub(crate) async fn embed(gateway: &Gateway, ctx: &CallContext, request: EmbeddingsRequest) -> Result<(EmbeddingsResponse, Option<RateDecision>), ApiError> {
    let (model, inputs, format, dimensions) = request.inputs()?;
    let served = gateway.embed(ctx, &model, inputs).await?;
    let routed = served.routed;
    let response = routed.value;
    let data = response
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let vector = shorten(vector, dimensions)?;
            let embedding = match format {
                EncodingFormat::Float => Embedding::Float(vector),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Embedding::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            Ok(EmbeddingObject { object: "embedding", index, embedding })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let body =
        EmbeddingsResponse { object: "list", data, model: routed.model, usage: EmbeddingUsage { prompt_tokens: response.prompt_tokens, total_tokens: response.prompt_tokens } };
    Ok((body, served.rate_limit))
}

/// Typed so that `f32` components serialise in their shortest form (`0.6`, not `0.6000000238418579`).
#[derive(Serialize)]
pub struct EmbeddingsResponse {
    object: &'static str,
    data: Vec<EmbeddingObject>,
    model: String,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingObject {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// OpenAI's `dimensions`: keep the first `n` components and re-normalise.
fn shorten(vector: Vec<f32>, dimensions: Option<u32>) -> Result<Vec<f32>, ApiError> {
    let Some(n) = dimensions.map(|d| d as usize) else { return Ok(vector) };
    if n > vector.len() {
        return Err(ApiError::bad_request(format!("this model has {} dimensions; 'dimensions' cannot exceed it", vector.len()), "dimensions"));
    }
    let mut vector = vector;
    vector.truncate(n);
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(vector)
}
