//! The polite fetcher every connector fetches through: one request at a
//! time, at least the connector's `delay_ms` apart (or the site's
//! `Crawl-delay`, up to a minute, if longer), each URL checked against its
//! site's robots.txt (RFC 9309, texting_robots, user agent `agentry`) and
//! fetched with the guarded [`Outbound`] client (the allowlist, size cap and
//! deadline of `knowledge.url_fetch`). At most [`MAX_SITES`] sites are
//! asked for robots.txt per run (pages on more are skipped), and only the
//! first 512 KiB of each is read.
//!
//! robots.txt per RFC 9309: an answer that is 4xx (none published) allows
//! everything; one that cannot be had for now (a 5xx, the network, a
//! timeout) disallows the whole site for this run; one the guard refuses
//! allows, and the page's own fetch then fails with the guard's reason.
//!
//! Must not: reach the network except through [`Outbound`].

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Url;
use texting_robots::Robot;
use tokio_util::sync::CancellationToken;

use super::super::fetch::transient;
use crate::outbound::{Fetched, Outbound, OutboundError};

/// The product token robots.txt groups are matched against.
const USER_AGENT: &str = "agentry";
/// Longest `Crawl-delay` honoured.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(60);
/// The part of a robots.txt read (RFC 9309 asks crawlers to read at least 500 KiB).
const MAX_ROBOTS_BYTES: usize = 512 * 1024;
/// Sites (scheme, host and port) one run asks for robots.txt; URLs on more are skipped.
const MAX_SITES: usize = 16;

/// What a site's robots.txt says.
enum Rules {
    AllowAll,
    DisallowAll,
    Parsed(Box<Robot>),
}

impl Rules {
    fn allows(&self, url: &str) -> bool {
        match self {
            Self::AllowAll => true,
            Self::DisallowAll => false,
            Self::Parsed(robot) => robot.allowed(url),
        }
    }

    fn crawl_delay(&self) -> Duration {
        match self {
            Self::Parsed(robot) => robot.delay.and_then(|d| Duration::try_from_secs_f32(d.min(MAX_CRAWL_DELAY.as_secs_f32())).ok()).unwrap_or(Duration::ZERO),
            _ => Duration::ZERO,
        }
    }
}

/// Why a URL was not fetched.
#[derive(Debug)]
pub(super) enum Skip {
    /// robots.txt disallows it.
    Disallowed,
    Failed(OutboundError),
    /// The run was cancelled (the job was, or the server is stopping).
    Cancelled,
}

pub(super) struct Fetcher<'a> {
    outbound: &'a Outbound,
    delay: Duration,
    cancel: &'a CancellationToken,
    robots: HashMap<String, Rules>,
    last: Option<tokio::time::Instant>,
}

impl<'a> Fetcher<'a> {
    pub(super) fn new(outbound: &'a Outbound, delay: Duration, cancel: &'a CancellationToken) -> Self {
        Self { outbound, delay, cancel, robots: HashMap::new(), last: None }
    }

    /// Fetch `url` if its site's robots.txt allows it.
    pub(super) async fn get(&mut self, url: &Url) -> Result<Fetched, Skip> {
        let origin = url.origin().ascii_serialization();
        if !self.robots.contains_key(&origin) {
            if self.robots.len() >= MAX_SITES {
                return Err(Skip::Disallowed);
            }
            let rules = self.robots_of(&origin).await?;
            self.robots.insert(origin.clone(), rules);
        }
        let rules = &self.robots[&origin];
        if !rules.allows(url.as_str()) {
            return Err(Skip::Disallowed);
        }
        let delay = self.delay.max(rules.crawl_delay());
        self.request(url.as_str(), delay).await?.map_err(Skip::Failed)
    }

    async fn robots_of(&mut self, origin: &str) -> Result<Rules, Skip> {
        let answer = self.request(&format!("{origin}/robots.txt"), self.delay).await?;
        Ok(match answer {
            Ok(mut fetched) => {
                fetched.bytes.truncate(MAX_ROBOTS_BYTES);
                let parsed = tokio::task::spawn_blocking(move || Robot::new(USER_AGENT, &fetched.bytes).ok()).await.ok().flatten();
                parsed.map_or(Rules::AllowAll, |robot| Rules::Parsed(Box::new(robot)))
            }
            Err(OutboundError::Status(status)) if (400..500).contains(&status) => Rules::AllowAll,
            Err(error) if transient(&error) => {
                tracing::info!(%origin, %error, "robots.txt is unreachable; the site is not crawled this run");
                Rules::DisallowAll
            }
            Err(_) => Rules::AllowAll,
        })
    }

    /// One request, `delay` after the previous one; `Err` only when cancelled.
    async fn request(&mut self, url: &str, delay: Duration) -> Result<Result<Fetched, OutboundError>, Skip> {
        if let Some(last) = self.last {
            tokio::select! {
                () = self.cancel.cancelled() => return Err(Skip::Cancelled),
                () = tokio::time::sleep_until(last + delay) => {}
            }
        }
        if self.cancel.is_cancelled() {
            return Err(Skip::Cancelled);
        }
        let answer = tokio::select! {
            () = self.cancel.cancelled() => return Err(Skip::Cancelled),
            answer = self.outbound.fetch(url) => answer,
        };
        self.last = Some(tokio::time::Instant::now());
        Ok(answer)
    }
}
