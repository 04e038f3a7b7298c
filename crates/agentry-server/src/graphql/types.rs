//! GraphQL's object types: each wraps the view core returns for the
//! mirrored REST route and shows its fields (camelCase, times as RFC 3339
//! `DateTime`, counts that can pass 2^31 as `Int64`); a field that reads
//! more (a thread's messages, a document's versions) checks its own route
//! through [`Caller::reach`] first.

use agentry_core::TenantAccess;
use agentry_core::agents::catalog::{AgentVersionView, AgentView};
use agentry_core::agents::{Citation as CitationView, MessageView, RunView, ThreadView, ToolCallView};
use agentry_core::identity::Membership;
use agentry_core::knowledge::{Collection as CollectionView, DocumentVersion as VersionView, DocumentView};
use agentry_core::page::{DEFAULT_LIMIT, Page};
use agentry_core::usage::analytics::{UsageRow as UsageRowView, UsageSummary as SummaryView};
use async_graphql::{Context, Enum, Object, OutputType, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::query::{Caller, page, routes};
use crate::error::ApiError;

/// A 64-bit signed integer, as a JSON number (GraphQL's `Int` has 32 bits).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Int64(pub i64);

async_graphql::scalar!(Int64, "Int64", "A 64-bit signed integer, as a JSON number (GraphQL's Int has 32 bits).");

/// What a field that reads storage counts for the complexity limit (a plain field counts 1).
pub const LOOKUP: usize = 100;

/// What a nested list without paging counts per item, for the complexity limit.
const UNPAGED_LIST: usize = 50;

/// A paged field's complexity: one lookup, and the page size times what each item asks for.
pub fn page_cost(limit: Option<i32>, child_complexity: usize) -> usize {
    let items = limit.and_then(|l| usize::try_from(l).ok()).unwrap_or(DEFAULT_LIMIT as usize);
    LOOKUP + items.saturating_mul(child_complexity)
}

fn unpaged_cost(child_complexity: usize) -> usize {
    LOOKUP + UNPAGED_LIST.saturating_mul(child_complexity)
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// One page of a list; pass `nextCursor` as `after` for the next (null on the last page).
#[derive(SimpleObject)]
#[graphql(concrete(name = "AgentPage", params(Agent)))]
#[graphql(concrete(name = "ThreadPage", params(Thread)))]
#[graphql(concrete(name = "RunPage", params(Run)))]
#[graphql(concrete(name = "CollectionPage", params(Collection)))]
#[graphql(concrete(name = "DocumentPage", params(Document)))]
#[graphql(concrete(name = "MemberPage", params(Member)))]
pub struct Paged<T: OutputType> {
    pub nodes: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: OutputType> Paged<T> {
    pub fn of<V>(page: Page<V>, wrap: impl Fn(V) -> T) -> Self {
        Self { nodes: page.data.into_iter().map(wrap).collect(), next_cursor: page.next_cursor }
    }
}

pub struct Tenant(pub TenantAccess);

#[Object]
impl Tenant {
    async fn id(&self) -> &str {
        self.0.tenant_id()
    }
    async fn slug(&self) -> &str {
        self.0.tenant_slug()
    }
    async fn mfa_required(&self) -> bool {
        self.0.mfa_required()
    }
    /// The caller's role here (none for the master key).
    async fn role(&self) -> Option<&str> {
        self.0.role()
    }
    /// What the caller may do here (an API key's scopes included).
    async fn permissions(&self) -> Vec<&'static str> {
        self.0.permissions().iter().map(|p| p.as_str()).collect()
    }
}

pub struct Member(pub Membership);

#[Object]
impl Member {
    async fn user_id(&self) -> &str {
        &self.0.user_id
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// A built-in role or a custom role's name.
    async fn role(&self) -> &str {
        &self.0.role
    }
    async fn joined_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
}

pub struct Agent(pub AgentView);

#[Object]
impl Agent {
    async fn name(&self) -> &str {
        &self.0.spec.name
    }
    /// `chat`, `rag`, `math`, `code`, `vision` or `custom`.
    async fn kind(&self) -> &'static str {
        self.0.spec.kind.as_str()
    }
    /// The custom agent's current version (null for built-in agents).
    async fn version(&self) -> Option<i32> {
        self.0.spec.version
    }
    async fn description(&self) -> &str {
        &self.0.spec.description
    }
    async fn instructions(&self) -> &str {
        &self.0.spec.instructions
    }
    async fn model(&self) -> &str {
        &self.0.spec.model
    }
    async fn tools(&self) -> &[String] {
        &self.0.spec.tools
    }
    async fn collections(&self) -> &[String] {
        &self.0.spec.collections
    }
    async fn temperature(&self) -> Option<f32> {
        self.0.spec.temperature
    }
    async fn max_steps(&self) -> u32 {
        self.0.spec.limits.max_steps
    }
    async fn max_tool_calls(&self) -> u32 {
        self.0.spec.limits.max_tool_calls
    }
    async fn timeout_secs(&self) -> f64 {
        self.0.spec.limits.timeout_secs
    }
    async fn built_in(&self) -> bool {
        self.0.built_in
    }
    /// Whether the caller may run it.
    async fn usable(&self) -> bool {
        self.0.usable
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at_ms.map(time)
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at_ms.map(time)
    }
    /// A custom agent's stored versions, newest first (none for a built-in agent).
    #[graphql(complexity = "unpaged_cost(child_complexity)")]
    async fn versions(&self, ctx: &Context<'_>) -> Result<Option<Vec<AgentVersion>>, ApiError> {
        if self.0.built_in {
            return Ok(Some(Vec::new()));
        }
        let caller = Caller::of(ctx)?;
        let versions = caller.state.agents.agent_versions(caller.reach(routes::AGENT_VERSIONS).await?, &self.0.spec.name).await?;
        Ok(Some(versions.into_iter().map(AgentVersion).collect()))
    }
}

pub struct AgentVersion(AgentVersionView);

#[Object]
impl AgentVersion {
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The definition as stored (the body of `PUT /api/v1/agents/{name}`).
    async fn definition(&self) -> Result<Value, ApiError> {
        serde_json::to_value(&self.0.definition).map_err(ApiError::internal)
    }
    async fn created_by(&self) -> Option<&str> {
        self.0.created_by.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
}

pub struct Thread(pub ThreadView);

impl Thread {
    pub async fn find(ctx: &Context<'_>, id: &str) -> Result<Self, ApiError> {
        let caller = Caller::of(ctx)?;
        Ok(Self(caller.state.agents.thread(caller.reach(routes::THREAD).await?, id).await?))
    }
}

#[Object]
impl Thread {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn metadata(&self) -> &Value {
        &self.0.metadata
    }
    /// Ids of pinned messages or documents, as the owner set them.
    async fn pinned(&self) -> &[String] {
        &self.0.pinned
    }
    /// The running summary of turns that no longer fit the model's window.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    async fn message_count(&self) -> Int64 {
        Int64(self.0.message_count)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at_ms)
    }
    /// Every message, oldest first.
    #[graphql(complexity = "unpaged_cost(child_complexity)")]
    async fn messages(&self, ctx: &Context<'_>) -> Result<Option<Vec<Message>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let messages = caller.state.agents.thread_messages(caller.reach(routes::THREAD_MESSAGES).await?, &self.0.id).await?;
        Ok(Some(messages.into_iter().map(Message).collect()))
    }
    /// The thread's runs, newest first.
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn runs(&self, ctx: &Context<'_>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Run>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.agents.runs(caller.reach(routes::THREAD_RUNS).await?, Some(&self.0.id), &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Run::listed)))
    }
}

pub struct Message(MessageView);

#[Object]
impl Message {
    async fn seq(&self) -> Int64 {
        Int64(self.0.seq)
    }
    /// `system`, `user`, `assistant` or `tool`.
    async fn role(&self) -> &str {
        &self.0.role
    }
    /// The content as the chat API has it (a string, or parts).
    async fn content(&self) -> &Value {
        &self.0.content
    }
    /// The run that wrote it (assistant and tool messages).
    async fn run_id(&self) -> Option<&str> {
        self.0.run_id.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "agentry_types::RunStatus")]
pub enum RunStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// A run; one from a list has no tool calls loaded (lists read runs only).
pub struct Run {
    view: RunView,
    calls_loaded: bool,
}

impl Run {
    /// A run read on its own, with its tool calls.
    pub fn whole(view: RunView) -> Self {
        Self { view, calls_loaded: true }
    }

    /// A run from a page of runs.
    pub fn listed(view: RunView) -> Self {
        Self { view, calls_loaded: false }
    }
}

#[Object]
impl Run {
    async fn id(&self) -> &str {
        &self.view.id
    }
    async fn thread_id(&self) -> Option<&str> {
        self.view.thread_id.as_deref()
    }
    /// The thread the run answered in (null for a stateless run).
    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn thread(&self, ctx: &Context<'_>) -> Result<Option<Thread>, ApiError> {
        match &self.view.thread_id {
            Some(id) => Thread::find(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }
    async fn agent(&self) -> &str {
        &self.view.agent
    }
    async fn agent_version(&self) -> Option<i32> {
        self.view.agent_version
    }
    async fn agent_type(&self) -> &str {
        &self.view.agent_type
    }
    async fn status(&self) -> RunStatus {
        self.view.status.into()
    }
    /// How the agent was chosen (`routed_by`, `confidence`).
    async fn routing(&self) -> &Value {
        &self.view.routing
    }
    /// The messages the run was started with.
    async fn input(&self) -> &Value {
        &self.view.input
    }
    async fn output(&self) -> Option<&str> {
        self.view.output.as_deref()
    }
    async fn error(&self) -> Option<&str> {
        self.view.error.as_deref()
    }
    async fn model(&self) -> Option<&str> {
        self.view.model.as_deref()
    }
    async fn model_calls(&self) -> i32 {
        self.view.model_calls
    }
    /// Tokens (`prompt_tokens`, `completion_tokens`, `total_tokens`).
    async fn usage(&self) -> &Value {
        &self.view.usage
    }
    /// The share of the answer's claims its citations support (RAG runs).
    async fn quality_score(&self) -> Option<f64> {
        self.view.quality_score
    }
    /// The passages the answer cites, by their `[n]` markers.
    async fn citations(&self) -> Vec<Citation> {
        self.view.citations.iter().cloned().map(Citation).collect()
    }
    /// Tool calls in the order the run made them.
    #[graphql(complexity = "unpaged_cost(child_complexity)")]
    async fn tool_calls(&self, ctx: &Context<'_>) -> Result<Option<Vec<ToolCall>>, ApiError> {
        let calls = if self.calls_loaded {
            self.view.tool_calls.clone()
        } else {
            let caller = Caller::of(ctx)?;
            caller.state.agents.run(caller.reach(routes::RUN).await?, &self.view.id).await?.tool_calls
        };
        Ok(Some(calls.into_iter().map(ToolCall).collect()))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.view.created_at_ms)
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.view.started_at_ms.map(time)
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.view.finished_at_ms.map(time)
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "agentry_types::ToolCallStatus")]
pub enum ToolCallStatus {
    Running,
    Succeeded,
    Failed,
    /// Not called: the arguments did not match the schema, or the tool is not allowed.
    Rejected,
}

pub struct ToolCall(ToolCallView);

#[Object]
impl ToolCall {
    async fn seq(&self) -> i32 {
        self.0.seq
    }
    async fn tool(&self) -> &str {
        &self.0.tool
    }
    /// The arguments the model gave (a string when they were not JSON).
    async fn arguments(&self) -> &Value {
        &self.0.arguments
    }
    async fn status(&self) -> ToolCallStatus {
        self.0.status.into()
    }
    async fn result(&self) -> Option<&str> {
        self.0.result.as_deref()
    }
    async fn duration_ms(&self) -> Int64 {
        Int64(self.0.duration_ms)
    }
}

pub struct Citation(CitationView);

#[Object]
impl Citation {
    /// The `[n]` of the marker in the answer.
    async fn index(&self) -> usize {
        self.0.index
    }
    async fn chunk_id(&self) -> Int64 {
        Int64(self.0.chunk_id)
    }
    async fn document_id(&self) -> &str {
        &self.0.document_id
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The headings the passage sits under, outermost first.
    async fn heading_path(&self) -> &[String] {
        &self.0.heading_path
    }
    async fn page(&self) -> Option<i32> {
        self.0.page
    }
    /// Start of the supporting span, a byte offset in the passage.
    async fn span_start(&self) -> usize {
        self.0.span[0]
    }
    /// End of the supporting span (exclusive).
    async fn span_end(&self) -> usize {
        self.0.span[1]
    }
    /// The passage.
    async fn text(&self) -> &str {
        &self.0.text
    }
}

pub struct Collection(pub CollectionView);

impl Collection {
    pub async fn find(ctx: &Context<'_>, id: &str) -> Result<Self, ApiError> {
        let caller = Caller::of(ctx)?;
        Ok(Self(caller.state.knowledge.collection(caller.reach(routes::COLLECTION).await?, id).await?))
    }
}

#[Object]
impl Collection {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn chunk_max_tokens(&self) -> usize {
        self.0.chunking.max_tokens
    }
    async fn chunk_overlap_tokens(&self) -> usize {
        self.0.chunking.overlap_tokens
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at_ms)
    }
    /// The documents the caller may read, newest first.
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn documents(&self, ctx: &Context<'_>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Document>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.knowledge.documents(caller.reach(routes::COLLECTION_DOCUMENTS).await?, &self.0.id, &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Document)))
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "agentry_types::DocumentStatus")]
pub enum DocumentStatus {
    Queued,
    Processing,
    Succeeded,
    Failed,
    Excluded,
}

pub struct Document(pub DocumentView);

#[Object]
impl Document {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn collection_id(&self) -> &str {
        &self.0.collection_id
    }
    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn collection(&self, ctx: &Context<'_>) -> Result<Option<Collection>, ApiError> {
        Collection::find(ctx, &self.0.collection_id).await.map(Some)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Where it came from (a file name or URL).
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn metadata(&self) -> &Value {
        &self.0.metadata
    }
    /// User ids who may read it (with `roles` and `groups`; all empty: everyone in the tenant).
    async fn acl_users(&self) -> &[String] {
        &self.0.acl.users
    }
    async fn acl_roles(&self) -> &[String] {
        &self.0.acl.roles
    }
    async fn acl_groups(&self) -> &[String] {
        &self.0.acl.groups
    }
    /// The version searches read (null until one is indexed).
    async fn current_version(&self) -> Option<i32> {
        self.0.current_version
    }
    async fn latest_version(&self) -> i32 {
        self.0.latest_version
    }
    async fn status(&self) -> DocumentStatus {
        self.0.status.into()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at_ms)
    }
    /// Every stored version, newest first.
    #[graphql(complexity = "unpaged_cost(child_complexity)")]
    async fn versions(&self, ctx: &Context<'_>) -> Result<Option<Vec<DocumentVersion>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let versions = caller.state.knowledge.versions(caller.reach(routes::DOCUMENT_VERSIONS).await?, &self.0.id).await?;
        Ok(Some(versions.into_iter().map(DocumentVersion).collect()))
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "agentry_types::SummaryStatus")]
pub enum SummaryStatus {
    Queued,
    Succeeded,
    Failed,
}

pub struct DocumentVersion(VersionView);

#[Object]
impl DocumentVersion {
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// SHA-256 of the bytes (null until a URL version is fetched).
    async fn content_hash(&self) -> Option<&str> {
        self.0.content_hash.as_deref()
    }
    /// `pdf`, `docx`, `html`, `markdown`, `csv`, `json` or `text`.
    async fn format(&self) -> Option<&str> {
        self.0.format.as_deref()
    }
    async fn size_bytes(&self) -> Int64 {
        Int64(self.0.size_bytes)
    }
    async fn source_url(&self) -> Option<&str> {
        self.0.source_url.as_deref()
    }
    async fn status(&self) -> DocumentStatus {
        self.0.status.into()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn chunk_count(&self) -> i32 {
        self.0.chunk_count
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    async fn summary_status(&self) -> Option<SummaryStatus> {
        self.0.summary_status.map(Into::into)
    }
    async fn summary_error(&self) -> Option<&str> {
        self.0.summary_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at_ms)
    }
}

/// The current day, week or month (UTC), instead of `from` and `to`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "agentry_core::usage::Period")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
}

pub struct UsageSummary(pub SummaryView);

#[Object]
impl UsageSummary {
    async fn from(&self) -> NaiveDate {
        self.0.from
    }
    async fn to(&self) -> NaiveDate {
        self.0.to
    }
    async fn group_by(&self) -> &str {
        &self.0.group_by
    }
    async fn groups(&self) -> Vec<UsageRow> {
        self.0.groups.iter().cloned().map(UsageRow).collect()
    }
    async fn total(&self) -> UsageRow {
        UsageRow(self.0.total.clone())
    }
}

pub struct UsageRow(UsageRowView);

/// One group's totals; money in USD.
#[Object]
impl UsageRow {
    /// The group's key: a day, model, provider, user id, key id or agent.
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn requests(&self) -> Int64 {
        Int64(self.0.requests)
    }
    async fn errors(&self) -> Int64 {
        Int64(self.0.errors)
    }
    async fn cache_hits(&self) -> Int64 {
        Int64(self.0.cache_hits)
    }
    async fn input_tokens(&self) -> Int64 {
        Int64(self.0.input_tokens)
    }
    async fn output_tokens(&self) -> Int64 {
        Int64(self.0.output_tokens)
    }
    async fn cached_tokens(&self) -> Int64 {
        Int64(self.0.cached_tokens)
    }
    async fn cost_usd(&self) -> f64 {
        self.0.cost_usd
    }
    /// What the cost optimizer and the response cache saved.
    async fn saved_usd(&self) -> f64 {
        self.0.saved_usd
    }
}
