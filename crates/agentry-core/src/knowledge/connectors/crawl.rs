//! The crawl connector: breadth-first from a start page, following the
//! `<a href>` links of HTML pages up to `max_depth` links away. A page
//! whose `<meta name="robots">` (or `name="agentry"`) says `noindex` is
//! not stored, and one that says `nofollow` is not followed; robots.txt,
//! the delay, `same_host` and `max_pages` are the run's
//! ([`super::Fetcher`], [`super::Sink`]). The start page must be readable
//! (the run fails otherwise: retried if the failure may pass).
//!
//! Must not: fetch except through the run's [`Fetcher`].

use std::collections::VecDeque;
use std::sync::Arc;

use reqwest::Url;

use super::{Connector, Fetcher, Page, Sink, skipped};
use crate::error::Error;

pub(super) struct Crawl {
    pub(super) url: Url,
    pub(super) max_depth: u32,
}

/// What an HTML page says about itself and where it links.
#[derive(Debug, Default, PartialEq, Eq)]
struct Links {
    hrefs: Vec<String>,
    noindex: bool,
    nofollow: bool,
}

#[async_trait::async_trait]
impl Connector for Crawl {
    async fn collect(&self, fetcher: &mut Fetcher<'_>, sink: &mut Sink<'_>) -> Result<(), Error> {
        let Some(start) = sink.discover(self.url.as_str(), &self.url) else { return Ok(()) };
        // Pages share their parent's URL: a page may link to thousands.
        let mut queue = VecDeque::from([(start, 0, None::<Arc<str>>)]);
        let mut first = true;
        while let Some((url, depth, from)) = queue.pop_front() {
            if !sink.has_room() {
                return Ok(());
            }
            let fetched = if first {
                first = false;
                let fetched = fetcher.get(&url).await.map_err(|skip| skipped(&url, skip))?;
                sink.report.fetched += 1;
                fetched
            } else {
                match sink.fetch(fetcher, &url).await? {
                    Some(fetched) => fetched,
                    None => continue,
                }
            };
            let links = if is_html(fetched.content_type.as_deref(), &fetched.bytes) {
                let bytes = fetched.bytes.clone();
                tokio::task::spawn_blocking(move || links_of(&bytes)).await.map_err(|e| Error::Internal(format!("reading a page's links: {e}")))?
            } else {
                Links::default()
            };
            let base = Url::parse(&fetched.final_url).unwrap_or_else(|_| url.clone());
            if links.noindex {
                sink.report.skipped += 1;
            } else {
                sink.store(Page { url: url.clone(), fetched, discovered_from: from.map(|from| from.to_string()) }).await?;
            }
            if depth < self.max_depth && !links.nofollow {
                let parent: Arc<str> = Arc::from(url.as_str());
                for href in &links.hrefs {
                    if let Some(next) = sink.discover(href, &base) {
                        queue.push_back((next, depth + 1, Some(Arc::clone(&parent))));
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_html(content_type: Option<&str>, bytes: &[u8]) -> bool {
    if let Some(content_type) = content_type {
        return content_type.to_ascii_lowercase().contains("html");
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    head.trim_start().starts_with("<!doctype html") || head.contains("<html")
}

/// The links and robots directives of an HTML page.
fn links_of(bytes: &[u8]) -> Links {
    let html = scraper::Html::parse_document(&String::from_utf8_lossy(bytes));
    let mut links = Links::default();
    if let Ok(meta) = scraper::Selector::parse("meta[name][content]") {
        for element in html.select(&meta) {
            let name = element.value().attr("name").unwrap_or_default().to_ascii_lowercase();
            if name == "robots" || name == "agentry" {
                let content = element.value().attr("content").unwrap_or_default().to_ascii_lowercase();
                let directives: Vec<&str> = content.split(',').map(str::trim).collect();
                links.noindex |= directives.iter().any(|d| *d == "noindex" || *d == "none");
                links.nofollow |= directives.iter().any(|d| *d == "nofollow" || *d == "none");
            }
        }
    }
    if let Ok(anchors) = scraper::Selector::parse("a[href]") {
        for anchor in html.select(&anchors) {
            let nofollow = anchor.value().attr("rel").is_some_and(|rel| rel.split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("nofollow")));
            if let (Some(href), false) = (anchor.value().attr("href"), nofollow) {
                links.hrefs.push(href.to_owned());
            }
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_robots_directives_are_read() {
        let page = br#"<!doctype html><html><head><meta name="robots" content="NoIndex, follow"></head><body>
            <a href="/a">A</a><a href="b.html#top">B</a><a rel="nofollow" href="/private">P</a><a>none</a></body></html>"#;
        assert_eq!(links_of(page), Links { hrefs: vec!["/a".into(), "b.html#top".into()], noindex: true, nofollow: false });
        assert!(links_of(br#"<meta name="robots" content="none">"#).nofollow);
        assert!(is_html(Some("text/html; charset=utf-8"), b""));
        assert!(!is_html(Some("text/plain"), b"<html>"));
        assert!(is_html(None, b"  <!DOCTYPE html><html>"));
    }
}
