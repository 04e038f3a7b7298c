//! Connectors: collecting a collection's documents from the web, run by a
//! schedule's `run_connector` action. A [`Connector`] finds pages and
//! fetches them through the polite [`Fetcher`] (robots.txt, a delay
//! between requests, the guarded outbound client); a [`Sink`] stores each
//! page as a document of the collection, known by its URL: a page seen
//! before becomes a new version of its document only when its bytes
//! changed, one never seen a new document. Each stored version carries its
//! lineage (connector, schedule, fire, page URL, where it was found, when it
//! was fetched); ingestion then parses it and applies the collection's
//! quality checks ([`super::quality`]).
//!
//! Three connectors: [`sitemap`] (a sitemap or sitemap index, gzipped or
//! not), [`feed`] (RSS 0.x/1.0/2.0, Atom, JSON Feed: each entry's link) and
//! [`crawl`] (breadth-first from a start page, `max_depth` links deep,
//! honouring `<meta name="robots">` noindex and nofollow). Every connector
//! stops after `max_pages` page fetches, and with `same_host` (default)
//! keeps to the start URL's host; it also stops after an hour, and
//! remembers at most 20 000 URLs of at most 2048 characters. A run re-run
//! after a crash repeats the fetches; pages whose bytes did not change add
//! nothing.
//!
//! Must not: fetch except through [`Fetcher`], or store a page the
//! schedule's owner could not upload themselves.

mod crawl;
mod feed;
mod fetcher;
mod sitemap;

use std::collections::HashSet;
use std::time::Duration;

use agentry_types::Permission;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Collected, Content, Knowledge, Upload, fetch, require};
use crate::error::Error;
use crate::identity::{TenantAccess, now_ms};
use crate::outbound::Fetched;
use fetcher::{Fetcher, Skip};

/// Most pages one run may fetch.
const MAX_PAGES: u32 = 10_000;
/// Deepest crawl.
const MAX_DEPTH: u32 = 10;
/// Longest politeness delay.
const MAX_DELAY_MS: u64 = 60_000;
/// URLs a run remembers having seen (beyond it, new links are not followed).
const MAX_SEEN: usize = 20_000;
/// Longest URL a connector follows.
const MAX_URL_CHARS: usize = 2048;
/// Longest run: then it stops as if at `max_pages`.
const MAX_RUN: Duration = Duration::from_secs(3600);

/// Where a connector collects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// `url` is a sitemap (or sitemap index): every page it lists.
    Sitemap,
    /// `url` is an RSS, Atom or JSON feed: each entry's page.
    Feed,
    /// `url` is a start page: it and the pages it links to, `max_depth` links deep.
    Crawl,
}

/// A connector's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    #[serde(rename = "type")]
    pub kind: ConnectorKind,
    /// The sitemap, feed or start page (http or https).
    pub url: String,
    /// Most pages fetched per run (robots.txt, sitemaps and feeds aside).
    #[serde(default = "default_max_pages")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_pages: u32,
    /// Least time between two requests, in milliseconds (a longer `Crawl-delay` in robots.txt wins).
    #[serde(default = "default_delay_ms")]
    #[schema(maximum = 60_000)]
    pub delay_ms: u64,
    /// `crawl`: links followed from the start page (0: the start page only).
    #[serde(default = "default_max_depth")]
    #[schema(maximum = 10)]
    pub max_depth: u32,
    /// Only pages on the host of `url`.
    #[serde(default = "default_same_host")]
    pub same_host: bool,
}

fn default_max_pages() -> u32 {
    100
}
fn default_delay_ms() -> u64 {
    1000
}
fn default_max_depth() -> u32 {
    2
}
fn default_same_host() -> bool {
    true
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectorReport {
    /// Distinct page URLs found.
    pub discovered: usize,
    /// Pages fetched.
    pub fetched: usize,
    /// New documents or versions queued for ingestion.
    pub stored: usize,
    /// Pages whose bytes equal their document's latest version (nothing stored).
    pub unchanged: usize,
    /// Pages robots.txt or their own `noindex` kept out, or on another host.
    pub skipped: usize,
    /// Pages that could not be fetched or stored (the server log says why).
    pub failed: usize,
    /// The run stopped at `max_pages` (or after an hour) with pages left.
    pub truncated: bool,
}

/// The schedule fire a run belongs to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorRun<'a> {
    pub schedule_id: &'a str,
    pub run_id: &'a str,
    pub cancel: &'a CancellationToken,
}

/// Finds pages and hands each to the sink.
#[async_trait::async_trait]
trait Connector: Send + Sync {
    /// Fetch the pages this connector collects, handing each to `sink` until it is full.
    async fn collect(&self, fetcher: &mut Fetcher<'_>, sink: &mut Sink<'_>) -> Result<(), Error>;
}

/// A fetched page and where it was found.
struct Page {
    url: Url,
    fetched: Fetched,
    discovered_from: Option<String>,
}

/// Whether a connector should go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Stores pages as documents of the collection, counting what happens.
struct Sink<'a> {
    knowledge: &'a Knowledge,
    access: &'a TenantAccess,
    collection_id: &'a str,
    spec: &'a ConnectorSpec,
    connector: String,
    run: ConnectorRun<'a>,
    principals: Vec<String>,
    start_host: Option<String>,
    seen: HashSet<String>,
    report: ConnectorReport,
    /// When the run must stop ([`MAX_RUN`]).
    deadline: tokio::time::Instant,
}

impl Sink<'_> {
    /// A page URL found on `base`, resolved and without its fragment; `None`
    /// (counted as skipped) when it is not http(s), is on another host with
    /// `same_host`, or was seen before or is longer than [`MAX_URL_CHARS`] (not counted).
    fn discover(&mut self, href: &str, base: &Url) -> Option<Url> {
        let mut url = base.join(href.trim()).ok()?;
        url.set_fragment(None);
        if !matches!(url.scheme(), "http" | "https") || url.as_str().len() > MAX_URL_CHARS {
            return None;
        }
        if self.spec.same_host && url.host_str().map(str::to_ascii_lowercase) != self.start_host {
            if self.seen.len() < MAX_SEEN && self.seen.insert(url.to_string()) {
                self.report.skipped += 1;
            }
            return None;
        }
        if self.seen.len() >= MAX_SEEN || !self.seen.insert(url.to_string()) {
            return None;
        }
        self.report.discovered += 1;
        Some(url)
    }

    /// Room for another page fetch (call it only with a page to fetch: it
    /// marks the run truncated when there is none).
    fn has_room(&mut self) -> bool {
        let room = (self.report.fetched as u64) < u64::from(self.spec.max_pages) && tokio::time::Instant::now() < self.deadline;
        if !room {
            self.report.truncated = true;
        }
        room
    }

    /// Fetch a discovered page; `None` when it was skipped or failed (counted).
    async fn fetch(&mut self, fetcher: &mut Fetcher<'_>, url: &Url) -> Result<Option<Fetched>, Error> {
        match fetcher.get(url).await {
            Ok(fetched) => {
                self.report.fetched += 1;
                Ok(Some(fetched))
            }
            Err(Skip::Disallowed) => {
                self.report.skipped += 1;
                Ok(None)
            }
            Err(Skip::Failed(error)) => {
                self.report.fetched += 1;
                self.report.failed += 1;
                tracing::info!(url = %url, %error, "a connector could not fetch a page");
                Ok(None)
            }
            Err(Skip::Cancelled) => Err(Error::Unavailable("the connector run was cancelled".into())),
        }
    }

    /// Store a page: a new version of its document when its bytes changed, or a new document.
    async fn store(&mut self, page: Page) -> Result<(), Error> {
        let source = page.url.to_string();
        let knowledge = self.knowledge;
        let existing = knowledge.inner.db.document_by_source(self.access.tenant_id(), self.collection_id, &source).await?;
        let existing = match existing.map(super::DocumentView::of) {
            Some(document) if !document.visible_to(&self.principals) => {
                tracing::info!(url = %source, document = %document.id, "a connector's page belongs to a document its owner may not read; skipped");
                self.report.skipped += 1;
                return Ok(());
            }
            other => other,
        };
        let upload = Upload {
            content: Content::Bytes { bytes: page.fetched.bytes, file_name: fetch::file_name(&page.fetched.final_url), content_type: page.fetched.content_type },
            title: existing.as_ref().map(|d| d.title.clone()),
            metadata: serde_json::Map::new(),
            acl: existing.as_ref().map(|d| d.acl.clone()).unwrap_or_default(),
            document_id: existing.map(|d| d.id),
            collected: Some(Collected {
                connector: self.connector.clone(),
                schedule_id: Some(self.run.schedule_id.to_owned()),
                run_id: Some(self.run.run_id.to_owned()),
                source_url: source.clone(),
                discovered_from: page.discovered_from,
                fetched_at_ms: now_ms(),
            }),
        };
        match knowledge.upload(self.access, self.collection_id, upload).await {
            Ok(accepted) if accepted.unchanged => self.report.unchanged += 1,
            Ok(_) => self.report.stored += 1,
            Err(error @ (Error::Db(_) | Error::Unavailable(_) | Error::Forbidden(_))) => return Err(error),
            Err(error) => {
                tracing::info!(url = %source, %error, "a connector's page could not be stored");
                self.report.failed += 1;
            }
        }
        Ok(())
    }
}

impl ConnectorSpec {
    /// The settings as sent; errors name `action`.
    fn validate(&self, knowledge: &Knowledge) -> Result<Url, Error> {
        let url = fetch::check_upload_url(&knowledge.inner.outbound, &self.url).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::invalid(format!("'connector.url': {message}"), "action"),
            other => other,
        })?;
        if !(1..=MAX_PAGES).contains(&self.max_pages) {
            return Err(Error::invalid(format!("'connector.max_pages' must be 1 to {MAX_PAGES}"), "action"));
        }
        if self.delay_ms > MAX_DELAY_MS {
            return Err(Error::invalid(format!("'connector.delay_ms' must be at most {MAX_DELAY_MS}"), "action"));
        }
        if self.max_depth > MAX_DEPTH {
            return Err(Error::invalid(format!("'connector.max_depth' must be at most {MAX_DEPTH}"), "action"));
        }
        Ok(url)
    }
}

impl Knowledge {
    /// Whether the caller could run `spec` into `collection_id` now.
    pub async fn check_connector(&self, access: &TenantAccess, collection_id: &str, spec: &ConnectorSpec) -> Result<(), Error> {
        require(access, Permission::UploadDocuments)?;
        spec.validate(self)?;
        self.collection(access, collection_id).await.map(drop)
    }

    /// Run a connector into a collection for the caller (a schedule's owner).
    pub async fn run_connector(&self, access: &TenantAccess, collection_id: &str, spec: &ConnectorSpec, run: ConnectorRun<'_>) -> Result<ConnectorReport, Error> {
        require(access, Permission::UploadDocuments)?;
        let start = spec.validate(self)?;
        let collection = self.collection(access, collection_id).await?;
        let connector: Box<dyn Connector> = match spec.kind {
            ConnectorKind::Sitemap => Box::new(sitemap::Sitemap { url: start.clone() }),
            ConnectorKind::Feed => Box::new(feed::Feed { url: start.clone() }),
            ConnectorKind::Crawl => Box::new(crawl::Crawl { url: start.clone(), max_depth: spec.max_depth }),
        };
        let mut sink = Sink {
            knowledge: self,
            access,
            collection_id: &collection.id,
            spec,
            connector: serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?,
            run,
            principals: self.reader_principals(access).await?,
            start_host: start.host_str().map(str::to_ascii_lowercase),
            seen: HashSet::new(),
            report: ConnectorReport::default(),
            deadline: tokio::time::Instant::now() + MAX_RUN,
        };
        let mut fetcher = Fetcher::new(&self.inner.outbound, Duration::from_millis(spec.delay_ms), run.cancel);
        connector.collect(&mut fetcher, &mut sink).await?;
        let report = sink.report;
        metrics::counter!("connector_pages_total", "outcome" => "stored").increment(report.stored as u64);
        metrics::counter!("connector_pages_total", "outcome" => "unchanged").increment(report.unchanged as u64);
        metrics::counter!("connector_pages_total", "outcome" => "skipped").increment(report.skipped as u64);
        metrics::counter!("connector_pages_total", "outcome" => "failed").increment(report.failed as u64);
        tracing::info!(collection = %collection.id, kind = ?spec.kind, ?report, "connector run finished");
        Ok(report)
    }
}

/// Why the connector's own document (a sitemap or feed) could not be had, as the run's error.
fn skipped(url: &Url, skip: Skip) -> Error {
    match skip {
        Skip::Disallowed => Error::Unprocessable(format!("robots.txt disallows {url}")),
        Skip::Failed(error) if fetch::transient(&error) => Error::Unavailable(format!("{url}: {}", fetch::describe(&error))),
        Skip::Failed(error) => Error::Unprocessable(format!("{url}: {}", fetch::describe(&error))),
        Skip::Cancelled => Error::Unavailable("the connector run was cancelled".into()),
    }
}

/// Fetch each of `urls` (found on `from`) and store it, until the sink is full.
async fn fetch_and_store(fetcher: &mut Fetcher<'_>, sink: &mut Sink<'_>, urls: Vec<Url>, from: &Url) -> Result<Flow, Error> {
    for url in urls {
        if !sink.has_room() {
            return Ok(Flow::Stop);
        }
        if let Some(fetched) = sink.fetch(fetcher, &url).await? {
            sink.store(Page { url, fetched, discovered_from: Some(from.to_string()) }).await?;
        }
    }
    Ok(Flow::Continue)
}
