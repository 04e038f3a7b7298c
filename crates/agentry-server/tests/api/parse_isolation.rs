//! PDF and DOCX uploads are parsed by the real `agentry parse-worker` in a
//! child process that caps its own memory: a document that needs more
//! fails alone, at once, with the reason, and the server goes on
//! ingesting. A program that is not a parse worker stops start-up.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const MIB: u64 = 1024 * 1024;

/// A one-page PDF saying `text`, its content stream padded with `padding`
/// spaces (flate-compressed, so a big padding stays a small file).
fn pdf(text: &str, padding: usize) -> Vec<u8> {
    let mut content = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET").into_bytes();
    content.resize(content.len() + padding, b' ');
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&content).expect("compressed");
    let stream = encoder.finish().expect("compressed");
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", stream.len()).into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    objects[3].extend_from_slice(&stream);
    objects[3].extend_from_slice(b"\nendstream");
    let mut file = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (number, object) in objects.iter().enumerate() {
        offsets.push(file.len());
        file.extend_from_slice(format!("{} 0 obj\n", number + 1).as_bytes());
        file.extend_from_slice(object);
        file.extend_from_slice(b"\nendobj\n");
    }
    let xref = file.len();
    file.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        file.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    file.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    file
}

/// A one-paragraph Word document.
fn docx(text: &str) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"#
    );
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("word/document.xml", zip::write::SimpleFileOptions::default()).expect("zip entry");
    zip.write_all(document.as_bytes()).expect("zip entry written");
    zip.finish().expect("zip finished").into_inner()
}

async fn upload(app: &TestApp, token: &str, collection: &str, name: &str, bytes: Vec<u8>) -> Value {
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    let response = app.with(Method::POST, &format!("/api/v1/collections/{collection}/documents"), token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

async fn finished_job(app: &TestApp, token: &str, accepted: &Value) -> Value {
    let started = Instant::now();
    loop {
        let (_, job) = send(app, token, Method::GET, &format!("/api/v1/ingest-jobs/{}", accepted["job_id"].as_str().unwrap()), None).await;
        if job["status"] == "failed" || job["status"] == "succeeded" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the job is still {} after two minutes", job["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn found(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (status, results) = send(app, token, Method::POST, "/api/v1/search", Some(json!({ "query": query, "mode": "keyword" }))).await;
    assert_eq!(status, 200, "{results}");
    results["results"].as_array().unwrap().iter().filter_map(|hit| hit["text"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_document_over_the_parse_memory_limit_fails_alone_and_ingestion_goes_on() {
    let mut options = mock_knowledge();
    options.knowledge.parse.max_parse_memory_mib = 512;
    // The PDF guard would refuse the padding as decompressed data first; let it through to the worker.
    options.knowledge.parse.inflate_floor_bytes = 1024 * MIB;
    options.knowledge.parse.max_inflated_bytes = 1024 * MIB;
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "isolated" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();

    let hungry = pdf("Hungry page", 700 * MIB as usize);
    assert!(hungry.len() < 2 * MIB as usize, "{}", hungry.len());
    let job = finished_job(&app, &admin, &upload(&app, &admin, &collection, "hungry.pdf", hungry).await).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "over the memory limit is not retried: {job}");
    let reason = job["error"].as_str().unwrap_or_default();
    assert!(reason.contains("memory it takes to parse") && reason.contains("512 MiB"), "{reason}");

    // The server is up and still parses PDF and DOCX in workers.
    assert_eq!(app.client.get(format!("{}/health", app.address)).send().await.unwrap().status(), 200);
    wait_ingested(&app, &admin, &upload(&app, &admin, &collection, "fine.pdf", pdf("Quarterly isolation report", 10)).await).await;
    wait_ingested(&app, &admin, &upload(&app, &admin, &collection, "fine.docx", docx("Handbook of isolated parsing")).await).await;
    assert!(found(&app, &admin, "quarterly isolation").await.iter().any(|t| t.contains("Quarterly isolation report")));
    assert!(found(&app, &admin, "handbook").await.iter().any(|t| t.contains("Handbook of isolated parsing")));
}

#[tokio::test]
async fn a_parse_worker_that_does_not_answer_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = agentry_server::Settings { data_dir: dir.path().to_path_buf(), offline: true, ..agentry_server::Settings::default() };
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.local.enabled = false;
    settings.knowledge.parse_worker = Some("/bin/echo".into());
    let error = agentry_server::Application::build(settings).await.err().expect("refused: echo is no parse worker");
    assert!(format!("{error:#}").contains("knowledge.parse_worker"), "{error:#}");
    assert!(settings_with_limit(256).validate().unwrap_err().to_string().contains("max_parse_memory_mib"));
    assert!(settings_with_limit(512).validate().is_ok());
}

fn settings_with_limit(max_parse_memory_mib: u64) -> agentry_server::configuration::Settings {
    let mut settings: agentry_server::configuration::Settings = serde_json::from_value(json!({})).unwrap();
    settings.knowledge.parse.max_parse_memory_mib = max_parse_memory_mib;
    settings
}
