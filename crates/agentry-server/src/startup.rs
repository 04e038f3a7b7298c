//! Building and running the application: data dir (0700), master key,
//! database and migrations, sealing secrets stored in clear, local models, the model registry and router, the guarded
//! outbound HTTP client, the knowledge base and its workers, the HTTP stack,
//! and graceful shutdown (stop accepting, let in-flight requests and streams
//! finish within the grace period, flush the call log, close the pool).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agentry_core::agents::Agents;
use agentry_core::batches::Batches;
use agentry_core::coord::Coord;
use agentry_core::events::Events;
use agentry_core::jobs::Jobs;
use agentry_core::knowledge::Knowledge;
use agentry_core::outbound::Outbound;
use agentry_core::schedules::Schedules;
use agentry_core::usage::billing::PaymentProvider;
use agentry_core::webhooks::Webhooks;
use agentry_core::{Accounting, Audit, Gateway, Identity};
use agentry_db::{CallLogConfig, CallLogWriter, Db};
use agentry_llm::{ModelRegistry, ModelRouter};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::response::Response;
use axum::serve::ListenerExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::configuration::Settings;
use crate::error::ApiError;
use crate::master_key::{self, MasterKey};
use crate::middleware;
use crate::state::{AppState, Handles};
use crate::telemetry;

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    routes: Router,
    max_body_bytes: usize,
    port: u16,
    shutdown: CancellationToken,
    grace: Duration,
    db: Db,
    call_log_task: JoinHandle<()>,
    /// The job pools: awaited at shutdown, so that the outcomes they hold are written before the store closes.
    job_tasks: Vec<JoinHandle<()>>,
    key_use_task: JoinHandle<()>,
    /// The mail outbox sender (`identity.smtp` set).
    outbox_task: Option<JoinHandle<()>>,
    generated_master_key: Option<SecretString>,
}

impl Application {
    /// Prepare everything and bind the listener (`listen` port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_payments(settings, None).await
    }

    /// [`Self::build`] with a payment provider for invoices (tests and
    /// programs that embed the server; configuration cannot name one).
    pub async fn build_with_payments(settings: Settings, payments: Option<Arc<dyn PaymentProvider>>) -> anyhow::Result<Self> {
        settings.validate()?;
        // Before anything can record a metric: handles registered earlier would never report.
        let metrics = telemetry::metrics_handle();
        create_data_dir(&settings.data_dir)?;
        let master_key = master_key::resolve(settings.master_key.as_ref(), &settings.data_dir)?;
        let keys = master_key::derived_keys(master_key.secret(), &settings.data_dir)?;
        let db = connect_and_migrate(&settings).await?;
        seal_stored_secrets(&db, &keys.sealer).await?;
        let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let loaded = crate::local_models::load(&settings, show_progress).await?;
        let local_models: Vec<String> = loaded.entries.iter().map(|e| e.name.clone()).collect();
        let registry = ModelRegistry::build(&settings.providers, &settings.models, loaded.entries).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let router = Arc::new(ModelRouter::new(registry, settings.router_config()));
        tokio::task::spawn_blocking(agentry_llm::tokens::warm);

        let shutdown = CancellationToken::new();
        let call_log_config = CallLogConfig { flush_interval: Duration::from_millis(settings.usage.flush_interval_ms), ..CallLogConfig::default() };
        let (call_log, call_log_task) = CallLogWriter::start(db.clone(), call_log_config, shutdown.child_token());
        let audit = Audit::with_keys(db.clone(), keys.audit);
        seal_legacy_audit_chains(&audit).await?;
        let identity = Identity::new(db.clone(), audit.clone(), keys.sealer.clone(), master_key.secret().clone(), settings.identity.clone())
            .await
            .map_err(|e| anyhow::anyhow!("identity: {e}"))?;
        let key_use_task = tokio::spawn(flush_key_uses(identity.clone(), shutdown.child_token()));
        let outbox_task = identity.outbox_sender().map(|sender| tokio::spawn(sender.run(shutdown.child_token())));
        let coord = match &settings.redis_url {
            Some(url) => Coord::redis(url, Duration::from_millis(settings.usage.redis_timeout_ms)).map_err(|e| anyhow::anyhow!("redis_url: {e}"))?,
            None => Coord::local(),
        };
        let jobs = Jobs::new(db.clone(), identity.clone(), settings.jobs.clone());
        let events = Events::new(db.clone(), settings.events.clone());
        events.spawn_tail(shutdown.child_token());
        events.spawn_notices(shutdown.child_token());
        let webhooks =
            Webhooks::new(db.clone(), jobs.clone(), events.clone(), audit.clone(), keys.sealer.clone(), settings.webhooks.clone()).map_err(|e| anyhow::anyhow!("webhooks: {e}"))?;
        let accounting = Accounting::new(db.clone(), coord.clone(), settings.usage.core(), call_log, audit.clone(), events.clone());
        tokio::spawn(retention(db.clone(), settings.usage.retention_days, shutdown.child_token()));
        let gateway = Gateway::new(router, accounting);
        // One guarded client for every user-directed fetch (URL uploads so far).
        let outbound = Outbound::new(settings.knowledge.outbound_policy()).map_err(|e| anyhow::anyhow!("knowledge.url_fetch: {e}"))?;
        let parser = isolated_parser(settings.knowledge.parse_worker.clone(), settings.knowledge.workers);
        parser.check().await.map_err(|e| anyhow::anyhow!("knowledge.parse_worker: {e}"))?;
        let knowledge_settings = settings.knowledge.core(&settings.data_dir, loaded.embedding_tokenizer, parser);
        let knowledge = Knowledge::new(db.clone(), gateway.clone(), coord, outbound, events.clone(), knowledge_settings);
        agentry_core::knowledge::ingest::spawn_workers(&knowledge, shutdown.child_token());
        let agents = Agents::new(db.clone(), gateway.clone(), knowledge.clone(), audit, keys.sealer, jobs.clone(), events.clone(), settings.agents.clone())
            .map_err(|e| anyhow::anyhow!("agents: {e}"))?;
        let interrupted = agents.recover().await.map_err(|e| anyhow::anyhow!("agents: {e}"))?;
        if interrupted > 0 {
            tracing::warn!(runs = interrupted, "marked runs interrupted by the previous stop as failed");
        }
        let batches = Batches::new(db.clone(), jobs.clone(), gateway.accounting().clone(), events.clone(), settings.files.clone(), settings.batches.clone());
        batches.start(Arc::new(crate::openai::batch_lines::BatchLines { gateway: gateway.clone(), agents: agents.clone() }), shutdown.child_token());
        let bulk = agentry_core::bulk::Bulk::new(db.clone(), jobs.clone(), agents.clone(), knowledge.clone(), events.clone());
        let schedules = Schedules::new(db.clone(), jobs.clone(), events.clone(), agents.clone(), knowledge.clone(), settings.schedules.clone());
        schedules.spawn_poller(shutdown.child_token());
        let privacy = agentry_core::privacy::Privacy::new(db.clone(), identity.clone(), knowledge.clone(), jobs.clone(), settings.privacy.clone());
        privacy.register(&jobs);
        privacy.spawn_retention_queue(Duration::from_secs(3600), shutdown.child_token());
        crate::telemetry::gauges::spawn_audit_verifier(identity.audit().clone(), Duration::from_secs(settings.audit.verify_interval_secs), shutdown.child_token());
        let job_tasks = agentry_core::jobs::spawn_workers(&jobs, shutdown.child_token());
        let state = AppState::new(Handles {
            gateway,
            knowledge,
            agents,
            jobs,
            batches,
            bulk,
            events,
            webhooks,
            schedules,
            privacy,
            payments,
            public_rate_per_ip: settings.usage.public_requests_per_minute_per_ip,
            metrics_token: crate::telemetry::ScrapeToken::new(settings.metrics.bearer_token.clone()),
            session_gauge: Default::default(),
            trusted_proxies: crate::client_addr::TrustedProxies::new(settings.trusted_proxies.clone()),
            identity,
            db: db.clone(),
            metrics,
            local_models: Arc::new(local_models),
        });
        let routes = routes(state, settings.knowledge.max_document_bytes, settings.files.max_bytes);

        let listener = TcpListener::bind(settings.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let generated_master_key = match master_key {
            MasterKey::Generated(key) => Some(key),
            MasterKey::Configured(_) | MasterKey::Stored(_) => None,
        };
        Ok(Self {
            listener,
            routes,
            max_body_bytes: settings.max_body_bytes,
            port,
            shutdown,
            grace: settings.shutdown_grace(),
            db,
            call_log_task,
            job_tasks,
            key_use_task,
            outbox_task,
            generated_master_key,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The master key when this start generated it (to be shown once).
    pub fn generated_master_key(&self) -> Option<&str> {
        self.generated_master_key.as_ref().map(|k| k.expose_secret())
    }

    /// Cancel to begin a graceful shutdown (signals do the same).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serve until SIGTERM/Ctrl-C or the shutdown token, then drain.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { listener, routes, max_body_bytes, shutdown, grace, db, call_log_task, job_tasks, key_use_task, outbox_task, .. } = self;
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        tracing::info!(address = %listener.local_addr()?, "listening");
        let stopping = shutdown.clone();
        // No Nagle delay: a streamed answer's last frame and the chunked
        // terminator must not wait for the client's ACK of the previous write.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let app = http_stack(routes, max_body_bytes);
        let serve = axum::serve(listener, axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app))
            .with_graceful_shutdown(async move { stopping.cancelled().await });
        let deadline = async {
            shutdown.cancelled().await;
            tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down: no new connections, waiting for in-flight requests");
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result?,
            () = deadline => tracing::warn!("grace period over; closing remaining connections"),
        }
        shutdown.cancel();
        for task in job_tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a job pool ended abnormally");
            }
        }
        if let Err(error) = call_log_task.await {
            tracing::error!(%error, "call-log writer ended abnormally");
        }
        if let Err(error) = key_use_task.await {
            tracing::error!(%error, "API key use writer ended abnormally");
        }
        if let Some(task) = outbox_task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "mail outbox sender ended abnormally");
        }
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Sessions are kept this long after they expire or are revoked (a person's
/// own session list shows only live ones; the audit log keeps the sign-ins).
const ENDED_SESSIONS_KEPT_MS: i64 = 7 * 86_400_000;

/// Hourly: delete raw usage records past the retention period (rollups
/// stay) and sessions that ended more than a week ago.
async fn retention(db: Db, days: u32, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = agentry_core::identity::now_ms() - i64::from(days) * 86_400_000;
        match db.delete_usage_records_before(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, days, "deleted raw usage records past retention"),
            Err(error) => tracing::warn!(%error, "usage retention failed"),
        }
        match db.delete_sessions_ended_before(agentry_core::identity::now_ms() - ENDED_SESSIONS_KEPT_MS).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted sessions that ended more than a week ago"),
            Err(error) => tracing::warn!(%error, "session retention failed"),
        }
    }
}

/// Connect to the configured database and apply migrations.
pub async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url();
    let db = Db::connect_pooled(&url, settings.database_max_connections).await.map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
    db.migrate().await?;
    Ok(db)
}

/// Create the data dir (and missing parents) owner-only: 0700 on Unix. An
/// existing one keeps its mode; one that others may read is reported.
pub fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    agentry_db::create_private_dir(dir).map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", dir.display()))?;
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(dir)
        && std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o077 != 0
    {
        tracing::warn!(data_dir = %dir.display(), "the data dir holds the master key and the database but other users may open it: chmod 700 it");
    }
    Ok(())
}

/// The startup step that encrypts secrets stored in clear by versions
/// before sealing (signing keys, TOTP secrets, MCP server headers): each
/// value not starting with `enc:v1:` is sealed under the current master key
/// and written back. Idempotent, run after every `migrate()` (SQL cannot
/// run the AEAD). Also reports, by key id only, values sealed under master
/// keys this process does not hold.
pub async fn seal_stored_secrets(db: &Db, sealer: &agentry_core::secrets::Sealer) -> anyhow::Result<()> {
    let report = agentry_core::secrets::seal_stored(db, sealer).await.map_err(|e| anyhow::anyhow!("sealing stored secrets: {e}"))?;
    if report.rewritten > 0 {
        tracing::info!(sealed = report.rewritten, key_id = sealer.current_id(), "sealed secrets that were stored in clear");
    }
    if !report.unknown_keys.is_empty() {
        let key_ids: Vec<&str> = report.unknown_keys.iter().map(String::as_str).collect();
        tracing::warn!(key_ids = %key_ids.join(","), "some stored secrets are sealed under master keys this server does not hold: list them in master.key.previous");
    }
    Ok(())
}

/// The startup step that seals audit chains ending in legacy (unkeyed)
/// events with a keyed `audit.keyed` marker, so they keep verifying (see
/// agentry-core's `audit` module doc). Idempotent, run after `migrate()`.
pub async fn seal_legacy_audit_chains(audit: &Audit) -> anyhow::Result<()> {
    let sealed = audit.seal_legacy_chains().await.map_err(|e| anyhow::anyhow!("sealing legacy audit chains: {e}"))?;
    if !sealed.is_empty() {
        tracing::warn!(
            chains = sealed.len(),
            "sealed audit chains that ended in unkeyed (legacy) events with an audit.keyed marker: expected once after upgrading; \
             otherwise those events were written without the audit key (an older replica, or a database writer): verify them against an anchor"
        );
    }
    Ok(())
}

/// `agentry admin bootstrap`: the first tenant and its admin.
pub async fn bootstrap(settings: &Settings, tenant_slug: &str, tenant_name: Option<&str>, email: &str, password: &str) -> anyhow::Result<(agentry_core::identity::Tenant, String)> {
    let keys = master_key::derived_keys_for(settings)?;
    let master_key = master_key::resolve(settings.master_key.as_ref(), &settings.data_dir)?;
    let db = connect_and_migrate(settings).await?;
    seal_stored_secrets(&db, &keys.sealer).await?;
    let audit = Audit::with_keys(db.clone(), keys.audit);
    let identity = Identity::new(db.clone(), audit, keys.sealer, master_key.secret().clone(), settings.identity.clone()).await?;
    let created = identity.bootstrap(tenant_slug, tenant_name.unwrap_or(tenant_slug), email, password).await;
    db.close().await;
    Ok(created?)
}

/// Every route, behind its route layers: authorization, then the matched
/// route template for the metrics label (route layers run after routing).
fn routes(state: AppState, max_document_bytes: usize, max_file_bytes: u64) -> Router {
    Router::new()
        .merge(crate::openai::router(max_file_bytes))
        .merge(crate::routes::health::router())
        .merge(crate::routes::docs::router())
        .merge(crate::routes::auth::router())
        .merge(crate::routes::oidc::router())
        .merge(crate::routes::tenants::router())
        .merge(crate::routes::invitations::router())
        .merge(crate::routes::api_keys::router())
        .merge(crate::routes::audit::router())
        .merge(crate::routes::costs::router())
        .merge(crate::routes::knowledge::router(max_document_bytes))
        .merge(crate::routes::agents::router())
        .merge(crate::routes::jobs::router())
        .merge(crate::routes::events::router())
        .merge(crate::routes::webhooks::router())
        .merge(crate::routes::schedules::router())
        .merge(crate::routes::privacy::router())
        .merge(crate::routes::bulk::router())
        .merge(crate::mcp::router())
        .merge(crate::a2a::router())
        .merge(crate::graphql::router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::authorize))
        .route_layer(axum::middleware::from_fn(middleware::endpoint_label))
        .route_layer(axum::middleware::from_fn(crate::deprecation::headers))
        .fallback(|| async { ApiError::not_found("no route matches this path") })
        .with_state(state)
}

/// The layers around the whole router, outermost first: request id, HTTP
/// metrics, the error envelope, the body limit, and a handler's panic turned
/// into a 500 in the envelope (logged) instead of a dropped connection. They
/// wrap the router once.
/// `Router::layer` would instead box each layer around every route, and each
/// request would clone that nest of boxes (measured: 250 -> 208 allocations
/// per proxied completion).
fn http_stack(routes: Router, max_body_bytes: usize) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static {
    tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(middleware::request_id))
        .layer(axum::middleware::from_fn(middleware::http_metrics))
        .layer(axum::middleware::from_fn(middleware::error_envelope))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            axum::response::IntoResponse::into_response(ApiError::internal("a request handler panicked"))
        }))
        .service(routes)
}

/// Write API key last-used times every few seconds, and once more at shutdown.
async fn flush_key_uses(identity: Identity, stop: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(Duration::from_secs(5)) => false,
        };
        if let Err(error) = identity.flush_key_uses().await {
            tracing::warn!(%error, "could not record API key use");
        }
        if stopping {
            break;
        }
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
        () = token.cancelled() => return,
    }
    token.cancel();
}

/// PDF and DOCX documents are parsed by `knowledge.parse_worker`, by
/// default this same program, run as `agentry parse-worker` in a child
/// process with its own memory and CPU limits. On Linux through
/// `/proc/self/exe`, which still names this program after its file is
/// replaced by an upgrade. As many children at once as there are
/// ingestion workers: agents' fetches share them.
fn isolated_parser(configured: Option<std::path::PathBuf>, concurrency: usize) -> agentry_search::parse::Parser {
    let own = || if cfg!(target_os = "linux") { Some(std::path::PathBuf::from("/proc/self/exe")) } else { std::env::current_exe().ok() };
    match configured.or_else(own) {
        Some(program) => agentry_search::parse::Parser::isolated(program, concurrency),
        None => agentry_search::parse::Parser::InProcess,
    }
}
