//! The sitemap connector (sitemaps.org protocol): a `<urlset>`'s `<loc>`
//! pages, and the sitemaps a `<sitemapindex>` lists on its own host (each
//! once, at most [`MAX_SITEMAPS`] per run), gzipped or not. The first sitemap must be
//! readable (the run fails otherwise: retried if the failure may pass);
//! a listed one that is not is counted as failed.
//!
//! Must not: fetch except through the run's [`Fetcher`].

use std::collections::{HashSet, VecDeque};
use std::io::Read;

use quick_xml::Reader;
use quick_xml::events::Event;
use reqwest::Url;

use super::{Connector, Fetcher, Flow, Sink, fetch_and_store, skipped};
use crate::error::Error;

/// Sitemaps read per run, the first included.
const MAX_SITEMAPS: usize = 50;
/// Largest sitemap once decompressed (the protocol's own limit is 50 MB).
const MAX_SITEMAP_BYTES: u64 = 50 * 1024 * 1024;

pub(super) struct Sitemap {
    pub(super) url: Url,
}

/// What one sitemap lists.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listed {
    pages: Vec<String>,
    sitemaps: Vec<String>,
}

#[async_trait::async_trait]
impl Connector for Sitemap {
    async fn collect(&self, fetcher: &mut Fetcher<'_>, sink: &mut Sink<'_>) -> Result<(), Error> {
        let mut queue = VecDeque::from([self.url.clone()]);
        let mut sitemaps = HashSet::from([self.url.to_string()]);
        let mut read = 0;
        while let Some(url) = queue.pop_front() {
            read += 1;
            let listed = match fetcher.get(&url).await.map_err(|skip| skipped(&url, skip)) {
                Ok(fetched) => tokio::task::spawn_blocking(move || read_sitemap(&fetched.bytes)).await.map_err(|e| Error::Internal(format!("reading a sitemap: {e}")))?,
                Err(error) => Err(error),
            };
            let listed = match listed {
                Ok(listed) => listed,
                Err(error) if read == 1 => return Err(error),
                Err(error) => {
                    tracing::info!(sitemap = %url, %error, "a listed sitemap could not be read");
                    sink.report.failed += 1;
                    continue;
                }
            };
            // Listed sitemaps: on the sitemap's host, each once, at most MAX_SITEMAPS in all.
            for loc in &listed.sitemaps {
                let Ok(next) = url.join(loc.trim()) else { continue };
                if next.host_str() != self.url.host_str() || !sitemaps.insert(next.to_string()) {
                    continue;
                }
                if sitemaps.len() > MAX_SITEMAPS {
                    sink.report.truncated = true;
                    break;
                }
                queue.push_back(next);
            }
            let pages = listed.pages.iter().filter_map(|loc| sink.discover(loc, &url)).collect();
            if fetch_and_store(fetcher, sink, pages, &url).await? == Flow::Stop {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The pages and sitemaps a sitemap lists (gzip undone).
fn read_sitemap(bytes: &[u8]) -> Result<Listed, Error> {
    let unzipped;
    let xml = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).take(MAX_SITEMAP_BYTES + 1).read_to_end(&mut out).map_err(|e| Error::Unprocessable(format!("the sitemap is not valid gzip: {e}")))?;
        if out.len() as u64 > MAX_SITEMAP_BYTES {
            return Err(Error::Unprocessable(format!("the sitemap is larger than {MAX_SITEMAP_BYTES} bytes unzipped")));
        }
        unzipped = out;
        unzipped.as_slice()
    } else {
        bytes
    };
    parse(xml).map_err(|e| Error::Unprocessable(format!("the sitemap is not valid sitemap XML: {e}")))
}

fn parse(xml: &[u8]) -> Result<Listed, String> {
    let mut reader = Reader::from_reader(xml);
    let mut listed = Listed::default();
    // The `<url>` or `<sitemap>` entry being read, and the text of its `<loc>`.
    let mut entry: Option<&'static str> = None;
    let mut loc: Option<String> = None;
    let mut root = None;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => match e.local_name().into_inner() {
                "urlset" | "sitemapindex" if root.is_none() => root = Some(()),
                "url" => entry = Some("url"),
                "sitemap" => entry = Some("sitemap"),
                "loc" if entry.is_some() => loc = Some(String::new()),
                _ => {}
            },
            Event::Text(e) => {
                if let Some(loc) = loc.as_mut() {
                    loc.push_str(&e.xml10_content());
                }
            }
            Event::CData(e) => {
                if let Some(loc) = loc.as_mut() {
                    loc.push_str(&e.into_inner());
                }
            }
            Event::GeneralRef(e) => {
                if let Some(loc) = loc.as_mut() {
                    let resolved = match e.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => Some(c.to_string()),
                        None => quick_xml::escape::resolve_predefined_entity(&e.xml10_content()).map(str::to_owned),
                    };
                    loc.push_str(&resolved.unwrap_or_default());
                }
            }
            Event::End(e) => match e.local_name().into_inner() {
                "loc" => {
                    if let (Some(found), Some(kind)) = (loc.take(), entry) {
                        let found = found.trim().to_owned();
                        if !found.is_empty() {
                            if kind == "url" { listed.pages.push(found) } else { listed.sitemaps.push(found) }
                        }
                    }
                }
                "url" | "sitemap" => entry = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if root.is_none() {
        return Err("it has no <urlset> or <sitemapindex>".into());
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urlset_and_an_index_list_their_locations() {
        let urlset = br#"<?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc> https://example.com/a?x=1&amp;y=2 </loc><lastmod>2026-01-01</lastmod></url>
              <url><loc><![CDATA[https://example.com/b]]></loc></url>
            </urlset>"#;
        assert_eq!(read_sitemap(urlset).unwrap(), Listed { pages: vec!["https://example.com/a?x=1&y=2".into(), "https://example.com/b".into()], sitemaps: vec![] });
        let index = br#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://example.com/s1.xml.gz</loc></sitemap></sitemapindex>"#;
        assert_eq!(read_sitemap(index).unwrap().sitemaps, ["https://example.com/s1.xml.gz"]);
    }

    #[test]
    fn a_gzipped_sitemap_is_read_and_other_documents_are_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"<urlset><url><loc>https://example.com/z</loc></url></urlset>").unwrap();
        assert_eq!(read_sitemap(&gz.finish().unwrap()).unwrap().pages, ["https://example.com/z"]);
        assert!(read_sitemap(b"<html><body>not a sitemap</body></html>").is_err());
        assert!(read_sitemap(&[0x1f, 0x8b, 0, 1, 2]).is_err());
    }
}
