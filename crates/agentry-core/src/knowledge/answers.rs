//! The semantic answer cache as the knowledge base offers it to agents (in
//! process) and to agent builders (over the API): a question is embedded
//! with the knowledge model and looked up in the scope of the tenant, the
//! collections, the asker's ACL fingerprint (what they may read) and the
//! answering model. A miss hands out a ticket; storing the computed answer
//! spends it. Over the API the ticket is an opaque id kept here for
//! [`TICKET_TTL`], bound to the tenant that asked.
//!
//! Storing answers others will be served is a privilege: over the API both
//! calls need `manage_agents` (agents in process are trusted callers).
//!
//! Must not: compute answers, or serve one across scopes (the cache owns that).

use std::sync::Arc;
use std::time::Duration;

use agentry_types::Permission;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::cache::{self, CacheScope, CachedAnswer, Lookup, Ticket};
use super::search::question_text;
use super::{Error, Knowledge, require};
use crate::identity::{TenantAccess, now_ms};

/// How long an API ticket stays valid between a miss and the store.
pub const TICKET_TTL: Duration = Duration::from_secs(600);
const MAX_ANSWER_CHARS: usize = 256 * 1024;

/// A question to look up.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerQuestion {
    #[schema(min_length = 1, max_length = 4000, pattern = r"\S")]
    pub question: String,
    /// Collection ids the answer draws on; empty means every collection of the tenant.
    #[serde(default)]
    pub collections: Vec<String>,
    /// The model that answers (answers of different models are kept apart).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub model: String,
    /// Everything else that shaped the answer (an agent's instructions and
    /// version, retrieval settings…): hashed into the cache key, so answers
    /// made under different contexts are kept apart.
    #[serde(default)]
    pub context: String,
}

/// The API's answer to a lookup.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnswerLookup {
    pub hit: bool,
    pub answer: Option<CachedAnswer>,
    /// On a miss: spend it with [`Knowledge::store_answer`] once the answer is computed.
    pub ticket: Option<String>,
}

/// An answer to store against a ticket.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerToStore {
    pub ticket: String,
    #[schema(min_length = 1, max_length = 262144, pattern = r"\S")]
    pub answer: String,
    #[serde(default)]
    pub citations: serde_json::Value,
}

/// Tickets handed out over the API: id → (tenant, the ticket until spent).
pub(super) type Tickets = moka::sync::Cache<String, (String, Arc<Mutex<Option<(Ticket, String)>>>)>;

pub(super) fn tickets() -> Tickets {
    moka::sync::Cache::builder().max_capacity(100_000).time_to_live(TICKET_TTL).build()
}

impl Knowledge {
    /// Look a question up for an agent running as `access`.
    pub async fn cached_answer(&self, access: &TenantAccess, question: &AnswerQuestion) -> Result<Lookup, Error> {
        let text = question_text(&question.question, "question")?;
        if question.model.trim().is_empty() || question.model.chars().count() > 200 {
            return Err(Error::invalid("'model' must be 1 to 200 characters", "model"));
        }
        self.require_collections(access, &question.collections).await?;
        let fingerprint = cache::acl_fingerprint(&self.inner.db, access.tenant_id(), &question.collections, &self.reader_principals(access).await?).await?;
        let scope = CacheScope::new(access.tenant_id(), &question.collections, &fingerprint, &question.model, &question.context);
        let vector = self.embed_query(access, text).await?;
        Ok(self.inner.cache.lookup(&scope, &vector).await)
    }

    /// Keep an agent's answer for the question its ticket came from.
    pub fn remember_answer(&self, ticket: Ticket, answer: CachedAnswer) {
        self.inner.cache.store(ticket, answer);
    }

    /// [`Self::cached_answer`] over the API: a miss returns a ticket id.
    /// Answers stored over the API live apart from agents' own (their
    /// context is prefixed `api:`), so a client cannot plant an answer under
    /// a built-in agent's context.
    pub async fn lookup_answer(&self, access: &TenantAccess, mut question: AnswerQuestion) -> Result<AnswerLookup, Error> {
        require(access, Permission::ManageAgents)?;
        question.context = format!("api:{}", question.context);
        match self.cached_answer(access, &question).await? {
            Lookup::Hit(answer) => Ok(AnswerLookup { hit: true, answer: Some(answer), ticket: None }),
            Lookup::Miss(ticket) => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                self.inner.tickets.insert(id.clone(), (access.tenant_id().to_owned(), Arc::new(Mutex::new(Some((ticket, question.model))))));
                Ok(AnswerLookup { hit: false, answer: None, ticket: Some(id) })
            }
        }
    }

    /// Store an answer against a ticket from [`Self::lookup_answer`] (each ticket once).
    pub async fn store_answer(&self, access: &TenantAccess, input: AnswerToStore) -> Result<(), Error> {
        require(access, Permission::ManageAgents)?;
        if input.answer.trim().is_empty() || input.answer.chars().count() > MAX_ANSWER_CHARS {
            return Err(Error::invalid(format!("'answer' must be 1 to {MAX_ANSWER_CHARS} characters"), "answer"));
        }
        let unknown = || Error::NotFound(format!("ticket '{}' (tickets last {} s and are spent once)", input.ticket, TICKET_TTL.as_secs()));
        let (tenant, slot) = self.inner.tickets.get(&input.ticket).ok_or_else(unknown)?;
        if tenant != access.tenant_id() {
            return Err(unknown());
        }
        let (ticket, model) = slot.lock().take().ok_or_else(unknown)?;
        self.inner.tickets.invalidate(&input.ticket);
        let citations = if input.citations.is_null() { serde_json::Value::Array(Vec::new()) } else { input.citations };
        self.remember_answer(ticket, CachedAnswer { answer: input.answer, citations, model, created_at_ms: now_ms() });
        Ok(())
    }
}
