//! `spawn_app()` → [`TestApp`]: a running server with its own temp data dir,
//! wired to a fresh [`MockUpstream`].

use std::path::PathBuf;
use std::time::Duration;

use agentry_server::{Application, Settings};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::mock_upstream::MockUpstream;

pub const MASTER_KEY: &str = "sk-test-master-key-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub upstream: MockUpstream,
    pub data_dir: Option<tempfile::TempDir>,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub database_url: String,
}

/// Options for [`spawn_app_with`].
pub struct TestOptions {
    pub local_models: bool,
    pub postgres_url: Option<String>,
    pub router_timeout_secs: f64,
    pub max_body_bytes: usize,
    pub grace_secs: u64,
    /// Port to listen on (0: any); set when the configuration must name it (OIDC redirect URIs).
    pub port: u16,
    pub identity: agentry_core::identity::IdentitySettings,
    pub redis_url: Option<String>,
    pub usage: agentry_server::configuration::UsageConfig,
    pub knowledge: agentry_server::configuration::KnowledgeConfig,
    pub agents: agentry_core::agents::AgentsSettings,
    /// Reuse this data dir (a restart) instead of a fresh temp dir.
    pub data_dir: Option<tempfile::TempDir>,
    /// Wire in the in-memory test payment provider (a configured server has none).
    pub test_payments: bool,
    /// The `trusted_proxies` setting.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Leave `master_key` unset: the server reads (or generates) `<data_dir>/master.key`.
    pub master_key_from_data_dir: bool,
    pub files: agentry_core::batches::FilesSettings,
    pub batches: agentry_core::batches::BatchSettings,
    pub webhooks: agentry_core::webhooks::WebhooksSettings,
    pub schedules: agentry_core::schedules::SchedulesSettings,
    pub events: agentry_core::events::EventsSettings,
    pub metrics: agentry_server::configuration::MetricsSettings,
    pub privacy: agentry_core::privacy::PrivacySettings,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            local_models: false,
            postgres_url: None,
            router_timeout_secs: 0.5,
            max_body_bytes: 64 * 1024,
            grace_secs: 5,
            port: 0,
            identity: agentry_core::identity::IdentitySettings::default(),
            redis_url: None,
            // Tests sign in often from one address; the per-IP test lowers this.
            usage: agentry_server::configuration::UsageConfig { public_requests_per_minute_per_ip: 100_000, flush_interval_ms: 50, ..Default::default() },
            knowledge: agentry_server::configuration::KnowledgeConfig::default(),
            // Agents on the mock models; every passage counts as relevant (mock vectors carry no meaning).
            agents: agentry_core::agents::AgentsSettings {
                default_model: "mock-echo".into(),
                vision_model: Some("mock-vision".into()),
                rag_min_similarity: -1.0,
                ..Default::default()
            },
            data_dir: None,
            test_payments: false,
            trusted_proxies: Vec::new(),
            master_key_from_data_dir: false,
            files: agentry_core::batches::FilesSettings::default(),
            batches: agentry_core::batches::BatchSettings::default(),
            webhooks: agentry_core::webhooks::WebhooksSettings::default(),
            schedules: agentry_core::schedules::SchedulesSettings::default(),
            events: agentry_core::events::EventsSettings::default(),
            metrics: agentry_server::configuration::MetricsSettings::default(),
            privacy: agentry_core::privacy::PrivacySettings::default(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

/// Knowledge on the mock embedder (fast, no model weights; chunk sizes
/// counted with the test MiniLM tokenizer). Its vectors carry no meaning:
/// search such a knowledge base in `keyword` mode.
pub fn mock_knowledge() -> TestOptions {
    let mut options = TestOptions::default();
    options.knowledge.embedding_model = "mock-embed".into();
    options.knowledge.tokenizer = Some(test_models_dir().join("all-minilm-l6-v2/tokenizer.json"));
    options
}

/// The providers and models every test app has: a healthy upstream, a broken
/// one (same mock server, its own circuit breaker) and an Anthropic one.
fn provider_config(upstream: &MockUpstream) -> (Value, Value) {
    let providers = json!([
        { "type": "openai_compat", "name": "healthy", "base_url": format!("{}/v1", upstream.url), "api_key": "sk-upstream" },
        { "type": "openai_compat", "name": "broken", "base_url": format!("{}/v1", upstream.url) },
        { "type": "openai_compat", "name": "limited", "base_url": format!("{}/v1", upstream.url) },
        { "type": "anthropic", "name": "claude", "base_url": format!("{}/anthropic", upstream.url), "api_key": "sk-ant" },
        { "type": "mock", "name": "mock" },
    ]);
    let models = json!([
        { "name": "gpt-4o", "provider": "healthy", "upstream_model": "gpt-ok" },
        { "name": "gpt-ok", "provider": "healthy" },
        { "name": "no-usage", "provider": "healthy" },
        { "name": "echo-params", "provider": "healthy" },
        { "name": "stream-hang", "provider": "healthy" },
        { "name": "stream-then-fail", "provider": "healthy", "fallbacks": ["gpt-ok"] },
        { "name": "embed-ok", "provider": "healthy", "kind": "embedding" },
        { "name": "fail-500", "provider": "broken", "fallbacks": ["gpt-ok"] },
        { "name": "always-500", "provider": "broken" },
        { "name": "slow", "provider": "broken", "fallbacks": ["gpt-ok"] },
        { "name": "flaky", "provider": "broken" },
        { "name": "rate-limited", "provider": "limited" },
        { "name": "claude-ok", "provider": "claude", "upstream_model": "claude-test" },
        { "name": "mock-echo", "provider": "mock" },
        { "name": "mock-vision", "provider": "mock", "upstream_model": "mock-echo", "vision": true },
        { "name": "mock-tools", "provider": "mock" },
        { "name": "mock-tool-loop", "provider": "mock" },
        { "name": "mock-slow-400", "provider": "mock" },
        { "name": "mock-slow-1500", "provider": "mock" },
        { "name": "mock-slow-20000", "provider": "mock" },
        { "name": "mock-tiny-window", "provider": "mock", "upstream_model": "mock-echo", "context_window": 160 },
        { "name": "mock-embed", "provider": "mock", "kind": "embedding" },
        { "name": "mock-judge", "provider": "mock", "upstream_model": "mock-say-0.25" },
        { "name": "mock-summarizer", "provider": "mock", "upstream_model": "mock-say-A note about marsupials of Rottnest." },
        { "name": "priced", "provider": "mock", "upstream_model": "mock-echo", "input_price_per_1k": 0.0, "output_price_per_1k": 1.0 },
        { "name": "gpt-4o-mini", "provider": "mock", "upstream_model": "mock-echo", "input_price_per_1k": 0.00015, "output_price_per_1k": 0.0006 },
    ]);
    (providers, models)
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    let upstream = MockUpstream::start().await;
    let data_dir = match options.data_dir {
        Some(dir) => dir,
        None => tempfile::tempdir().expect("temp dir"),
    };
    let (providers, models) = provider_config(&upstream);
    let mut settings: Settings = serde_json::from_value(json!({
        "providers": providers,
        "models": models,
    }))
    .expect("test settings parse");
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], options.port));
    settings.trusted_proxies = options.trusted_proxies;
    settings.identity = options.identity;
    settings.redis_url = options.redis_url.clone();
    settings.usage = options.usage.clone();
    settings.knowledge = options.knowledge.clone();
    // In-process servers parse PDF and DOCX with the real worker: the agentry binary.
    settings.knowledge.parse_worker.get_or_insert_with(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_agentry")));
    settings.agents = options.agents.clone();
    settings.files = options.files.clone();
    settings.batches = options.batches.clone();
    settings.webhooks = options.webhooks.clone();
    settings.schedules = options.schedules.clone();
    settings.events = options.events.clone();
    settings.metrics = options.metrics.clone();
    settings.privacy = options.privacy.clone();
    settings.data_dir = data_dir.path().to_path_buf();
    settings.master_key = (!options.master_key_from_data_dir).then(|| SecretString::from(MASTER_KEY));
    settings.database_url = options.postgres_url.clone();
    settings.max_body_bytes = options.max_body_bytes;
    settings.shutdown_grace_secs = options.grace_secs;
    settings.offline = true;
    settings.router.timeout_secs = options.router_timeout_secs;
    settings.router.backoff_base_ms = 10;
    settings.router.backoff_max_ms = 50;
    settings.router.max_retries = 2;
    settings.router.max_retry_after_secs = 3.0;
    settings.router.breaker_failure_threshold = 3;
    settings.router.breaker_open_secs = 0.5;
    settings.local.enabled = options.local_models;
    if options.local_models {
        settings.local.models_dir = Some(test_models_dir());
    }
    let database_url = settings.database_url();
    let payments: Option<std::sync::Arc<dyn agentry_core::usage::billing::PaymentProvider>> =
        options.test_payments.then(|| std::sync::Arc::new(agentry_core::usage::billing::TestPaymentProvider::default()) as _);
    let app = Application::build_with_payments(settings, payments).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp { address, client: reqwest::Client::new(), upstream, data_dir: Some(data_dir), shutdown, server, database_url }
}

/// Where the test suite keeps pulled model files (`scripts/test` pulls them first).
pub fn test_models_dir() -> PathBuf {
    std::env::var_os("TEST_AGENTRY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| dirs_home().join(".cache/agentry-test-data/models"))
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

impl TestApp {
    /// Stop the server (gracefully) and start a new one on the same data dir and database.
    pub async fn restart(mut self, mut options: TestOptions) -> TestApp {
        self.shutdown.cancel();
        let _ = self.server.await;
        options.data_dir = self.data_dir.take();
        if self.database_url.starts_with("postgres") {
            options.postgres_url = Some(self.database_url.clone());
        }
        spawn_app_with(options).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(MASTER_KEY)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(MASTER_KEY)
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions").json(&body).send().await.expect("request sent")
    }

    /// `POST /v1/embeddings`, expecting a JSON answer.
    pub async fn embeddings(&self, body: Value) -> Value {
        self.post("/v1/embeddings").json(&body).send().await.expect("request sent").json().await.expect("json body")
    }

    /// Records the gateway wrote, after waiting for the batch writer.
    pub async fn model_calls(&self, expected: usize) -> Vec<agentry_db::ModelCallRecord> {
        let db = agentry_db::Db::connect(&self.database_url).await.expect("db");
        let mut calls = Vec::new();
        for _ in 0..100 {
            calls = db.recent_model_calls(100).await.expect("query");
            if calls.len() >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        calls
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").send().await.expect("metrics").text().await.expect("text")
    }

    /// The metrics text once it contains `line` (a worker counts an outcome
    /// just after storing it), or the last text read after five seconds.
    pub async fn metrics_with(&self, line: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self.metrics().await;
            if text.contains(line) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        text
    }
}

/// A signing key's private key (base64 PKCS#8 DER), opened with the test
/// master key: the database holds it sealed.
pub fn opened_private_der(key: &agentry_db::identity::SigningKeyRow) -> String {
    let sealer = agentry_core::secrets::Sealer::from_master_keys(MASTER_KEY.as_bytes(), []);
    sealer.open_string(&agentry_core::secrets::Place::signing_key(&key.kid), &key.private_der).expect("the signing key opens under the test master key")
}

/// A port that was free a moment ago (for configuration that must name it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn user_message(text: &str) -> Value {
    json!([{ "role": "user", "content": text }])
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| frame.lines().filter_map(|line| line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))).collect::<Vec<_>>().join("\n"))
        .collect()
}

/// Assert an error response's status and envelope; returns the error object.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"].get("param").is_some(), "{body}");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "request id in body matches header");
    body["error"].clone()
}

/// A request with a bearer credential and an optional JSON body: (status, JSON answer or null).
pub async fn send(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.with(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery 9";

impl TestApp {
    /// `agentry admin bootstrap` against this app's database: tenant `acme`
    /// and its admin (a platform administrator). Returns the tenant id.
    pub async fn bootstrap(&self) -> String {
        // The server's master key: the audit events bootstrap writes are keyed with it.
        let settings = Settings { database_url: Some(self.database_url.clone()), master_key: Some(SecretString::from(MASTER_KEY)), ..Settings::default() };
        let (tenant, _) = agentry_server::startup::bootstrap(&settings, "acme", Some("Acme"), ADMIN_EMAIL, PASSWORD).await.expect("bootstrap");
        tenant.id
    }

    /// Log in; returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client.post(self.url("/api/v1/auth/login")).json(&json!({ "email": email, "password": password })).send().await.expect("login sent")
    }

    /// Log in and return the access token.
    pub async fn token(&self, email: &str) -> String {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200, "login of {email}");
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("access token").to_owned()
    }

    /// A request with a bearer credential.
    pub fn with(&self, method: reqwest::Method, path: &str, bearer: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(bearer)
    }

    /// Add a member to a tenant (as `admin_token`): invite the address, then
    /// accept the invitation link (see [`Self::accept_invitation`]).
    pub async fn add_member(&self, admin_token: &str, tenant: &str, email: &str, role: &str) -> String {
        let response =
            self.with(reqwest::Method::POST, &format!("/api/v1/tenants/{tenant}/users"), admin_token).json(&json!({ "email": email, "role": role })).send().await.expect("sent");
        assert_eq!(response.status(), 201, "invite {email}");
        let invitation: Value = response.json().await.expect("json");
        let token = invitation["accept_token"].as_str().expect("an invitation link (tests send no mail)").to_owned();
        self.accept_invitation(&token, email).await
    }

    /// Accept an invitation link as `email`: a new account with [`PASSWORD`],
    /// or, when the account exists, signed in as it (with [`PASSWORD`]). An
    /// account made through an unmailed link is unverified and joins no second
    /// tenant: the master key (a platform administrator) verifies it first.
    /// Returns the user id.
    pub async fn accept_invitation(&self, token: &str, email: &str) -> String {
        let response = self.client.post(self.url("/api/v1/auth/invitations/accept")).json(&json!({ "token": token, "password": PASSWORD })).send().await.expect("sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        if status == 201 {
            return body["user_id"].as_str().expect("user id").to_owned();
        }
        assert_eq!(status, 409, "accept the invitation of {email}: {body}");
        let session = self.token(email).await;
        let accept = || self.with(reqwest::Method::POST, "/api/v1/invitations/accept", &session).json(&json!({ "token": token })).send();
        let mut response = accept().await.expect("sent");
        if response.status() == 403 {
            let me: Value = self.with(reqwest::Method::GET, "/api/v1/auth/me", &session).send().await.expect("sent").json().await.expect("json");
            let user_id = me["user"]["id"].as_str().expect("user id");
            let verified = self.post(&format!("/api/v1/admin/users/{user_id}/verify-email")).send().await.expect("sent");
            assert_eq!(verified.status(), 204, "verify {email}");
            response = accept().await.expect("sent");
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "accept the invitation of {email} signed in: {body}");
        body["user_id"].as_str().expect("user id").to_owned()
    }
}

/// Wait until an upload's ingestion job ends (its 202 answer is `accepted`); panics unless it succeeded.
pub async fn wait_ingested(app: &TestApp, token: &str, accepted: &Value) {
    let job = accepted["job_id"].as_str().expect("a job id");
    for _ in 0..400 {
        let (_, status) = send(app, token, reqwest::Method::GET, &format!("/api/v1/ingest-jobs/{job}"), None).await;
        match status["status"].as_str() {
            Some("succeeded") => return,
            Some("failed") => panic!("ingestion failed: {status}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("ingestion job {job} did not finish");
}
