//! Typed settings: defaults, then `agentry.toml` (or the file named by
//! `AGENTRY_CONFIG` / `--config`), then `AGENTRY_*` environment variables
//! (`__` separates nested keys: `AGENTRY_ROUTER__TIMEOUT_SECS`). Unknown keys
//! and bad values fail start-up with an error naming the key and its source,
//! except the variables Kubernetes injects for services whose names start with
//! `agentry` (`AGENTRY_SERVICE_HOST`, `AGENTRY_PORT_8080_TCP`…): those are
//! ignored ([`service_link_variables`] names them for the start-up log).
//!
//! Owns parsing and validation only; nothing here opens files other than the
//! config file or touches the network.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentry_llm::RouterConfig;
use agentry_llm::breaker::BreakerConfig;
use agentry_llm::providers::ProviderConfig;
use agentry_llm::registry::ModelConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Everything the server can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the SQLite file, master key and models live.
    pub data_dir: PathBuf,
    /// `sqlite:<path>` or `postgres://…`; defaults to `sqlite://<data_dir>/agentry.db`.
    pub database_url: Option<String>,
    /// Pooled database connections per process (default 8 for SQLite, 16 for PostgreSQL).
    pub database_max_connections: Option<u32>,
    /// Bearer key for `/v1` and `/metrics`; generated into `<data_dir>/master.key` when unset.
    #[serde(serialize_with = "agentry_llm::providers::serialize_secret")]
    pub master_key: Option<SecretString>,
    /// `tracing` filter, e.g. `info` or `agentry=debug,tower_http=info`.
    pub log: String,
    pub log_format: LogFormat,
    /// How long in-flight requests and streams may run after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Networks (CIDRs) of the proxies in front of the server: only from a
    /// peer in these are `X-Forwarded-For`/`-Host`/`-Proto` believed. Empty
    /// (the default): the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Never touch the network for model files.
    pub offline: bool,
    pub local: LocalSettings,
    pub router: RouterSettings,
    /// `[identity]`: tokens, sessions, lockout, password hashing and policy.
    pub identity: agentry_core::identity::IdentitySettings,
    /// `redis://…`: share limits, budgets and the response cache between replicas.
    pub redis_url: Option<String>,
    /// `[usage]`: metering, budgets, limits, optimizer, cache, retention.
    pub usage: UsageConfig,
    pub knowledge: KnowledgeConfig,
    /// `[agents]`: the agent runtime (models, limits, RAG thresholds, http_fetch policy).
    pub agents: agentry_core::agents::AgentsSettings,
    /// `[jobs]`: the durable job queue's workers, leases and attempts (ingestion keeps `[knowledge]`'s).
    pub jobs: agentry_core::jobs::JobsSettings,
    /// `[files]`: uploads for batches (largest upload, days kept).
    pub files: agentry_core::batches::FilesSettings,
    /// `[batches]`: lines of one batch answered at once, most lines per batch.
    pub batches: agentry_core::batches::BatchSettings,
    /// `[events]`: how long the event log keeps events, how often it is polled for other replicas' events.
    pub events: agentry_core::events::EventsSettings,
    /// `[webhooks]`: private addresses deliveries may reach (`allow`), timeout, retry schedule, auto-disable, workers.
    pub webhooks: agentry_core::webhooks::WebhooksSettings,
    /// `[schedules]`: how often due schedules are looked for, the misfire grace, the shortest interval, history kept.
    pub schedules: agentry_core::schedules::SchedulesSettings,
    /// `[metrics]`: who may scrape `/metrics`.
    pub metrics: MetricsSettings,
    /// `[audit]`: how often every audit chain is verified in the background.
    pub audit: AuditSettings,
    /// `[telemetry]`: OpenTelemetry traces (off unless an endpoint is set).
    pub telemetry: TelemetrySettings,
    /// `[privacy]`: the shortest audit retention a tenant may set, and the largest data export.
    pub privacy: agentry_core::privacy::PrivacySettings,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// A secret Prometheus presents as `Authorization: Bearer <token>` to
    /// scrape `/metrics` (the master key and platform admins may too). At least 16 characters.
    #[serde(serialize_with = "agentry_llm::providers::serialize_secret")]
    pub bearer_token: Option<SecretString>,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// OTLP/HTTP collector base URL (`http://collector:4318`); spans go to `<endpoint>/v1/traces`. Unset: no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of new traces recorded, 0 to 1 (a caller's sampled `traceparent` is followed).
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "agentry".into(), sample_ratio: 1.0 }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Seconds between verifications of every audit chain in full (each
    /// replica verifies; the result is the `audit_chains_broken` gauge). 0: never.
    pub verify_interval_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { verify_interval_secs: 3600 }
    }
}

/// Whether `key` (an environment variable's name after `AGENTRY_`) and its
/// `value` have the shape of a Kubernetes service-link variable of a service
/// named `agentry…`: `SERVICE_HOST` (an IP address), `SERVICE_PORT` and
/// `SERVICE_PORT_<name>` (a port number), `PORT` and `PORT_<n>_<proto>`
/// (`tcp://IP:port`) with `_PROTO` (the protocol), `_PORT` (the port) and
/// `_ADDR` (an IP address), each optionally after the rest of the service's
/// name (`DB_SERVICE_HOST` for `agentry-db`). Nested configuration keys
/// contain `__`, which service names never produce; a value of another shape
/// (`AGENTRY_PORT=8080`) is not a service link and fails as an unknown key.
fn is_service_link(key: &str, value: &str) -> bool {
    let key = key.to_ascii_uppercase();
    if key.contains("__") {
        return false;
    }
    let parts: Vec<&str> = key.split('_').collect();
    let is_number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let is_ip = value.parse::<std::net::IpAddr>().is_ok();
    let is_port = value.parse::<u16>().is_ok();
    let is_url = ["tcp://", "udp://", "sctp://"].iter().any(|scheme| value.strip_prefix(scheme).is_some_and(|rest| rest.parse::<SocketAddr>().is_ok()));
    let is_proto = matches!(value, "tcp" | "udp" | "sctp");
    (0..parts.len()).any(|start| match &parts[start..] {
        ["SERVICE", "HOST"] => is_ip,
        ["SERVICE", "PORT", ..] => is_port,
        ["PORT"] => is_url,
        ["PORT", number, "TCP" | "UDP" | "SCTP", rest @ ..] if is_number(number) => match rest {
            [] => is_url,
            ["PROTO"] => is_proto,
            ["PORT"] => is_port,
            ["ADDR"] => is_ip,
            _ => false,
        },
        _ => false,
    })
}

/// The `AGENTRY_*` variables of this process that configuration ignores as
/// Kubernetes service links, sorted.
pub fn service_link_variables() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, value)| name.strip_prefix("AGENTRY_").is_some_and(|key| is_service_link(key, value)))
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}

/// `[usage]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Longest wait for Redis per operation before answering locally.
    pub redis_timeout_ms: u64,
    /// Output tokens assumed by a budget reservation when a request sets no `max_tokens`.
    pub default_output_tokens: u32,
    pub response_cache_ttl_secs: u64,
    /// Optimizer and response cache for tenants that have not chosen.
    pub optimizer_enabled: bool,
    pub response_cache_enabled: bool,
    /// Complexity class → model and output cap.
    pub optimizer: agentry_core::usage::OptimizerConfig,
    /// Days raw usage records are kept (daily rollups are kept).
    pub retention_days: u32,
    /// How long usage records are collected before a batch is written (the loss window on a crash).
    pub flush_interval_ms: u64,
    /// Per-IP limit on unauthenticated routes (0 turns it off).
    pub public_requests_per_minute_per_ip: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        let core = agentry_core::usage::UsageSettings::default();
        Self {
            redis_timeout_ms: 250,
            default_output_tokens: core.default_output_tokens,
            response_cache_ttl_secs: core.response_cache_ttl.as_secs(),
            optimizer_enabled: false,
            response_cache_enabled: false,
            optimizer: core.optimizer,
            retention_days: core.retention_days,
            flush_interval_ms: 20,
            public_requests_per_minute_per_ip: 120,
        }
    }
}

impl UsageConfig {
    pub fn core(&self) -> agentry_core::usage::UsageSettings {
        agentry_core::usage::UsageSettings {
            default_output_tokens: self.default_output_tokens,
            response_cache_ttl: Duration::from_secs(self.response_cache_ttl_secs),
            optimizer: self.optimizer.clone(),
            tenant_defaults: agentry_core::usage::TenantUsageSettings { optimizer_enabled: self.optimizer_enabled, response_cache_enabled: self.response_cache_enabled },
            retention_days: self.retention_days,
        }
    }
}

/// `[knowledge]`: the knowledge base.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// Public model name that embeds chunks and queries.
    pub embedding_model: String,
    /// `auto` (PostgreSQL full text + pgvector when the database is PostgreSQL, else
    /// embedded tantivy + HNSW in the data dir), `embedded` or `postgres`.
    pub index: agentry_core::knowledge::IndexBackend,
    /// `tokenizer.json` chunk sizes are counted with; defaults to the local embedding model's.
    pub tokenizer: Option<PathBuf>,
    /// Largest document accepted, in bytes.
    pub max_document_bytes: usize,
    /// Ingestion workers in this process.
    pub workers: usize,
    /// Attempts before a document fails for good (unparseable documents fail at once).
    pub max_attempts: i32,
    /// How long a worker's claim on a job lasts without renewal (renewed every third of it
    /// while the job runs); a job whose worker died is taken over once it runs out.
    pub lease_secs: u64,
    /// Serve answers to knowledge questions again for similar questions (semantic cache).
    pub answer_cache_enabled: bool,
    /// Least cosine similarity of two questions for one's cached answer to serve the other.
    pub answer_cache_threshold: f32,
    /// Longest time an answer is served from the cache, even if no document changes.
    pub answer_cache_ttl_secs: u64,
    /// Default chunking of new collections (tokens of the embedding model).
    pub chunk_max_tokens: usize,
    pub chunk_overlap_tokens: usize,
    /// Chat model that writes a summary of every indexed document version
    /// (stored, shown with the document, searchable); none: no summaries.
    pub summary_model: Option<String>,
    /// Longest summary, in tokens.
    pub summary_max_tokens: u32,
    /// `[knowledge.url_fetch]`: how documents uploaded by URL are fetched.
    pub url_fetch: UrlFetchConfig,
    /// `[knowledge.parse]`: what one document may produce when parsed
    /// (text, decompressed data, sections, chunks, title length).
    pub parse: agentry_search::parse::Limits,
    /// The program run as `<program> parse-worker` to parse each PDF and
    /// DOCX document in a child process (default: this server's own
    /// executable; a wrapper that adds a sandbox must exec it).
    pub parse_worker: Option<PathBuf>,
}

/// `[knowledge.url_fetch]`: the guard on documents uploaded by URL. Private,
/// loopback, link-local and reserved addresses are refused unless allowed
/// here; the body limit is `knowledge.max_document_bytes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlFetchConfig {
    /// Addresses (`10.1.2.3`), CIDR blocks (`10.0.0.0/8`) and host names
    /// (`wiki.internal`) let past the guard.
    pub allow: Vec<agentry_core::outbound::AllowEntry>,
    /// Deadline of one fetch, redirects and body included.
    pub timeout_secs: u64,
    /// Redirect hops followed (each one checked again).
    pub max_redirects: usize,
}

impl Default for UrlFetchConfig {
    fn default() -> Self {
        let defaults = agentry_core::outbound::OutboundPolicy::default();
        Self { allow: defaults.allow, timeout_secs: defaults.timeout.as_secs(), max_redirects: defaults.max_redirects }
    }
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            embedding_model: "local-embed".into(),
            index: agentry_core::knowledge::IndexBackend::Auto,
            tokenizer: None,
            max_document_bytes: 20 * 1024 * 1024,
            workers: 2,
            max_attempts: 5,
            lease_secs: 60,
            answer_cache_enabled: true,
            answer_cache_threshold: 0.95,
            answer_cache_ttl_secs: 3600,
            // all-MiniLM-L6-v2 reads 256 tokens including its two special tokens.
            chunk_max_tokens: 250,
            chunk_overlap_tokens: 32,
            summary_model: None,
            summary_max_tokens: 256,
            url_fetch: UrlFetchConfig::default(),
            parse: agentry_search::parse::Limits::default(),
            parse_worker: None,
        }
    }
}

impl KnowledgeConfig {
    /// The core settings; `local_tokenizer` is the local embedding model's, used when none is configured.
    pub fn core(&self, data_dir: &std::path::Path, local_tokenizer: Option<PathBuf>, parser: agentry_search::parse::Parser) -> agentry_core::knowledge::KnowledgeSettings {
        agentry_core::knowledge::KnowledgeSettings {
            embedding_model: self.embedding_model.clone(),
            tokenizer: self.tokenizer.clone().or(local_tokenizer),
            index_backend: self.index,
            index_dir: data_dir.join("index"),
            max_document_bytes: self.max_document_bytes,
            workers: self.workers,
            max_attempts: self.max_attempts,
            lease_ms: i64::try_from(self.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            default_chunking: self.chunking(),
            parse_limits: self.parse,
            parser,
            answer_cache: agentry_core::knowledge::cache::CacheSettings {
                enabled: self.answer_cache_enabled,
                threshold: self.answer_cache_threshold,
                ttl: Duration::from_secs(self.answer_cache_ttl_secs),
                ..Default::default()
            },
            summary_model: self.summary_model.clone(),
            summary_max_tokens: self.summary_max_tokens,
        }
    }

    /// The policy of the outbound client that fetches URL uploads.
    pub fn outbound_policy(&self) -> agentry_core::outbound::OutboundPolicy {
        agentry_core::outbound::OutboundPolicy {
            allow: self.url_fetch.allow.clone(),
            max_bytes: self.max_document_bytes,
            timeout: Duration::from_secs(self.url_fetch.timeout_secs),
            max_redirects: self.url_fetch.max_redirects,
            ..Default::default()
        }
    }

    /// Default chunking of new collections.
    pub fn chunking(&self) -> agentry_search::chunk::ChunkConfig {
        agentry_search::chunk::ChunkConfig { max_tokens: self.chunk_max_tokens, overlap_tokens: self.chunk_overlap_tokens }
    }
}

/// `[local]`: the in-process models.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSettings {
    /// Load the local models at start (turn off for gateway-only deployments).
    pub enabled: bool,
    /// A GGUF chat model; defaults to the pulled SmolLM2 file.
    pub chat_model: Option<PathBuf>,
    /// A sentence-transformers folder; defaults to the pulled all-MiniLM-L6-v2.
    pub embedding_model: Option<PathBuf>,
    /// Where `models pull` stores files; defaults to `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// Inference threads; defaults to the number of cores.
    pub threads: Option<usize>,
    /// Fallbacks of `local-chat` (public model names).
    pub chat_fallbacks: Vec<String>,
}

/// `[router]`: timeouts, retries, circuit breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    pub timeout_secs: f64,
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub max_retry_after_secs: f64,
    pub breaker_failure_threshold: u32,
    pub breaker_window_secs: u64,
    pub breaker_open_secs: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: None,
            master_key: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            shutdown_grace_secs: 30,
            max_body_bytes: 16 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            offline: false,
            local: LocalSettings::default(),
            router: RouterSettings::default(),
            identity: agentry_core::identity::IdentitySettings::default(),
            redis_url: None,
            usage: UsageConfig::default(),
            knowledge: KnowledgeConfig::default(),
            agents: agentry_core::agents::AgentsSettings::default(),
            jobs: agentry_core::jobs::JobsSettings::default(),
            files: agentry_core::batches::FilesSettings::default(),
            batches: agentry_core::batches::BatchSettings::default(),
            events: agentry_core::events::EventsSettings::default(),
            webhooks: agentry_core::webhooks::WebhooksSettings::default(),
            schedules: agentry_core::schedules::SchedulesSettings::default(),
            metrics: MetricsSettings::default(),
            audit: AuditSettings::default(),
            telemetry: TelemetrySettings::default(),
            privacy: agentry_core::privacy::PrivacySettings::default(),
            providers: Vec::new(),
            models: Vec::new(),
        }
    }
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self { enabled: true, chat_model: None, embedding_model: None, models_dir: None, threads: None, chat_fallbacks: Vec::new() }
    }
}

impl Default for RouterSettings {
    fn default() -> Self {
        let defaults = RouterConfig::default();
        Self {
            timeout_secs: defaults.timeout.as_secs_f64(),
            max_retries: defaults.max_retries,
            backoff_base_ms: defaults.backoff_base.as_millis() as u64,
            backoff_max_ms: defaults.backoff_max.as_millis() as u64,
            max_retry_after_secs: defaults.max_retry_after.as_secs_f64(),
            breaker_failure_threshold: defaults.breaker.failure_threshold,
            breaker_window_secs: defaults.breaker.window.as_secs(),
            breaker_open_secs: defaults.breaker.open_for.as_secs_f64(),
        }
    }
}

/// A setting that parsed but makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct InvalidSetting {
    pub key: &'static str,
    pub message: String,
}

impl Settings {
    /// Load defaults ← config file ← environment. `config_path` wins over
    /// `AGENTRY_CONFIG`; without either, `./agentry.toml` is read if present.
    pub fn load(config_path: Option<&Path>) -> Result<Self, anyhow::Error> {
        let file = Self::config_file(config_path)?.unwrap_or_else(|| PathBuf::from("agentry.toml"));
        let links: Vec<String> = service_link_variables().iter().filter_map(|name| name.strip_prefix("AGENTRY_").map(str::to_ascii_lowercase)).collect();
        let environment = Env::prefixed("AGENTRY_").ignore(&["config", "bootstrap_password"]).filter(move |key| !links.contains(&key.as_str().to_ascii_lowercase())).split("__");
        let figment = Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file(file)).merge(environment);
        let settings: Settings = figment.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The configuration file [`Self::load`] reads: `config_path`, else
    /// `AGENTRY_CONFIG` (either must exist), else `./agentry.toml` if present.
    pub fn config_file(config_path: Option<&Path>) -> Result<Option<PathBuf>, anyhow::Error> {
        let explicit = config_path.map(Path::to_path_buf).or_else(|| std::env::var_os("AGENTRY_CONFIG").map(PathBuf::from));
        match explicit {
            Some(path) if !path.exists() => anyhow::bail!("config file {} does not exist", path.display()),
            Some(path) => Ok(Some(path)),
            None => Ok(Some(PathBuf::from("agentry.toml")).filter(|path| path.exists())),
        }
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let fail = |key, message: &str| Err(InvalidSetting { key, message: message.to_owned() });
        if self.database_max_connections.is_some_and(|n| !(1..=1000).contains(&n)) {
            return fail("database_max_connections", "must be 1-1000");
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return fail("database_url", "must start with sqlite:, postgres:// or postgresql://");
        }
        if let Some(key) = &self.master_key
            && key.expose_secret().len() < 16
        {
            return fail("master_key", "must be at least 16 characters");
        }
        if self.max_body_bytes < 1024 {
            return fail("max_body_bytes", "must be at least 1024");
        }
        if !(self.router.timeout_secs > 0.0 && self.router.timeout_secs.is_finite()) {
            return fail("router.timeout_secs", "must be a positive number");
        }
        if !(self.router.breaker_open_secs >= 0.0 && self.router.breaker_open_secs.is_finite()) {
            return fail("router.breaker_open_secs", "must be zero or positive");
        }
        if !(self.router.max_retry_after_secs >= 0.0 && self.router.max_retry_after_secs.is_finite()) {
            return fail("router.max_retry_after_secs", "must be zero or positive");
        }
        if self.router.breaker_failure_threshold == 0 {
            return fail("router.breaker_failure_threshold", "must be at least 1");
        }
        if !(self.knowledge.answer_cache_threshold > 0.0 && self.knowledge.answer_cache_threshold <= 1.0) {
            return fail("knowledge.answer_cache_threshold", "must be above 0 and at most 1");
        }
        if self.knowledge.lease_secs == 0 {
            return fail("knowledge.lease_secs", "must be at least 1");
        }
        if let Err(message) = self.knowledge.chunking().validate() {
            return fail("knowledge.chunk_max_tokens", message);
        }
        if let Err(message) = self.knowledge.parse.validate() {
            return fail("knowledge.parse", message);
        }
        if !(16..=4096).contains(&self.knowledge.summary_max_tokens) {
            return fail("knowledge.summary_max_tokens", "must be between 16 and 4096");
        }
        if self.knowledge.summary_model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return fail("knowledge.summary_model", "must name a chat model (leave it out for no summaries)");
        }
        if self.knowledge.workers == 0 {
            return fail("knowledge.workers", "must be at least 1");
        }
        if self.knowledge.max_document_bytes < 1024 {
            return fail("knowledge.max_document_bytes", "must be at least 1024");
        }
        if self.knowledge.max_attempts < 1 {
            return fail("knowledge.max_attempts", "must be at least 1");
        }
        if self.knowledge.url_fetch.timeout_secs == 0 || self.knowledge.url_fetch.timeout_secs > 3600 {
            return fail("knowledge.url_fetch.timeout_secs", "must be between 1 and 3600");
        }
        if self.knowledge.url_fetch.max_redirects > 20 {
            return fail("knowledge.url_fetch.max_redirects", "must be at most 20");
        }
        if let Err(message) = self.jobs.validate() {
            return fail("jobs", &message);
        }
        if let Err(message) = self.files.validate() {
            return fail("files", &message);
        }
        if let Err(message) = self.batches.validate() {
            return fail("batches", &message);
        }
        if let Err(message) = self.events.validate() {
            return fail("events", &message);
        }
        if let Err(message) = self.webhooks.validate() {
            return fail("webhooks", &message);
        }
        if let Err(message) = self.schedules.validate() {
            return fail("schedules", &message);
        }
        if let Err(message) = self.privacy.validate() {
            return fail("privacy", &message);
        }
        if let Err(message) = self.agents.validate() {
            return fail("agents", &message);
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
        {
            return fail("redis_url", "must start with redis://, rediss:// or unix://");
        }
        if self.usage.flush_interval_ms == 0 || self.usage.flush_interval_ms > 60_000 {
            return fail("usage.flush_interval_ms", "must be between 1 and 60000");
        }
        if self.usage.retention_days == 0 {
            return fail("usage.retention_days", "must be at least 1");
        }
        if self.local.threads == Some(0) {
            return fail("local.threads", "must be at least 1");
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !((endpoint.starts_with("http://") || endpoint.starts_with("https://")) && endpoint.parse::<http::Uri>().is_ok())
        {
            return fail("telemetry.otlp_endpoint", "must be an http:// or https:// URL (OTLP over HTTP)");
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return fail("telemetry.sample_ratio", "must be between 0 and 1");
        }
        if let Some(token) = &self.metrics.bearer_token
            && (token.expose_secret().len() < 16 || token.expose_secret().trim() != token.expose_secret())
        {
            return fail("metrics.bearer_token", "must be at least 16 characters, without surrounding spaces or newlines");
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("agentry.db").display()))
    }

    pub fn models_dir(&self) -> PathBuf {
        self.local.models_dir.clone().unwrap_or_else(|| self.data_dir.join("models"))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn router_config(&self) -> RouterConfig {
        let r = &self.router;
        RouterConfig {
            timeout: Duration::from_secs_f64(r.timeout_secs),
            max_retries: r.max_retries,
            backoff_base: Duration::from_millis(r.backoff_base_ms),
            backoff_max: Duration::from_millis(r.backoff_max_ms),
            max_retry_after: Duration::from_secs_f64(r.max_retry_after_secs),
            breaker: BreakerConfig {
                failure_threshold: r.breaker_failure_threshold,
                window: Duration::from_secs(r.breaker_window_secs),
                open_for: Duration::from_secs_f64(r.breaker_open_secs),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_service_link;

    #[test]
    fn service_link_shapes_are_recognised() {
        for (key, value) in [
            ("SERVICE_HOST", "10.96.0.12"),
            ("SERVICE_PORT", "80"),
            ("SERVICE_PORT_HTTP", "80"),
            ("SERVICE_PORT_GRPC_WEB", "8081"),
            ("PORT", "tcp://10.96.0.12:80"),
            ("PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("PORT_8080_TCP_PROTO", "tcp"),
            ("PORT_8080_TCP_PORT", "8080"),
            ("PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("PORT_53_UDP", "udp://[fd00::1]:53"),
            ("DB_SERVICE_HOST", "fd00::12"),
            ("WORKER_PORT_9000_SCTP_ADDR", "10.0.0.9"),
            ("port", "tcp://10.96.0.12:80"),
        ] {
            assert!(is_service_link(key, value), "{key}={value} is a service link");
        }
    }

    #[test]
    fn configuration_keys_and_mistakes_are_not_service_links() {
        for (key, value) in [
            ("LISTEN", "0.0.0.0:80"),
            ("DATA_DIR", "/data"),
            ("METRICS__BEARER_TOKEN", "x"),
            ("ROUTER__PORT", "tcp://10.0.0.1:80"),
            ("PORT", "8080"),
            ("REDIS_PORT", "6379"),
            ("SERVICE_HOST", "agentry.internal"),
            ("PORT_HTTP_TCP", "tcp://10.0.0.1:80"),
            ("PORT_80_TCP_HOST", "10.0.0.1"),
            ("SERVICE", "x"),
            ("LISTN", "0.0.0.0:80"),
        ] {
            assert!(!is_service_link(key, value), "{key}={value} is not a service link");
        }
    }

    /// No top-level setting can be taken for a service link, whatever its value.
    #[test]
    fn no_setting_has_a_service_link_name() {
        let settings = serde_json::to_value(super::Settings::default()).unwrap();
        for key in settings.as_object().unwrap().keys() {
            for value in ["10.0.0.1", "80", "tcp://10.0.0.1:80", "tcp"] {
                assert!(!is_service_link(key, value), "{key}");
            }
        }
    }
}
