//! `/v1/files` and `/v1/batches` in OpenAI's shapes, so the official SDKs'
//! `files.create` / `batches.create` / `batches.retrieve` / `files.content`
//! work unchanged. An upload streams into storage as it arrives (up to
//! `files.max_bytes`, independent of `max_body_bytes`), checked line by
//! line; handlers call one `Batches` function each.

use agentry_core::TenantAccess;
use agentry_core::batches::{FileUpload, ListRequest, NewBatch};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::state::AppState;

pub fn router(max_file_bytes: u64) -> Router<AppState> {
    // Room for the multipart framing around the file; the service enforces the exact limit.
    let upload_limit = DefaultBodyLimit::max(usize::try_from(max_file_bytes).unwrap_or(usize::MAX).saturating_add(1024 * 1024));
    Router::new()
        .route("/v1/files", get(list_files).post(upload).layer(upload_limit))
        .route("/v1/files/{id}", get(file).delete(delete_file))
        .route("/v1/files/{id}/content", get(content))
        .route("/v1/batches", get(list_batches).post(create_batch))
        .route("/v1/batches/{id}", get(batch))
        .route("/v1/batches/{id}/cancel", post(cancel_batch))
}

/// The longest `purpose` read (its one value is `batch`).
const MAX_PURPOSE_BYTES: usize = 64;

/// Files and batches belong to a tenant.
fn tenant(access: Option<Extension<TenantAccess>>) -> Result<TenantAccess, ApiError> {
    access.map(|Extension(access)| access).ok_or_else(|| ApiError::bad_request("files and batches belong to a tenant: name one with the X-Agentry-Tenant header", "tenant"))
}

/// `GET` list parameters, as OpenAI's SDKs send them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    after: Option<String>,
    /// Only `desc` (newest first).
    order: Option<String>,
    purpose: Option<Purpose>,
}

/// The purposes files have here: uploaded batch input, and a batch's output and error files.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Purpose {
    Batch,
    BatchOutput,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::BatchOutput => "batch_output",
        }
    }
}

impl ListQuery {
    fn request(self) -> Result<(ListRequest, Option<Purpose>), ApiError> {
        if self.order.as_deref().is_some_and(|order| order != "desc") {
            return Err(ApiError::bad_request("'order' can only be \"desc\" (newest first)", "order"));
        }
        Ok((ListRequest { limit: self.limit, after: self.after }, self.purpose))
    }
}

/// Multipart fields `file` (the JSONL bytes) and `purpose` (`batch`), in either order.
async fn upload(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, multipart: Result<Multipart, MultipartRejection>) -> Result<Response, ApiError> {
    let access = tenant(access)?;
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(format!("send the file as multipart/form-data: {}", e.body_text()), "file"))?;
    let mut upload = None;
    let read = read_fields(&state, &access, &mut multipart, &mut upload).await;
    match (read, upload) {
        (Ok(Some(purpose)), Some(upload)) => Ok(Json(state.batches.finish_upload(upload, &purpose).await?).into_response()),
        (Ok(None), Some(upload)) => {
            upload.abort().await;
            Err(ApiError::bad_request("the 'purpose' field is missing (it must be \"batch\")", "purpose"))
        }
        (Ok(_), None) => Err(ApiError::bad_request("the 'file' field is missing", "file")),
        (Err(error), Some(upload)) => {
            upload.abort().await;
            Err(error)
        }
        (Err(error), None) => Err(error),
    }
}

/// Read the fields, streaming the file into `upload`; returns the purpose.
async fn read_fields(state: &AppState, access: &TenantAccess, multipart: &mut Multipart, upload: &mut Option<FileUpload>) -> Result<Option<String>, ApiError> {
    let bad = |message: String, param: &str| ApiError::bad_request(message, param);
    let mut purpose = None;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| bad(format!("malformed multipart body: {e}"), "file"))? {
        match field.name().unwrap_or_default() {
            "purpose" => {
                // Read no more than the one value it may have, and refuse another before any file bytes are stored.
                let mut value = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| bad(format!("cannot read 'purpose': {e}"), "purpose"))? {
                    value.extend_from_slice(&chunk);
                    if value.len() > MAX_PURPOSE_BYTES {
                        break;
                    }
                }
                if value != b"batch" {
                    return Err(bad("'purpose' must be \"batch\" (the only purpose files have here)".into(), "purpose"));
                }
                purpose = Some("batch".to_owned());
            }
            "file" if upload.is_some() => return Err(bad("send one 'file' per upload".into(), "file")),
            "file" => {
                let name = field.file_name().unwrap_or("upload.jsonl").to_owned();
                let started = upload.insert(state.batches.begin_upload(access, &name).await?);
                while let Some(chunk) = field.chunk().await.map_err(|e| bad(format!("cannot read the file: {e}"), "file"))? {
                    started.write(&chunk).await?;
                }
            }
            other => return Err(bad(format!("unknown field '{other}': send 'file' and 'purpose'"), "file")),
        }
    }
    Ok(purpose)
}

async fn list_files(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Query(query): Query<ListQuery>) -> Result<Response, ApiError> {
    let access = tenant(access)?;
    let (list, purpose) = query.request()?;
    Ok(Json(state.batches.files(&access, purpose.map(Purpose::as_str), &list).await?).into_response())
}

async fn file(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.batches.file(&tenant(access)?, &id).await?).into_response())
}

async fn delete_file(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    state.batches.delete_file(&tenant(access)?, &id).await?;
    Ok(Json(serde_json::json!({ "id": id, "object": "file", "deleted": true })).into_response())
}

async fn content(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (file, parts) = state.batches.file_content(&tenant(access)?, &id).await?;
    let body = Body::from_stream(parts.map(|part| part.map_err(|e| std::io::Error::other(e.to_string()))));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/jsonl"), (header::CONTENT_LENGTH, &file.bytes.to_string())], body).into_response())
}

async fn create_batch(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, ApiJson(new): ApiJson<NewBatch>) -> Result<Response, ApiError> {
    Ok(Json(state.batches.create(&tenant(access)?, new).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchListQuery {
    limit: Option<i64>,
    after: Option<String>,
}

async fn list_batches(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Query(query): Query<BatchListQuery>) -> Result<Response, ApiError> {
    let list = ListRequest { limit: query.limit, after: query.after };
    Ok(Json(state.batches.list(&tenant(access)?, &list).await?).into_response())
}

async fn batch(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.batches.get(&tenant(access)?, &id).await?).into_response())
}

async fn cancel_batch(State(state): State<AppState>, access: Option<Extension<TenantAccess>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.batches.cancel(&tenant(access)?, &id).await?).into_response())
}
