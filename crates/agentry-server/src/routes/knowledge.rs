//! Collections, documents (upload as multipart, JSON text or base64, or a
//! URL the ingestion worker fetches; status, versions, delete), ingestion
//! jobs and search. Handlers turn the request into the
//! core's types and call one `Knowledge` function; permissions are in
//! `access.rs` and checked again by the service.

use agentry_core::TenantAccess;
use agentry_core::knowledge::{AccessList, AnswerQuestion, AnswerToStore, CollectionChange, CollectionInput, Content, JsonUpload, SearchRequest, Upload};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use crate::error::ApiError;
use crate::extractors::{ApiJson, PageQuery};
use crate::state::AppState;

pub fn router(max_document_bytes: usize) -> Router<AppState> {
    // Room for the multipart framing and the other fields around the file.
    let upload_limit = DefaultBodyLimit::max(max_document_bytes.saturating_mul(4) / 3 + 64 * 1024);
    Router::new()
        .route("/api/v1/collections", get(collections).post(create_collection))
        .route("/api/v1/collections/{id}", get(collection).patch(update_collection).delete(delete_collection))
        .route("/api/v1/collections/{id}/quality", get(quality))
        .route("/api/v1/collections/{id}/documents", get(documents).post(upload).layer(upload_limit))
        .route("/api/v1/documents/{id}", get(document).delete(delete_document))
        .route("/api/v1/documents/{id}/versions", get(versions))
        .route("/api/v1/documents/{id}/lineage", get(lineage))
        .route("/api/v1/documents/{id}/versions/{version}", get(version_content).delete(delete_version))
        .route("/api/v1/documents/{id}/versions/{version}/restore", post(restore))
        .route("/api/v1/ingest-jobs/{id}", get(job))
        .route("/api/v1/search", post(search))
        .route("/api/v1/answer-cache/lookup", post(lookup_answer))
        .route("/api/v1/answer-cache", post(store_answer))
}

async fn create_collection(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<CollectionInput>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.knowledge.create_collection(&access, input).await?)).into_response())
}

async fn collections(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.collections(&access, &query.page()?).await?).into_response())
}

async fn collection(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.collection(&access, &id).await?).into_response())
}

async fn update_collection(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<CollectionChange>,
) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.update_collection(&access, &id, change).await?).into_response())
}

async fn quality(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.quality_report(&access, &id).await?).into_response())
}

async fn delete_collection(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.knowledge.delete_collection(&access, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Multipart fields: `file` (required), `title`, `metadata` (JSON object), `acl` (JSON), `document_id`.
async fn multipart_upload(mut multipart: Multipart) -> Result<Upload, ApiError> {
    let bad = |message: String, param: &str| ApiError::bad_request(message, param);
    let (mut content, mut title, mut metadata, mut acl, mut document_id) = (None, None, serde_json::Map::new(), AccessList::default(), None);
    while let Some(field) = multipart.next_field().await.map_err(|e| bad(format!("malformed multipart body: {e}"), "file"))? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| bad(format!("cannot read the file: {e}"), "file"))?.to_vec();
                content = Some(Content::Bytes { bytes, file_name, content_type });
            }
            "title" | "metadata" | "acl" | "document_id" => {
                let text = field.text().await.map_err(|e| bad(format!("cannot read '{name}': {e}"), "file"))?;
                match name.as_str() {
                    "title" => title = Some(text),
                    "document_id" => document_id = Some(text),
                    "metadata" => metadata = serde_json::from_str(&text).map_err(|_| bad("'metadata' must be a JSON object".into(), "metadata"))?,
                    _ => acl = serde_json::from_str(&text).map_err(|_| bad("'acl' must be {\"users\": [...], \"roles\": [...], \"groups\": [...]}".into(), "acl"))?,
                }
            }
            other => return Err(bad(format!("unknown field '{other}'"), "file")),
        }
    }
    let content = content.ok_or_else(|| bad("the 'file' field is missing".into(), "file"))?;
    Ok(Upload { content, title, metadata, acl, document_id, collected: None })
}

async fn upload(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(collection): Path<String>, request: Request) -> Result<Response, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let upload = if content_type.starts_with("multipart/form-data") {
        let multipart = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &()).await.map_err(|e| ApiError::bad_request(e.body_text(), "file"))?;
        multipart_upload(multipart).await?
    } else {
        let ApiJson(body) = <ApiJson<JsonUpload> as axum::extract::FromRequest<()>>::from_request(request, &()).await?;
        body.into_upload()?
    };
    let accepted = state.knowledge.upload(&access, &collection, upload).await?;
    let status = if accepted.unchanged { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(accepted)).into_response())
}

async fn documents(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.documents(&access, &id, &query.page()?).await?).into_response())
}

async fn document(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.document(&access, &id).await?).into_response())
}

async fn delete_document(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.knowledge.delete_document(&access, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn versions(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "data": state.knowledge.versions(&access, &id).await? })).into_response())
}

async fn lineage(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "data": state.knowledge.lineage(&access, &id).await? })).into_response())
}

async fn version_content(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path((id, version)): Path<(String, i32)>) -> Result<Response, ApiError> {
    let file = state.knowledge.version_content(&access, &id, version).await?;
    // Stored user content: always a download, never a page on the API's origin.
    let disposition = format!("attachment; filename=\"document-{}-v{version}.{}\"", id.chars().filter(char::is_ascii_alphanumeric).take(64).collect::<String>(), file.extension);
    let headers = [
        (header::CONTENT_TYPE, file.media_type.to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".to_owned()),
    ];
    Ok((headers, file.bytes).into_response())
}

async fn delete_version(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path((id, version)): Path<(String, i32)>) -> Result<StatusCode, ApiError> {
    state.knowledge.delete_version(&access, &id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restore(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path((id, version)): Path<(String, i32)>) -> Result<Response, ApiError> {
    let accepted = state.knowledge.restore(&access, &id, version).await?;
    let status = if accepted.unchanged { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(accepted)).into_response())
}

async fn job(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.job(&access, &id).await?).into_response())
}

async fn search(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(request): ApiJson<SearchRequest>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.search(&access, request).await?).into_response())
}

async fn lookup_answer(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(question): ApiJson<AnswerQuestion>) -> Result<Response, ApiError> {
    Ok(Json(state.knowledge.lookup_answer(&access, question).await?).into_response())
}

async fn store_answer(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(answer): ApiJson<AnswerToStore>) -> Result<Response, ApiError> {
    state.knowledge.store_answer(&access, answer).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
