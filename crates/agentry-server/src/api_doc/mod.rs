//! The OpenAPI 3.1 document of the API, served at `/openapi.json`: every
//! routed operation of [`crate::access::RULES`], described by the table in
//! [`operations`] (summary, request and answer bodies, query parameters),
//! with what the route table already knows filled in — security (none for
//! public routes, a bearer credential otherwise), path parameters, and the
//! error answers every operation can give (the error envelope, its codes
//! from [`ErrorCode`]'s table).
//!
//! Built with utoipa's builders from the table rather than an attribute per
//! handler, so that the route table stays the one list of routes: a test
//! fails when a rule has no description or a description no rule.
//!
//! Must not: decide access (the route table does) or serve anything.

mod operations;

use std::collections::BTreeMap;

use agentry_types::ErrorCode;
use axum::http::Method;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, ServerBuilder, Tag};
use utoipa::{PartialSchema, ToSchema};

use crate::access::{Access, rule_for};
pub use operations::operations;

/// A schema an operation refers to: its component name and the schemas it
/// needs (its own included), or an inline schema.
#[derive(Clone)]
pub enum Body {
    /// `application/json` of a named schema.
    Json { name: String, schemas: Vec<(String, RefOr<Schema>)> },
    /// `{"data": [T…]}`, the shape of the API's lists, of a named schema;
    /// a paged list also has `next_cursor`.
    List { name: String, schemas: Vec<(String, RefOr<Schema>)>, paged: bool },
    /// `application/json` of any JSON value (not yet typed).
    AnyJson,
    /// `text/event-stream` whose events' `data` is JSON of a named schema.
    Events { name: String, schemas: Vec<(String, RefOr<Schema>)> },
    /// Bytes of another media type (`text/csv`, `text/event-stream`, a download…).
    Media(&'static str),
    /// `multipart/form-data` (a file upload) or JSON of a named schema.
    Upload { name: String, schemas: Vec<(String, RefOr<Schema>)> },
    /// `multipart/form-data` only: a `file` and text fields, each one of the given values; all required.
    FileForm(&'static [(&'static str, &'static [&'static str])]),
}

/// `T`'s name and the schemas it needs (its own included).
fn named<T: ToSchema>() -> (String, Vec<(String, RefOr<Schema>)>) {
    let mut schemas = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut schemas);
    (T::name().into_owned(), schemas)
}

/// Server-sent events, each `data` the JSON of a `T`.
pub fn events<T: ToSchema>() -> Body {
    let (name, schemas) = named::<T>();
    Body::Events { name, schemas }
}

/// The JSON body of `T`.
pub fn json<T: ToSchema>() -> Body {
    let (name, schemas) = named::<T>();
    Body::Json { name, schemas }
}

/// A file upload (`multipart/form-data`) or the JSON form `T`.
pub fn upload<T: ToSchema>() -> Body {
    let (name, schemas) = named::<T>();
    Body::Upload { name, schemas }
}

/// `{"data": [T…]}`.
pub fn list<T: ToSchema>() -> Body {
    let (name, schemas) = named::<T>();
    Body::List { name, schemas, paged: false }
}

/// `{"data": [T…], "next_cursor"}`: one page (see [`PAGE_QUERY`]).
pub fn page<T: ToSchema>() -> Body {
    let (name, schemas) = named::<T>();
    Body::List { name, schemas, paged: true }
}

/// A query parameter: its name, the values it takes and what it means.
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub about: &'static str,
}

/// The values a query parameter takes.
pub enum ParamKind {
    Text,
    /// A whole number from 1 to `max`.
    Count {
        max: i64,
    },
    /// `YYYY-MM-DD`, from 1970 to 9999.
    Date,
    /// Unix milliseconds.
    Millis,
    /// A sequence number, from 0 to `max`.
    Seq {
        max: i64,
    },
    OneOf(&'static [&'static str]),
    /// A page cursor (`agentry_core::page::CURSOR_PATTERN`).
    Cursor,
    /// A JSON object, serialised into the parameter (`content` rather than `schema`).
    JsonObject,
}

pub const fn param(name: &'static str, kind: ParamKind, about: &'static str) -> Param {
    Param { name, kind, about }
}

/// A paged list's page size.
pub const LIMIT: Param = param("limit", ParamKind::Count { max: agentry_core::page::MAX_LIMIT as i64 }, "Items per page, 1-200 (default 50).");
/// A paged list's cursor.
pub const AFTER: Param = param("after", ParamKind::Cursor, "The `next_cursor` of the previous page; the first page without it.");
/// The query of every paged list.
pub const PAGE_QUERY: &[Param] = &[LIMIT, AFTER];

/// One operation's description.
pub struct Operation {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub request: Option<Body>,
    /// The success status and its body (`None`: no body).
    pub ok: (u16, Option<Body>),
    /// Query parameters.
    pub query: &'static [Param],
    /// Whether a request without a body is refused (JSON-RPC answers it
    /// with a protocol error instead).
    pub body_required: bool,
    /// Other success answers (an MCP notification is accepted with 202),
    /// or other media types of one (a run streams its events).
    pub also: Vec<(u16, Option<Body>)>,
    /// Whether it waits on another server (a model, an MCP server, a URL),
    /// and so may answer 502, 503 or 504.
    pub upstream: bool,
}

impl Operation {
    pub fn new(method: Method, path: &'static str, summary: &'static str) -> Self {
        Self { method, path, summary, request: None, ok: (200, Some(Body::AnyJson)), query: &[], body_required: true, also: Vec::new(), upstream: false }
    }

    /// A JSON-RPC endpoint: every request, even one without a body, gets a
    /// JSON-RPC answer (errors inside a 200).
    pub fn json_rpc(mut self) -> Self {
        self.body_required = false;
        self
    }

    /// It waits on another server: see [`Operation::upstream`].
    pub fn upstream(mut self) -> Self {
        self.upstream = true;
        self
    }

    pub fn also(mut self, status: u16, body: Option<Body>) -> Self {
        self.also.push((status, body));
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.request = Some(body);
        self
    }

    pub fn answers(mut self, status: u16, body: Option<Body>) -> Self {
        self.ok = (status, body);
        self
    }

    pub fn query(mut self, query: &'static [Param]) -> Self {
        self.query = query;
        self
    }
}

/// The error envelope every error answer has.
#[derive(serde::Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
    /// The request's id (also in the `x-request-id` header).
    pub request_id: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// OpenAI's error type for the code.
    #[serde(rename = "type")]
    pub kind: String,
    pub code: ErrorCode,
    /// The request field the error is about, when there is one.
    pub param: Option<String>,
}

/// The API version the document describes (the server's version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The whole document.
pub fn document() -> OpenApi {
    let mut components = ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An API key (`agk_…`), a signed-in user's access token, or the master key")).build(),
        ),
    );
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    let mut envelope = vec![(ErrorEnvelope::name().into_owned(), ErrorEnvelope::schema())];
    ErrorEnvelope::schemas(&mut envelope);
    schemas.extend(envelope);
    let mut paths: BTreeMap<&'static str, PathItem> = BTreeMap::new();
    let mut tags: BTreeMap<String, ()> = BTreeMap::new();
    for op in operations() {
        let tag = tag_of(op.path);
        tags.insert(tag.clone(), ());
        let operation = operation(&op, tag, &mut schemas);
        let method = http_method(&op.method);
        let added = PathItem::new(method, operation);
        match paths.get_mut(op.path) {
            Some(item) => item.merge_operations(added),
            None => {
                paths.insert(op.path, added);
            }
        }
    }
    merge_tagged_variants(&mut schemas);
    components = components.schemas_from_iter(schemas);
    let mut path_builder = PathsBuilder::new();
    for (path, item) in paths {
        path_builder = path_builder.path(path, item);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Agentry API")
                .version(VERSION)
                .description(Some(
                    "The platform API (`/api/v1`, stable: additive changes only) and the OpenAI-compatible gateway (`/v1`). Errors use one envelope; `code` is stable.",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/").build()]))
        .paths(path_builder.build())
        .components(Some(components.build()))
        .tags(Some(tags.into_keys().map(|name| {
            let mut tag = Tag::new(name);
            tag.description = None;
            tag
        })))
        .build()
}

/// Client generators (openapi-python-client among them) cannot read a
/// `oneOf` member that is an `allOf`, which is what utoipa makes of an
/// internally tagged enum's newtype variant (`{"type": "citation", …the
/// Citation's fields}`). Such a member becomes the one object it describes:
/// the properties and required names of its parts, a referenced part looked
/// up among `schemas`. The JSON it accepts is the same.
fn merge_tagged_variants(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let parts_of = schemas.clone();
    for schema in schemas.values_mut() {
        let RefOr::T(Schema::OneOf(one_of)) = schema else { continue };
        for item in &mut one_of.items {
            if let RefOr::T(Schema::AllOf(all_of)) = item
                && let Some(merged) = merged_object(&all_of.items, &parts_of)
            {
                *item = RefOr::T(Schema::Object(merged));
            }
        }
    }
}

/// One object with the properties of every part, if every part is an object.
fn merged_object(parts: &[RefOr<Schema>], schemas: &BTreeMap<String, RefOr<Schema>>) -> Option<Object> {
    let mut merged = Object::with_type(Type::Object);
    for part in parts {
        let object = match part {
            RefOr::T(Schema::Object(object)) => object,
            RefOr::Ref(reference) => match schemas.get(reference.ref_location.strip_prefix("#/components/schemas/")?)? {
                RefOr::T(Schema::Object(object)) => object,
                _ => return None,
            },
            _ => return None,
        };
        merged.properties.extend(object.properties.clone());
        merged.required.extend(object.required.iter().cloned());
        merged.description = merged.description.or_else(|| object.description.clone());
    }
    Some(merged)
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The group an operation is listed under: `/v1/…` is `openai`,
/// `/api/v1/tenants/{tenant}/users` is `users`, `/api/v1/admin/…` is `admin`.
fn tag_of(path: &str) -> String {
    if path.starts_with("/v1/") {
        return "openai".into();
    }
    if matches!(path, "/a2a" | "/mcp" | "/.well-known/agent-card.json") {
        return "agent protocols".into();
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return "service".into();
    };
    let named: Vec<&str> = rest.split('/').filter(|s| !s.starts_with('{')).collect();
    match named.as_slice() {
        ["tenants", second, ..] => second.replace('-', " "),
        ["admin", ..] => "admin".into(),
        [first, ..] => first.replace('-', " "),
        [] => "api".into(),
    }
}

fn content_of(body: &Body, schemas: &mut BTreeMap<String, RefOr<Schema>>) -> Vec<(&'static str, utoipa::openapi::Content)> {
    let json = |schema: RefOr<Schema>| ("application/json", ContentBuilder::new().schema(Some(schema)).build());
    match body {
        Body::Json { name, schemas: needed } => {
            schemas.extend(needed.iter().cloned());
            vec![json(Ref::from_schema_name(name.clone()).into())]
        }
        Body::List { name, schemas: needed, paged } => {
            schemas.extend(needed.iter().cloned());
            let items = utoipa::openapi::schema::ArrayBuilder::new().items(Ref::from_schema_name(name.clone()));
            let mut list = ObjectBuilder::new().property("data", items).required("data");
            if *paged {
                let cursor = ObjectBuilder::new().schema_type(Type::String).description(Some("Pass as `after` for the next page; absent on the last page."));
                list = list.property("next_cursor", cursor);
            }
            vec![json(list.into())]
        }
        Body::AnyJson => vec![json(serde_json::Value::schema())],
        Body::Events { name, schemas: needed } => {
            schemas.extend(needed.iter().cloned());
            let data = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(Ref::from_schema_name(name.clone())))
                .description(Some(format!("JSON of a `{name}`.")));
            let event = ObjectBuilder::new()
                .description(Some("One server-sent event; its `id` resumes the stream in `Last-Event-ID`."))
                .property("data", data)
                .property("id", ObjectBuilder::new().schema_type(Type::String))
                .property("retry", ObjectBuilder::new().schema_type(Type::Integer));
            vec![("text/event-stream", ContentBuilder::new().schema(Some(event)).build())]
        }
        Body::Media(media) => vec![(*media, ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build())],
        Body::Upload { name, schemas: needed } => {
            schemas.extend(needed.iter().cloned());
            let file = ObjectBuilder::new().property("file", ObjectBuilder::new().schema_type(Type::String).content_media_type("application/octet-stream")).required("file");
            vec![json(Ref::from_schema_name(name.clone()).into()), ("multipart/form-data", ContentBuilder::new().schema(Some(file)).build())]
        }
        Body::FileForm(fields) => {
            let mut form = ObjectBuilder::new().property("file", ObjectBuilder::new().schema_type(Type::String).content_media_type("application/octet-stream")).required("file");
            for (field, values) in *fields {
                form = form.property(*field, ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied()))).required(*field);
            }
            vec![("multipart/form-data", ContentBuilder::new().schema(Some(form)).build())]
        }
    }
}

fn param_schema(kind: &ParamKind) -> ObjectBuilder {
    let text = ObjectBuilder::new().schema_type(Type::String);
    match kind {
        ParamKind::Text => text,
        ParamKind::Count { max } => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(*max)),
        ParamKind::Date => text.format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date))).pattern(Some("^(19[7-9][0-9]|[2-9][0-9]{3})-")),
        ParamKind::Millis => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(i64::MIN)).maximum(Some(i64::MAX)),
        ParamKind::Seq { max } => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(*max)),
        ParamKind::OneOf(values) => text.enum_values(Some(values.iter().copied())),
        ParamKind::Cursor => text.pattern(Some(agentry_core::page::CURSOR_PATTERN)),
        ParamKind::JsonObject => ObjectBuilder::new().schema_type(Type::Object),
    }
}

/// A path parameter's values: a version number, a tier or role name, or an id or name.
fn path_param_schema(path: &str, name: &str) -> ObjectBuilder {
    match name {
        "version" => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(i32::MAX)),
        "name" if path.contains("/rate-limits/tiers/") => ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9_-]{1,64}$")),
        "name" if path.contains("/roles/") => ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[a-z0-9][a-z0-9_-]{1,62}$")),
        _ => ObjectBuilder::new().schema_type(Type::String),
    }
}

fn operation(op: &Operation, tag: String, schemas: &mut BTreeMap<String, RefOr<Schema>>) -> utoipa::openapi::path::Operation {
    let rule = rule_for(&op.method, op.path);
    let public = rule.is_some_and(|r| r.access == Access::Public);
    let mut builder = OperationBuilder::new().summary(Some(op.summary)).tag(tag).operation_id(Some(operation_id(&op.method, op.path)));
    if let Some(deprecated) = crate::deprecation::deprecation_of(&op.method, op.path) {
        builder = builder.deprecated(Some(utoipa::openapi::Deprecated::True)).description(Some(format!(
            "Deprecated: use `{} {}`. Answers carry `Deprecation`, `Sunset` and `Link` headers; see the versioning policy.",
            op.method, deprecated.successor
        )));
    }
    for name in op.path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
        let schema = path_param_schema(op.path, name);
        builder = builder.parameter(ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True).schema(Some(schema)));
    }
    for param in op.query {
        let parameter = ParameterBuilder::new().name(param.name).parameter_in(ParameterIn::Query).required(Required::False).description(Some(param.about));
        let parameter = match param.kind {
            ParamKind::JsonObject => parameter.content("application/json", ContentBuilder::new().schema(Some(param_schema(&param.kind))).build()),
            _ => parameter.schema(Some(param_schema(&param.kind))),
        };
        builder = builder.parameter(parameter);
    }
    if let Some(tenant_header) = tenant_header(rule.map(|r| r.access), op.path) {
        builder = builder.parameter(tenant_header);
    }
    if let Some(body) = &op.request {
        let required = if op.body_required { Required::True } else { Required::False };
        let mut request = RequestBodyBuilder::new().required(Some(required));
        for (media, content) in content_of(body, schemas) {
            request = request.content(media, content);
        }
        builder = builder.request_body(Some(request.build()));
    }
    // One response per status: a second body for the same status is another media type.
    let mut answers: BTreeMap<u16, ResponseBuilder> = BTreeMap::new();
    for (status, body) in std::iter::once(&op.ok).chain(&op.also) {
        let mut answer = answers.remove(status).unwrap_or_else(|| ResponseBuilder::new().description(reason(*status)));
        for (media, content) in body.iter().flat_map(|body| content_of(body, schemas)) {
            answer = answer.content(media, content);
        }
        answers.insert(*status, answer);
    }
    for (status, answer) in answers {
        builder = builder.response(status.to_string(), answer.build());
    }
    let error = || ResponseBuilder::new().content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorEnvelope::name()))).build());
    // Public operations refuse bad credentials in their bodies (sign-in, refresh) with 401 and 403 too.
    let mut errors = vec![400, 401, 403, 429, 500];
    if op.path.contains('{') || !public {
        errors.push(404);
    }
    if op.method != Method::GET {
        errors.push(409);
    }
    if op.request.is_some() {
        errors.extend([413, 422]);
    }
    if op.upstream {
        errors.extend([502, 503, 504]);
    }
    errors.sort_unstable();
    for status in errors {
        builder = builder.response(status.to_string(), error().description(reason(status)).build());
    }
    if public {
        builder = builder.securities(Some(Vec::<SecurityRequirement>::new()));
    } else {
        builder = builder.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    builder.build()
}

/// The `x-agentry-tenant` header of an operation on the request's tenant
/// whose path does not name it.
fn tenant_header(access: Option<Access>, path: &str) -> Option<utoipa::openapi::path::Parameter> {
    let on_tenant = matches!(access, Some(Access::Tenant(_) | Access::TenantUser(_) | Access::TenantAnyOf(_)));
    (on_tenant && !path.contains("{tenant}")).then(|| {
        ParameterBuilder::new()
            .name(crate::auth::TENANT_HEADER)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("The tenant (slug or id) the request acts in: needed by the master key and by users of several tenants; an API key acts in its own."))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    })
}

/// `get_api_v1_tenants_tenant_users`: unique per method and path.
/// The method and the path's words: `GET /api/v1/threads/{id}/runs` is
/// `get_threads_id_runs` (the platform API's prefix left out, as generated
/// clients name their functions after it), `POST /v1/chat/completions`
/// is `post_v1_chat_completions`.
fn operation_id(method: &Method, path: &str) -> String {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let words: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let words: Vec<&str> = words.split('_').filter(|w| !w.is_empty()).collect();
    format!("{}_{}", method.as_str().to_ascii_lowercase(), words.join("_"))
}

fn reason(status: u16) -> String {
    axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Answer").to_owned()
}
