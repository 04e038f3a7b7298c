//! How the parent reads a worker that misbehaves: real child processes
//! (shell scripts standing in for `agentry parse-worker`) that die of
//! each cause, hang, or lie about their reply. The real worker is run
//! by the server's tests.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::*;

/// A program that runs `script` (a POSIX shell body) as the worker.
fn worker(dir: &tempfile::TempDir, script: &str) -> std::io::Result<Parser> {
    let program = dir.path().join("worker.sh");
    std::fs::write(&program, format!("#!/bin/sh\n{script}\n"))?;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))?;
    Ok(Parser::isolated(program, 2))
}

async fn parse_pdf(parser: &Parser, limits: Limits) -> Result<Parsed, ParseFailure> {
    parser.parse(b"%PDF-1.7\n".to_vec(), Format::Pdf, limits).await
}

fn too_large(failure: &Result<Parsed, ParseFailure>, what: &str) -> bool {
    matches!(failure, Err(ParseFailure::Document(ParseError::TooLarge { what: found, .. })) if found.contains(what))
}

#[tokio::test]
async fn a_worker_stopped_by_its_cpu_limit_is_out_of_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let failure = parse_pdf(&worker(&dir, "kill -XCPU $$").expect("worker script"), Limits::default()).await;
    assert!(too_large(&failure, "time"), "{failure:?}");
}

#[tokio::test]
async fn a_worker_out_of_memory_is_over_the_memory_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let failure = parse_pdf(&worker(&dir, "echo 'memory allocation of 1048576 bytes failed' >&2; kill -ABRT $$").expect("worker script"), Limits::default()).await;
    assert!(too_large(&failure, "memory"), "{failure:?}");
    assert!(failure.err().is_some_and(|e| e.to_string().contains("2048 MiB")));
}

#[tokio::test]
async fn a_worker_that_crashes_fails_the_document_not_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let failure = parse_pdf(&worker(&dir, "kill -SEGV $$").expect("worker script"), Limits::default()).await;
    assert!(matches!(failure, Err(ParseFailure::Document(ParseError::Malformed(_)))), "{failure:?}");
}

#[tokio::test]
async fn a_worker_that_hangs_is_killed_after_its_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let failure = parse_pdf(&worker(&dir, "exec sleep 60").expect("worker script"), Limits { max_parse_secs: 1, ..Limits::default() }).await;
    assert!(too_large(&failure, "time"), "{failure:?}");
    assert!(started.elapsed() < Duration::from_secs(1) + GRACE + Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_reply_announcing_more_text_than_the_budget_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lie = r#"cat >/dev/null; echo '{"Parsed":{"title":null,"sections":[{"heading_path":[],"page":1,"text_bytes":999999999999}]}}'"#;
    let failure = parse_pdf(&worker(&dir, lie).expect("worker script"), Limits::default()).await;
    assert!(too_large(&failure, "headings and text"), "{failure:?}");
}

#[tokio::test]
async fn a_reply_is_read_as_announced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reply =
        r#"cat >/dev/null; printf '{"Parsed":{"title":"T","sections":[{"heading_path":["A"],"page":1,"text_bytes":5},{"heading_path":[],"page":2,"text_bytes":3}]}}\nhelloabc'"#;
    let parsed = parse_pdf(&worker(&dir, reply).expect("worker script"), Limits::default()).await.expect("parsed");
    assert_eq!(parsed.title.as_deref(), Some("T"));
    assert_eq!(parsed.sections.iter().map(|s| (s.page, s.text.as_str())).collect::<Vec<_>>(), [(Some(1), "hello"), (Some(2), "abc")]);
    let short = r#"cat >/dev/null; printf '{"Parsed":{"title":null,"sections":[{"heading_path":[],"page":1,"text_bytes":9}]}}\nabc'"#;
    assert!(matches!(parse_pdf(&worker(&dir, short).expect("worker script"), Limits::default()).await, Err(ParseFailure::Worker(_))));
}

#[tokio::test]
async fn a_program_that_is_not_a_worker_fails_the_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_worker = worker(&dir, "echo 'running 0 tests'").expect("worker script");
    assert!(matches!(not_a_worker.check().await, Err(ParseFailure::Worker(_))));
    let missing = Parser::isolated(dir.path().join("nothing-here"), 1);
    assert!(matches!(missing.check().await, Err(ParseFailure::Worker(reason)) if reason.contains("cannot start")));
    assert!(Parser::InProcess.check().await.is_ok());
}

#[tokio::test]
async fn text_formats_parse_in_process_even_when_isolated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let parser = worker(&dir, "kill -SEGV $$").expect("worker script");
    let parsed = parser.parse(b"plain words".to_vec(), Format::Text, Limits::default()).await.expect("parsed in process");
    assert_eq!(parsed.sections[0].text, "plain words");
}
