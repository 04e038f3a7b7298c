//! Threads: conversations that persist, owned by the user who created them
//! (an API key acts for its owner). Anyone else gets "not found", so a
//! thread's existence does not leak. Title, metadata and pinned facts can
//! change; messages are only appended, by successful runs.
//!
//! Must not: run agents or build model context (memory.rs does).

use agentry_db::agents::{MessageRow, ThreadRow};
use agentry_types::access::AGENT_PERMISSIONS;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Agents, Error};
use crate::identity::TenantAccess;
use crate::page::{Cursor, Page, PageRequest};

const MAX_PINNED: usize = 50;
const MAX_PINNED_CHARS: usize = 2000;
const MAX_TITLE_CHARS: usize = 200;

/// A new thread.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadInput {
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Facts kept in every run's context, however long the thread grows.
    #[serde(default)]
    #[schema(schema_with = pinned_schema)]
    pub pinned: Vec<String>,
}

/// Changes to a thread; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadPatch {
    #[schema(max_length = 200)]
    pub title: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    #[schema(schema_with = pinned_or_null_schema)]
    pub pinned: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ThreadView {
    pub id: String,
    pub title: String,
    pub metadata: Value,
    pub pinned: Vec<String>,
    /// The running summary of turns that no longer fit the model's window.
    pub summary: String,
    pub summarized_through: i64,
    pub message_count: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub seq: i64,
    pub role: String,
    pub content: Value,
    pub run_id: Option<String>,
    pub created_at_ms: i64,
}

impl From<ThreadRow> for ThreadView {
    fn from(row: ThreadRow) -> Self {
        Self {
            metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
            pinned: serde_json::from_str(&row.pinned).unwrap_or_default(),
            id: row.id,
            title: row.title,
            summary: row.summary,
            summarized_through: row.summarized_through,
            message_count: row.message_count,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

impl From<MessageRow> for MessageView {
    fn from(row: MessageRow) -> Self {
        Self {
            content: serde_json::from_str(&row.content).unwrap_or(Value::String(row.content)),
            seq: row.seq,
            role: row.role,
            run_id: row.run_id,
            created_at_ms: row.created_at_ms,
        }
    }
}

/// Who owns the conversations (threads, runs) a principal creates and
/// reads: the user (an API key's owner), or the master key. Only a caller
/// that may run some agent has conversations: a key scoped to `use_models`
/// alone reads none of its owner's threads or runs (they hold tool results
/// and document passages), so this refuses it.
pub fn conversation_owner(access: &TenantAccess) -> Result<String, Error> {
    if !AGENT_PERMISSIONS.iter().any(|p| access.can(*p)) {
        return Err(Error::Forbidden("threads and runs need a permission to use an agent (use_general_agent, use_rag_agent, …)".into()));
    }
    Ok(access.principal().user_id().map_or_else(|| "master".to_owned(), |id| format!("user:{id}")))
}

/// The schema of `pinned`: up to [`MAX_PINNED`] facts of 1 to [`MAX_PINNED_CHARS`] characters.
fn pinned_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let fact = ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(MAX_PINNED_CHARS)).pattern(Some(r"\S"));
    ArrayBuilder::new().items(fact).max_items(Some(MAX_PINNED)).into()
}

/// [`pinned_schema`], or `null` (a patch that leaves the facts as they are).
fn pinned_or_null_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new().item(pinned_schema()).item(ObjectBuilder::new().schema_type(Type::Null)).build().into()
}

fn checked_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::Invalid { message: format!("'title' takes up to {MAX_TITLE_CHARS} characters"), param: Some("title".into()) });
    }
    Ok(title.to_owned())
}

fn checked_pinned(pinned: &[String]) -> Result<String, Error> {
    if pinned.len() > MAX_PINNED || pinned.iter().any(|f| f.trim().is_empty() || f.chars().count() > MAX_PINNED_CHARS) {
        let message = format!("'pinned' takes up to {MAX_PINNED} non-empty facts of up to {MAX_PINNED_CHARS} characters");
        return Err(Error::Invalid { message, param: Some("pinned".into()) });
    }
    Ok(serde_json::to_string(pinned).unwrap_or_else(|_| "[]".into()))
}

impl Agents {
    pub async fn create_thread(&self, access: &TenantAccess, input: ThreadInput) -> Result<ThreadView, Error> {
        let now = crate::identity::now_ms();
        let row = ThreadRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: access.tenant_id().to_owned(),
            owner: conversation_owner(access)?,
            title: checked_title(input.title.as_deref().unwrap_or_default())?,
            metadata: Value::Object(input.metadata).to_string(),
            pinned: checked_pinned(&input.pinned)?,
            summary: String::new(),
            summarized_through: 0,
            message_count: 0,
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.db.insert_thread(&row).await?;
        Ok(row.into())
    }

    /// A thread the asker owns, or not found.
    pub(super) async fn owned_thread(&self, access: &TenantAccess, id: &str) -> Result<ThreadRow, Error> {
        let owner = conversation_owner(access)?;
        match self.db.thread(access.tenant_id(), id).await? {
            Some(row) if row.owner == owner => Ok(row),
            _ => Err(Error::NotFound(format!("thread '{id}'"))),
        }
    }

    pub async fn thread(&self, access: &TenantAccess, id: &str) -> Result<ThreadView, Error> {
        Ok(self.owned_thread(access, id).await?.into())
    }

    /// The caller's threads, most recently active first, a page at a time;
    /// `query` searches titles and messages.
    pub async fn threads(&self, access: &TenantAccess, query: Option<&str>, page: &PageRequest) -> Result<Page<ThreadView>, Error> {
        let rows = self.db.threads_of_owner(access.tenant_id(), &conversation_owner(access)?, query.filter(|q| !q.trim().is_empty()), page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.updated_at_ms, &row.id), ThreadView::from))
    }

    pub async fn update_thread(&self, access: &TenantAccess, id: &str, patch: ThreadPatch) -> Result<ThreadView, Error> {
        let row = self.owned_thread(access, id).await?;
        let title = match &patch.title {
            Some(title) => checked_title(title)?,
            None => row.title.clone(),
        };
        let metadata = patch.metadata.map_or(row.metadata.clone(), |m| Value::Object(m).to_string());
        let pinned = match &patch.pinned {
            Some(pinned) => checked_pinned(pinned)?,
            None => row.pinned.clone(),
        };
        self.db.update_thread(access.tenant_id(), id, &title, &metadata, &pinned, crate::identity::now_ms()).await?;
        self.thread(access, id).await
    }

    pub async fn delete_thread(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        self.owned_thread(access, id).await?;
        if self.live.thread_busy(id) {
            return Err(Error::Conflict(format!("thread '{id}' has a run in progress; cancel it first")));
        }
        self.db.delete_thread(access.tenant_id(), id).await?;
        Ok(())
    }

    pub async fn thread_messages(&self, access: &TenantAccess, id: &str) -> Result<Vec<MessageView>, Error> {
        self.owned_thread(access, id).await?;
        Ok(self.db.messages(id, 0).await?.into_iter().map(Into::into).collect())
    }
}
