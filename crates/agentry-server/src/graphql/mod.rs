//! GraphQL at `/graphql`: the read side of the platform API in one round
//! trip — the tenant, its members, agents, threads with messages, runs
//! with tool calls and citations, collections, documents and versions,
//! usage summaries. Queries only; changes go through REST.
//!
//! The same checks as REST, not a second set: the route is
//! `Tenant(None)` in [`crate::access::RULES`] (authentication and the
//! tenant are the `authorize` middleware's), and every field that reads
//! something names the REST route it mirrors, whose rule decides whether
//! the caller's permissions reach it ([`query::Caller::reach`]); the core
//! function that route's handler calls then decides on the object's owner
//! and tenant. A refusal is the field's error, with the REST error's
//! `code` and `status` in its `extensions`; other fields still answer.
//!
//! Limits: body size, nesting depth, query complexity (a field that reads
//! storage counts 100, a list its page size times what each item asks
//! for) and aliases ([`limits`]). Persisted
//! queries: `GET /graphql?query=…` and Apollo's automatic persisted
//! queries (`extensions.persistedQuery` with the query's SHA-256), cached
//! per process.
//!
//! Must not: mutate anything, or reach storage other than through core.

mod limits;
mod query;
mod types;

pub use query::routes;

use agentry_core::identity::RequestMeta;
use agentry_core::{Principal, TenantAccess};
use agentry_types::ErrorCode;
use async_graphql::extensions::apollo_persisted_queries::{ApolloPersistedQueries, LruCacheStorage};
use async_graphql::{EmptyMutation, EmptySubscription, Schema};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::state::AppState;
use query::{Caller, QueryRoot};

/// The schema `/graphql` serves.
pub type ApiSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Distinct persisted queries remembered per process (each at most
/// [`limits::MAX_BODY`] long, so the cache stays under 8 MiB).
const PERSISTED_QUERIES: usize = 256;

/// The schema, with its limits and persisted-query cache.
pub fn schema() -> ApiSchema {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_depth(limits::MAX_DEPTH)
        .limit_complexity(limits::MAX_COMPLEXITY)
        .limit_recursive_depth(limits::MAX_DEPTH * 4)
        .limit_directives(limits::MAX_DIRECTIVES)
        .extension(limits::AliasLimit)
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(PERSISTED_QUERIES)))
        .finish()
}

/// The schema in SDL, as committed in `docs/schema.graphql`.
pub fn sdl() -> String {
    schema().sdl()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/graphql", get(query_string).post(body)).layer(Extension(schema())).layer(DefaultBodyLimit::max(limits::MAX_BODY))
}

async fn execute(schema: &ApiSchema, caller: Caller, request: async_graphql::Request) -> Response {
    Json(schema.execute(request.data(caller)).await).into_response()
}

/// The body of `POST /graphql` (GraphQL over HTTP).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GraphQlRequest)]
pub struct GraphQlRequest {
    /// The query document; may be left out when `extensions.persistedQuery` names one this server has seen.
    #[serde(default)]
    query: String,
    /// Which operation of the document to run (when it has several).
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    /// Values of the operation's variables.
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// `{"persistedQuery": {"version": 1, "sha256Hash": "…"}}` for an automatic persisted query.
    #[schema(value_type = Option<Object>)]
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl GraphQlRequest {
    fn into_request(self) -> Result<async_graphql::Request, ApiError> {
        let mut request = async_graphql::Request::new(self.query);
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(variables) = self.variables {
            request = request.variables(async_graphql::Variables::from_json(serde_json::Value::Object(variables)));
        }
        for (name, value) in self.extensions.unwrap_or_default() {
            let value = async_graphql::Value::from_json(value).map_err(|e| ApiError::bad_request(format!("extension '{name}' is not a GraphQL value: {e}"), "extensions"))?;
            request.extensions.insert(name, value);
        }
        Ok(request)
    }
}

/// The answer's schema: `data` (what could be read) and `errors` (what
/// could not, each with `extensions.code` and `extensions.status` as REST
/// would have answered).
pub fn response_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let error = ObjectBuilder::new()
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .property("locations", ArrayBuilder::new().items(ObjectBuilder::new()))
        .property("path", ArrayBuilder::new().items(ObjectBuilder::new()))
        .property("extensions", ObjectBuilder::new().description(Some("`code`, `status` and `param` of the REST error this field's refusal equals.")))
        .required("message");
    let data = ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null]));
    ObjectBuilder::new().property("data", data).property("errors", ArrayBuilder::new().items(error)).property("extensions", ObjectBuilder::new()).into()
}

/// `POST /graphql` with `{"query", "operationName", "variables", "extensions"}`.
async fn body(
    State(state): State<AppState>,
    Extension(schema): Extension<ApiSchema>,
    Extension(access): Extension<TenantAccess>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(request): ApiJson<GraphQlRequest>,
) -> Result<Response, ApiError> {
    Ok(execute(&schema, Caller::new(state, access, principal, meta), request.into_request()?).await)
}

/// `GET /graphql?query=…&variables=…` (or a persisted query's hash in `extensions`).
async fn query_string(
    State(state): State<AppState>,
    Extension(schema): Extension<ApiSchema>,
    Extension(access): Extension<TenantAccess>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    uri: axum::http::Uri,
    Query(query): Query<GraphQlQueryString>,
) -> Result<Response, ApiError> {
    if uri.query().map_or(0, str::len) > limits::MAX_BODY {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("a GraphQL query string takes at most {} bytes; send longer requests by POST", limits::MAX_BODY)));
    }
    Ok(execute(&schema, Caller::new(state, access, principal, meta), query.into_request()?.into_request()?).await)
}

/// `GET /graphql`'s query string: [`GraphQlRequest`]'s fields, `variables`
/// and `extensions` as JSON objects; an empty parameter counts as absent.
#[derive(serde::Deserialize)]
pub struct GraphQlQueryString {
    #[serde(default)]
    query: String,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl GraphQlQueryString {
    fn into_request(self) -> Result<GraphQlRequest, ApiError> {
        let object = |raw: Option<String>, param: &'static str| -> Result<_, ApiError> {
            raw.filter(|s| !s.is_empty())
                .map(|s| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&s))
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("'{param}' must be a JSON object: {e}"), param))
        };
        Ok(GraphQlRequest {
            query: self.query,
            operation_name: self.operation_name.filter(|s| !s.is_empty()),
            variables: object(self.variables, "variables")?,
            extensions: object(self.extensions, "extensions")?,
        })
    }
}

/// A field's error: the REST error's message, with its `code`, `status`
/// and `param` in `extensions` (5xx details stay in the log, as in REST).
impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        use async_graphql::ErrorExtensions;
        async_graphql::Error::new(error.message).extend_with(|_, extensions| {
            extensions.set("code", error.code.as_str());
            extensions.set("status", error.status.as_u16());
            if let Some(param) = &error.param {
                extensions.set("param", param.as_str());
            }
        })
    }
}
