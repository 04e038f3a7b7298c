//! `GET /v1/models` and `GET /v1/models/{id}`.

use agentry_llm::ModelEntry;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

fn model_object(entry: &ModelEntry) -> Value {
    json!({
        "id": entry.name,
        "object": "model",
        "created": 0,
        "owned_by": entry.upstream,
    })
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state.gateway.router().registry().iter().map(model_object).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    state.gateway.router().registry().get(&id).map(|entry| Json(model_object(entry))).ok_or_else(|| agentry_llm::LlmError::ModelNotFound(id).into())
}
