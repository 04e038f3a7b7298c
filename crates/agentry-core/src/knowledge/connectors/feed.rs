//! The feed connector: each entry's page of an RSS (0.x, 1.0, 2.0), Atom or
//! JSON feed (feed-rs), its `alternate` link first. The feed must be
//! readable (the run fails otherwise: retried if the failure may pass).
//!
//! Must not: fetch except through the run's [`Fetcher`].

use reqwest::Url;

use super::{Connector, Fetcher, Sink, fetch_and_store, skipped};
use crate::error::Error;

pub(super) struct Feed {
    pub(super) url: Url,
}

#[async_trait::async_trait]
impl Connector for Feed {
    async fn collect(&self, fetcher: &mut Fetcher<'_>, sink: &mut Sink<'_>) -> Result<(), Error> {
        let fetched = fetcher.get(&self.url).await.map_err(|skip| skipped(&self.url, skip))?;
        // Links are relative to where the feed was found after redirects.
        let base = Url::parse(&fetched.final_url).unwrap_or_else(|_| self.url.clone());
        let links = tokio::task::spawn_blocking(move || entry_links(&fetched.bytes)).await.map_err(|e| Error::Internal(format!("reading a feed: {e}")))??;
        let pages = links.iter().filter_map(|href| sink.discover(href, &base)).collect();
        fetch_and_store(fetcher, sink, pages, &self.url).await.map(drop)
    }
}

/// Each entry's page link, in the feed's order.
fn entry_links(bytes: &[u8]) -> Result<Vec<String>, Error> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| Error::Unprocessable(format!("the feed is not RSS, Atom or JSON Feed: {e}")))?;
    Ok(feed
        .entries
        .iter()
        .filter_map(|entry| {
            let alternate = entry.links.iter().find(|link| link.rel.as_deref().is_none_or(|rel| rel == "alternate"));
            alternate.or_else(|| entry.links.first()).map(|link| link.href.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_and_atom_entries_give_their_pages() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>News</title><link>https://example.com/</link>
            <item><title>One</title><link>https://example.com/one</link></item>
            <item><title>Two</title><link>https://example.com/two</link></item></channel></rss>"#;
        assert_eq!(entry_links(rss).unwrap(), ["https://example.com/one", "https://example.com/two"]);
        let atom = br#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><id>urn:x</id><updated>2026-01-01T00:00:00Z</updated>
            <entry><title>Post</title><id>urn:p</id><updated>2026-01-01T00:00:00Z</updated>
            <link rel="edit" href="https://example.com/edit/1"/><link rel="alternate" href="https://example.com/post/1"/></entry></feed>"#;
        assert_eq!(entry_links(atom).unwrap(), ["https://example.com/post/1"]);
        assert!(entry_links(b"<html>no feed</html>").is_err());
    }
}
